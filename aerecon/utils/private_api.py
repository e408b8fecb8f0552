"""Every use aerecon makes of Lightning's and torch's private (or undocumented) members, in one place.

Each is here because no public API does the job. `tests/test_internals.py` checks that every
member in REQUIRED still exists with the parameters used here, so an upgrade that renames or
changes one fails there, naming it, instead of somewhere deep in a run.
"""

import atexit
import math
import multiprocessing
import weakref
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from torch.utils.data import DataLoader
from torch.utils.data.dataloader import _MultiProcessingDataLoaderIter

from aerecon.utils.files import atomic_link

# (owner, member, the parameters aerecon passes, by name, or None for an attribute)
REQUIRED = [
    (L.LightningModule, "_trainer", None),
    (Callback, "_generate_state_key", ["kwargs"]),
    (ModelCheckpoint, "_should_save_on_train_epoch_end", ["trainer"]),
    (ModelCheckpoint, "_should_skip_saving_checkpoint", ["trainer"]),
    (ModelCheckpoint, "_save_last_checkpoint", ["trainer", "monitor_candidates"]),
    (ModelCheckpoint, "_monitor_candidates", ["trainer"]),
    (ModelCheckpoint, "_save_checkpoint", ["trainer", "filepath"]),
    (ModelCheckpoint, "_last_checkpoint_saved", None),
    (ModelCheckpoint, "_last_global_step_saved", None),
    (DataLoader, "_get_iterator", []),
    (_MultiProcessingDataLoaderIter, "_shutdown_workers", []),
    (_MultiProcessingDataLoaderIter, "_workers", None),
    (torch.UntypedStorage, "_new_shared", ["size"]),
]


def attached_trainer(module: L.LightningModule) -> L.Trainer | None:
    """The module's Trainer, or None outside one (the public `trainer` property raises there)."""
    return module._trainer


def batches_done(trainer: L.Trainer) -> int:
    """Training batches finished in the current epoch."""
    return trainer.fit_loop.epoch_loop.batch_progress.current.processed


def loader_epoch(trainer: L.Trainer | None) -> int | None:
    """The epoch Lightning gives the training samplers (`set_epoch`): the epochs processed, which a
    checkpoint saved at an epoch's end counts before the epochs completed (`current_epoch`)."""
    return trainer.fit_loop.epoch_progress.current.processed if trainer is not None else None


def epochs_processed(checkpoint: dict) -> int:
    """Epochs whose training a Lightning checkpoint had processed when it was saved."""
    loops = checkpoint.get("loops", {}).get("fit_loop", {})
    return loops.get("epoch_progress", {}).get("current", {}).get("processed", 0)


def state_key(callback: Callback, **kwargs) -> str:
    """A callback's checkpoint key in Lightning's own form (`Name{'monitor': ...}`)."""
    return callback._generate_state_key(**kwargs)


class BestAndLastCheckpoint(ModelCheckpoint):
    """ModelCheckpoint whose last.ckpt is rewritten after every validation, so a killed run resumes
    from its latest epoch. (Lightning 2.6 rewrites last.ckpt only when a top-k checkpoint was saved
    at the same step, i.e. when the monitored metric improved.)"""

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module) -> None:
        super().on_train_epoch_end(trainer, pl_module)  # top-k, and last.ckpt if that saved one
        self._last_unless_saved(trainer, at_epoch_end=True)

    def on_validation_end(self, trainer: L.Trainer, pl_module) -> None:
        super().on_validation_end(trainer, pl_module)
        self._last_unless_saved(trainer, at_epoch_end=False)

    def _last_unless_saved(self, trainer: L.Trainer, at_epoch_end: bool) -> None:
        # the moment Lightning chose for this run's saves, unless it has saved at this step already
        if self._should_save_on_train_epoch_end(trainer) == at_epoch_end and not self._should_skip_saving_checkpoint(
            trainer
        ):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def _save_last_checkpoint(self, trainer: L.Trainer, monitor_candidates: dict) -> None:
        """When a best checkpoint was just written at this very step, last.ckpt becomes a hard link to
        it: one copy on disk, and removing the old best later leaves last.ckpt whole."""
        best = self._last_checkpoint_saved
        if not (
            self.save_last
            and best
            and self._last_global_step_saved == trainer.global_step
            and Path(best).name != self.CHECKPOINT_NAME_LAST + self.FILE_EXTENSION
        ):
            return super()._save_last_checkpoint(trainer, monitor_candidates)
        target = self.format_checkpoint_name(monitor_candidates, self.CHECKPOINT_NAME_LAST)
        self.last_model_path = target
        linked = atomic_link(Path(best), Path(target)) if trainer.is_global_zero else True
        trainer.strategy.barrier()
        if not linked:
            self._save_checkpoint(trainer, target)


def batch_buffer(*shape: int) -> torch.Tensor:
    """An uninitialised float32 tensor to stack a batch into: in a loader worker, in shared
    memory from the start, as default_collate allocates its batches, so that handing it to the
    trainer copies nothing (the public `share_memory_()` would first copy the empty buffer)."""
    if torch.utils.data.get_worker_info() is None:
        return torch.empty(shape)
    return torch.empty(0).set_(torch.UntypedStorage._new_shared(4 * math.prod(shape))).view(shape)


class WorkerLoader(DataLoader):
    """A DataLoader whose worker processes never outlive their iterator, nor keep the interpreter
    from exiting.

    The workers ignore SIGTERM (see aerecon.data.loaders.worker_init), but both torch's shutdown
    of an iterator and multiprocessing's exit handler end a worker that does not stop in time with
    SIGTERM, and the exit handler then waits for it: a worker still busy (reading, or stuck after
    an error in another worker) would be left running, and the interpreter would hang at exit.
    Here such a worker is killed instead, once its iterator is gone and at exit.
    """

    _live_iterators: weakref.WeakSet = weakref.WeakSet()

    def _get_iterator(self):
        iterator = super()._get_iterator()
        if self.num_workers > 0:
            WorkerLoader._live_iterators.add(iterator)
            # runs after the iterator's own __del__ has asked its workers to stop
            weakref.finalize(iterator, kill_workers, list(iterator._workers)).atexit = False
        return iterator

    @classmethod
    def shutdown_all(cls) -> None:
        for iterator in list(cls._live_iterators):
            iterator._shutdown_workers()  # as Lightning's teardown does; a no-op once done
        kill_workers([child for child in multiprocessing.active_children() if child.daemon])


def kill_workers(workers: list) -> None:
    """SIGKILL the loader workers still alive (they ignore SIGTERM), and reap them."""
    for worker in workers:
        if worker.is_alive():
            worker.kill()
    for worker in workers:
        worker.join(timeout=5)


# atexit runs handlers last-registered-first: this one runs before multiprocessing's own.
atexit.register(WorkerLoader.shutdown_all)
