"""Memory of whole-song reconstruction against the song's length: `aerecon-reconstruct` (a block at
a time) beside `aerecon.load(...).reconstruct` on the whole decoded song.

    python experiments/bench_reconstruct.py [--minutes 5,30,120] [--ckpt tests/fixtures/checkpoints/conv.ckpt]

- Songs: generated mono 16-bit WAVs at 22,050 Hz (tones, a sweep and noise), written a block at
  a time, in a temporary folder.
- Model: a small conv checkpoint at 2000 Hz (the test fixture), so that the figures are the
  audio path's: decoding, resampling, stitching and writing.
- Each way runs in its own process; the figure is that process's peak resident memory
  (`ru_maxrss`), and its wall time. Target: the command's peak does not grow with the song.
- Writes experiments/results/bench_reconstruct.md and prints it.
"""

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import child_peak, machine, publish  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RATE = 22050
WHOLE = """
import sys, aerecon
from aerecon.audio.io import load_audio, write_wav
model = aerecon.load(sys.argv[1], "cpu")
write_wav(sys.argv[3], model.reconstruct(load_audio(sys.argv[2], model.sample_rate)).numpy(), model.sample_rate)
"""


def write_song(path: Path, minutes: float) -> None:
    rng, block = np.random.default_rng(0), 60 * RATE
    with sf.SoundFile(path, "w", RATE, 1, subtype="PCM_16") as f:
        for start in range(0, round(minutes * 60 * RATE), block):
            t = (start + np.arange(block)) / RATE
            tone = 0.3 * np.sin(2 * np.pi * (220 + 200 * np.sin(2 * np.pi * t / 40)) * t)
            f.write((tone + 0.05 * rng.standard_normal(block)).astype(np.float32))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", default="5,30,120")
    parser.add_argument("--ckpt", type=Path, default=ROOT / "tests/fixtures/checkpoints/conv.ckpt")
    parser.add_argument("--whole-up-to", type=float, default=30, help="minutes: longer songs skip the whole-song way")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for minutes in map(float, args.minutes.split(",")):
            song = Path(tmp) / "song.wav"
            write_song(song, minutes)
            stream = child_peak(
                [
                    sys.executable,
                    "-m",
                    "aerecon.reconstruct",
                    f"ckpt_path={args.ckpt}",
                    f"input={song}",
                    f"output={tmp}/stream.wav",
                    "device=cpu",
                    "overwrite=true",
                ],
                ROOT,
            )
            whole = (
                child_peak([sys.executable, "-c", WHOLE, str(args.ckpt), str(song), f"{tmp}/whole.wav"], ROOT)
                if minutes <= args.whole_up_to
                else None
            )
            if whole:
                a, b = sf.read(f"{tmp}/stream.wav", dtype="float32")[0], sf.read(f"{tmp}/whole.wav", dtype="float32")[0]
                assert len(a) == len(b) and float(np.abs(a - b).max()) < 1e-5, "the two ways disagree"
            rows.append((minutes, song.stat().st_size / 2**20, stream, whole))
            print(rows[-1], flush=True)
    lines = [
        "# Reconstructing long songs: peak memory\n",
        f"`python experiments/bench_reconstruct.py --minutes {args.minutes}` ({machine('cpu')}); "
        f"model: {args.ckpt.name}, 22,050 Hz mono 16-bit WAV in, 2000 Hz float WAV out.\n",
        "| song | file | aerecon-reconstruct (blocks): peak RSS | time | whole song in memory: peak RSS | time |",
        "|---|---|---|---|---|---|",
    ]
    for minutes, size, (stream_s, stream_mib), whole in rows:
        whole_cells = f"{whole[1]:.0f} MiB | {whole[0]:.0f} s" if whole else "not run | "
        lines.append(f"| {minutes:g} min | {size:.0f} MiB | {stream_mib:.0f} MiB | {stream_s:.0f} s | {whole_cells} |")
    publish(lines, ROOT / "experiments/results/bench_reconstruct.md")


if __name__ == "__main__":
    main()
