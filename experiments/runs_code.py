"""What runs of frames buy over top-k coefficients, at the same numbers and at the same bits.

    python experiments/runs_code.py [--data data/nexuiz]

sparseconv's MDCT start (hop 245, untrained) on `make bench`'s songs at 4410 Hz, segments
butt-joined and SNR per song averaged over songs (as latent_bounds.py and learned_gain.py):

- top-k, 3300 numbers: the 1650 largest coefficients and their positions (`select=topk`);
- runs, 3300 numbers: runs of frames per channel, a descriptor each (`select=runs`);
- top-k with as many bits as the longest runs code (`code_bits`): more coefficients, since a
  top-k position takes fewer bits than a float32 value.

Each row also times encoding a batch of 8 segments (filterbank and selection; the median of 20,
after 3 unmeasured), the part of a training step that differs between the codes.

Writes experiments/results/runs_code.md and prints it.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from aerecon.models import SparseConvAutoencoder

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import machine, publish, real_music_songs  # noqa: E402
from learned_gain import RATE, SEGMENT, mean_snr, segments  # noqa: E402


def encode_ms(net: SparseConvAutoencoder, batch: torch.Tensor) -> float:
    times = []
    for _ in range(23):
        started = time.perf_counter()
        net.encode(batch)
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times[3:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("data/nexuiz"))
    parser.add_argument("--out", type=Path, default=Path("experiments/results/runs_code.md"))
    args = parser.parse_args()
    songs = real_music_songs(args.data, RATE)
    started = time.perf_counter()
    runs = SparseConvAutoencoder(SEGMENT, 3300, 245, select="runs")
    per_coefficient = SparseConvAutoencoder(SEGMENT, 2, 245).code_bits()  # one value and its position
    equal_bits = 2 * (runs.code_bits() // per_coefficient)
    codes = {
        "top-k, 1650 coefficients and their positions": SparseConvAutoencoder(SEGMENT, 3300, 245),
        "runs of frames, one descriptor per run": runs,
        f"top-k at the runs code's bits: {equal_bits // 2} coefficients and their positions": SparseConvAutoencoder(
            SEGMENT, equal_bits, 245
        ),
    }
    batch = segments(songs["val"][0])[:8]
    rows = []
    for name, net in codes.items():
        snr = [mean_snr(songs[split], net) for split in ("val", "test")]
        rows.append(
            f"| {name} | {net.select.numbers} | {net.code_bits():,} | {snr[0]:.2f} | {snr[1]:.2f} | "
            f"{encode_ms(net, batch):.1f} |"
        )
        print(rows[-1], flush=True)
    publish(
        [
            f"`python experiments/runs_code.py`, {machine('cpu')}, {time.perf_counter() - started:.0f} s",
            "",
            "| MDCT hop 245, untrained | numbers per 3 s | bits per 3 s (at most) | val SNR dB | test SNR dB "
            "| ms to encode 8 segments |",
            "|---|---|---|---|---|---|",
            *rows,
        ],
        args.out,
    )


if __name__ == "__main__":
    with torch.no_grad():
        main()
