"""Input pipeline speed: cache build and loader throughput against the models' training step rates.

    python experiments/bench_data.py [--data data/nexuiz] [--workers 2] [--batches 300] [--device cpu]

- Data: the nexuiz-music tracks of benchmark_realmusic.py (83 minutes of Ogg Vorbis at 44.1 kHz,
  installed and extracted the same way).
- Cache build: every track decoded, mixed down, resampled to 4410 Hz and written, into an
  empty cache, by 1 process and by --workers processes (`data.decode_workers`). Figure:
  seconds of audio per wall second (x real time). Target: at least 100x on 2 cores.
- Loader: the DataModule's training loader as each model's config builds it (data=folder with
  the thesis experiments: 3 s segments, batch 40, 2 loader workers; resconv_stft: batch 8,
  jitter 0.5; experiment=best: batch 8, jitter 0.5, loading in the training process), then
  with the other choice of workers, timed over --batches batches after the first (worker
  start-up is reported apart). Figure: segments per second.
- Models: training steps (forward, loss, backward, optimizer) of the thesis FC and conv models,
  of experiment=resconv_stft and of experiment=best (sparseconv), on --device, at each config's
  batch size. Figure: segments per second.
  Target: each model's loader at least 20x faster than the model consumes.
- Writes experiments/results/bench_data.md and prints it.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

from aerecon.audio.io import find_audio
from aerecon.data.cache import WaveformCache
from aerecon.utils.config import build, compose_train

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import bare_loss, bare_optimizer, machine, publish, real_music  # noqa: E402

RATE = 4410
MODELS = {  # name: overrides; the thesis models at their published size
    "thesis_fc": ["experiment=thesis_fc", "model=fc"],
    "thesis_conv": ["experiment=thesis_conv", "model=conv"],
    "resconv_stft": ["experiment=resconv_stft"],
    "best": ["experiment=best"],  # sparseconv
}


def cache_build(root: Path, workers: int) -> tuple[float, float]:
    """(seconds of audio cached, wall seconds) for an empty cache."""
    with tempfile.TemporaryDirectory() as cache:
        started = time.perf_counter()
        songs, skipped = WaveformCache(Path(cache), RATE, workers).build(root, find_audio(root))
        wall = time.perf_counter() - started
    assert not skipped, skipped
    return sum(s.num_samples for s in songs) / RATE, wall


def loader_rate(root: Path, cache: Path, batches: int, overrides: list[str]) -> tuple[float, float, int, int]:
    """(segments per second, seconds to the first batch, loader workers, batch size) of the DataModule's
    train loader."""
    cfg = compose_train(
        [
            "data=folder",
            f"data.root={root}",
            "data.split=folders",
            f"paths.cache_dir={cache}",
            "data.report=null",  # no run folder here to write it into
            *overrides,
        ]
    )
    datamodule = build(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    loader = datamodule.train_dataloader()
    done, epoch, first = 0, 0, None
    started = time.perf_counter()
    while done < batches + 1:
        loader.sampler.set_epoch(epoch)
        for batch in loader:
            if first is None:
                first, started_steady = time.perf_counter() - started, time.perf_counter()
            else:
                done += len(batch)
            if done >= batches * cfg.data.batch_size:
                break
        else:
            epoch += 1
            continue
        break
    return done / (time.perf_counter() - started_steady), first, cfg.data.num_workers, cfg.data.batch_size


def model_rate(overrides: list[str], device: str, steps: int) -> tuple[float, int, int]:
    """(segments per second in training steps, batch size, parameters) on random 3 s segments."""
    cfg = compose_train([*overrides, "budget_gb=null"])
    model = build(cfg.model).to(device)
    optimizer = bare_optimizer(model)
    batch = cfg.data.batch_size
    wave = (0.3 * torch.randn(batch, 1, round(cfg.data.sample_rate * cfg.data.segment_seconds))).to(device)

    def step(i):
        optimizer.zero_grad(set_to_none=True)
        bare_loss(model, wave).backward()
        optimizer.step()

    step(0)  # warm-up: allocations, optimizer state
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    started = time.perf_counter()
    for i in range(steps):
        step(i + 1)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    rate = steps * batch / (time.perf_counter() - started)
    parameters = sum(p.numel() for p in model.parameters())
    return rate, batch, parameters


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("data/nexuiz"))
    parser.add_argument("--workers", type=int, default=2, help="decode processes for the parallel cache build")
    parser.add_argument("--batches", type=int, default=300, help="loader batches timed")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=3, help="timed training steps per model")
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, from {','.join(MODELS)}")
    parser.add_argument("--out", type=Path, default=Path("experiments/results/bench_data.md"))
    args = parser.parse_args()
    root = real_music(args.data)
    lines = [
        f"`python experiments/bench_data.py --workers {args.workers} --batches {args.batches} "
        f"--device {args.device} --steps {args.steps}`, {machine(args.device)}\n"
    ]

    lines += [
        "| cache build (83 min of 44.1 kHz Ogg -> 4410 Hz .npy) | decode processes | audio s | wall s | x real time |",
        "|---|---|---|---|---|",
    ]
    for workers in sorted({1, args.workers}):
        audio, wall = cache_build(root, workers)
        lines.append(f"| empty cache | {workers} | {audio:.0f} | {wall:.1f} | {audio / wall:.0f} |")
        print(lines[-1], flush=True)

    names = args.models.split(",")
    lines += [
        "",
        "| training loader (DataModule), per model's config | batch | loader workers | first batch s | segments/s |",
        "|---|---|---|---|---|",
    ]
    loaders = {}  # as each model's config has it: the figure the target is judged on
    with tempfile.TemporaryDirectory() as cache:
        for name in names:
            configured = None
            for extra in ([], None):  # as configured, then the other way (in-process <-> 2 workers)
                if extra is None:
                    extra = [f"data.num_workers={0 if configured else 2}"]
                rate, first, used, batch = loader_rate(root, Path(cache), args.batches, MODELS[name] + extra)
                if not extra:
                    loaders[name], configured = rate, used
                lines.append(
                    f"| {name} | {batch} | {used}{'' if extra else ' (configured)'} | {first:.2f} | {rate:,.0f} |"
                )
                print(lines[-1], flush=True)

    lines += [
        "",
        f"| model training steps on {args.device} | parameters | batch | segments/s | its loader / model |",
        "|---|---|---|---|---|",
    ]
    ratios = {}
    for name in names:
        rate, batch, parameters = model_rate(MODELS[name], args.device, args.steps)
        ratios[name] = loaders[name] / rate
        lines.append(f"| {name} | {parameters:,} | {batch} | {rate:,.1f} | {ratios[name]:,.0f}x |")
        print(lines[-1], flush=True)
    tightest = min(ratios, key=ratios.get)
    lines += [
        "",
        f"Tightest: {tightest}, whose loader delivers {ratios[tightest]:,.0f}x what it consumes on "
        f"{args.device} (target: at least 20x).",
    ]
    publish(lines, args.out)


if __name__ == "__main__":
    main()
