"""data=stream: segments prepared once by `aerecon-prepare`, streamed with LitData from a folder, a
shared file system or an object store (`s3://...`, or any URL LitData reads).

The batches mean what data=folder's mean: the same segments of the same split, moved by the same
jitter (drawn from (seed, epoch) by each segment's number in its split), in an order shuffled
per epoch from the seed. LitData shards them across DDP ranks and loader workers, and its loader
state rides in checkpoints, so a run resumes mid-epoch on the batches it would have seen.
"""

import json
import logging
import tempfile
from collections.abc import Callable
from pathlib import Path

import lightning as L
import numpy as np
import torch
from litdata import StreamingDataLoader, StreamingDataset
from litdata.streaming.serializers import NoHeaderNumpySerializer

from aerecon.data.loaders import worker_init
from aerecon.data.segments import SPLITS, checked_jitter, jitter_shifts
from aerecon.utils.config import segment_samples
from aerecon.utils.errors import ConfigError, DataError, first_line
from aerecon.utils.files import is_url, sha256
from aerecon.utils.private_api import WorkerLoader, batch_buffer, loader_epoch

log = logging.getLogger(__name__)
INFO = "aerecon.json"  # written by aerecon.prepare


def read_info(root: str, cache_dir: str | None) -> dict:
    """The prepared corpus's aerecon.json, from a folder or through LitData's downloader."""
    if not is_url(root):
        path = Path(root).expanduser() / INFO
        if not path.is_file():
            raise DataError(
                f"data.root={root} is not a corpus prepared by aerecon-prepare (no {INFO}); prepare "
                f"it first: aerecon-prepare data.root={root} output={root.rstrip('/')}-prepared, "
                f"then train with data.root={root.rstrip('/')}-prepared"
            )
        info = json.loads(path.read_text())
    else:
        from litdata.streaming.downloader import get_downloader

        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / INFO
            try:
                get_downloader(root, cache_dir or tmp, []).download_file(f"{root.rstrip('/')}/{INFO}", str(local))
                info = json.loads(local.read_text())
            except Exception as error:  # every store's client raises its own types
                raise DataError(
                    f"data.root={root}: cannot read {INFO} there ({first_line(error)}); is it a corpus "
                    f"prepared by aerecon-prepare, and are the store's credentials set?"
                ) from None
    if "splits" not in info:
        raise DataError(
            f"data.root={root}: aerecon-prepare did not finish this corpus (it was stopped); run the same "
            f"aerecon-prepare command again to finish it"
        )
    return info


class MappedWave(NoHeaderNumpySerializer):
    """LitData's reader of a stored 1-D array, without its copy: the array is a read-only view of
    the mapped chunk, and only the segment cut from it is copied, once, into the batch. Copying
    each whole item, margins included, was the largest cost of a loader worker."""

    def deserialize(self, data: bytes | memoryview) -> np.ndarray:
        return np.frombuffer(data, dtype=self._dtype)


def stack(segments: list[np.ndarray]) -> torch.Tensor:
    """The loaders' collate_fn: a [B, 1, n] batch of SegmentStream's segments (in a loader worker,
    stacked straight into the shared memory it is handed over in)."""
    batch = batch_buffer(len(segments), 1, len(segments[0]))
    np.stack(segments, out=batch.numpy()[:, 0])
    return batch


def check_files(root: str, info: dict) -> None:
    """Every file aerecon-prepare recorded is there at its recorded size (a folder's; a store's
    chunks are checked as they arrive): a truncated, missing or partly copied corpus is refused
    before training starts."""
    if is_url(root):
        return
    for name, record in info.get("files", {}).items():
        path = Path(root) / name
        size = path.stat().st_size if path.is_file() else None
        if size != record["size"]:
            found = (
                "is missing" if size is None else f"holds {size} bytes, not the {record['size']} it was written with"
            )
            raise DataError(
                f"data.root={root} is damaged: {name} {found}; prepare it again (aerecon-prepare into a "
                f"new folder, or the same command that wrote it)"
            )


