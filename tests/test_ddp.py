"""Lightning DDP on 2 CPU processes (gloo): sharded data, synchronised metrics, one checkpoint, resume."""

import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
from conftest import TINY
from test_train import assert_same_run, scalars

from aerecon.data.loaders import EpochShuffleSampler, ShardSampler
from aerecon.models import VectorQuantizer
from aerecon.training.checkpoint import load_model
from aerecon.utils.config import build

DDP = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "model=conv", "optimizer.lr=3e-3", "test=false"]


@pytest.mark.parametrize("size, world", [(48, 2), (47, 2), (10, 3), (5, 1)])
def test_ranks_see_disjoint_shards_that_cover_the_epoch(size, world):
    for epoch in (0, 1):
        shards = []
        for rank in range(world):
            sampler = EpochShuffleSampler(size, seed=3, rank=rank, world=world)
            sampler.set_epoch(epoch)
            shards.append(list(sampler))
            assert len(shards[-1]) == len(sampler) == math.ceil(size / world)  # same step count on every rank
        seen = [i for shard in shards for i in shard]
        assert set(seen) == set(range(size))  # the whole epoch
        assert len(seen) - len(set(seen)) == (-size) % world  # disjoint but for the padding
    single = EpochShuffleSampler(size, seed=3, rank=0, world=1)
    assert sorted(list(single)) == list(range(size))
    evaluation = [list(ShardSampler(size, rank, world)) for rank in range(world)]
    assert sorted(i for shard in evaluation for i in shard) == list(range(size))  # every segment scored once


def test_resume_skips_only_this_ranks_done_batches():
    full = list(EpochShuffleSampler(40, seed=1, rank=1, world=2))
    sampler = EpochShuffleSampler(40, seed=1, rank=1, world=2)
    sampler.resume(0, 8)
    assert list(sampler) == full[8:]
    assert list(sampler) == full  # only the resumed epoch's first pass is shortened


def ddp_run(tmp_path: Path, shared: dict, name: str, *args: str, code: int = 0) -> subprocess.CompletedProcess:
    paths = [f"paths.{k}={v}" for k, v in shared.items()]
    chosen = {arg.split("=")[0] for arg in args}
    ddp = [o for o in DDP if o.split("=")[0] not in chosen]  # a test's own choice replaces the default one
    result = subprocess.run(
        [sys.executable, "-m", "aerecon.train", *TINY, *ddp, *args, *paths, f"hydra.run.dir={tmp_path / name}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HYDRA_FULL_ERROR": "1", "PYTHONPATH": str(Path(__file__).parent)},
    )
    assert result.returncode == code, result.stderr[-3000:]
    return result


def test_ddp_trains_syncs_metrics_checkpoints_once_and_resumes(tmp_path, shared_dirs):
    ddp_run(tmp_path, shared_dirs, "straight", "trainer.max_epochs=3")
    names = sorted(p.name for p in (tmp_path / "straight/checkpoints").iterdir())
    assert len(names) == 2 and names[0].startswith("best-epoch") and names[1] == "last.ckpt"  # no per-rank copies
    assert len(list((tmp_path / "straight/tensorboard").glob("events.out.tfevents.*"))) == 1  # rank 0 logs

    # the logged val/snr_db (each rank scored half the segments) is the whole val split's, as one process scores it
    logged = scalars(tmp_path / "straight/tensorboard", "val/snr_db")[-1][1]
    model, config = load_model(tmp_path / "straight/checkpoints/last.ckpt")
    datamodule = build(config["data"])
    single = L.Trainer(
        accelerator="cpu", devices=1, logger=False, enable_progress_bar=False, enable_model_summary=False
    ).validate(model, datamodule=datamodule, verbose=False)[0]
    assert logged == pytest.approx(single["val/snr_db"], rel=1e-5, abs=1e-6)
    assert logged != 0.0

    ddp_run(tmp_path, shared_dirs, "split", "trainer.max_epochs=1")
    ddp_run(
        tmp_path,
        shared_dirs,
        "elsewhere",
        "trainer.max_epochs=3",
        f"ckpt_path={tmp_path / 'split/checkpoints/last.ckpt'}",
    )
    assert_same_run(tmp_path / "straight", tmp_path / "split", epochs=3)

    # SIGTERM to the launching process mid-epoch: every rank stops at the same batch, one message, and
    # the resumed run ends as the straight one
    stopped = ddp_run(
        tmp_path,
        shared_dirs,
        "stopped",
        "trainer.max_epochs=3",
        "+callbacks.fault._target_=faults.SignalAt",
        "+callbacks.fault.epoch=1",
        "+callbacks.fault.batch=0",
        "+callbacks.fault.rank=0",
        code=143,
    )
    assert stopped.stderr.count("aerecon: stopped: SIGTERM at epoch 1, batch 1 of") == 1, stopped.stderr[-3000:]
    assert "Traceback" not in stopped.stderr
    ddp_run(
        tmp_path,
        shared_dirs,
        "resumed",
        "trainer.max_epochs=3",
        f"ckpt_path={tmp_path / 'stopped/checkpoints/last.ckpt'}",
    )
    assert_same_run(tmp_path / "straight", tmp_path / "stopped", epochs=3)


