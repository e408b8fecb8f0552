"""What the performance benchmarks share: the data, the machine line, writing the table."""

import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_realmusic import extract, obtain_pk3  # noqa: E402  (the same data, obtained the same way)


def real_music(folder: Path) -> Path:
    """The nexuiz-music tracks, installed and extracted as benchmark_realmusic.py does."""
    return extract(obtain_pk3(), folder).resolve()


def machine(device: str) -> str:
    gpu = f", {torch.cuda.get_device_name()}" if device.startswith("cuda") else ""
    return f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPU cores, torch {torch.__version__}{gpu}"


def publish(lines: list[str], out: Path) -> None:
    text = "\n".join(lines) + "\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print("\n" + text)


def without_trainer(model) -> "torch.optim.Optimizer":
    """Readies a LightningModule for a bare loop: its logging becomes a no-op (there is no
    trainer to log to), and its configured optimizer is returned."""
    model.log = model.log_dict = lambda *args, **kwargs: None
    optimizer = model.configure_optimizers()
    return optimizer["optimizer"] if isinstance(optimizer, dict) else optimizer
