"""Decode-once cache: each source file becomes a float32 .npy at the target sample rate.

A cache entry is keyed by the file's identity (resolved path, size, modification time, a
fingerprint of its content) and the preprocessing settings, so editing a file or changing the
sample rate rebuilds it. An
entry appears only complete: it is written to a temporary file, fsynced, then renamed.
"""

import contextlib
import hashlib
import logging
import multiprocessing
import os
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from filelock import FileLock
from tqdm import tqdm

from aerecon.audio.io import broken_link, load_audio
from aerecon.utils.errors import AudioError, DataError
from aerecon.utils.files import atomic_write

log = logging.getLogger(__name__)
CACHE_VERSION = 1  # bump when decoding or resampling changes what an entry contains


@dataclass(frozen=True)
class CachedSong:
    source: Path  # the original audio file
    name: str  # its path relative to the dataset root: the song's identity for splitting
    file: Path  # the cached waveform (.npy, mono float32 at the cache's sample rate)
    num_samples: int

    def waveform(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Its samples [start:stop] (mono float32 at the cache's rate), read without loading the rest."""
        return read_samples(self.file, start, stop)


def read_samples(file: Path | str, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Samples [start:stop] of a cache entry, as a contiguous float32 array of their own."""
    return np.ascontiguousarray(np.load(file, mmap_mode="r")[start:stop], dtype=np.float32)


class CacheWriteError(OSError):
    """The cache folder cannot take an entry (read-only, full, no permission): no file's fault."""


def _decode(source: Path, entry: Path, sample_rate: int) -> str | None:
    """Decodes one file into its cache entry; returns why it is unusable, or None."""
    try:
        waveform = load_audio(source, sample_rate)
    except AudioError as error:
        return str(error).removeprefix(f"{source}: ")
    except Exception as error:  # a decoder's own failure on one file must not stop the others
        return f"the decoder failed ({type(error).__name__}: {error})"
    try:
        atomic_write(entry, lambda f: np.save(f, waveform))
    except OSError as error:
        raise CacheWriteError(error.errno, error.strerror, str(entry.parent)) from None
    return None


def fingerprint(source: Path, size: int, block: int = 16384) -> str:
    """A cheap content fingerprint: the file's first, middle and last 16 KiB, where tag editors and
    re-encoders write, so an edit that keeps the size and modification time is still noticed."""
    digest = hashlib.blake2b(digest_size=16)
    with open(source, "rb") as f:
        for offset in sorted({0, max(0, size // 2 - block // 2), max(0, size - block)}):
            f.seek(offset)
            digest.update(f.read(block))
    return digest.hexdigest()


def entry_length(entry: Path) -> int | None:
    """The samples in a cache entry if it is a whole one (a 1-D float32 array filling its file), else None."""
    try:
        array = np.load(entry, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError):  # truncated, not a .npy, unreadable
        return None
    whole = isinstance(array, np.memmap) and array.ndim == 1 and array.dtype == np.float32
    return len(array) if whole and array.offset + array.nbytes == entry.stat().st_size else None


def _worker_start() -> None:
    torch.set_num_threads(1)  # the workers are the parallelism; threads per worker would oversubscribe
    # the main process decides when to stop: it terminates the workers (SIGTERM, at once) on any exit
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _decode_job(job: tuple[Path, Path, int]) -> tuple[tuple[Path, Path], str | None]:
    source, entry, sample_rate = job
    return (source, entry), _decode(source, entry, sample_rate)


class WaveformCache:
    """`workers` processes decode in parallel when there are enough files to repay starting them."""

    def __init__(self, cache_dir: Path, sample_rate: int, workers: int = 1):
        self.dir = Path(cache_dir) / f"sr{sample_rate}"
        self.sample_rate, self.workers = sample_rate, max(1, workers)

    def entry(self, source: Path) -> Path:
        stat = source.stat()
        identity = (
            f"{CACHE_VERSION}|{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{fingerprint(source, stat.st_size)}"
            f"|{self.sample_rate}|mono"
        )
        return self.dir / f"{hashlib.sha1(os.fsencode(identity)).hexdigest()}.npy"  # any file name, UTF-8 or not

    def build(self, root: Path, sources: list[Path]) -> tuple[list[CachedSong], dict[Path, str]]:
        """Cache every source not cached yet. Returns the usable songs and, per skipped file, why."""
        songs, skipped, todo, lengths = [], {}, [], {}
        for source in sources:
            try:
                entry = self.entry(source)
            except OSError as error:
                skipped[source] = broken_link(source) or f"cannot read ({error.strerror})"
                continue
            if entry.exists() and (length := entry_length(entry)) is not None:
                lengths[entry] = length
            elif entry.exists():
                log.warning(
                    "The cache entry %s of %s is damaged (truncated or not a waveform); decoding it again",
                    entry,
                    source,
                )
                with contextlib.suppress(OSError):  # a read-only cache: reported below, with the others
                    entry.unlink(missing_ok=True)
            (songs if entry.exists() else todo).append((source, entry))
        if todo:
            with self._writable([source for source, _ in todo]):  # concurrent runs (a sweep's jobs) build it once
                waiting = [(source, entry) for source, entry in todo if not entry.exists()]
                songs += [pair for pair in todo if pair not in waiting]  # built by another process meanwhile
                try:
                    reasons = self._decode_all(waiting)
                except CacheWriteError as error:
                    raise DataError(self._cannot_write(error, [source for source, _ in waiting])) from None
                for (source, entry), reason in zip(waiting, reasons):
                    if reason is None:
                        songs.append((source, entry))
                    else:
                        skipped[source] = reason
            decoded = sum(reason is None for reason in reasons)
            log.info("Decoded %d of %d files into the cache %s", decoded, len(sources), self.dir)
        cached = []
        for source, entry in sorted(songs):
            length = lengths[entry] if entry in lengths else entry_length(entry)
            if length is None:  # damaged after it was checked above, e.g. by another process
                skipped[source] = f"its cache entry {entry} is damaged; run again to decode it anew"
                continue
            cached.append(CachedSong(source, source.relative_to(root).as_posix(), entry, length))
        return cached, skipped

    @contextlib.contextmanager
    def _writable(self, sources: list[Path]):
        """The cache folder, locked for this process; a DataError if it cannot be written at all."""
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            lock = FileLock(str(self.dir / ".lock"))
            lock.acquire()
        except OSError as error:
            raise DataError(self._cannot_write(error, sources)) from None
        try:
            yield
        finally:
            lock.release()

    def _cannot_write(self, error: OSError, sources: list[Path]) -> str:
        """One message for a cache that cannot be written: the folder, why, and the space it needs."""
        seconds = 0.0
        for source in sources:
            try:
                info = sf.info(str(source))
                seconds += info.frames / info.samplerate
            except Exception:  # not readable by soundfile (e.g. M4A): estimate from its size, ~128 kbit/s
                seconds += source.stat().st_size * 8 / 128_000
        needed = seconds * self.sample_rate * 4 / 2**20
        existing = next(folder for folder in (self.dir, *self.dir.parents) if folder.exists())
        free = shutil.disk_usage(existing).free / 2**20
        return (
            f"cannot write the audio cache in {self.dir} ({error.strerror}): decoding these {len(sources)} files "
            f"needs about {needed:,.1f} MB there ({free:,.0f} MB free). Point paths.cache_dir at a writable "
            f"folder with room, e.g. paths.cache_dir=$HOME/.cache/aerecon"
        )

    def _decode_all(self, pairs: list[tuple[Path, Path]]) -> list[str | None]:
        progress = dict(total=len(pairs), desc=f"Caching audio at {self.sample_rate} Hz", unit="file")
        workers = min(self.workers, len(pairs) // 2)
        if workers <= 1:
            return [_decode(source, entry, self.sample_rate) for source, entry in tqdm(pairs, **progress)]
        # fork where there is one, as DataLoader workers are started: a spawned worker would spend
        # seconds importing torch before its first file
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        # largest files first, so no worker is left decoding a long file alone at the end
        by_size = sorted(pairs, key=lambda pair: pair[0].stat().st_size, reverse=True)
        reasons = {}
        try:
            # a Pool, not a ProcessPoolExecutor: leaving it early (a signal, a full disk) terminates
            # the workers instead of waiting for every queued file
            with multiprocessing.get_context(method).Pool(workers, initializer=_worker_start) as pool:
                jobs = [(source, entry, self.sample_rate) for source, entry in by_size]
                for pair, reason in tqdm(pool.imap_unordered(_decode_job, jobs), **progress):
                    reasons[pair] = reason
        except BaseException:
            for partial in self.dir.glob("*.npy.*.tmp"):  # what the terminated workers were writing
                partial.unlink(missing_ok=True)
            raise
        return [reasons[pair] for pair in pairs]
