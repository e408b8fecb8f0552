"""Fault injection for tests: a callback that signals its own process at a chosen batch.

Used in-process (appended to cfg.callbacks) and in subprocesses (PYTHONPATH=tests,
`+callbacks.fault={_target_: faults.SignalAt, ...}`)."""

import os
import signal

import lightning as L


class SignalAt(L.Callback):
    """The signal `name` at a training batch (under DDP: to the process of one rank only, when
    `rank` is given)."""

    def __init__(self, epoch: int, batch: int, name: str = "SIGTERM", group: bool = False, rank: int | None = None):
        self.epoch, self.batch, self.signum, self.group, self.rank = epoch, batch, signal.Signals[name], group, rank

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if self.rank is not None and trainer.global_rank != self.rank:
            return
        if trainer.current_epoch == self.epoch and batch_idx == self.batch:
            if self.group:  # as a scheduler or a terminal does: every process of the group, loader workers too
                os.killpg(os.getpgid(0), self.signum)
            else:
                os.kill(os.getpid(), self.signum)


class SignalInSetup(L.Callback):
    """SIGTERM while Lightning sets the run up, before any training epoch (under DDP: to the
    process of one rank only, when `rank` is given)."""

    def __init__(self, rank: int | None = None):
        self.rank = rank

    def setup(self, trainer, pl_module, stage: str) -> None:
        if self.rank is None or trainer.global_rank == self.rank:
            os.kill(os.getpid(), signal.SIGTERM)
