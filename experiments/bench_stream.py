"""data=stream at scale, simulated: prepare throughput, the training process's memory against the
number of songs, and the streamed loader's speed against the fastest model's CPU step rate.

    python experiments/bench_stream.py [--songs 2000,20000] [--seconds 4] [--workers 2] [--batches 300]

- Corpus: generated songs (a tone, a sweep and noise; --seconds long, 8 kHz 16-bit WAV), nothing
  downloaded; the smaller corpora are the first songs of the largest.
- Prepare: `python -m aerecon.prepare` into an empty folder and an empty cache (4410 Hz, 3 s
  segments, margin 0.5, the thesis's split proportions), in its own process. Figures: wall
  seconds, seconds of audio per wall second, the prepared size.
- Memory: `python -m aerecon.train data=stream model=fc model.net.latent=32` on each prepared corpus for --steps
  steps with 2 loader workers (validation limited to a few batches). Figure: the training
  process's peak resident memory (`ru_maxrss`). Target: the largest corpus within 10% of the
  smallest.
- Loader: the StreamDataModule's training loader of the largest corpus with --workers workers,
  batch 40, timed over --batches batches after the first. Figure: segments per second.
  Target: at least 20x the fastest model's training steps on the CPU (bench_data.py's models,
  measured here: forward, loss, backward, optimizer on random 3 s segments). Beside it, a torch
  DataLoader with the same workers and batch over segments already in memory: the most that
  worker processes can hand over on this machine, whatever the storage.
- Writes experiments/results/bench_stream.md and prints it.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from aerecon.utils.config import segment_samples

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import child_peak, machine, publish  # noqa: E402
from bench_data import MODELS, model_rate  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RATE, SOURCE_RATE = 4410, 8000


def write_corpus(folder: Path, songs: int, seconds: float) -> None:
    rng = np.random.default_rng(0)
    t = np.arange(round(seconds * SOURCE_RATE)) / SOURCE_RATE
    for i in range(songs):
        part = folder / f"part{i // 1000:03d}"
        part.mkdir(parents=True, exist_ok=True)
        f0 = 80 + (i * 37) % 900
        wave = 0.3 * np.sin(2 * np.pi * (f0 + 40 * t) * t) + 0.03 * rng.standard_normal(len(t))
        sf.write(part / f"song{i:06d}.wav", wave.astype(np.float32), SOURCE_RATE, subtype="PCM_16")


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def loader_rate(prepared: Path, workers: int, batches: int) -> float:
    from aerecon.data.stream import StreamDataModule

    module = StreamDataModule(
        root=str(prepared),
        sample_rate=RATE,
        segment_seconds=3.0,
        batch_size=40,
        num_workers=workers,
        jitter=0.5,
        shuffle_seed=0,
    )
    module.prepare_data()
    module.setup("fit")
    return timed(module.train_dataloader(), batches)


class InMemory(torch.utils.data.Dataset):
    """Segments already in memory: what the loader's worker processes and their hand-over of
    batches cost, with no reading at all."""

    def __init__(self, segment_samples: int):
        self.waves = torch.randn(64, 1, segment_samples)

    def __len__(self) -> int:
        return 1_000_000

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.waves[index % 64].clone()


def timed(loader, batches: int) -> float:
    """Segments per second over `batches` batches after the first (epochs restart as needed)."""
    done, started = -1, None
    while done < batches:
        for _ in loader:
            done += 1
            if done == 0:
                started = time.perf_counter()
            if done == batches:
                break
    return batches * 40 / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--songs", default="2000,20000")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--steps", type=int, default=100, help="training steps of the memory runs")
    parser.add_argument("--model-steps", type=int, default=5, help="timed training steps per model")
    parser.add_argument("--out", type=Path, default=ROOT / "experiments/results/bench_stream.md")
    args = parser.parse_args()
    sizes = sorted(int(n) for n in args.songs.split(","))
    lines = [
        f"`python experiments/bench_stream.py --songs {args.songs} --seconds {args.seconds:g} --workers "
        f"{args.workers} --batches {args.batches} --steps {args.steps}`, {machine('cpu')}\n",
        "| songs | audio h | prepare wall s | prepare x real time | prepared MiB | training process peak RSS MiB |",
        "|---|---|---|---|---|---|",
    ]
    rss = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        music = work / "music"
        write_corpus(music, sizes[-1], args.seconds)
        for songs in sizes:
            root = work / f"music{songs}"
            root.mkdir()
            for part in sorted(music.iterdir())[: -(-songs // 1000)]:
                (root / part.name).symlink_to(part, target_is_directory=True)
            prepared, cache = work / f"prepared{songs}", work / f"cache{songs}"
            wall, _ = child_peak(
                [
                    sys.executable,
                    "-m",
                    "aerecon.prepare",
                    f"data.root={root}",
                    f"output={prepared}",
                    f"paths.cache_dir={cache}",
                    f"data.decode_workers={args.workers}",
                ],
                work,
            )
            audio = songs * args.seconds
            _, rss[songs] = child_peak(
                [
                    sys.executable,
                    "-m",
                    "aerecon.train",
                    "data=stream",
                    f"data.root={prepared}",
                    "model=fc",
                    "model.net.latent=32",
                    "data.num_workers=2",
                    f"+trainer.max_steps={args.steps}",
                    "+trainer.limit_val_batches=5",
                    "trainer.enable_progress_bar=false",
                    "test=false",
                    "budget_gb=null",
                    "callbacks.reconstruction_preview=null",
                    f"hydra.run.dir={work / f'run{songs}'}",
                ],
                work,
            )
            lines.append(
                f"| {songs:,} | {audio / 3600:.1f} | {wall:.0f} | {audio / wall:,.0f} | "
                f"{folder_size(prepared) / 2**20:,.0f} | {rss[songs]:,.0f} |"
            )
            print(lines[-1], flush=True)
        growth = rss[sizes[-1]] / rss[sizes[0]] - 1
        lines += [
            "",
            f"Peak RSS of the training process, {sizes[-1]:,} songs against {sizes[0]:,}: "
            f"{growth:+.1%} (target: within 10%).",
        ]
        delivered = loader_rate(work / f"prepared{sizes[-1]}", args.workers, args.batches)
    ceiling = timed(
        torch.utils.data.DataLoader(InMemory(segment_samples(RATE, 3.0)), batch_size=40, num_workers=args.workers),
        args.batches,
    )
    steps = {name: model_rate(overrides, "cpu", args.model_steps)[0] for name, overrides in MODELS.items()}
    fastest = max(steps, key=steps.get)
    lines += [
        "",
        "| | segments/s |",
        "|---|---|",
        f"| streamed training loader, {sizes[-1]:,} songs, {args.workers} workers, batch 40, jitter 0.5 | "
        f"{delivered:,.0f} |",
        f"| torch DataLoader over segments already in memory, {args.workers} workers, batch 40 | {ceiling:,.0f} |",
    ]
    lines += [f"| training steps of {name} on the CPU | {rate:,.1f} |" for name, rate in steps.items()]
    lines += [
        "",
        f"The loader delivers {delivered / steps[fastest]:,.0f}x what the fastest model ({fastest}) consumes "
        f"on the CPU (target: at least 20x); segments already in memory, through the same loader machinery, "
        f"{ceiling / steps[fastest]:,.0f}x.",
    ]
    publish(lines, args.out)


if __name__ == "__main__":
    main()
