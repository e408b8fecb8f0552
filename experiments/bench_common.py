"""What the benchmarks share: the real-music data, the machine line, writing the table."""

import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import torch

PK3 = Path("/usr/share/games/nexuiz/data/music.pk3")
SKIP = {"thunder.ogg"}  # a 48 s thunder sound effect, not music
# Chosen by hand among the shorter tracks, so that evaluation stays quick; the rest train.
SPLIT = {"val": ["beast-of-insanity.ogg", "stairs.ogg"], "test": ["brokenlight.ogg", "desert3.ogg"]}


def obtain_pk3() -> Path:
    if PK3.is_file():
        return PK3
    command = ["apt-get", "install", "-y", "-q", "nexuiz-music"]
    if os.geteuid() != 0:
        command = ["sudo", *command]
    print(f"{PK3} is missing: {' '.join(command)}", flush=True)
    try:
        subprocess.run(command, check=True)
    except (OSError, subprocess.CalledProcessError) as error:
        sys.exit(
            f"Could not install nexuiz-music ({error}). Install it with your package manager "
            f"(Debian/Ubuntu: sudo apt-get install nexuiz-music) and run again."
        )
    return PK3


def extract(pk3: Path, root: Path) -> Path:
    """The tracks as root/{train,val,test}/NAME.ogg; written beside and renamed, so a partial copy never counts."""
    if (root / ".complete").is_file():
        return root
    partial = root.with_name(root.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    split_of = {name: split for split, names in SPLIT.items() for name in names}
    with zipfile.ZipFile(pk3) as archive:
        for member in archive.namelist():
            name = Path(member).name
            if not name.endswith(".ogg") or name in SKIP:
                continue
            target = partial / split_of.get(name, "train") / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive.read(member))
    (partial / ".complete").write_text("extracted from " + str(pk3))
    shutil.rmtree(root, ignore_errors=True)
    partial.rename(root)
    return root


def real_music(folder: Path) -> Path:
    """The nexuiz-music tracks, installed if missing and extracted once into folder/{train,val,test}."""
    return extract(obtain_pk3(), folder).resolve()


def real_music_songs(folder: Path, rate: int) -> dict[str, list]:
    """The nexuiz-music songs of each split (train, val, test) as mono float32 waveforms at `rate`."""
    from aerecon.audio.io import load_audio

    root = real_music(folder)
    return {
        split: [load_audio(f, rate).reshape(-1) for f in sorted((root / split).glob("*.ogg"))]
        for split in ("train", "val", "test")
    }


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
