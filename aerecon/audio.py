"""Decode any audio file to a mono float32 waveform at the requested sample rate."""

from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from aerecon.errors import AudioError

AUDIO_EXTENSIONS = frozenset({".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff"})
SILENCE_PEAK = 10 ** (-90 / 20)  # a file whose loudest sample is below -90 dBFS counts as silent


def find_audio(root: Path) -> list[Path]:
    """All audio files under `root`, sorted, by extension (case-insensitive).

    Broken symbolic links are listed too, so that they are reported rather than silently missed.
    """
    return sorted(p for p in Path(root).rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS
                  and (p.is_file() or (p.is_symlink() and not p.exists())))


def broken_link(path: Path) -> str | None:
    """Why `path` is a dangling symbolic link, or None if it is not one."""
    return f"broken symbolic link to {path.readlink()}" if path.is_symlink() and not path.exists() else None


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
            data, source_rate = sf.read(f, dtype="float32", always_2d=True)
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
