"""The Hydra app as a user runs it: a subprocess per command."""

import subprocess
import sys
from pathlib import Path

from conftest import TINY, run_cli
from test_train import scalars


def test_model_sweep_gives_one_run_and_tensorboard_run_per_model(tmp_path, shared_dirs):
    result = run_cli("--multirun", *TINY, "model=fc,conv", cwd=tmp_path, shared=shared_dirs)
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep,) = (tmp_path / "logs/train/multiruns").iterdir()
    runs = sorted(p.name for p in sweep.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert runs == ["0_fc", "1_conv"]
    for run in runs:
        assert (sweep / run / "checkpoints/last.ckpt").is_file()
        assert len(scalars(sweep / run / "tensorboard", "val/snr_db")) == 2
    summary = result.stdout[result.stdout.index("Sweep summary"):]
    lines = [line.split() for line in summary.splitlines() if "best val/loss" in line]
    assert [line[0] for line in lines] == ["fc", "conv"]
    assert f"tensorboard --logdir {sweep}" in summary


def test_user_errors_are_one_clear_line_not_a_traceback(tmp_path, shared_dirs):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_cli("data=folder", f"data.root={empty}", cwd=tmp_path)
    assert result.returncode == 2
    assert "aerecon: error: No audio files" in result.stderr and str(empty) in result.stderr
    assert "Traceback" not in result.stderr

    result = run_cli("data=folder", cwd=tmp_path)
    assert result.returncode == 2 and "data.root is not set" in result.stderr
    assert "data=folder data.root=" in result.stderr  # a valid example


def test_console_script_composes_the_same_config(tmp_path):
    script = Path(sys.executable).parent / "aerecon-train"
    result = subprocess.run([str(script), "--cfg", "job", "experiment=thesis_conv"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "_target_: aerecon.models.ConvAutoencoder" in result.stdout and "patience: 50" in result.stdout


def test_eval_and_report_console_scripts(tmp_path):
    bin_dir = Path(sys.executable).parent
    result = subprocess.run([str(bin_dir / "aerecon-eval"), "--cfg", "job", "ckpt_path=some.ckpt"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "split: test" in result.stdout and "overlap: 0.5" in result.stdout
    result = subprocess.run([str(bin_dir / "aerecon-report"), "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "multirun folder" in result.stdout
