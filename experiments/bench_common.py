"""What the performance benchmarks share: the data, the machine line, writing the table."""

import os
import subprocess
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


def child_peak(command: list[str], cwd: Path) -> tuple[float, float]:
    """(wall seconds, peak resident MiB) of `command` run as a child process (`ru_maxrss`)."""
    started = time.perf_counter()
    child = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    if status:
        raise SystemExit(f"{' '.join(map(str, command[:4]))} failed:\n{child.stderr.read().decode()[-3000:]}")
    return time.perf_counter() - started, usage.ru_maxrss / 1024


def publish(lines: list[str], out: Path) -> None:
    text = "\n".join(lines) + "\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print("\n" + text)


def bare_optimizer(model) -> "torch.optim.Optimizer":
    """The optimizer an aerecon model configures for itself, for a loop without a Trainer."""
    optimizer = model.configure_optimizers()
    return optimizer["optimizer"] if isinstance(optimizer, dict) else optimizer


def bare_loss(model, wave: "torch.Tensor") -> "torch.Tensor":
    """What the model's training_step computes, without logging: the total of its loss terms and its
    bottleneck's, from waveform segments."""
    target, output, latent_terms = model.autoencode_wave(wave)
    total = model.loss(output, target, model.representation.decode(output), wave)["total"]
    return total + latent_terms["total"] if latent_terms else total
