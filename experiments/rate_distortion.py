"""Rate against distortion of the reference codecs, counted in bits, on the benchmark's test songs
and a second kind of music.

    python experiments/rate_distortion.py [--data data/nexuiz] [--second /usr/share/hyperrogue/music]
        [--second-songs 6] [--kbps 4,8,16,32] [--ckpt LABEL=PATH ...]

Every codec of aerecon.coding.reference writes each song into real bytes and decodes it back (at
4410 Hz, the thesis's rate). The rate is the bytes written, times 8, over the songs' duration; the
distortion is measured on whole songs as `aerecon.evaluate` measures it: SNR and the
multi-resolution STFT distance and log-spectral distance (perceptual codecs keep spectra, not
waveforms), averaged over songs. Each `--ckpt LABEL=PATH` adds a trained model whose code is
discrete, measured on the files aerecon-compress writes: at its own rate, and at each rate asked
(`aerecon-compress kbps=N`: every quantisation step scaled by the one factor that fits). Writes
experiments/results/rate_distortion.md and prints it.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from aerecon.audio.io import load_audio
from aerecon.coding.learned import LearnedCodec
from aerecon.coding.reference import reference_codec
from aerecon.models.metrics import song_metrics
from aerecon.training.checkpoint import load

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import machine, publish, real_music  # noqa: E402

RATE = 4410
METRICS = ("snr_db", "stft_distance", "lsd_db")


def points(rates: list[float]) -> list[tuple[str, float | None]]:
    lossy = [(name, kbps) for name in ("dct", "opus") for kbps in rates]
    return [("pcm8", None), ("mulaw8", None), *lossy, *((name, 16.0) for name in ("mp3", "aac"))]


def measure(songs: list[np.ndarray], codec) -> dict[str, float]:
    bits, seconds, scores, coding = 0, 0.0, [], 0.0
    for song in songs:
        started = time.perf_counter()
        data = codec.encode(song, RATE)
        decoded = codec.decode(data)
        coding += time.perf_counter() - started
        bits, seconds = bits + 8 * len(data), seconds + len(song) / RATE
        metrics = song_metrics(torch.from_numpy(song), torch.from_numpy(decoded), RATE, [])
        scores.append([metrics[key] for key in METRICS])
    means = np.nanmean(np.array(scores), axis=0)
    return {"kbps": bits / seconds / 1000, **dict(zip(METRICS, means)), "speed": seconds / coding}


def table(title: str, songs: list[np.ndarray], rates: list[float], learned: dict[str, LearnedCodec]) -> list[str]:
    minutes = sum(len(s) for s in songs) / RATE / 60
    lines = [
        f"**{title}** ({len(songs)} songs, {minutes:.1f} min)",
        "",
        "| codec | asked kbit/s | kbit/s | SNR dB | MR-STFT dist. | LSD dB | encode+decode, x real time |",
        "|---|---|---|---|---|---|---|",
    ]
    codecs = [(name, kbps, reference_codec(name, kbps)) for name, kbps in points(rates)]
    for label, codec in learned.items():  # at the rate it trained towards, then fitted to each rate asked
        codecs.append((label, None, codec))
        codecs += [(label, kbps, LearnedCodec(codec.model, codec.ckpt_path, kbps=kbps)) for kbps in rates]
    for name, kbps, codec in codecs:
        m = measure(songs, codec)
        lines.append(
            f"| {name} | {'-' if kbps is None else f'{kbps:g}'} | {m['kbps']:.2f} | {m['snr_db']:.2f} | "
            f"{m['stft_distance']:.3f} | {m['lsd_db']:.2f} | {m['speed']:.0f} |"
        )
        print(lines[-1], flush=True)
    return lines + [""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("data/nexuiz"))
    parser.add_argument("--second", type=Path, default=Path("/usr/share/hyperrogue/music"))
    parser.add_argument("--second-songs", type=int, default=6, help="the first N songs of --second, by name")
    parser.add_argument("--kbps", default="4,8,16,32")
    parser.add_argument(
        "--ckpt", action="append", default=[], metavar="LABEL=PATH", help="a trained model whose code is discrete"
    )
    parser.add_argument("--out", type=Path, default=Path("experiments/results/rate_distortion.md"))
    args = parser.parse_args()
    learned = {}
    for item in args.ckpt:
        label, _, path = item.rpartition("=")
        learned[label or path] = LearnedCodec(load(path, "cpu"), path)
    rates = [float(k) for k in args.kbps.split(",")]
    test = [load_audio(f, RATE).reshape(-1) for f in sorted((real_music(args.data) / "test").glob("*.ogg"))]
    lines = [
        f"`python experiments/rate_distortion.py --kbps {args.kbps} --second-songs {args.second_songs}"
        + "".join(f" --ckpt {item}" for item in args.ckpt)
        + "`, "
        f"{machine('cpu')}",
        "",
    ]
    lines += table("nexuiz-music, make bench's test songs", test, rates, learned)
    if args.second.is_dir():
        files = sorted(args.second.glob("*.ogg"))[: args.second_songs]
        second = [load_audio(f, RATE).reshape(-1) for f in files]
        lines += table(f"second kind of music: {args.second}", second, rates, learned)
    else:
        lines.append(f"(no second set: {args.second} is not a folder; apt-get install hyperrogue-music)")
    publish(lines, args.out)


if __name__ == "__main__":
    main()
