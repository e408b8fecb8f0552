"""Figures of an original song and its reconstruction (the thesis's Figures 11-20, and more).

Each function returns a matplotlib Figure (no pyplot state): save it with `savefig`, or hand
it to TensorBoard's `add_figure`.
"""

import numpy as np
import torch
from matplotlib.figure import Figure

ORIGINAL, RECONSTRUCTION = dict(color="tab:blue", label="original"), dict(color="tab:orange", label="reconstruction")


def _np(x) -> np.ndarray:
    return x.detach().float().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float32)


def waveform_figure(original, reconstruction, sample_rate: int, title: str = "") -> Figure:
    original, reconstruction = _np(original), _np(reconstruction)
    fig = Figure(figsize=(10, 3.2), layout="constrained")
    ax = fig.add_subplot()
    t = np.arange(len(original)) / sample_rate
    ax.plot(t, original, linewidth=0.6, **ORIGINAL)
    ax.plot(t, reconstruction, linewidth=0.6, alpha=0.8, **RECONSTRUCTION)
    ax.set(xlabel="time (s)", ylabel="amplitude", title=f"Waveform {title}".strip(), xlim=(0, t[-1] if len(t) else 1))
    ax.legend(loc="upper right")
    return fig


def spectrum_figure(original, reconstruction, sample_rate: int, title: str = "") -> Figure:
    """Magnitude spectrum of the whole signal, in dB relative to the original's peak."""
    original, reconstruction = _np(original), _np(reconstruction)
    freqs = np.fft.rfftfreq(len(original), 1 / sample_rate)
    mags = [np.abs(np.fft.rfft(x)) for x in (original, reconstruction)]
    peak = max(mags[0].max(), 1e-12)
    fig = Figure(figsize=(10, 3.2), layout="constrained")
    ax = fig.add_subplot()
    for mag, style in zip(mags, (ORIGINAL, RECONSTRUCTION)):
        ax.plot(freqs, 20 * np.log10(np.maximum(mag / peak, 1e-6)), linewidth=0.5, alpha=0.8, **style)
    ax.set(
        xlabel="frequency (Hz)",
        ylabel="magnitude (dB)",
        title=f"Magnitude spectrum {title}".strip(),
        xlim=(0, sample_rate / 2),
        ylim=(-100, 5),
    )
    ax.legend(loc="upper right")
    return fig


def spectrogram_figure(original, reconstruction, sample_rate: int, title: str = "", n_fft: int = 256) -> Figure:
    """Log-magnitude spectrograms side by side, on one colour scale."""
    window = torch.hann_window(n_fft)
    specs = []
    for x in (original, reconstruction):
        x = torch.as_tensor(_np(x))
        mag = torch.stft(x, n_fft, hop_length=n_fft // 4, window=window, return_complex=True).abs()
        specs.append(20 * torch.log10(mag.clamp_min(1e-6)).numpy())
    top = specs[0].max()
    fig = Figure(figsize=(11, 3.6), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    extent = (0, len(_np(original)) / sample_rate, 0, sample_rate / 2)
    for ax, spec, name in zip(axes, specs, ("original", "reconstruction")):
        image = ax.imshow(spec, origin="lower", aspect="auto", extent=extent, vmin=top - 80, vmax=top, cmap="magma")
        ax.set(xlabel="time (s)", title=f"{name} {title}".strip())
    axes[0].set_ylabel("frequency (Hz)")
    fig.colorbar(image, ax=axes, label="dB")
    return fig


def seam_figure(
    original, stitched, butted, sample_rate: int, seam: int, width_ms: float = 25.0, title: str = ""
) -> Figure:
    """A close-up of one segment seam: butt-joined segments (the thesis) click, cross-faded do not."""
    half = max(1, int(width_ms / 1000 * sample_rate))
    lo, hi = max(0, seam - half), min(len(_np(original)), seam + half)
    t = (np.arange(lo, hi) - seam) / sample_rate * 1000
    fig = Figure(figsize=(10, 3.4), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(t, _np(original)[lo:hi], linewidth=1.0, **ORIGINAL)
    ax.plot(t, _np(butted)[lo:hi], linewidth=1.0, color="tab:red", label="butt-joined segments (thesis)")
    ax.plot(t, _np(stitched)[lo:hi], linewidth=1.0, color="tab:green", label="overlap-added segments (aerecon)")
    ax.axvline(0, color="grey", linestyle=":", linewidth=1)
    ax.set(
        xlabel=f"time from the seam at {seam / sample_rate:.2f} s (ms)",
        ylabel="amplitude",
        title=f"Segment seam {title}".strip(),
    )
    ax.legend(loc="upper right")
    return fig
