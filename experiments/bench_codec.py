"""How fast a trained model compresses and decompresses whole songs, through the commands' own
functions (decoding the input file and writing the output are left out: they are the same for
every codec).

    python experiments/bench_codec.py --ckpt CKPT [--data data/nexuiz] [--kbps 8] [--repeats 3]

Each of make bench's test songs (at the model's rate) is compressed into bytes and decoded back
`--repeats` times; the fastest time of each counts. Prints, per song: its length, the file's rate,
and the seconds and times real time of compress and decompress. Writes
experiments/results/bench_codec.md.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from aerecon.audio.io import load_audio
from aerecon.coding.learned import compress, decompress
from aerecon.training.checkpoint import load

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import machine, publish, real_music  # noqa: E402


def fastest(repeats: int, run, *args, **kwargs) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        started = time.perf_counter()
        result = run(*args, **kwargs)
        best = min(best, time.perf_counter() - started)
    return best, result


def decoded(model, ckpt: Path, data: bytes, name: str) -> np.ndarray:
    return np.concatenate(list(decompress(model, ckpt, data, name)[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=Path("data/nexuiz"))
    parser.add_argument("--kbps", type=float, default=None, help="fit each file to this rate")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("experiments/results/bench_codec.md"))
    args = parser.parse_args()
    model = load(args.ckpt, "cpu")
    lines = [
        f"`python experiments/bench_codec.py --ckpt {args.ckpt}"
        + (f" --kbps {args.kbps:g}" if args.kbps else "")
        + f" --repeats {args.repeats}`, {machine('cpu')}, {torch.get_num_threads()} torch threads",
        "",
        "| song | seconds | kbit/s | compress s | x real time | decompress s | x real time |",
        "|---|---|---|---|---|---|---|",
    ]
    for path in sorted((real_music(args.data) / "test").glob("*.ogg")):
        wave = load_audio(path, model.sample_rate).reshape(-1)
        seconds = len(wave) / model.sample_rate
        encode, (data, _) = fastest(args.repeats, compress, model, args.ckpt, [wave], kbps=args.kbps)
        decode, _ = fastest(args.repeats, decoded, model, args.ckpt, data, path.name)
        lines.append(
            f"| {path.name} | {seconds:.0f} | {8 * len(data) / seconds / 1000:.2f} | {encode:.2f} | "
            f"{seconds / encode:.0f} | {decode:.2f} | {seconds / decode:.0f} |"
        )
        print(lines[-1], flush=True)
    publish(lines, args.out)


if __name__ == "__main__":
    main()
