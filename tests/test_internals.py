"""The private Lightning and torch members aerecon relies on (aerecon/utils/private_api.py) still exist."""

import inspect
import subprocess
import sys
import time

import lightning as L
import torch

from aerecon.utils.private_api import REQUIRED, attached_trainer, batches_done, epochs_processed


def describe(owner) -> str:
    module = owner.__module__.split(".")[0]
    version = {"lightning": L.__version__, "torch": torch.__version__}.get(module, "?")
    return f"{owner.__module__}.{owner.__qualname__} ({module} {version})"


def test_every_private_member_aerecon_uses_still_exists_with_its_parameters():
    from lightning.pytorch.callbacks import ModelCheckpoint
    from torch.utils.data import DataLoader
    from torch.utils.data.dataloader import _MultiProcessingDataLoaderIter

    iterator = iter(DataLoader(range(2), num_workers=1))
    instances = {
        L.LightningModule: L.LightningModule(),
        ModelCheckpoint: ModelCheckpoint(),
        _MultiProcessingDataLoaderIter: iterator,
    }
    changed = []
    for owner, name, parameters in REQUIRED:
        holder = instances.get(owner, owner)
        if not hasattr(holder, name):
            changed.append(f"{describe(owner)} has no {name}")
            continue
        if parameters is not None:
            found = list(inspect.signature(getattr(owner, name)).parameters)
            if found[:1] == ["self"]:
                found = found[1:]
            if found[: len(parameters)] != parameters:
                changed.append(f"{describe(owner)}.{name} takes {found}, not {parameters}")
    iterator._shutdown_workers()
    assert not changed, "an upgrade changed what aerecon/utils/private_api.py relies on; update it there: " + "; ".join(
        changed
    )


def test_the_helpers_read_a_real_trainer_and_checkpoint(tmp_path):
    from lightning.pytorch.demos.boring_classes import BoringModel

    module = BoringModel()
    assert attached_trainer(module) is None
    trainer = L.Trainer(
        max_epochs=2,
        limit_train_batches=3,
        limit_val_batches=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(module)
    assert attached_trainer(module) is trainer and batches_done(trainer) == 3
    trainer.save_checkpoint(tmp_path / "last.ckpt")
    assert epochs_processed(torch.load(tmp_path / "last.ckpt", weights_only=False)) == 2


# Workers ignore SIGTERM, which is what torch's shutdown and multiprocessing's exit handler send to a
# worker that does not stop in time; the exit handler then waits for it.
BUSY_WORKERS = """
import time
from aerecon.data.loaders import worker_init
from aerecon.utils.private_api import WorkerLoader

class Slow:
    def __len__(self):
        return 8
    def __getitem__(self, index):
        time.sleep(0 if index < 1 else 600)
        return index

loader = WorkerLoader(Slow(), num_workers=1, worker_init_fn=worker_init)
batches = iter(loader)
next(batches)
{drop}
print("done", flush=True)
"""


def test_loader_workers_still_busy_never_keep_the_interpreter_from_exiting():
    for drop in ("del batches  # torch asks the workers to stop, waits 5 s, then sends SIGTERM", "pass"):
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-c", BUSY_WORKERS.format(drop=drop)], capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0 and result.stdout == "done\n", result.stderr[-2000:]
        assert time.monotonic() - started < 60, drop
