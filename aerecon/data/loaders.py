"""Sampling and loading segments: a per-epoch seeded order that resumes mid-epoch and shards
across DDP ranks, and DataLoaders whose workers never outlive the process or die of its signals."""

import signal
from collections.abc import Callable

import torch
from lightning.fabric.utilities.seed import pl_worker_init_function
from torch.utils.data import Sampler

from aerecon.utils.private_api import WorkerLoader


def as_batch(batch: torch.Tensor) -> torch.Tensor:
    """The loaders' collate_fn: SegmentDataset.__getitems__ already returns the stacked batch."""
    return batch


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the number of processes (DDP), or (0, 1)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class EpochShuffleSampler(Sampler[int]):
    """Shuffles with a permutation that depends only on (seed, epoch).

    Lightning calls `set_epoch` before every epoch, so a run resumed at epoch k sees exactly
    the order (and jitter) an uninterrupted run would, whatever the global RNG state is.
    With `with_epoch`, it yields (index, epoch) keys for SegmentDataset's jitter.
    `resume(epoch, done)` makes that epoch's next pass start after its first `done` indices.

    Under DDP each of the `world` ranks takes every world-th index of the permutation, padded
    (as torch's DistributedSampler does) so all ranks run the same number of steps: the
    shards are disjoint except for at most world - 1 repeated segments, and cover the epoch.
    """

    def __init__(
        self, size: int, seed: int, with_epoch: bool = False, rank: int | None = None, world: int | None = None
    ):
        self.size, self.seed, self.epoch, self.with_epoch = size, seed, 0, with_epoch
        default_rank, default_world = rank_and_world()
        self.rank = default_rank if rank is None else rank
        self.world = default_world if world is None else world
        self._resume: tuple[int, int] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def resume(self, epoch: int, done: int) -> None:
        self._resume = (epoch, done)

    def __len__(self) -> int:
        return -(-self.size // self.world)

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.size, generator=generator).tolist()
        order += order[: len(self) * self.world - self.size]
        order = order[self.rank :: self.world]
        if self._resume is not None:
            epoch, done = self._resume
            self._resume = None
            if epoch == self.epoch:
                order = order[done:]
        return iter([(i, self.epoch) for i in order] if self.with_epoch else order)


class ShardSampler(Sampler[int]):
    """Evaluation order under DDP: rank r takes segments r, r + world, ... (no padding, so
    every segment is scored exactly once; metrics are then summed across ranks)."""

    def __init__(self, size: int, rank: int, world: int):
        self.size, self.rank, self.world = size, rank, world

    def __len__(self) -> int:
        return len(range(self.rank, self.size, self.world))

    def __iter__(self):
        return iter(range(self.rank, self.size, self.world))


class ResumableLoader(WorkerLoader):
    """The training DataLoader, resumable mid-epoch (Lightning checkpoints it: it has a state_dict).

    Its state is the epoch and how many batches of it training has finished (`progress()`, read
    from the trainer when a checkpoint is saved); restored, the rest of that epoch comes in the
    same order an uninterrupted run would have used. Every pass takes its epoch from `epoch()` (the
    trainer's) as it begins: loader workers take their first indices when the iterator is made,
    which Lightning does on resuming before it sets the sampler's epoch.
    """

    def __init__(self, *args, progress: Callable[[], int], epoch: Callable[[], int | None] = lambda: None, **kwargs):
        super().__init__(*args, **kwargs)
        self.progress, self.epoch = progress, epoch

    def state_dict(self) -> dict:
        return {"epoch": self.sampler.epoch, "batches": self.progress()}

    def load_state_dict(self, state: dict) -> None:
        self.sampler.resume(state["epoch"], state["batches"] * self.batch_size)

    def __iter__(self):
        if (epoch := self.epoch()) is not None:
            self.sampler.set_epoch(epoch)
        return super().__iter__()


def worker_init(worker_id: int) -> None:
    # Ctrl+C and a scheduler's SIGTERM reach a loader's workers too; only the main process decides
    # how to stop (GracefulStop): a worker dying first would fail the batch in progress.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    pl_worker_init_function(worker_id)
