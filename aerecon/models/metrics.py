"""Reconstruction metrics on waveforms: per batch during training (torchmetrics collections,
keyed `<stage>/<name>`) and per whole song in evaluation (`song_metrics`)."""

import math

import torch
from torchmetrics import MeanAbsoluteError, MeanSquaredError, Metric, MetricCollection
from torchmetrics.functional.audio import scale_invariant_signal_distortion_ratio, signal_noise_ratio

from aerecon.models.losses import MultiResolutionSTFTLoss

# The thesis found that only the lows survive; these bands put a number on it (Hz, at 4410 Hz).
BANDS = {"low": (0.0, 250.0), "mid": (250.0, 1000.0), "high": (1000.0, math.inf)}


class SegmentSNR(Metric):
    """SNR in dB per segment (as torchmetrics computes it), averaged over the segments whose
    reference is audible.

    A silent reference has no meaningful SNR: torchmetrics' epsilon turns it into -60 dB or
    less, which would drag the average down for reasons unrelated to the model. Segments whose
    reference's mean power is below `silence_db` dBFS are left out; if every segment was
    silent, the result is 0 dB (no information), never NaN.
    """

    full_state_update = False

    def __init__(self, silence_db: float = -90.0, **kwargs):
        super().__init__(**kwargs)
        self.threshold = 10 ** (silence_db / 10)
        self.add_state("total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        preds, target = preds.reshape(len(preds), -1), target.reshape(len(target), -1)
        audible = target.double().square().mean(dim=1) >= self.threshold
        if audible.any():
            self.total += signal_noise_ratio(preds[audible], target[audible]).double().sum()
            self.count += audible.sum()

    def compute(self) -> torch.Tensor:
        return self.total / self.count if self.count else torch.zeros((), dtype=torch.float64)


def waveform_metrics(stage: str) -> MetricCollection:
    """MSE, MAE and RMSE over all samples; SNR in dB per audible segment, averaged."""
    return MetricCollection(
        {
            "mse": MeanSquaredError(),
            "mae": MeanAbsoluteError(),
            "rmse": MeanSquaredError(squared=False),
            "snr_db": SegmentSNR(),
        },
        prefix=f"{stage}/",
    )


class SeamExcess(Metric):
    """How much louder sample-to-sample jumps are at segment seams than elsewhere, in dB,
    in the reconstruction minus the same in the original (0 dB: no audible seams).

    Jump energies are pooled over every song updated, so many short songs give one stable
    figure; seams are the sample indices where a segment starts or ends.
    """

    full_state_update = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        for name in ("rec_seam", "rec_rest", "ref_seam", "ref_rest", "n_seam", "n_rest"):
            self.add_state(name, default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, reference: torch.Tensor, reconstruction: torch.Tensor, seams: list[int]) -> None:
        at_seam = torch.zeros(len(reference) - 1, dtype=torch.bool, device=reference.device)
        at_seam[[p - 1 for p in seams]] = True  # jump into sample p is diff[p - 1]
        for prefix, signal in (("rec", reconstruction), ("ref", reference)):
            jump = torch.diff(signal.double()) ** 2
            setattr(self, f"{prefix}_seam", getattr(self, f"{prefix}_seam") + jump[at_seam].sum())
            setattr(self, f"{prefix}_rest", getattr(self, f"{prefix}_rest") + jump[~at_seam].sum())
        self.n_seam += at_seam.sum()
        self.n_rest += (~at_seam).sum()

    def compute(self) -> torch.Tensor:
        if self.n_seam == 0:
            return torch.tensor(0.0, dtype=torch.float64)  # one segment, no seam

        def ratio_db(seam, rest):
            tiny = torch.finfo(torch.float64).tiny
            return 10 * torch.log10((seam / self.n_seam + tiny) / (rest / self.n_rest + tiny))

        return ratio_db(self.rec_seam, self.rec_rest) - ratio_db(self.ref_seam, self.ref_rest)


def band_snr_db(
    reference: torch.Tensor,
    reconstruction: torch.Tensor,
    sample_rate: int,
    bands: dict[str, tuple[float, float]] = BANDS,
) -> dict[str, float]:
    """SNR within each frequency band (Parseval on the whole signal's RFFT); NaN for a silent band."""
    ref = torch.fft.rfft(reference.double())
    err = ref - torch.fft.rfft(reconstruction.double())
    freqs = torch.fft.rfftfreq(len(reference), 1 / sample_rate).to(ref.device)
    out = {}
    for name, (low, high) in bands.items():
        inside = (freqs >= low) & (freqs < high)
        signal, noise = ref[inside].abs().square().sum(), err[inside].abs().square().sum()
        out[name] = float(10 * torch.log10(signal / noise)) if signal > 0 else math.nan
    return out


def log_spectral_distance(
    reference: torch.Tensor, reconstruction: torch.Tensor, n_fft: int = 256, eps: float = 1e-10
) -> float:
    """Mean over frames of the RMS over frequency of 10*log10(P_ref / P_rec), in dB."""
    window = torch.hann_window(n_fft, device=reference.device, dtype=torch.float64)

    def power(x):
        return torch.stft(x.double(), n_fft, hop_length=n_fft // 4, window=window, return_complex=True).abs() ** 2

    diff_db = 10 * torch.log10((power(reference) + eps) / (power(reconstruction) + eps))
    return float(diff_db.square().mean(dim=0).sqrt().mean())


_STFT = MultiResolutionSTFTLoss()


def song_metrics(
    reference: torch.Tensor, reconstruction: torch.Tensor, sample_rate: int, seams: list[int]
) -> dict[str, float]:
    """Every evaluation metric for one whole song (1-D waveforms of equal length)."""
    ref, rec = reference.float(), reconstruction.float()
    error = rec - ref
    seam = SeamExcess().to(ref.device)
    seam.update(ref, rec, seams)
    mse = float(error.square().mean())
    metrics = {
        "mse": mse,
        "mae": float(error.abs().mean()),
        "rmse": math.sqrt(mse),
        "snr_db": float(signal_noise_ratio(rec, ref)),
        "si_sdr_db": float(scale_invariant_signal_distortion_ratio(rec, ref)),
        "seam_excess_db": float(seam.compute()),
        "stft_distance": float(_STFT(rec, ref)["total"]),
        "lsd_db": log_spectral_distance(ref, rec),
    }
    metrics.update({f"band_snr_db_{band}": value for band, value in band_snr_db(ref, rec, sample_rate).items()})
    return metrics
