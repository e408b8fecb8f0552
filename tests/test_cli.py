"""The Hydra app as a user runs it: a subprocess per command."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TINY, run_cli
from test_train import scalars


def test_model_sweep_gives_one_run_and_tensorboard_run_per_model(tmp_path, shared_dirs):
    result = run_cli("--multirun", *TINY, "model=fc,conv", "seed=1,2", cwd=tmp_path, shared=shared_dirs)
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep,) = (tmp_path / "logs/train/multiruns").iterdir()
    runs = sorted(p.name for p in sweep.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert runs == ["0_fc", "1_fc", "2_conv", "3_conv"]
    for run in runs:
        assert (sweep / run / "checkpoints/last.ckpt").is_file()
        assert len(scalars(sweep / run / "tensorboard", "val/snr_db")) == 2
    summary = result.stdout[result.stdout.index("Sweep summary") :]
    lines = [line.split() for line in summary.splitlines() if "best val/loss" in line]
    assert [line[0] for line in lines] == ["fc", "fc", "conv", "conv"]
    assert f"tensorboard --logdir {sweep}" in summary

    # the report groups the runs that differ only in their seed: mean and 95% interval over the seeds
    report = run_cli(str(sweep), cwd=tmp_path, app="aerecon.report")
    assert report.returncode == 0, report.stderr[-3000:]
    rows = list(csv.DictReader((sweep / "seeds.csv").open()))
    for model, jobs in (("fc", ["0_fc", "1_fc"]), ("conv", ["2_conv", "3_conv"])):
        snr = next(r for r in rows if r["model"] == model and r["metric"] == "SNR (dB)")
        values = [json.loads((sweep / job / "results.json").read_text())["best"]["val/snr_db"] for job in jobs]
        half = 12.706 * abs(values[0] - values[1]) / 2  # t(0.975, 1 degree of freedom) x standard error
        assert snr["setting"] == f"experiment=tiny model={model}" and snr["seeds"] == "2"
        assert float(snr["mean"]) == pytest.approx(sum(values) / 2, rel=1e-5)
        assert float(snr["ci95_half_width"]) == pytest.approx(half, rel=1e-3)
        assert any(r["model"] == model and r["metric"] == "test SNR (dB)" for r in rows)
    assert "## Over seeds" in (sweep / "report.md").read_text()


def test_user_errors_are_one_clear_line_not_a_traceback(tmp_path, shared_dirs):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_cli(
        "data=folder", f"data.root={empty}", "model.net.hidden=[64]", cwd=tmp_path
    )  # a model that fits 8 GB
    assert result.returncode == 2
    assert "aerecon: error: No audio files" in result.stderr and str(empty) in result.stderr
    assert "Traceback" not in result.stderr

    result = run_cli("data=folder", cwd=tmp_path)
    assert result.returncode == 2 and "data.root is not set" in result.stderr
    assert "data=folder data.root=" in result.stderr  # a valid example


def test_console_script_composes_the_same_config(tmp_path):
    script = Path(sys.executable).parent / "aerecon-train"
    result = subprocess.run(
        [str(script), "--cfg", "job", "experiment=thesis_conv"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "_target_: aerecon.models.ConvAutoencoder" in result.stdout and "patience: 50" in result.stdout


def test_eval_and_report_console_scripts(tmp_path):
    bin_dir = Path(sys.executable).parent
    result = subprocess.run(
        [str(bin_dir / "aerecon-eval"), "--cfg", "job", "ckpt_path=some.ckpt"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "split: test" in result.stdout and "overlap: 0.5" in result.stdout
    result = subprocess.run([str(bin_dir / "aerecon-report"), "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "multirun folder" in result.stdout


def test_concurrent_runs_build_the_cache_once_and_never_share_a_folder(tmp_path):
    import numpy as np
    import soundfile as sf

    root = tmp_path / "music"
    rng = np.random.default_rng(0)
    for split, count in (("train", 3), ("val", 1), ("test", 1)):
        (root / split).mkdir(parents=True)
        for i in range(count):
            sf.write(root / split / f"{split}{i}.wav", rng.uniform(-0.5, 0.5, 4 * 8000).astype("float32"), 8000)
    args = [
        "data=folder",
        f"data.root={root}",
        "data.split=folders",
        f"paths.cache_dir={tmp_path / 'cache'}",
        "data.sample_rate=2000",
        "data.segment_seconds=0.5",
        "data.batch_size=8",
        "data.num_workers=0",
        "trainer=cpu",
        "trainer.max_epochs=1",
        "trainer.enable_progress_bar=false",
        "callbacks.model_summary=null",
        "callbacks.reconstruction_preview=null",
        "model=fc",
        "model.net.hidden=[16]",
        "model.net.latent=8",
        "test=false",
    ]
    jobs = [
        subprocess.Popen(
            [sys.executable, "-m", "aerecon.train", *args],
            cwd=tmp_path,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for _ in range(2)
    ]
    outputs = [job.communicate(timeout=600)[0] for job in jobs]
    assert [job.returncode for job in jobs] == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]
    decoded = sorted(
        int(line.split("Decoded ")[1].split()[0]) for out in outputs for line in out.splitlines() if "Decoded " in line
    )
    assert decoded in ([0, 5], [5])  # one process decoded all five; the other waited, then read them
    cache = list((tmp_path / "cache").rglob("*"))
    assert len([p for p in cache if p.suffix == ".npy"]) == 5 and not [p for p in cache if p.suffix == ".tmp"]
    runs = list((tmp_path / "logs/train/runs").iterdir())
    assert len(runs) == 2 and all((run / "checkpoints/last.ckpt").is_file() for run in runs)


def test_a_run_is_quiet_and_resuming_it_stays_in_its_folder(tmp_path, shared_dirs):
    args = [*TINY, "model=fc", "trainer.max_epochs=1"]
    first = run_cli(*args, cwd=tmp_path, shared=shared_dirs)
    assert first.returncode == 0, first.stderr[-3000:]
    out = first.stdout + first.stderr
    for noise in ("Tip:", "litlogger", "LeafSpec", "Trainer already configured"):
        assert noise not in out
    plan = [line for line in out.splitlines() if "Memory plan" in line]
    assert len(plan) == 1 and "GiB of the 8 GiB budget, fits" in plan[0] and "optimizer state" not in out
    (run,) = (tmp_path / "logs/train/runs").iterdir()
    assert len(scalars(run / "tensorboard", "test/snr_db")) == 1
    record = {name: (run / ".hydra" / name).read_bytes() for name in ("config.yaml", "overrides.yaml", "hydra.yaml")}

    # a resume refused for another config keeps the run's own record; its own goes beside it
    refused = run_cli(
        *args, "model.net.latent=4", f"ckpt_path={run}/checkpoints/last.ckpt", cwd=tmp_path, shared=shared_dirs
    )
    assert refused.returncode == 2 and "model.net.latent: 8 in the checkpoint, 4 now" in refused.stderr
    assert {name: (run / ".hydra" / name).read_bytes() for name in record} == record
    (beside,) = [p for p in (run / ".hydra").iterdir() if p.is_dir()]
    assert "model.net.latent=4" in (beside / "overrides.yaml").read_text()

    # resuming a finished run: says so, suggests how to extend it, tests nothing, makes no new folder
    again = run_cli(*args, f"ckpt_path={run}/checkpoints/last.ckpt", cwd=tmp_path, shared=shared_dirs)
    assert again.returncode == 0, again.stderr[-3000:]
    out = again.stdout + again.stderr
    assert (
        "Nothing to resume" in out and "trainer.max_epochs=2" in out and f"ckpt_path={run}/checkpoints/last.ckpt" in out
    )
    assert list((tmp_path / "logs/train/runs").iterdir()) == [run]
    assert len(scalars(run / "tensorboard", "test/snr_db")) == 1

    # extending it continues in the same folder, its log included
    longer = run_cli(
        *TINY,
        "model=fc",
        "trainer.max_epochs=2",
        f"ckpt_path={run}/checkpoints/last.ckpt",
        cwd=tmp_path,
        shared=shared_dirs,
    )
    assert longer.returncode == 0, longer.stderr[-3000:]
    assert list((tmp_path / "logs/train/runs").iterdir()) == [run]
    assert "exists and is not empty" not in longer.stdout + longer.stderr  # the folder is meant to be full
    assert json.loads((run / "results.json").read_text())["epochs"] == 2
    assert "Resuming" in (run / "train.log").read_text()
    assert len(scalars(run / "tensorboard", "val/loss")) == 2


def test_plan_writes_nothing(tmp_path):
    result = run_cli(*TINY, "model=conv", cwd=tmp_path, app="aerecon.plan")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "optimizer state" in result.stdout and "fits" in result.stdout  # the full breakdown, asked for
    assert list(tmp_path.iterdir()) == []
