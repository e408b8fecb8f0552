"""Is a resumed run the uninterrupted one, to the last bit, on real music?

    python experiments/resume_exact.py [--epochs 2] [--out DIR]

Debian's nexuiz-music (bench_common.py extracts it) is prepared once with aerecon-prepare's
defaults; then `experiment=best data=stream seed=3` trains `--epochs` epochs straight, and again
stopped at the end of its first epoch and resumed from that `last.ckpt` (an epoch boundary).
The same is done with `data=folder` and two loader workers (its default), stopped by SIGINT in
the middle of the second epoch (`experiment=demo`'s model on the same songs, 40 batches an
epoch). Every command is run as a user would run it. Prints each run's val/loss and epoch
training loss per epoch and whether they are equal to the last bit.
"""

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

from bench_common import real_music
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

TRAIN = [sys.executable, "-m", "aerecon.train"]
TESTS = Path(__file__).resolve().parents[1] / "tests"


def curves(run: Path) -> dict[str, list[float]]:
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [e.value for e in events.Scalars(tag)] for tag in ("val/loss", "train/loss_epoch")}


def train(*args: str) -> None:
    """One training command, as a user runs it (tests/faults.py importable, for the stop)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    code = subprocess.run([*TRAIN, *args], env=env).returncode
    if code not in (0, 128 + signal.SIGINT):
        raise SystemExit(f"{' '.join(args)} failed with exit code {code}")


def compare(name: str, straight: Path, resumed: Path) -> bool:
    a, b = curves(straight), curves(resumed)
    same = a == b
    print(f"\n{name}: {'identical to the last bit' if same else 'DIFFERENT'}")
    for tag in a:
        print(f"  {tag:<17} straight {a[tag]}\n  {'':<17} resumed  {b[tag]}")
    return same


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("/tmp/aerecon-resume-exact"))
    args = parser.parse_args()
    out, music = args.out, real_music(Path("data/nexuiz"))
    prepared = out / "prepared"
    if not (prepared / "aerecon.json").is_file():
        subprocess.run(
            [sys.executable, "-m", "aerecon.prepare", f"data.root={music}", f"output={prepared}"], check=True
        )
    stream = [
        "experiment=best",
        "data=stream",
        f"data.root={prepared}",
        "seed=3",
        "trainer.enable_progress_bar=false",
        f"paths.root_dir={out}",
        "test=false",
    ]
    train(*stream, f"trainer.max_epochs={args.epochs}", f"hydra.run.dir={out}/stream_straight")
    train(*stream, "trainer.max_epochs=1", f"hydra.run.dir={out}/stream_resumed")
    train(*stream, f"trainer.max_epochs={args.epochs}", f"ckpt_path={out}/stream_resumed/checkpoints/last.ckpt")
    ok = compare(
        "data=stream, experiment=best, resumed at an epoch boundary", out / "stream_straight", out / "stream_resumed"
    )

    folder = [
        "experiment=demo",
        "data=folder",
        f"data.root={music}",
        "data.num_workers=2",
        "data.segment_seconds=0.5",
        "seed=3",
        f"paths.root_dir={out}",
        "test=false",
        "trainer.enable_progress_bar=false",
        "callbacks.reconstruction_preview=null",
        f"trainer.max_epochs={args.epochs}",
        "+trainer.limit_train_batches=40",
    ]
    train(*folder, f"hydra.run.dir={out}/folder_straight")
    # Ctrl+C at the 11th batch of the second epoch, sent by the run to itself (tests/faults.py)
    train(
        *folder,
        f"hydra.run.dir={out}/folder_resumed",
        "+callbacks.fault._target_=faults.SignalAt",
        "+callbacks.fault.epoch=1",
        "+callbacks.fault.batch=10",
        "+callbacks.fault.name=SIGINT",
    )
    train(*folder, f"ckpt_path={out}/folder_resumed/checkpoints/last.ckpt")
    ok &= compare(
        "data=folder with 2 loader workers, SIGINT mid-epoch", out / "folder_straight", out / "folder_resumed"
    )
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
