"""Decode any audio file to a mono float32 waveform at the requested sample rate."""

import os
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from aerecon.errors import AudioError

AUDIO_EXTENSIONS = frozenset({".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff"})
SILENCE_PEAK = 10 ** (-90 / 20)  # a file whose loudest sample is below -90 dBFS counts as silent


# What a header may claim before anything is allocated: beyond these, it is damaged or hostile.
MAX_RATE, MIN_RATE, MAX_CHANNELS, MAX_HOURS = 768_000, 100, 64, 24


def scan(root: Path) -> tuple[list[Path], dict[Path, str]]:
    """(audio files under `root` by extension, case-insensitive; every other file with why it is
    not used), both sorted. Symbolically linked folders are followed, once each: a link back into
    a folder already scanned is reported, not followed. Broken links to audio files are listed as
    audio, so that their reason is reported with the decoding failures."""
    audio, other, seen = [], {}, set()
    for folder, subfolders, files in os.walk(root, followlinks=True, onerror=lambda e: other.update(
            {Path(e.filename): f"cannot read the folder ({e.strerror})"})):
        identity = os.stat(folder)
        if (identity.st_dev, identity.st_ino) in seen:  # a link to a folder already scanned: a loop, or a twin
            other[Path(folder)] = f"a link to a folder already scanned ({Path(folder).resolve()}), not followed again"
            subfolders.clear()
            continue
        seen.add((identity.st_dev, identity.st_ino))
        subfolders.sort(key=lambda name: (os.path.islink(os.path.join(folder, name)), name))  # real folders first
        for name in files:
            path = Path(folder) / name
            if path.suffix.lower() in AUDIO_EXTENSIONS:
                audio.append(path)
            else:
                other[path] = f"not an audio file (extensions read: {', '.join(sorted(AUDIO_EXTENSIONS))})"
    return sorted(audio), dict(sorted(other.items()))


def find_audio(root: Path) -> list[Path]:
    """The audio files under `root` (see `scan`)."""
    return scan(root)[0]


def broken_link(path: Path) -> str | None:
    """Why `path` is a dangling symbolic link, or None if it is not one."""
    return f"broken symbolic link to {path.readlink()}" if path.is_symlink() and not path.exists() else None


def check_header(info) -> None:
    """Refuses a header whose rate, channels or length no real recording has, before decoding."""
    if not MIN_RATE <= info.samplerate <= MAX_RATE:
        raise AudioError(f"its header claims {info.samplerate} Hz (readable: {MIN_RATE} to {MAX_RATE} Hz)")
    if not 1 <= info.channels <= MAX_CHANNELS:
        raise AudioError(f"its header claims {info.channels} channels (readable: 1 to {MAX_CHANNELS})")
    if info.frames > MAX_HOURS * 3600 * info.samplerate:
        raise AudioError(f"its header claims {info.frames / info.samplerate / 3600:.0f} hours "
                         f"(readable: up to {MAX_HOURS} hours)")


def load_audio(path: Path, sample_rate: int) -> np.ndarray:
    """Decode with soundfile, average the channels, resample with torchaudio.

    Raises AudioError (never a library exception) for anything that is not usable audio:
    unreadable, undecodable, empty, NaN or Inf samples, or silent throughout.
    """
    path = Path(path)
    if reason := broken_link(path):
        raise AudioError(f"{path}: {reason}")
    try:
        with open(path, "rb") as f:  # opened here, so a permission problem is reported as one
            check_header(sf.info(f))
            f.seek(0)
            data, source_rate = sf.read(f, dtype="float32", always_2d=True)
    except AudioError as error:
        raise AudioError(f"{path}: {error}") from None
    except OSError as error:
        raise AudioError(f"{path}: cannot read ({error.strerror or error})") from error
    except Exception as error:  # libsndfile raises several types for undecodable input
        raise AudioError(f"{path}: cannot decode ({getattr(error, 'error_string', None) or error})") from error
    if data.size == 0:
        raise AudioError(f"{path}: contains no samples")
    mono = data.mean(axis=1, dtype=np.float32)
    if not np.isfinite(mono).all():
        raise AudioError(f"{path}: contains NaN or Inf samples")
    if np.abs(mono).max() < SILENCE_PEAK:
        raise AudioError(f"{path}: silent (no sample above -90 dBFS)")
    if source_rate != sample_rate:
        mono = AF.resample(torch.from_numpy(mono), source_rate, sample_rate).numpy()
    return np.ascontiguousarray(mono, dtype=np.float32)
