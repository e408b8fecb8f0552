"""The environment is the tested one: the lock's versions are installed, and torch and torchaudio load together."""

import os
import subprocess
import sys
from pathlib import Path

from aerecon import doctor

REPO = Path(__file__).resolve().parents[1]


def outside_make() -> dict:
    """The environment without what a calling `make test` passes down to a nested make."""
    return {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES")}


def test_installed_packages_equal_the_lock():
    assert doctor.lock_mismatches() == []


def test_lock_pins_every_dependency_and_a_matching_torch_pair():
    pins = doctor.locked_versions()
    for name in ("torch", "torchaudio", "lightning", "hydra-core", "torchmetrics", "numpy", "soundfile", "pytest"):
        assert name in pins, f"{name} is not pinned in requirements.lock"
    assert pins["torch"].split(".")[:2] == pins["torchaudio"].split(".")[:2]


def test_a_version_other_than_the_lock_is_reported(tmp_path):
    lock = tmp_path / "requirements.lock"
    lock.write_text(
        "numpy==0.0.1\n    # via aerecon\nnot-a-real-package==1.0 ; sys_platform == 'linux'\n"
        "skipped-elsewhere==1.0 ; sys_platform == 'no-such-platform'\n"
    )
    problems = doctor.lock_mismatches(lock)
    assert any(p.startswith("numpy: 0.0.1 in requirements.lock") for p in problems)
    assert any(p.startswith("not-a-real-package") for p in problems) == sys.platform.startswith("linux")
    assert not any("skipped-elsewhere" in p for p in problems)


def test_doctor_passes_here():
    done = subprocess.run([sys.executable, "-m", "aerecon.doctor"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "load together and resample" in done.stdout


def test_install_stamps_only_after_the_smoke_check(tmp_path):
    """A failed install must be retried by the next make: the stamp is the recipe's last step, after doctor."""
    dry = subprocess.run(
        ["make", "--no-print-directory", "-n", "-B", "install", f"VENV={tmp_path / 'venv'}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env=outside_make(),
    ).stdout.splitlines()
    doctor_at = next(i for i, line in enumerate(dry) if "-m aerecon.doctor" in line)
    touch_at = next(i for i, line in enumerate(dry) if line.startswith("touch ") and ".installed" in line)
    assert dry[0].startswith("rm -f") and doctor_at < touch_at == len(dry) - 1
    assert any("--no-deps -r requirements.lock" in line for line in dry)
