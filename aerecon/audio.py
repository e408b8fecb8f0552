"""Decode any audio file to a mono float32 waveform at the requested sample rate; write WAVs."""

import io
import os
import stat
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from aerecon.errors import AudioError
from aerecon.files import atomic_write

# soundfile (libsndfile) decodes these; FFmpeg (PyAV) the rest: AAC and ALAC in MP4 containers,
# and the audio track of video files.
SOUNDFILE_EXTENSIONS = frozenset({".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc"})
FFMPEG_EXTENSIONS = frozenset({".m4a", ".m4b", ".aac", ".alac", ".caf", ".mp4", ".m4v", ".mov", ".mkv", ".mka",
                               ".webm", ".wma", ".wmv", ".avi"})
AUDIO_EXTENSIONS = SOUNDFILE_EXTENSIONS | FFMPEG_EXTENSIONS
SILENCE_PEAK = 10 ** (-90 / 20)  # a file whose loudest sample is below -90 dBFS counts as silent
ABSURD_PEAK = 1000.0  # 60 dB over full scale: a float file this loud is damaged, and would train as NaN


# What a header may claim before anything is allocated: beyond these, it is damaged or hostile.
MAX_RATE, MIN_RATE, MAX_CHANNELS, MAX_HOURS = 768_000, 100, 64, 24


def scan(root: Path) -> tuple[list[Path], dict[Path, str]]:
    """(audio files under `root` by extension, case-insensitive; every other file with why it is
    not used), both sorted. Symbolically linked folders are followed, once each: a link back into
    a folder already scanned is reported, not followed, and so is a run folder of aerecon's. A file reached twice (a hard or symbolic
    link to another) is used once. Pipes, sockets and devices are reported, never opened. Broken
    links to audio files are listed as audio, so that their reason is reported with the decoding
    failures."""
    candidates, other, seen = [], {}, set()
    for folder, subfolders, files in os.walk(root, followlinks=True, onerror=lambda e: other.update(
            {Path(e.filename): f"cannot read the folder ({e.strerror})"})):
        identity = os.stat(folder)
        if (identity.st_dev, identity.st_ino) in seen:  # a link to a folder already scanned: a loop, or a twin
            other[Path(folder)] = f"a link to a folder already scanned ({Path(folder).resolve()}), not followed again"
            subfolders.clear()
            continue
        seen.add((identity.st_dev, identity.st_ino))
        if os.path.isdir(os.path.join(folder, ".hydra")) and Path(folder) != Path(root):
            # a run or evaluation folder of aerecon's (logs/ under data.root): its WAVs are reconstructions
            other[Path(folder)] = "a run folder of aerecon's (it has a .hydra record): its outputs are not music"
            subfolders.clear()
            continue
        subfolders.sort(key=lambda name: (os.path.islink(os.path.join(folder, name)), name))  # real folders first
        for name in files:
            path = Path(folder) / name
            if path.suffix.lower() not in AUDIO_EXTENSIONS:
                other[path] = f"not an audio file (extensions read: {', '.join(sorted(AUDIO_EXTENSIONS))})"
                continue
            try:
                status = os.stat(path)
            except OSError:  # a broken link or an unreadable entry: decoding reports why
                candidates.append((path, None))
                continue
            if not stat.S_ISREG(status.st_mode):  # opening a pipe would wait for a writer for ever
                other[path] = "not a regular file (a pipe, socket or device)"
            else:
                candidates.append((path, (status.st_dev, status.st_ino)))
    audio, first = [], {}
    for path, identity in sorted(candidates, key=lambda c: (c[0].is_symlink(), c[0])):  # real files first
        if identity is not None and identity in first:
            other[path] = f"the same file as {first[identity]} (a link to it), used once"
        else:
            audio.append(path)
            if identity is not None:
                first[identity] = path
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


def _decode_ffmpeg(f) -> tuple[np.ndarray, int]:
    """The first audio track of any container FFmpeg reads, as float32 [frames, channels]."""
    import av  # here: only files soundfile cannot read need FFmpeg

    try:
        with av.open(f, metadata_errors="ignore") as container:
            stream = next((s for s in container.streams if s.type == "audio"), None)
            if stream is None:
                raise AudioError("has no audio track")
            layout = stream.codec_context.layout
            channels = len(layout.channels) if layout is not None else 0
            seconds = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else 0.0
            check_header(SimpleNamespace(samplerate=stream.rate or 0, channels=channels,
                                         frames=int(seconds * (stream.rate or 0))))
            planar = av.AudioResampler(format="fltp")  # float, one row per channel, whatever the codec gives
            chunks = [frame.to_ndarray() for packet in container.demux(stream) for decoded in packet.decode()
                      for frame in planar.resample(decoded)]
            chunks += [frame.to_ndarray() for frame in planar.resample(None)]
            rate = stream.rate
    except av.FFmpegError as error:
        raise AudioError(f"cannot decode ({error.strerror or error})") from error
    if not chunks:
        return np.zeros((0, 1), dtype=np.float32), rate
    return np.ascontiguousarray(np.concatenate(chunks, axis=1).T, dtype=np.float32), rate


def read_mono(path: Path) -> tuple[np.ndarray, int]:
    """(the file's channels averaged, float32, its own sample rate), decoded with soundfile or FFmpeg.

    Raises AudioError (never a library exception) for anything that is not usable audio:
    unreadable, undecodable, empty, NaN or Inf samples, or silent throughout.
    """
    path = Path(path)
    if reason := broken_link(path):
        raise AudioError(f"{path}: {reason}")
    try:
        with open(path, "rb") as f:  # opened here, so a permission problem is reported as one
            if path.suffix.lower() in FFMPEG_EXTENSIONS:
                data, source_rate = _decode_ffmpeg(f)
            else:
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
    peak = float(np.abs(mono).max())
    if peak > ABSURD_PEAK:
        raise AudioError(f"{path}: samples reach {peak:.3g}, over {ABSURD_PEAK:g} times full scale (a damaged float file?)")
    if peak < SILENCE_PEAK:
        raise AudioError(f"{path}: silent (no sample above -90 dBFS)")
    return mono, int(source_rate)


def resample(mono: np.ndarray, source_rate: int, sample_rate: int) -> np.ndarray:
    if source_rate != sample_rate:
        mono = AF.resample(torch.from_numpy(mono), source_rate, sample_rate).numpy()
    return np.ascontiguousarray(mono, dtype=np.float32)


def load_audio(path: Path, sample_rate: int) -> np.ndarray:
    """The file's channels averaged and resampled to `sample_rate` with torchaudio (see read_mono)."""
    mono, source_rate = read_mono(path)
    return resample(mono, source_rate, sample_rate)


def write_wav(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    """A float WAV (no clipping), written atomically."""
    def write(f):
        buffer = io.BytesIO()
        sf.write(buffer, audio, sample_rate, format="WAV", subtype="FLOAT")
        f.write(buffer.getvalue())

    atomic_write(path, write)
