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

from aerecon.train import train
from aerecon.utils.errors import Stopped

TESTS = Path(__file__).resolve().parent
EPOCHS = 3


def test_sigterm_mid_epoch_saves_last_and_resumes_exactly(make_cfg, tmp_path):
    # a VAE samples its latent with the global RNG: exact only if the RNG state is restored too
    overrides = ["model=resconv", "bottleneck=vae", "optimizer.lr=3e-3", f"trainer.max_epochs={EPOCHS}", "test=false"]
    straight = make_cfg(*overrides)
    straight.paths.run_dir = str(tmp_path / "straight")
    train(straight)

    stopped = make_cfg(
        *overrides, "+callbacks.fault._target_=faults.SignalAt", "+callbacks.fault.epoch=1", "+callbacks.fault.batch=2"
    )
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


def test_with_loader_workers_a_resume_mid_epoch_or_at_an_epoch_boundary_is_exact(make_cfg, tmp_path):
    # workers take their first indices when the loader's iterator is made, before Lightning sets the epoch
    overrides = ["model=conv", "optimizer.lr=3e-3", f"trainer.max_epochs={EPOCHS}", "test=false", "data.num_workers=2"]

    def run(folder: str, *more: str):
        cfg = make_cfg(*overrides, *more)
        cfg.paths.run_dir = str(tmp_path / folder)
        return train(cfg)

    run("straight")
    with pytest.raises(Stopped) as info:
        run(
            "stopped",
            "+callbacks.fault._target_=faults.SignalAt",
            "+callbacks.fault.epoch=1",
            "+callbacks.fault.batch=2",
            "+callbacks.fault.name=SIGINT",
        )
    assert info.value.exit_code == 128 + signal.SIGINT
    run("stopped", f"ckpt_path={tmp_path / 'stopped/checkpoints/last.ckpt'}")
    assert_same_run(tmp_path / "straight", tmp_path / "stopped", epochs=EPOCHS)
    run("boundary", "trainer.max_epochs=1")
    run("boundary", f"ckpt_path={tmp_path / 'boundary/checkpoints/last.ckpt'}")
    assert_same_run(tmp_path / "straight", tmp_path / "boundary", epochs=EPOCHS)


def cli(*args: str, cwd: Path, shared: dict, **options) -> subprocess.CompletedProcess:
    paths = [f"paths.{k}={v}" for k, v in shared.items()]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-m", "aerecon.train", *TINY, *args, *paths],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        **options,
    )


def test_sigkill_then_resume_reaches_the_uninterrupted_result(tmp_path, shared_dirs):
    common = ["model=conv", "optimizer.lr=3e-3", f"trainer.max_epochs={EPOCHS}", "test=false"]
    straight = cli(*common, "hydra.run.dir=straight", cwd=tmp_path, shared=shared_dirs)
    assert straight.returncode == 0, straight.stderr[-3000:]
    fault = [
        "+callbacks.fault._target_=faults.SignalAt",
        "+callbacks.fault.epoch=2",
        "+callbacks.fault.batch=1",
        "+callbacks.fault.name=SIGKILL",
    ]
    killed = cli(*common, *fault, "hydra.run.dir=killed", cwd=tmp_path, shared=shared_dirs)
    assert killed.returncode == -signal.SIGKILL
    last = tmp_path / "killed/checkpoints/last.ckpt"
    assert torch.load(last, weights_only=True)["epoch"] == 1  # what the kill left: the end of epoch 1
    assert not list((tmp_path / "killed/checkpoints").glob("*.tmp"))
    resumed = cli(*common, f"ckpt_path={last}", cwd=tmp_path, shared=shared_dirs)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same_run(tmp_path / "straight", tmp_path / "killed", epochs=EPOCHS)


def test_ctrl_c_stops_with_a_message_and_the_shell_code(tmp_path, shared_dirs):
    fault = [
        "+callbacks.fault._target_=faults.SignalAt",
        "+callbacks.fault.epoch=0",
        "+callbacks.fault.batch=0",
        "+callbacks.fault.name=SIGINT",
    ]
    result = cli("model=fc", *fault, "hydra.run.dir=run", cwd=tmp_path, shared=shared_dirs)
    assert result.returncode == 128 + signal.SIGINT, result.stderr[-3000:]
    assert "aerecon: stopped: SIGINT at epoch 0, batch 1 of" in result.stderr
    assert "Traceback" not in result.stderr
    assert torch.load(tmp_path / "run/checkpoints/last.ckpt", weights_only=True)["global_step"] == 1


