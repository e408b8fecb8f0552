"""How high can 3300 numbers per 3 s segment reach on the real-music data? Oracle and linear bounds.

    python experiments/latent_bounds.py [--data data/nexuiz] [--mlp-minutes 4]

A learned model should beat the best linear baseline (fourier_topk, 8.79 dB on the validation
songs in `make bench`) by a wide margin at the thesis's latent size. This script measures what
non-learned codes reach at the same count of numbers, on the same songs
(4410 Hz; SNR on whole songs, averaged over songs as `aerecon.evaluate` does):

- RFFT top-k per segment (an oracle: it picks each 3 s segment's strongest bins). 1100 bins
  cost 3300 numbers (real, imaginary, index); 1650 bins without their indices is over budget,
  shown as a ceiling.
- MDCT top-k per segment (an oracle over a lapped, critically sampled transform with hop M:
  adaptive in time and frequency): 1650 coefficients per segment, value and index.
- Per-frame PCA (linear, fitted on the training songs): MDCT frames of hop 441, 110 numbers
  kept per frame (110 / 441 = 3300 / 13230).
- Per-frame MLP autoencoders on the same frames for --mlp-minutes each (0: skipped): one from
  scratch, one starting from the PCA (linear path) with a zero-initialised nonlinear correction.

Writes experiments/results/latent_bounds.md and prints it.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from aerecon.models.sparseconv import mdct_basis  # the filterbank sparseconv starts from

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import machine, publish, real_music_songs  # noqa: E402

RATE, SEGMENT, LATENT = 4410, 13230, 3300


def mdct(song: np.ndarray, hop: int) -> np.ndarray:
    """[frames, hop] coefficients of the song padded to whole segments (perfect reconstruction)."""
    length = -(-len(song) // SEGMENT) * SEGMENT
    x = np.concatenate([np.zeros(hop, np.float32), song, np.zeros(length - len(song) + hop, np.float32)])
    return np.lib.stride_tricks.sliding_window_view(x, 2 * hop)[::hop][: length // hop + 1] @ mdct_basis(hop).numpy().T


def imdct(coefficients: np.ndarray, hop: int, length: int) -> np.ndarray:
    frames = coefficients @ mdct_basis(hop).numpy()
    out = np.zeros((len(frames) + 1) * hop, np.float32)
    for i, frame in enumerate(frames):
        out[i * hop : i * hop + 2 * hop] += frame
    return out[hop : hop + length]


def snr_db(reference: np.ndarray, reconstruction: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(reference**2) / np.sum((reference - reconstruction) ** 2)))


def keep_top(values: np.ndarray, k: int) -> np.ndarray:
    """Zero all but the k largest magnitudes of each row."""
    index = np.argpartition(-np.abs(values), k - 1, axis=1)[:, :k]
    kept = np.zeros_like(values)
    np.put_along_axis(kept, index, np.take_along_axis(values, index, 1), 1)
    return kept


def rfft_top(song: np.ndarray, bins: int) -> np.ndarray:
    segments = np.pad(song, (0, -len(song) % SEGMENT)).reshape(-1, SEGMENT)  # butt-joined, the end zero-padded
    spectra = keep_top(np.fft.rfft(segments, axis=1), bins)
    return np.fft.irfft(spectra, n=SEGMENT, axis=1).reshape(-1)[: len(song)].astype(np.float32)


def mdct_top(song: np.ndarray, hop: int, coefficients: int) -> np.ndarray:
    c = mdct(song, hop)
    per_segment = SEGMENT // hop
    body = c[: len(c) // per_segment * per_segment].reshape(-1, per_segment * hop)
    c[: len(body) * per_segment] = keep_top(body, coefficients).reshape(-1, hop)
    c[len(body) * per_segment :] = 0
    return imdct(c, hop, len(song))


def mean_snr(songs: list[np.ndarray], code) -> float:
    return float(np.mean([snr_db(s, code(s)) for s in songs]))


class FrameAutoencoder(nn.Module):
    """MLP on one MDCT frame: hop -> hidden -> hidden -> kept, and back; optionally PCA plus a correction."""

    def __init__(self, hop: int, kept: int, hidden: int, pca: torch.Tensor | None):
        super().__init__()

        def mlp(a, b):
            return nn.Sequential(
                nn.Linear(a, hidden), nn.ELU(), nn.Linear(hidden, hidden), nn.ELU(), nn.Linear(hidden, b)
            )

        self.encoder, self.decoder = mlp(hop, kept), mlp(kept, hop)
        self.pca_in = self.pca_out = None
        if pca is not None:
            self.pca_in, self.pca_out = nn.Parameter(pca.clone()), nn.Parameter(pca.clone())
            for last in (self.encoder[-1], self.decoder[-1]):
                nn.init.zeros_(last.weight)
                nn.init.zeros_(last.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.encoder(x) + (x @ self.pca_in.T if self.pca_in is not None else 0)
        return self.decoder(z) + (z @ self.pca_out if self.pca_out is not None else 0)


def train_frames(model: nn.Module, frames: torch.Tensor, minutes: float) -> int:
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    started, steps = time.perf_counter(), 0
    while time.perf_counter() - started < minutes * 60:
        x = frames[torch.randint(len(frames), (256,), generator=generator)]
        loss = (model(x) - x).square().sum() / x.square().sum()  # 1/SNR of the batch
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        steps += 1
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("data/nexuiz"))
    parser.add_argument("--mlp-minutes", type=float, default=4.0)
    parser.add_argument("--out", type=Path, default=Path("experiments/results/latent_bounds.md"))
    args = parser.parse_args()
    torch.manual_seed(0)
    songs = real_music_songs(args.data, RATE)
    rows = []

    def row(name: str, numbers: str, code) -> None:
        rows.append(
            f"| {name} | {numbers} | {mean_snr(songs['val'], code):.2f} | {mean_snr(songs['test'], code):.2f} |"
        )
        print(rows[-1], flush=True)

    row("RFFT top-1100 bins per segment (oracle)", "3300", lambda s: rfft_top(s, 1100))
    row("RFFT top-1650 bins per segment, indices free (ceiling)", "3300 + 1650 indices", lambda s: rfft_top(s, 1650))
    for hop in (63, 245, 441, 1323):
        row(f"MDCT top-1650 per segment, hop {hop} (oracle)", "3300", lambda s, hop=hop: mdct_top(s, hop, LATENT // 2))

    hop, kept = 441, 110
    train = torch.tensor(np.concatenate([mdct(s, hop) for s in songs["train"]]))
    pca = torch.linalg.svd(train, full_matrices=False)[2][:kept]

    def frame_code(transform):
        def code(song):
            with torch.no_grad():
                return imdct(transform(torch.tensor(mdct(song, hop))).numpy(), hop, len(song))

        return code

    row(
        f"per-frame PCA, hop {hop}, {kept} per frame (linear, fitted on train)",
        "3300",
        frame_code(lambda c: (c @ pca.T) @ pca),
    )
    if args.mlp_minutes > 0:
        scale = train.std()
        for name, start in (("MLP autoencoder", None), ("PCA + MLP correction", pca)):
            model = FrameAutoencoder(hop, kept, 1024, start)
            steps = train_frames(model, train / scale, args.mlp_minutes)
            row(
                f"per-frame {name}, hop {hop}, {args.mlp_minutes:g} min ({steps} steps of 256 frames)",
                "3300",
                frame_code(lambda c, m=model: m(c / scale) * scale),
            )

    lines = [
        f"`python experiments/latent_bounds.py --mlp-minutes {args.mlp_minutes:g}`, {machine('cpu')}",
        "",
        "| code | numbers per 3 s | val SNR dB | test SNR dB |",
        "|---|---|---|---|",
        *rows,
        "",
        "For comparison (`make bench`): fourier_topk 8.79 (val) / 9.70 (test), lowpass 5.39 / 9.20.",
    ]
    publish(lines, args.out)


if __name__ == "__main__":
    main()