class SegmentStream(StreamingDataset):
    """A split's stored segments as [n] waveforms, moved by the epoch's jitter (training): read-only
    views of the mapped chunks, which `stack` copies into batches. Each chunk's SHA-256, when the
    corpus records one, is checked the first time a process reads from the chunk."""

    def __init__(
        self,
        input_dir: str,
        segment_samples: int,
        size: int,
        jitter: float = 0.0,
        checksums: dict[str, str] | None = None,
        **kwargs,
    ):
        super().__init__(input_dir, serializers={"no_header_numpy": MappedWave()}, **kwargs)
        self.segment_samples, self.size, self.jitter = segment_samples, size, jitter
        self._shifts: tuple[int | None, np.ndarray | None] = (None, None)
        self.checksums, self._checked, self._chunk_files = checksums or {}, set(), None

    def _check(self, chunk: int) -> None:
        if self._chunk_files is None:  # LitData's index, beside the chunks (downloaded with them, for a store)
            with open(Path(self.input_dir.path) / "index.json") as f:
                self._chunk_files = [c["filename"] for c in json.load(f)["chunks"]]
        name = self._chunk_files[chunk]
        if name in self.checksums:
            path = Path(self.input_dir.path) / name
            if (digest := sha256(path)) != self.checksums[name]:
                raise DataError(
                    f"{path} is damaged: its content differs from what aerecon-prepare wrote (SHA-256 "
                    f"{digest[:12]}…, recorded {self.checksums[name][:12]}…); prepare the corpus again"
                )
        self._checked.add(chunk)

    def shift(self, index: int) -> int:
        """How far segment `index` moves this epoch: data=folder's draw for the same (seed, epoch)."""
        epoch = self.current_epoch - 1  # LitData counts epochs from 1, Lightning from 0
        if self._shifts[0] != epoch:
            self._shifts = (epoch, jitter_shifts(self.seed, epoch, self.jitter, self.size, self.segment_samples))
        return int(self._shifts[1][index])

    def __getitem__(self, index) -> np.ndarray:
        item = super().__getitem__(index)  # the chunk is local from here on (downloaded, for a store)
        if self.checksums and index.chunk_index not in self._checked:
            self._check(index.chunk_index)
        wave, at, n = item["wave"], int(item["at"]), self.segment_samples
        if self.jitter:
            at = min(max(at + self.shift(int(item["index"])), 0), len(wave) - n)  # not np.clip: slow on a scalar
        return wave[at : at + n]


class StreamLoader(WorkerLoader, StreamingDataLoader):
    """LitData's loader, whose epochs are the trainer's and whose restored position applies to the
    resumed epoch only.

    Its workers are shut down before the interpreter exits, as every aerecon loader's are
    (WorkerLoader). LitData counts its own epochs, one per `iter`, from 0 in a new loader: a run resumed at an
    epoch's end (whose loader state Lightning does not restore) would shuffle and jitter its next
    epoch as the first. Here every epoch that is not a resumed one starts from the trainer's count.
    LitData also keeps `restore` set until an epoch's iterator runs to its end; Lightning stops
    taking batches after the epoch's last one without running it out, so the next epoch would
    repeat the resumed one's state. Here the flag is dropped when the epoch after the resumed one
    begins.
    """

    def __init__(self, *args, epoch: Callable[[], int | None] = lambda: None, **kwargs):
        super().__init__(*args, **kwargs)
        self.epoch = epoch

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self._resumed_epoch_begun = False

    def __iter__(self):
        if self.restore and getattr(self, "_resumed_epoch_begun", False):
            self.restore = False
        if self.restore:
            self._resumed_epoch_begun = True
        elif (epoch := self.epoch()) is not None:
            self.current_epoch = epoch  # LitData adds 1: it counts from 1, Lightning from 0
        yield from super().__iter__()


