"""Decode any audio file to a mono float32 waveform at the requested sample rate."""

from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from aerecon.errors import AudioError

AUDIO_EXTENSIONS = frozenset({".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff"})


def find_audio(root: Path) -> list[Path]:
    """All audio files under `root`, sorted, by extension (case-insensitive)."""
    return sorted(p for p in Path(root).rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())


def load_audio(path: Path, sample_rate: int) -> np.ndarray:
    """Decode with soundfile, average the channels, resample with torchaudio.

    Raises AudioError (never a library exception) for anything that is not usable audio.
    """
    try:
        data, source_rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as error:  # libsndfile raises several types for undecodable input
        raise AudioError(f"{path}: cannot decode ({error})") from error
    if data.size == 0:
        raise AudioError(f"{path}: contains no samples")
    mono = data.mean(axis=1, dtype=np.float32)
    if not np.isfinite(mono).all():
        raise AudioError(f"{path}: contains NaN or Inf samples")
    if source_rate != sample_rate:
        mono = AF.resample(torch.from_numpy(mono), source_rate, sample_rate).numpy()
    return np.ascontiguousarray(mono, dtype=np.float32)