def test_sigterm_to_the_whole_group_with_loader_workers_stops_gracefully(tmp_path, shared_dirs):
    # the workers get the signal too; they must outlive the batch in progress and the checkpoint
    fault = [
        "+callbacks.fault._target_=faults.SignalAt",
        "+callbacks.fault.epoch=0",
        "+callbacks.fault.batch=1",
        "+callbacks.fault.group=true",
    ]
    result = cli(
        "model=fc",
        "data.num_workers=2",
        *fault,
        "hydra.run.dir=run",
        cwd=tmp_path,
        shared=shared_dirs,
        start_new_session=True,
    )
    assert result.returncode == 128 + signal.SIGTERM, result.stderr[-3000:]
    assert "aerecon: stopped: SIGTERM at epoch 0, batch 2 of" in result.stderr
    assert "Traceback" not in result.stderr
    assert torch.load(tmp_path / "run/checkpoints/last.ckpt", weights_only=True)["global_step"] == 2


def test_sigterm_during_setup_stops_with_a_message_and_a_code(tmp_path, shared_dirs):
    result = cli(
        "model=fc",
        "+callbacks.fault._target_=faults.SignalInSetup",
        "hydra.run.dir=run",
        cwd=tmp_path,
        shared=shared_dirs,
    )
    assert result.returncode == 128 + signal.SIGTERM, result.stderr[-3000:]
    assert (
        "aerecon: stopped: SIGTERM outside a training epoch; every file written so far is complete. "
        "Nothing was trained yet" in result.stderr
    )
    assert "Traceback" not in result.stderr and not (tmp_path / "run/results.json").exists()


@pytest.fixture(scope="module")
def slow_corpus(tmp_path_factory):
    """Songs that take the decode workers a few seconds: long, and at a rate far from the cache's."""
    import numpy as np
    import soundfile as sf

    root = tmp_path_factory.mktemp("slow") / "music"
    root.mkdir()
    t = np.arange(60 * 96000) / 96000
    for i in range(24):
        sf.write(root / f"song{i:02d}.flac", (0.3 * np.sin(2 * np.pi * (100 + 10 * i) * t)).astype(np.float32), 96000)
    return root


def caching_run(corpus: Path, tmp_path: Path) -> tuple[subprocess.Popen, list[str], str, Path]:
    """`aerecon-train` on `corpus`, returned once its decode workers are busy building the cache."""
    import time

    cache = tmp_path / "cache"
    args = [
        sys.executable,
        "-m",
        "aerecon.train",
        "data=folder",
        f"data.root={corpus}",
        "data.decode_workers=2",
        f"paths.cache_dir={cache}",
        f"paths.root_dir={tmp_path}",
        "model.net.latent=8",
        "trainer.enable_progress_bar=false",
    ]
    run = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = ""
    while "Caching audio" not in output and run.poll() is None:
        output += run.stdout.read(1)
    workers, deadline = [], time.monotonic() + 30
    while len(workers) < 2 and time.monotonic() < deadline:  # mid-build: the pool's workers are decoding
        workers = subprocess.run(["pgrep", "-P", str(run.pid)], capture_output=True, text=True).stdout.split()
        time.sleep(0.02)
    assert run.poll() is None and len(workers) >= 2, output
    return run, workers, output, cache


def alive(workers: list[str]) -> list[str]:
    return [
        pid
        for pid in workers
        if os.path.exists(f"/proc/{pid}")
        and "aerecon" in open(f"/proc/{pid}/cmdline", "rb").read().decode(errors="replace")
    ]


def test_sigterm_while_caching_stops_every_decode_worker_and_leaves_no_partial_entry(slow_corpus, tmp_path):
    import time

    run, workers, output, cache = caching_run(slow_corpus, tmp_path)
    run.send_signal(signal.SIGTERM)
    output += run.communicate(timeout=60)[0]
    assert run.returncode == 128 + signal.SIGTERM, output[-3000:]
    assert "aerecon: stopped: SIGTERM outside a training epoch" in output and "Traceback" not in output
    time.sleep(0.5)
    assert alive(workers) == []  # no orphaned decode worker
    assert not list(cache.rglob("*.tmp"))  # no half-written entry
    assert len(list(cache.rglob("*.npy"))) < 24  # it did stop early


