"""Songs into splits (by a hash of each song's name) and into fixed-length waveform segments."""

import hashlib
import math
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from aerecon.data.cache import CachedSong
from aerecon.utils.errors import ConfigError, DataError
from aerecon.utils.private_api import batch_buffer

SPLITS = ("train", "val", "test")


def checked_jitter(jitter: float) -> float:
    """data.jitter checked: how far, as a fraction of a segment, training segments move off the grid."""
    if isinstance(jitter, bool) or not isinstance(jitter, (int, float)) or not 0.0 <= jitter <= 1.0:
        raise ConfigError(
            f"data.jitter={jitter}: must be a fraction of a segment from 0 (the fixed grid) to 1, e.g. data.jitter=0.5"
        )
    return float(jitter)


THESIS_SPLIT = {"train": 1300, "val": 130, "test": 20}  # the thesis's proportions, by song


def split_weights(split: dict[str, float] | str | None) -> dict[str, float] | str:
    """data.split checked: weights of train, val and test (None: THESIS_SPLIT), or "folders"
    (train/, val/, test/ under data.root)."""
    split = split or THESIS_SPLIT
    if isinstance(split, str):
        if split != "folders":
            raise ConfigError(
                f"data.split={split}: use weights, e.g. {{train: 1300, val: 130, test: 20}}, "
                f"or `folders` (train/, val/, test/ under data.root)"
            )
        return split
    if (
        set(split) != set(SPLITS)
        or not all(isinstance(w, (int, float)) and math.isfinite(w) for w in split.values())
        or min(split.values()) < 0
        or split["train"] <= 0
        or split["val"] <= 0
    ):
        raise ConfigError(
            f"data.split={dict(split)}: needs train, val, test weights, e.g. "
            f"{{train: 1300, val: 130, test: 20}}, or `folders`"
        )
    return dict(split)


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
    u = position(name, seed)
    return next((split for split, (_, high) in shares(weights).items() if u < high), SPLITS[-1])


def song_count(count: int) -> str:
    return f"{count} song" + ("" if count == 1 else "s")


def position(name: str, seed: int) -> float:
    """Where a song's hash falls in [0, 1): the split whose share holds it is the song's."""
    return int.from_bytes(hashlib.sha1(os.fsencode(f"{seed}:{name}")).digest()[:8], "big") / 2**64


def shares(weights: dict[str, float]) -> dict[str, tuple[float, float]]:
    """Each split's share of [0, 1), in the order of SPLITS."""
    total, edge, out = sum(weights.values()), 0.0, {}
    for split in SPLITS:
        out[split] = (edge, edge + weights[split] / total)
        edge = out[split][1]
    return out


def assign_splits(names: list[str], weights: dict[str, float] | str, seed: int = 0) -> dict[str, str]:
    """The splits of a folder's songs: each song's own by `assign_split`, except that with 3 songs
    or more every weighted split has at least one. An empty split takes, from the split that has
    the most songs, the song whose hash lies nearest its share; so a small folder trains with the
    thesis's proportions, and adding songs moves none but such a lent song, back to where its hash
    puts it once the split it was lent to has a song of its own."""
    splits = {name: assign_split(name, weights, seed) for name in names}
    if weights == "folders" or len(names) < 3:
        return splits
    bounds = shares(weights)
    for split in SPLITS:
        if weights[split] <= 0 or split in splits.values():
            continue
        low, high = bounds[split]
        donor = max(SPLITS, key=lambda s: (sum(v == s for v in splits.values()), -SPLITS.index(s)))
        nearest = min(
            (name for name, s in splits.items() if s == donor),
            key=lambda name: (max(low - position(name, seed), position(name, seed) - high, 0.0), name),
        )
        splits[nearest] = split
    return splits


def jitter_shifts(seed: int, epoch: int, jitter: float, size: int, segment_samples: int) -> np.ndarray:
    """How far each of a split's `size` segments moves in `epoch`, in samples: up to `jitter`
    segment lengths either way, drawn from (seed, epoch) alone (data=folder and data=stream alike)."""
    draws = np.random.default_rng([seed, epoch]).uniform(-jitter, jitter, size)
    return np.rint(draws * segment_samples).astype(np.int64)


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
        self.index = [
            (s, k * segment_samples) for s, song in enumerate(songs) for k in range(song.num_samples // segment_samples)
        ]
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
            self._shifts = (epoch, jitter_shifts(self.seed, epoch, self.jitter, len(self), self.segment_samples))
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
        batch = batch_buffer(len(indices), 1, n)
        rows = batch.numpy()
        for row, s, offset in zip(rows, self._song[indices], self.offsets(indices, epoch)):
            row[0] = self._array(s)[offset : offset + n]
        return batch

    def __getitem__(self, key: int | tuple[int, int]) -> torch.Tensor:
        return self.__getitems__([key])[0]
