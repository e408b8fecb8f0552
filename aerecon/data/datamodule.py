"""LightningDataModule: folder of audio -> cache -> split by song -> 3 s waveform segments.

Batches are raw waveforms [B, 1, n]; the representation (RFFT, ...) is applied by the model
on its device, so the loader stays cheap and the cache representation-agnostic.
"""

import atexit
import hashlib
import logging
import math
import os
import signal
import weakref
from collections.abc import Callable
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.fabric.utilities.seed import pl_worker_init_function
from torch.utils.data import DataLoader, Dataset, Sampler

from aerecon import segment_samples
from aerecon.audio import AUDIO_EXTENSIONS, scan
from aerecon.data.cache import CachedSong, WaveformCache
from aerecon.data.synth import ensure_demo_dataset
from aerecon.errors import ConfigError, DataError
from aerecon.files import atomic_write

log = logging.getLogger(__name__)
SPLITS = ("train", "val", "test")


def assign_split(name: str, weights: dict[str, float] | str, seed: int = 0) -> str:
    """Split of one song, from a hash of its name alone: adding files never moves another.

    With `weights="folders"` the song's top folder under the root names its split
    (train/, val/, test/), for a split chosen by hand.
    """
    if weights == "folders":
        top = Path(name).parts[0] if len(Path(name).parts) > 1 else ""
        if top not in SPLITS:
            raise DataError(f"data.split=folders: {name} is not inside a train/, val/ or test/ folder of data.root")
        return top
    u = int.from_bytes(hashlib.sha1(os.fsencode(f"{seed}:{name}")).digest()[:8], "big") / 2**64
    total, edge = sum(weights.values()), 0.0
    for split in SPLITS:
        edge += weights[split] / total
        if u < edge:
            return split
    return SPLITS[-1]


