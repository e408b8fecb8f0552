"""`python -m aerecon.doctor`: does this environment work, and is it the one that was tested?

Checks that torch and torchaudio load together and resample, that every installed package is
at its `requirements.lock` version, and whether this torch build can use the GPU it finds.
`make install` runs it last and stamps the environment only when it passes.
"""

import importlib.metadata as metadata
import re
import sys
from pathlib import Path

from packaging.markers import Marker
from packaging.utils import canonicalize_name

LOCK = Path(__file__).resolve().parents[1] / "requirements.lock"
# Installed with a CUDA build of torch from another index (`make install TORCH_INDEX=...`): these
# carry a local version label (2.11.0+cu126) or come in that build's own versions.
CUDA_BUILD = re.compile(r"^(torch|torchaudio|triton|nvidia-.+|cuda-.+)$")


def locked_versions(lock: Path = LOCK) -> dict[str, str]:
    """{package: version} of the lock's pins that apply to this interpreter and platform."""
    pins = {}
    for line in lock.read_text().splitlines():
        requirement, _, marker = line.split("#")[0].partition(";")
        if "==" not in requirement:
            continue
        if marker.strip() and not Marker(marker.strip()).evaluate():
            continue
        name, version = (part.strip() for part in requirement.split("=="))
        pins[canonicalize_name(name)] = version
    return pins


def lock_mismatches(lock: Path = LOCK) -> list[str]:
    """One line per locked package that is missing or at another version."""
    torch_index = "+" in metadata.version("torch")  # a build from PyTorch's own index
    problems = []
    for name, version in sorted(locked_versions(lock).items()):
        if name == "aerecon":
            continue
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            if not (torch_index and CUDA_BUILD.match(name)):
                problems.append(f"{name}: {version} in {lock.name}, not installed")
            continue
        if torch_index and CUDA_BUILD.match(name):
            if name in ("torch", "torchaudio") and installed.split("+")[0] != version:
                problems.append(f"{name}: {version} in {lock.name}, {installed} installed")
            continue
        if installed != version:
            problems.append(f"{name}: {version} in {lock.name}, {installed} installed")
    return problems


def smoke() -> str:
    """torch and torchaudio load together and resample: torchaudio's library is built against one torch."""
    import torch
    import torchaudio
    import torchaudio.functional as F

    wave = torch.sin(torch.linspace(0, 2 * torch.pi * 440, 44100))
    down = F.resample(wave, 44100, 4410)
    coded = F.mu_law_decoding(F.mu_law_encoding(down, 256), 256)
    if down.shape[-1] != 4410 or not torch.isfinite(coded).all():
        raise RuntimeError(f"torchaudio resampled 44100 samples to {down.shape[-1]}, expected 4410")
    return f"torch {torch.__version__} and torchaudio {torchaudio.__version__} load together and resample"


def gpu() -> str:
    import torch

    if not torch.cuda.is_available():
        return (
            f"GPU: none found by this torch build (CUDA {torch.version.cuda or 'not built'}); training runs on the CPU"
        )
    major, minor = torch.cuda.get_device_capability(0)
    name = torch.cuda.get_device_name(0)
    if f"sm_{major}{minor}" not in torch.cuda.get_arch_list():
        return (
            f"GPU: {name} (sm_{major}{minor}) is not supported by this torch build "
            f"(CUDA {torch.version.cuda}, {' '.join(torch.cuda.get_arch_list())}). GTX 10xx (Pascal) cards need "
            "PyTorch's CUDA 12.6 build: make install TORCH_INDEX=https://download.pytorch.org/whl/cu126"
        )
    return f"GPU: {name} (sm_{major}{minor}), CUDA {torch.version.cuda}"


def main() -> int:
    try:
        print(f"aerecon doctor: {smoke()}")
    except Exception as error:  # any load failure is the message: an undefined symbol, a missing library
        print(
            f"aerecon: error: torch and torchaudio do not work together: {error}. "
            f"Reinstall the locked pair: rm -rf .venv && make install",
            file=sys.stderr,
        )
        return 1
    if LOCK.exists():
        problems = lock_mismatches()
        if problems:
            print(
                f"aerecon: error: the environment differs from {LOCK.name}:\n  "
                + "\n  ".join(problems)
                + "\nReinstall it: rm -rf .venv && make install",
                file=sys.stderr,
            )
            return 1
        print(f"aerecon doctor: every package is at its {LOCK.name} version ({len(locked_versions())} pins)")
    print(f"aerecon doctor: {gpu()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
