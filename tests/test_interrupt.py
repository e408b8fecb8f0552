"""Interrupted runs lose nothing: SIGTERM/SIGINT save last.ckpt mid-epoch and stop; SIGKILL leaves
the last epoch's last.ckpt; either way, resuming ends exactly where an uninterrupted run does."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import TINY
from test_train import assert_same_run
from aerecon.errors import Stopped
from aerecon.train import train

TESTS = Path(__file__).resolve().parent
EPOCHS = 3


def test_sigterm_mid_epoch_saves_last_and_resumes_exactly(make_cfg, tmp_path):
    # a VAE samples its latent with the global RNG: exact only if the RNG state is restored too
    overrides = ["model=resconv", "bottleneck=vae", "optimizer.lr=3e-3", f"trainer.max_epochs={EPOCHS}", "test=false"]
    straight = make_cfg(*overrides)
    straight.paths.run_dir = str(tmp_path / "straight")
    train(straight)

    stopped = make_cfg(*overrides, "+callbacks.fault._target_=faults.SignalAt", "+callbacks.fault.epoch=1",
                       "+callbacks.fault.batch=2")
    stopped.paths.run_dir = str(tmp_path / "stopped")
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    with pytest.raises(Stopped) as info:
        train(stopped)
    last = tmp_path / "stopped/checkpoints/last.ckpt"
    assert info.value.exit_code == 128 + signal.SIGTERM
    message = str(info.value)
    assert message.startswith("SIGTERM at epoch 1, batch 3 of ") and f"saved {last}" in message
    assert "Resume with: aerecon-train" in message and f"ckpt_path={last}" in message
    checkpoint = torch.load(last, weights_only=True)
    batches = int(message.split(" of ")[1].split()[0])
    assert checkpoint["epoch"] == 1 and checkpoint["global_step"] == batches + 3  # mid-epoch, not the epoch-0 one
    assert {signum: signal.getsignal(signum) for signum in handlers} == handlers  # given back after fit

    resumed = make_cfg(*overrides, f"ckpt_path={last}")
    train(resumed)
    assert_same_run(tmp_path / "straight", tmp_path / "stopped", epochs=EPOCHS)


def cli(*args: str, cwd: Path, shared: dict, **options) -> subprocess.CompletedProcess:
    paths = [f"paths.{k}={v}" for k, v in shared.items()]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "aerecon.train", *TINY, *args, *paths], cwd=cwd,
                          capture_output=True, text=True, timeout=600, env=env, **options)


def test_sigkill_then_resume_reaches_the_uninterrupted_result(tmp_path, shared_dirs):
    common = ["model=conv", "optimizer.lr=3e-3", f"trainer.max_epochs={EPOCHS}", "test=false"]
    straight = cli(*common, "hydra.run.dir=straight", cwd=tmp_path, shared=shared_dirs)
    assert straight.returncode == 0, straight.stderr[-3000:]
    fault = ["+callbacks.fault._target_=faults.SignalAt", "+callbacks.fault.epoch=2", "+callbacks.fault.batch=1",
             "+callbacks.fault.name=SIGKILL"]
    killed = cli(*common, *fault, "hydra.run.dir=killed", cwd=tmp_path, shared=shared_dirs)
    assert killed.returncode == -signal.SIGKILL
    last = tmp_path / "killed/checkpoints/last.ckpt"
    assert torch.load(last, weights_only=True)["epoch"] == 1  # what the kill left: the end of epoch 1
    assert not list((tmp_path / "killed/checkpoints").glob("*.tmp"))
    resumed = cli(*common, f"ckpt_path={last}", cwd=tmp_path, shared=shared_dirs)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same_run(tmp_path / "straight", tmp_path / "killed", epochs=EPOCHS)


def test_ctrl_c_stops_with_a_message_and_the_shell_code(tmp_path, shared_dirs):
    fault = ["+callbacks.fault._target_=faults.SignalAt", "+callbacks.fault.epoch=0", "+callbacks.fault.batch=0",
             "+callbacks.fault.name=SIGINT"]
    result = cli("model=fc", *fault, "hydra.run.dir=run", cwd=tmp_path, shared=shared_dirs)
    assert result.returncode == 128 + signal.SIGINT, result.stderr[-3000:]
    assert "aerecon: stopped: SIGINT at epoch 0, batch 1 of" in result.stderr
    assert "Traceback" not in result.stderr
    assert torch.load(tmp_path / "run/checkpoints/last.ckpt", weights_only=True)["global_step"] == 1


def test_sigterm_to_the_whole_group_with_loader_workers_stops_gracefully(tmp_path, shared_dirs):
    # the workers get the signal too; they must outlive the batch in progress and the checkpoint
    fault = ["+callbacks.fault._target_=faults.SignalAt", "+callbacks.fault.epoch=0", "+callbacks.fault.batch=1",
             "+callbacks.fault.group=true"]
    result = cli("model=fc", "data.num_workers=2", *fault, "hydra.run.dir=run", cwd=tmp_path, shared=shared_dirs,
                 start_new_session=True)
    assert result.returncode == 128 + signal.SIGTERM, result.stderr[-3000:]
    assert "aerecon: stopped: SIGTERM at epoch 0, batch 2 of" in result.stderr
    assert "Traceback" not in result.stderr
    assert torch.load(tmp_path / "run/checkpoints/last.ckpt", weights_only=True)["global_step"] == 2