class StreamDataModule(L.LightningDataModule):
    def __init__(
        self,
        root: str | None,
        sample_rate: int = 4410,
        segment_seconds: float = 3.0,
        batch_size: int = 40,
        num_workers: int = 2,
        jitter: float = 0.0,
        shuffle_seed: int = 0,
        cache_dir: str | None = None,
        max_cache_gb: float | None = None,
    ):
        super().__init__()
        if root is None or not str(root):
            raise ConfigError(
                "data.root is not set: point it at a corpus prepared by aerecon-prepare, e.g. "
                "data=stream data.root=$HOME/music-prepared (or s3://bucket/music-prepared)"
            )
        self.root = str(root) if is_url(str(root)) else str(Path(root).expanduser().absolute())
        self.sample_rate, self.batch_size, self.num_workers = sample_rate, batch_size, num_workers
        self.segment_samples = segment_samples(sample_rate, segment_seconds)
        self.segment_seconds, self.jitter, self.shuffle_seed = segment_seconds, checked_jitter(jitter), shuffle_seed
        self.cache_dir, self.max_cache_gb = cache_dir, max_cache_gb
        self.info: dict | None = None
        self.datasets: dict[str, SegmentStream | list] = {}

    def prepare_data(self) -> None:
        self._info()

    def _info(self) -> dict:
        """aerecon.json, checked against this run's settings."""
        if self.info is None:
            info = read_info(self.root, self.cache_dir)
            if (info.get("sample_rate"), info.get("segment_samples")) != (self.sample_rate, self.segment_samples):
                raise ConfigError(
                    f"data.root={self.root} holds {info.get('segment_samples')}-sample segments at "
                    f"{info.get('sample_rate')} Hz (prepared with data.sample_rate={info.get('sample_rate')} "
                    f"data.segment_seconds={info.get('segment_seconds')}); this run asks for {self.segment_samples} "
                    f"at {self.sample_rate} Hz: set the same, or prepare again"
                )
            if self.jitter > info["margin"] + 1e-9:
                raise ConfigError(
                    f"data.jitter={self.jitter}: the corpus at {self.root} keeps {info['margin']} of a "
                    f"segment either side (aerecon-prepare margin=); use data.jitter<={info['margin']}"
                )
            check_files(self.root, info)
            counts = {split: (c["songs"], c["segments"]) for split, c in info["splits"].items()}
            log.info("Streaming %s: songs / segments per split: %s", self.root, counts)
            for split in ("train", "val"):
                if not info["splits"][split]["segments"]:
                    raise DataError(
                        f"The {split} split of {self.root} has no segments (songs / segments per split: "
                        f"{counts}); prepare it again with more songs or another data.split"
                    )
            self.info = info
        return self.info

    def state_dict(self) -> dict:
        return {"root": self.root, "splits": self._info()["splits"]}

    def load_state_dict(self, state: dict) -> None:
        if state.get("splits") not in (None, self._info()["splits"]):
            log.warning(
                "The corpus at %s changed since this checkpoint was saved (%s then, %s now): training goes on "
                "with the corpus there now",
                self.root,
                state["splits"],
                self._info()["splits"],
            )

    def _dataset(self, split: str) -> SegmentStream | list:
        size = self._info()["splits"][split]["segments"]
        if not size:
            return []
        root, cache = str(Path(self.root) / split), None  # a folder is read in place
        if is_url(self.root):  # chunks are downloaded into a cache
            root = f"{self.root.rstrip('/')}/{split}"
            cache = str(Path(self.cache_dir or tempfile.gettempdir()) / "aerecon-stream" / split)
        train = split == "train"  # training drops a remainder only under DDP, so that ranks take equal steps
        checksums = {
            name.split("/", 1)[1]: record["sha256"]
            for name, record in self._info().get("files", {}).items()
            if name.startswith(f"{split}/")
        }
        return SegmentStream(
            root,
            self.segment_samples,
            size,
            jitter=self.jitter if train else 0.0,
            checksums=checksums,
            shuffle=train,
            drop_last=None if train else False,
            seed=self.shuffle_seed,
            cache_dir=cache,
            batch_decode=False,  # LitData's "auto" decoded a window of these for every item
            max_cache_size=f"{self.max_cache_gb}GB" if self.max_cache_gb else None,
        )

    def setup(self, stage: str | None = None) -> None:
        # Built here, where DDP has started: LitData reads the ranks from torch.distributed.
        if not self.datasets:
            self.datasets = {split: self._dataset(split) for split in SPLITS}

    def _loader(self, split: str) -> StreamLoader | list:
        dataset = self.datasets[split]
        if not isinstance(dataset, SegmentStream):
            return []
        if self.num_workers:
            # Workers hand batches over in shared memory named by file rather than by a descriptor
            # passed for each batch: measurably more batches a second (experiments/bench_stream.py).
            # torch's shm manager removes what a killed process leaves.
            torch.multiprocessing.set_sharing_strategy("file_system")
        return StreamLoader(
            dataset,
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            collate_fn=stack,
            pin_memory=torch.cuda.is_available(),
            worker_init_fn=worker_init,
            epoch=self._epoch,
        )

    def _epoch(self) -> int | None:
        return loader_epoch(self.trainer)

    def train_dataloader(self):
        return self._loader("train")

    def val_dataloader(self):
        return self._loader("val")

    def test_dataloader(self):
        return self._loader("test")
