"""Decode-once cache: each source file becomes a float32 .npy at the target sample rate.

A cache entry is keyed by the file's identity (resolved path, size, modification time) and
the preprocessing settings, so editing a file or changing the sample rate rebuilds it. An
entry appears only complete: it is written to a temporary file, fsynced, then renamed.
"""

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from filelock import FileLock
from tqdm import tqdm

from aerecon.audio import broken_link, load_audio
from aerecon.errors import AudioError
from aerecon.files import atomic_write

log = logging.getLogger(__name__)
CACHE_VERSION = 1  # bump when decoding or resampling changes what an entry contains


@dataclass(frozen=True)
class CachedSong:
    source: Path  # the original audio file
    name: str  # its path relative to the dataset root: the song's identity for splitting
    file: Path  # the cached waveform (.npy, mono float32 at the cache's sample rate)
    num_samples: int


class WaveformCache:
    def __init__(self, cache_dir: Path, sample_rate: int):
        self.dir = Path(cache_dir) / f"sr{sample_rate}"
        self.sample_rate = sample_rate

    def entry(self, source: Path) -> Path:
        stat = source.stat()
        identity = f"{CACHE_VERSION}|{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{self.sample_rate}|mono"
        return self.dir / f"{hashlib.sha1(identity.encode()).hexdigest()}.npy"

    def build(self, root: Path, sources: list[Path]) -> tuple[list[CachedSong], dict[Path, str]]:
        """Cache every source not cached yet. Returns the usable songs and, per skipped file, why."""
        self.dir.mkdir(parents=True, exist_ok=True)
        songs, skipped, todo = [], {}, []
        for source in sources:
            try:
                entry = self.entry(source)
            except OSError as error:
                skipped[source] = broken_link(source) or f"cannot read ({error.strerror})"
                continue
            (songs if entry.exists() else todo).append((source, entry))
        if todo:
            decoded = 0
            with FileLock(str(self.dir / ".lock")):  # concurrent runs (a sweep's jobs) build it once
                for source, entry in tqdm(todo, desc=f"Caching audio at {self.sample_rate} Hz", unit="file"):
                    if entry.exists():  # another process built it while we waited for the lock
                        songs.append((source, entry))
                        continue
                    try:
                        waveform = load_audio(source, self.sample_rate)
                        atomic_write(entry, lambda f: np.save(f, waveform))
                        songs.append((source, entry))
                        decoded += 1
                    except AudioError as error:
                        skipped[source] = str(error).removeprefix(f"{source}: ")
            log.info("Decoded %d of %d files into the cache %s", decoded, len(sources), self.dir)
        cached = [
            CachedSong(source, source.relative_to(root).as_posix(), entry, len(np.load(entry, mmap_mode="r")))
            for source, entry in sorted(songs)
        ]
        return cached, skipped
