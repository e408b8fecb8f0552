"""LightningDataModule: folder of audio -> cache -> split by song -> 3 s waveform segments.

Batches are raw waveforms [B, 1, n]; the representation (RFFT, ...) is applied by the model
on its device, so the loader stays cheap and the cache representation-agnostic. The splits
and segments are in aerecon.data.segments, the samplers and loaders in aerecon.data.loaders.
"""

import logging
import os
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader

from aerecon.audio.io import AUDIO_EXTENSIONS, scan
from aerecon.data.cache import CachedSong, WaveformCache
from aerecon.data.loaders import (
    EpochShuffleSampler,
    ResumableLoader,
    ShardSampler,
    WorkerLoader,
    as_batch,
    rank_and_world,
    worker_init,
)
from aerecon.data.segments import (
    SPLITS,
    SegmentDataset,
    assign_split,
    assign_splits,
    checked_jitter,
    song_count,
    split_weights,
)
from aerecon.data.synth import ensure_demo_dataset
from aerecon.utils.config import segment_samples
from aerecon.utils.errors import ConfigError, DataError
from aerecon.utils.files import atomic_write
from aerecon.utils.private_api import batches_done, loader_epoch

log = logging.getLogger(__name__)


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
            raise ConfigError(
                "data.root is not set: point it at a folder of audio, e.g. data=folder data.root=$HOME/music"
            )
        if sample_rate <= 0:
            raise ConfigError(f"data.sample_rate={sample_rate}: must be a positive rate in Hz, e.g. 4410")
        if segment_samples(sample_rate, segment_seconds) < 1:
            raise ConfigError(f"data.segment_seconds={segment_seconds}: shorter than one sample; e.g. 3.0")
        self.root = Path(root).expanduser()
        if decode_workers is not None and decode_workers < 1:
            raise ConfigError(
                f"data.decode_workers={decode_workers}: processes decoding audio, at least 1, e.g. 2 "
                f"(null: one per CPU core, at most 8)"
            )
        workers = decode_workers or min(8, os.cpu_count() or 1)
        self.cache = WaveformCache(Path(cache_dir).expanduser(), sample_rate, workers)
        self.sample_rate, self.batch_size, self.num_workers = sample_rate, batch_size, num_workers
        self.segment_samples = segment_samples(sample_rate, segment_seconds)
        self.split_weights, self.split_seed, self.shuffle_seed = split_weights(split), split_seed, shuffle_seed
        self.jitter = checked_jitter(jitter)
        self.songs: dict[str, list[CachedSong]] = {}
        self.datasets: dict[str, SegmentDataset] = {}
        self._all_songs: list[CachedSong] | None = None
        self.skipped: dict[str, str] = {}  # unusable files and why, once scanned
        self.not_audio: dict[Path, str] = {}  # every other file and folder the scan passed over, and why
        self.report = Path(report).expanduser() if report else None

    def _sources(self) -> list[Path]:
        if not self.root.is_dir():
            raise DataError(f"data.root={self.root} is not a folder")
        log.info("Looking for audio under %s", self.root)  # a large tree takes a while: say where
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
                raise DataError(
                    f"None of the {len(skipped)} audio files under {self.root} could be used"
                    + (f"; why each was skipped: {self.report}" if self.report else "")
                )
            self._all_songs = songs
        return self._all_songs

    def _report(self, songs: list[CachedSong]) -> None:
        """Logs a one-line summary of the scan and writes every file's fate to `self.report` (TSV)."""
        short = {s for s in songs if s.num_samples < self.segment_samples}
        seconds = sum(s.num_samples for s in songs) / self.sample_rate
        segment = self.segment_samples / self.sample_rate
        log.info(
            "Audio under %s: %d files used (%.1f min), %d of them shorter than one %g s segment "
            "(evaluated, not trained on), %d skipped, %d other files%s",
            self.root,
            len(songs),
            seconds / 60,
            len(short),
            segment,
            len(self.skipped),
            len(self.not_audio),
            f"; report: {self.report}" if self.report else "",
        )
        if self.report is None:
            return
        rows = [("status", "seconds", "file", "reason")]
        rows += [
            (
                "short" if s in short else "used",
                f"{s.num_samples / self.sample_rate:.3f}",
                str(s.source),
                f"shorter than one {segment:g} s segment" if s in short else "",
            )
            for s in songs
        ]
        rows += [("skipped", "", source, reason) for source, reason in self.skipped.items()]
        rows += [
            ("not audio" if reason.startswith("not an audio file") else "skipped", "", str(path), reason)
            for path, reason in self.not_audio.items()
        ]
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
            log.warning(
                "The songs under %s changed since this checkpoint was saved: %d added, %d removed, %d changed "
                "(e.g. %s). Training goes on with the songs there now; unchanged songs keep their split.",
                self.root,
                len(added),
                len(removed),
                len(changed),
                sorted(added | removed | changed)[0],
            )

    def all_songs(self) -> list[CachedSong]:
        """Every usable song under the root, whatever its split (e.g. to evaluate a new folder)."""
        return self._cached_songs()

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        songs = self._cached_songs()
        self.songs = {split: [] for split in SPLITS}
        # only songs of a segment or longer count towards every split having one
        long = assign_splits(
            [s.name for s in songs if s.num_samples >= self.segment_samples], self.split_weights, self.split_seed
        )
        for song in songs:
            self.songs[long.get(song.name) or assign_split(song.name, self.split_weights, self.split_seed)].append(song)
        self.datasets = {
            split: SegmentDataset(s, self.segment_samples, self.jitter if split == "train" else 0.0, self.shuffle_seed)
            for split, s in self.songs.items()
        }
        log.info("Songs / segments per split: %s", self.summary())
        seconds = f"{self.segment_samples / self.sample_rate:g} s"
        for split in ("train", "val"):
            if len(self.datasets[split]) == 0:
                fix = (
                    "Put songs in its folder"
                    if self.split_weights == "folders"
                    else f"It takes 3 songs of at least {seconds} (one each for train, val and test): add songs"
                )
                raise DataError(f"The {split} split of {self.root} has no {seconds} segments ({self.summary()}). {fix}")

    def summary(self) -> str:
        """Songs and segments per split, naming the songs of a split of a few."""
        parts = []
        for split in SPLITS:
            songs = [s.name for s in self.songs[split]]
            named = f" ({', '.join(songs)})" if 0 < len(songs) <= 3 and split != "train" else ""
            parts.append(f"{split} {song_count(len(songs))} / {len(self.datasets[split])} segments{named}")
        return ", ".join(parts)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        dataset = self.datasets[split]
        options = dict(
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            collate_fn=as_batch,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
            worker_init_fn=worker_init,
            generator=torch.Generator().manual_seed(self.shuffle_seed),
        )  # leaves the global RNG alone
        if not shuffle:
            rank, world = rank_and_world()
            return WorkerLoader(
                dataset, sampler=ShardSampler(len(dataset), rank, world) if world > 1 else None, **options
            )
        sampler = EpochShuffleSampler(len(dataset), self.shuffle_seed, with_epoch=dataset.jitter > 0)
        return ResumableLoader(dataset, sampler=sampler, progress=self._batches_done, epoch=self._epoch, **options)

    def _epoch(self) -> int | None:
        return loader_epoch(self.trainer)

    def _batches_done(self) -> int:
        """Training batches finished in the current epoch (checkpoints are saved after a batch's hooks)."""
        trainer = self.trainer
        return batches_done(trainer) if trainer is not None else 0

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)


class DemoDataModule(AudioDataModule):
    """AudioDataModule over the built-in demo tracks, rendered on first use."""

    def __init__(
        self, num_songs: int = 160, song_seconds: float = 6.0, render_rate: int = 22050, render_seed: int = 0, **kwargs
    ):
        super().__init__(**kwargs)
        self.demo = dict(num_songs=num_songs, seconds=song_seconds, sample_rate=render_rate, seed=render_seed)

    def _sources(self) -> list[Path]:
        ensure_demo_dataset(self.root, **self.demo)
        return super()._sources()