def test_sigterm_while_evaluating_stops_with_a_message(tmp_path, shared_dirs, slow_corpus):

    trained = cli(
        "model=fc", "trainer.max_epochs=1", "test=false", "hydra.run.dir=run", cwd=tmp_path, shared=shared_dirs
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    args = [
        sys.executable,
        "-m",
        "aerecon.evaluate",
        f"ckpt_path={tmp_path}/run/checkpoints/last.ckpt",
        f"data.root={slow_corpus}",
        "split=all",
        f"paths.cache_dir={tmp_path / 'cache'}",
        "hydra.run.dir=eval",
    ]
    run = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = ""
    while "Caching audio" not in output and run.poll() is None:
        output += run.stdout.read(1)
    run.send_signal(signal.SIGTERM)
    output += run.communicate(timeout=60)[0]
    assert run.returncode == 128 + signal.SIGTERM, output[-3000:]
    assert "aerecon: stopped: SIGTERM while evaluating; every file written so far is complete" in output
    assert "Traceback" not in output and not list((tmp_path / "cache").rglob("*.tmp"))


def test_ctrl_c_while_caching_says_so_and_leaves_no_worker(slow_corpus, tmp_path):
    import time

    run, workers, output, cache = caching_run(slow_corpus, tmp_path)
    run.send_signal(signal.SIGINT)
    output += run.communicate(timeout=60)[0]
    assert run.returncode == 128 + signal.SIGINT, output[-3000:]
    assert "aerecon: stopped: SIGINT outside a training epoch; every file written so far is complete" in output
    assert "Traceback" not in output and not list(cache.rglob("*.tmp"))
    time.sleep(0.5)
    assert alive(workers) == []


def test_a_sigterm_that_lands_while_a_line_is_logged_still_stops(capsys):
    import io
    import logging

    from aerecon.utils.errors import sigterm_stops

    class SignalWhileFormatting(logging.StreamHandler):  # the signal arrives inside emit, as it may at any time
        def format(self, record):
            os.kill(os.getpid(), signal.SIGTERM)
            return super().format(record)

    handle_error, previous = logging.Handler.handleError, signal.getsignal(signal.SIGTERM)
    log = logging.getLogger("aerecon.test_signal_in_logging")
    log.addHandler(SignalWhileFormatting(io.StringIO()))
    try:
        with pytest.raises(Stopped, match="SIGTERM now"):
            with sigterm_stops(lambda: "now"):
                log.warning("a line")
                pytest.fail("the run went on after the signal")
    finally:
        log.handlers.clear()
    assert "Logging error" not in capsys.readouterr().err
    assert logging.Handler.handleError is handle_error and signal.getsignal(signal.SIGTERM) is previous


def test_a_sigterm_while_a_song_is_decoded_stops_instead_of_skipping_the_song(tmp_path, monkeypatch):
    import numpy as np
    import soundfile as sf

    from aerecon.audio import io as audio
    from aerecon.data.cache import WaveformCache
    from aerecon.utils.errors import sigterm_stops

    root = tmp_path / "music"
    root.mkdir()
    song = root / "song.wav"
    sf.write(song, np.sin(np.arange(8000) / 10).astype(np.float32), 8000)
    check = audio.check_header

    def signal_while_decoding(info):  # the signal lands inside the decoder, as a scheduler's may
        os.kill(os.getpid(), signal.SIGTERM)
        check(info)

    monkeypatch.setattr(audio, "check_header", signal_while_decoding)
    cache = WaveformCache(tmp_path / "cache", 4000)
    with pytest.raises(Stopped, match="SIGTERM now"):
        with sigterm_stops(lambda: "now"):
            cache.build(root, [song])
            pytest.fail("the run went on after the signal")
    assert not list((tmp_path / "cache").rglob("*.npy*"))  # nothing half-written
    monkeypatch.setattr(audio, "check_header", check)
    songs, skipped = cache.build(root, [song])  # the song was not taken for a bad file: the next run decodes it
    assert [s.name for s in songs] == ["song.wav"] and not skipped and songs[0].num_samples == 4000