class SegmentDataset(Dataset):
    """Segments of cached songs on a grid of `segment_samples`; a trailing partial segment is dropped.

    Keys are segment indices, or (index, epoch) pairs from EpochShuffleSampler when `jitter`
    > 0: then each segment is moved by up to `jitter` segment lengths either way (kept
    inside its song), by an amount drawn from (seed, epoch) for the whole epoch at once, so it
    depends on (seed, epoch, index) alone. Models then see every phase of the music, not only
    the grid; evaluation's overlapping segments need that.

    The DataLoader fetches a whole batch with one `__getitems__` call (a [B, 1, n] tensor,
    passed through by `as_batch`): the per-segment work is one slice copy.
    """

    def __init__(self, songs: list[CachedSong], segment_samples: int, jitter: float = 0.0, seed: int = 0):
        self.songs, self.segment_samples, self.jitter, self.seed = songs, segment_samples, jitter, seed
        self.index = [(s, k * segment_samples) for s, song in enumerate(songs)
                      for k in range(song.num_samples // segment_samples)]
        self._song = np.array([s for s, _ in self.index], dtype=np.int64)
        self._grid = np.array([offset for _, offset in self.index], dtype=np.int64)
        self._latest = np.array([songs[s].num_samples - segment_samples for s in self._song], dtype=np.int64)
        self._shifts: tuple[int | None, np.ndarray | None] = (None, None)  # (epoch, shift of every segment)
        self._arrays: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.index)

    def offsets(self, indices: np.ndarray, epoch: int | None) -> np.ndarray:
        """Start samples of the segments `indices` in `epoch` (None: the grid)."""
        if epoch is None or not self.jitter:
            return self._grid[indices]
        if self._shifts[0] != epoch:
            draws = np.random.default_rng([self.seed, epoch]).uniform(-self.jitter, self.jitter, len(self))
            self._shifts = (epoch, np.rint(draws * self.segment_samples).astype(np.int64))
        return np.clip(self._grid[indices] + self._shifts[1][indices], 0, self._latest[indices])

    def offset(self, i: int, epoch: int | None) -> int:
        return int(self.offsets(np.array([i]), epoch)[0])

    def _array(self, s: int) -> np.ndarray:
        if s not in self._arrays:  # opened lazily, so each loader worker maps its own files
            self._arrays[s] = np.load(self.songs[s].file, mmap_mode="r")
        return self._arrays[s]

    def __getitems__(self, keys: list) -> torch.Tensor:
        if keys and isinstance(keys[0], tuple):
            indices, epoch = np.array([i for i, _ in keys]), keys[0][1]  # one epoch per batch (the sampler's)
        else:
            indices, epoch = np.array(keys, dtype=np.int64), None
        n = self.segment_samples
        batch = torch.empty(len(indices), 1, n)
        if torch.utils.data.get_worker_info() is not None:
            batch.share_memory_()  # as default_collate does in a worker: sent to the trainer without a copy
        rows = batch.numpy()
        for row, s, offset in zip(rows, self._song[indices], self.offsets(indices, epoch)):
            row[0] = self._array(s)[offset : offset + n]
        return batch

    def __getitem__(self, key: int | tuple[int, int]) -> torch.Tensor:
        return self.__getitems__([key])[0]


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

    def __init__(self, size: int, seed: int, with_epoch: bool = False, rank: int | None = None,
                 world: int | None = None):
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


class WorkerLoader(DataLoader):
    """A DataLoader whose worker processes are shut down before the interpreter exits.

    The workers ignore SIGTERM (see `_worker_init`), but multiprocessing's exit handler stops
    leftover children with SIGTERM and then waits for them: an iterator still holding its
    workers at exit (a script or notebook that iterated a loader outside a Trainer, which
    shuts its own down) would hang there for ever.
    """

    _live_iterators: weakref.WeakSet = weakref.WeakSet()

    def _get_iterator(self):
        iterator = super()._get_iterator()
        if self.num_workers > 0:
            WorkerLoader._live_iterators.add(iterator)
        return iterator

    @classmethod
    def shutdown_all(cls) -> None:
        for iterator in list(cls._live_iterators):
            iterator._shutdown_workers()  # as Lightning's teardown does; a no-op once done


# atexit runs handlers last-registered-first: this one runs before multiprocessing's own.
atexit.register(WorkerLoader.shutdown_all)


class ResumableLoader(WorkerLoader):
    """The training DataLoader, resumable mid-epoch (Lightning checkpoints it: it has a state_dict).

    Its state is the epoch and how many batches of it training has finished (`progress()`, read
    from the trainer when a checkpoint is saved); restored, the rest of that epoch comes in the
    same order an uninterrupted run would have used.
    """

    def __init__(self, *args, progress: Callable[[], int], **kwargs):
        super().__init__(*args, **kwargs)
        self.progress = progress

    def state_dict(self) -> dict:
        return {"epoch": self.sampler.epoch, "batches": self.progress()}

    def load_state_dict(self, state: dict) -> None:
        self.sampler.resume(state["epoch"], state["batches"] * self.batch_size)


def _worker_init(worker_id: int) -> None:
    # Ctrl+C and a scheduler's SIGTERM reach a loader's workers too; only the main process decides
    # how to stop (GracefulStop): a worker dying first would fail the batch in progress.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    pl_worker_init_function(worker_id)


class AudioDataModule(L.LightningDataModule):
    def __init__(
        self,
        root: str | None,
        cache_dir: str,
        sample_rate: int = 4410,
        segment_seconds: float = 3.0,
        batch_size: int = 40,
        split: dict[str, float] | str | None = None,
        split_seed: int = 0,
        shuffle_seed: int = 0,
        num_workers: int = 0,
        jitter: float = 0.0,
        report: str | None = None,
        decode_workers: int | None = None,
    ):
        super().__init__()
        if root is None or not str(root):
            raise ConfigError("data.root is not set: point it at a folder of audio, e.g. data=folder data.root=$HOME/music")
        if sample_rate <= 0:
            raise ConfigError(f"data.sample_rate={sample_rate}: must be a positive rate in Hz, e.g. 4410")
        if segment_samples(sample_rate, segment_seconds) < 1:
            raise ConfigError(f"data.segment_seconds={segment_seconds}: shorter than one sample; e.g. 3.0")
        split = split or {"train": 1300, "val": 130, "test": 20}
        if isinstance(split, str):
            if split != "folders":
                raise ConfigError(f"data.split={split}: use weights, e.g. {{train: 1300, val: 130, test: 20}}, "
                                  f"or `folders` (train/, val/, test/ under data.root)")
        elif (set(split) != set(SPLITS) or not all(isinstance(w, (int, float)) and math.isfinite(w) for w in split.values())
              or min(split.values()) < 0 or split["train"] <= 0 or split["val"] <= 0):
            raise ConfigError(f"data.split={dict(split)}: needs train, val, test weights, e.g. "
                              f"{{train: 1300, val: 130, test: 20}}, or `folders`")
        else:
            split = dict(split)
        self.root = Path(root).expanduser()
        if decode_workers is not None and decode_workers < 1:
            raise ConfigError(f"data.decode_workers={decode_workers}: processes decoding audio, at least 1, e.g. 2 "
                              f"(null: one per CPU core, at most 8)")
        workers = decode_workers or min(8, os.cpu_count() or 1)
        self.cache = WaveformCache(Path(cache_dir).expanduser(), sample_rate, workers)
        self.sample_rate, self.batch_size, self.num_workers = sample_rate, batch_size, num_workers
        self.segment_samples = segment_samples(sample_rate, segment_seconds)
        self.split_weights, self.split_seed, self.shuffle_seed = split, split_seed, shuffle_seed
        if not 0.0 <= jitter <= 1.0:
            raise ConfigError(f"data.jitter={jitter}: a fraction of a segment from 0 (the fixed grid) to 1, e.g. 0.5")
        self.jitter = jitter
        self.songs: dict[str, list[CachedSong]] = {}
        self.datasets: dict[str, SegmentDataset] = {}
        self._all_songs: list[CachedSong] | None = None
        self.skipped: dict[str, str] = {}  # unusable files and why, once scanned
        self.not_audio: dict[Path, str] = {}  # every other file and folder the scan passed over, and why
        self.report = Path(report).expanduser() if report else None

    def _sources(self) -> list[Path]:
        if not self.root.is_dir():
            raise DataError(f"data.root={self.root} is not a folder")
        sources, self.not_audio = scan(self.root)
        if not sources:
            kinds = ", ".join(sorted(AUDIO_EXTENSIONS))
            raise DataError(f"No audio files ({kinds}) found under {self.root}")
        return sources

    def _cached_songs(self) -> list[CachedSong]:
        """Scan, cache and report once per DataModule (train, Lightning's fit and setup all ask)."""
        if self._all_songs is None:
            songs, skipped = self.cache.build(self.root, self._sources())
            self.skipped = {str(source): reason for source, reason in skipped.items()}
            for source, reason in skipped.items():
                log.warning("Skipping %s: %s", source, reason)
            self._report(songs)
            if not songs:
                raise DataError(f"None of the {len(skipped)} audio files under {self.root} could be used"
                                + (f"; why each was skipped: {self.report}" if self.report else ""))
            self._all_songs = songs
        return self._all_songs

    def _report(self, songs: list[CachedSong]) -> None:
        """Logs a one-line summary of the scan and writes every file's fate to `self.report` (TSV)."""
        short = {s for s in songs if s.num_samples < self.segment_samples}
        seconds = sum(s.num_samples for s in songs) / self.sample_rate
        segment = self.segment_samples / self.sample_rate
        log.info("Audio under %s: %d files used (%.1f min), %d of them shorter than one %g s segment "
                 "(evaluated, not trained on), %d skipped, %d other files%s", self.root, len(songs), seconds / 60,
                 len(short), segment, len(self.skipped), len(self.not_audio),
                 f"; report: {self.report}" if self.report else "")
        if self.report is None:
            return
        rows = [("status", "seconds", "file", "reason")]
        rows += [("short" if s in short else "used", f"{s.num_samples / self.sample_rate:.3f}", str(s.source),
                  f"shorter than one {segment:g} s segment" if s in short else "") for s in songs]
        rows += [("skipped", "", source, reason) for source, reason in self.skipped.items()]
        rows += [("not audio" if reason.startswith("not an audio file") else "skipped", "", str(path), reason)
                 for path, reason in self.not_audio.items()]
        text = "".join("\t".join(cell.replace("\t", " ").replace("\n", " ") for cell in row) + "\n" for row in rows)
        self.report.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.report, lambda f: f.write(text.encode("utf-8", "backslashreplace")))

    def prepare_data(self) -> None:
        self._cached_songs()

    def state_dict(self) -> dict:
        """Rides in checkpoints: each song's cache key (its path, size and modification time)."""
        return {"songs": {song.name: song.file.stem for song in self._cached_songs()}}

    def load_state_dict(self, state: dict) -> None:
        """On resume: says how the songs under data.root changed since the checkpoint was saved."""
        saved, now = state.get("songs", {}), {song.name: song.file.stem for song in self._cached_songs()}
        added, removed = now.keys() - saved.keys(), saved.keys() - now.keys()
        changed = {name for name in now.keys() & saved.keys() if now[name] != saved[name]}
        if added or removed or changed:
            log.warning("The songs under %s changed since this checkpoint was saved: %d added, %d removed, %d changed "
                        "(e.g. %s). Training goes on with the songs there now; unchanged songs keep their split.",
                        self.root, len(added), len(removed), len(changed), sorted(added | removed | changed)[0])

    def all_songs(self) -> list[CachedSong]:
        """Every usable song under the root, whatever its split (e.g. to evaluate a new folder)."""
        return self._cached_songs()

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        songs = self._cached_songs()
        self.songs = {split: [] for split in SPLITS}
        for song in songs:
            self.songs[assign_split(song.name, self.split_weights, self.split_seed)].append(song)
        self.datasets = {split: SegmentDataset(s, self.segment_samples, self.jitter if split == "train" else 0.0,
                                               self.shuffle_seed)
                         for split, s in self.songs.items()}
        counts = {split: (len(self.songs[split]), len(ds)) for split, ds in self.datasets.items()}
        log.info("Songs / segments per split: %s", counts)
        for split in ("train", "val"):
            if len(self.datasets[split]) == 0:
                raise DataError(
                    f"The {split} split of {self.root} has no {self.segment_samples / self.sample_rate:g} s segments "
                    f"(songs / segments per split: {counts}). Add songs, or change data.split={self.split_weights}"
                )

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        dataset = self.datasets[split]
        options = dict(batch_size=self.batch_size, num_workers=self.num_workers, collate_fn=as_batch,
                       persistent_workers=self.num_workers > 0, pin_memory=torch.cuda.is_available(),
                       worker_init_fn=_worker_init,
                       generator=torch.Generator().manual_seed(self.shuffle_seed))  # leaves the global RNG alone
        if not shuffle:
            rank, world = rank_and_world()
            return WorkerLoader(dataset, sampler=ShardSampler(len(dataset), rank, world) if world > 1 else None,
                              **options)
        sampler = EpochShuffleSampler(len(dataset), self.shuffle_seed, with_epoch=dataset.jitter > 0)
        return ResumableLoader(dataset, sampler=sampler, progress=self._batches_done, **options)

    def _batches_done(self) -> int:
        """Training batches finished in the current epoch (checkpoints are saved after a batch's hooks)."""
        trainer = self.trainer
        return trainer.fit_loop.epoch_loop.batch_progress.current.processed if trainer is not None else 0

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)


class DemoDataModule(AudioDataModule):
    """AudioDataModule over the built-in demo tracks, rendered on first use."""

    def __init__(self, num_songs: int = 160, song_seconds: float = 6.0, render_rate: int = 22050,
                 render_seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.demo = dict(num_songs=num_songs, seconds=song_seconds, sample_rate=render_rate, seed=render_seed)

    def _sources(self) -> list[Path]:
        ensure_demo_dataset(self.root, **self.demo)
        return super()._sources()