def _vq_rank(rank: int, world: int, port: int, update: str, threshold: float, out: str) -> None:
    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    torch.manual_seed(0)  # the same initial codebook on every rank, as seed_everything gives
    vq = VectorQuantizer(channels=2, codebook_size=16, update=update, decay=0.5, dead_threshold=threshold).train()
    data = torch.Generator().manual_seed(100 + rank)  # every rank its own shard of latents
    for _ in range(4):
        vq(torch.randn(3, 2, 5, generator=data) + rank)
    torch.save(vq.state_dict(), f"{out}.{rank}")
    torch.distributed.destroy_process_group()


def vq_on_ranks(tmp_path: Path, update: str, threshold: float) -> list[dict]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    torch.multiprocessing.start_processes(
        _vq_rank, args=(2, port, update, threshold, str(tmp_path / "vq")), nprocs=2, start_method="fork"
    )
    return [torch.load(tmp_path / f"vq.{rank}") for rank in range(2)]


@pytest.mark.parametrize("update", ["ema", "loss"])
def test_vq_codebook_stays_identical_across_ranks_through_restarts(tmp_path, update):
    # threshold 0.5 of decayed use: most codes die and restart from rank-local latents every step
    states = vq_on_ranks(tmp_path, update, threshold=0.5)
    assert states[0].keys() == states[1].keys()
    for key in states[0]:
        torch.testing.assert_close(states[0][key], states[1][key], rtol=0, atol=0, msg=key)


def test_vq_ema_under_ddp_equals_one_process_on_the_global_batch(tmp_path):
    distributed = vq_on_ranks(tmp_path, "ema", threshold=0.0)[0]  # no restarts: the EMA alone
    torch.manual_seed(0)
    single = VectorQuantizer(channels=2, codebook_size=16, update="ema", decay=0.5, dead_threshold=0.0).train()
    data = [torch.Generator().manual_seed(100 + rank) for rank in range(2)]
    for _ in range(4):
        single(torch.cat([torch.randn(3, 2, 5, generator=data[rank]) + rank for rank in range(2)]))
    for key, value in single.state_dict().items():
        torch.testing.assert_close(distributed[key], value, msg=key)


def test_sigterm_to_the_launching_process_during_setup_stops_every_rank(tmp_path, shared_dirs):
    import signal
    import time

    paths = [f"paths.{k}={v}" for k, v in shared_dirs.items()]
    run = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aerecon.train",
            *TINY,
            *DDP,
            *paths,
            "hydra.run.dir=run",
            "+callbacks.fault._target_=faults.SignalInSetup",
            "+callbacks.fault.rank=0",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent)},
    )
    _, stderr = run.communicate(timeout=300)
    assert run.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    # rank 1 got the signal too and stops quietly: one message, no traceback, no process left waiting
    assert stderr.count("aerecon: stopped: SIGTERM outside a training epoch") == 1, stderr[-3000:]
    assert "Traceback" not in stderr
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            os.killpg(run.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        pytest.fail("a rank was still running a minute after the launching process stopped")
    assert not (tmp_path / "run/results.json").exists()


# experiment=best's choices on the tiny corpus: the runs-selecting sparse network (at the tiny
# segment's size), raw waveforms, the normalised MSE, jittered segments loaded in the training process
BEST = [
    "model=sparseconv",
    "representation=raw",
    "model.net.select=runs",
    "model.net.latent=250",
    "model.net.hop=50",
    "loss.terms.mse.normalized=true",
    "data.jitter=0.5",
    "data.num_workers=0",
    "optimizer.weight_decay=0.0",
]


def test_ddp_resume_of_the_best_configuration_is_exact(tmp_path, shared_dirs):
    ddp_run(tmp_path, shared_dirs, "straight", "trainer.max_epochs=2", *BEST)
    stopped = ddp_run(
        tmp_path,
        shared_dirs,
        "stopped",
        "trainer.max_epochs=2",
        *BEST,
        "+callbacks.fault._target_=faults.SignalAt",
        "+callbacks.fault.epoch=0",
        "+callbacks.fault.batch=0",
        "+callbacks.fault.rank=0",
        code=143,
    )
    assert stopped.stderr.count("aerecon: stopped: SIGTERM at epoch 0, batch 1 of") == 1, stopped.stderr[-3000:]
    ddp_run(
        tmp_path,
        shared_dirs,
        "resumed",
        "trainer.max_epochs=2",
        *BEST,
        f"ckpt_path={tmp_path / 'stopped/checkpoints/last.ckpt'}",
    )
    assert_same_run(tmp_path / "straight", tmp_path / "stopped", epochs=2)
