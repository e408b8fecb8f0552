"""Decode any audio file to a mono float32 waveform at the requested sample rate; write WAVs."""

import math
import os
import stat
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from aerecon.utils.errors import AudioError
from aerecon.utils.files import atomic_write

# soundfile (libsndfile) decodes these; FFmpeg (PyAV) the rest: AAC and ALAC in MP4 containers,
# and the audio track of video files.
SOUNDFILE_EXTENSIONS = frozenset({".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc"})
FFMPEG_EXTENSIONS = frozenset(
    {".m4a", ".m4b", ".aac", ".alac", ".caf", ".mp4", ".m4v", ".mov", ".mkv", ".mka", ".webm", ".wma", ".wmv", ".avi"}
)
AUDIO_EXTENSIONS = SOUNDFILE_EXTENSIONS | FFMPEG_EXTENSIONS
SILENCE_PEAK = 10 ** (-90 / 20)  # a file whose loudest sample is below -90 dBFS counts as silent
ABSURD_PEAK = 1000.0  # 60 dB over full scale: a float file this loud is damaged, and would train as NaN


# What a header may claim before anything is allocated: beyond these, it is damaged or hostile.
MAX_RATE, MIN_RATE, MAX_CHANNELS, MAX_HOURS = 768_000, 100, 64, 24


def scan(root: Path) -> tuple[list[Path], dict[Path, str]]:
    """(audio files under `root` by extension, case-insensitive; every other file with why it is
    not used), both sorted. Symbolically linked folders are followed, once each: a link back into
    a folder already scanned is reported, not followed, and so is a run folder of aerecon's. A file
    reached twice (a hard or symbolic link to another) is used once. Pipes, sockets and devices are
    reported, never opened. Broken links to audio files are listed as audio, so that their reason is
    reported with the decoding failures."""
    candidates, other, seen = [], {}, set()
    for folder, subfolders, files in os.walk(
        root,
        followlinks=True,
        onerror=lambda e: other.update({Path(e.filename): f"cannot read the folder ({e.strerror})"}),
    ):
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
        raise AudioError(
            f"its header claims {info.frames / info.samplerate / 3600:.0f} hours (readable: up to {MAX_HOURS} hours)"
        )


BLOCK_FRAMES = 1 << 18  # frames decoded at a time


@contextmanager
def _reading(path: Path):
    """Any failure while opening or decoding `path` as one AudioError naming it."""
    try:
        yield
    except AudioError as error:
        raise AudioError(f"{path}: {error}") from None
    except OSError as error:
        raise AudioError(f"{path}: cannot read ({error.strerror or error})") from error
    except Exception as error:  # libsndfile and FFmpeg raise several types for undecodable input
        raise AudioError(f"{path}: cannot decode ({getattr(error, 'error_string', None) or error})") from error


def _ffmpeg_frames(stack: ExitStack, f) -> tuple[int, Iterator[np.ndarray]]:
    """(rate, float32 blocks [frames, channels]) of the first audio track of any container FFmpeg reads."""
    import av  # here: only files soundfile cannot read need FFmpeg

    try:
        container = stack.enter_context(av.open(f, metadata_errors="ignore"))
    except av.FFmpegError as error:
        raise AudioError(f"cannot decode ({error.strerror or error})") from error
    stream = next((s for s in container.streams if s.type == "audio"), None)
    if stream is None:
        raise AudioError("has no audio track")
    layout = stream.codec_context.layout
    channels = len(layout.channels) if layout is not None else 0
    seconds = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else 0.0
    check_header(
        SimpleNamespace(samplerate=stream.rate or 0, channels=channels, frames=int(seconds * (stream.rate or 0)))
    )

    def frames():
        planar = av.AudioResampler(format="fltp")  # float, one row per channel, whatever the codec gives
        try:
            for packet in container.demux(stream):
                for decoded in packet.decode():
                    for frame in planar.resample(decoded):
                        yield frame.to_ndarray().T
            for frame in planar.resample(None):
                yield frame.to_ndarray().T
        except av.FFmpegError as error:
            raise AudioError(f"cannot decode ({error.strerror or error})") from error

    return stream.rate, frames()


def _checked(path: Path, frames: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    """Mono float32 blocks, refusing NaN or Inf, absurd peaks, no samples and silence throughout."""
    peak, count = 0.0, 0
    while True:
        with _reading(path):
            data = next(frames, None)
        if data is None:
            break
        if not len(data):
            continue
        mono = data.mean(axis=1, dtype=np.float32)
        if not np.isfinite(mono).all():
            raise AudioError(f"{path}: contains NaN or Inf samples")
        peak = max(peak, float(np.abs(mono).max()))
        if peak > ABSURD_PEAK:
            raise AudioError(
                f"{path}: samples reach {peak:.3g}, over {ABSURD_PEAK:g} times full scale (a damaged float file?)"
            )
        count += len(mono)
        yield np.ascontiguousarray(mono)
    if count == 0:
        raise AudioError(f"{path}: contains no samples")
    if peak < SILENCE_PEAK:
        raise AudioError(f"{path}: silent (no sample above -90 dBFS)")


@contextmanager
def open_mono(path: Path, block_frames: int = BLOCK_FRAMES) -> Iterator[tuple[int, Iterator[np.ndarray]]]:
    """(the file's sample rate, its channels averaged as float32 blocks), decoded with soundfile or
    FFmpeg a block at a time, so a song of any length needs one block's memory.

    Raises AudioError (never a library exception) for anything that is not usable audio:
    unreadable, undecodable, empty, NaN or Inf samples, or silent throughout. The last two are
    found only as the blocks are read.
    """
    path = Path(path)
    if reason := broken_link(path):
        raise AudioError(f"{path}: {reason}")
    with ExitStack() as stack:
        with _reading(path):
            f = stack.enter_context(open(path, "rb"))  # opened here, so a permission problem is reported as one
            if path.suffix.lower() in FFMPEG_EXTENSIONS:
                rate, frames = _ffmpeg_frames(stack, f)
            else:
                check_header(sf.info(f))
                f.seek(0)
                sound = stack.enter_context(sf.SoundFile(f))
                rate, frames = sound.samplerate, sound.blocks(block_frames, dtype="float32", always_2d=True)
        yield int(rate), _checked(path, frames)


def read_mono(path: Path) -> tuple[np.ndarray, int]:
    """(the file's channels averaged, float32, its own sample rate): all of `open_mono` at once."""
    with open_mono(path) as (rate, blocks):
        parts = list(blocks)
    return (parts[0] if len(parts) == 1 else np.concatenate(parts)), rate


# torchaudio's exact resampler convolves with new x (orig + 2 width) taps of the rates reduced by
# their greatest common divisor: about 3 million for 32000 -> 4410 Hz, but 194 million (0.8 GB,
# more in the convolution) for 44101 -> 4410 Hz. Rates past this bound are refused, not approximated.
MAX_RESAMPLE_TAPS = 2**24


def check_rates(source_rate: int, sample_rate: int) -> None:
    """An AudioError when resampling between these rates would take more memory than a song should."""
    if source_rate == sample_rate:
        return
    gcd = math.gcd(int(source_rate), int(sample_rate))
    orig, new = source_rate // gcd, sample_rate // gcd
    width = math.ceil(6 * orig / (min(orig, new) * 0.99))
    if new * (orig + 2 * width) > MAX_RESAMPLE_TAPS:
        raise AudioError(
            f"its sample rate, {source_rate} Hz, shares too small a factor with {sample_rate} Hz to "
            f"resample exactly ({new * (orig + 2 * width) * 4 / 2**30:.1f} GiB of filter); convert it to "
            f"a common rate (44100 or 48000 Hz) first"
        )


def resample(mono: np.ndarray, source_rate: int, sample_rate: int) -> np.ndarray:
    check_rates(source_rate, sample_rate)
    if source_rate != sample_rate:
        mono = AF.resample(torch.from_numpy(mono), source_rate, sample_rate).numpy()
    return np.ascontiguousarray(mono, dtype=np.float32)


class Resampler:
    """`resample` for a signal that arrives in blocks: feed each block, then `flush()`; the pieces
    put together equal resampling the whole signal at once (to float rounding).

    torchaudio's sinc kernel reaches `width` input samples either side of each stride of
    `orig` samples, so every block is resampled with that much context on both sides and only
    the strides the context makes complete are kept; the context at the song's ends is the same
    zeros the one-shot resample pads with.
    """

    def __init__(self, source_rate: int, sample_rate: int):
        check_rates(source_rate, sample_rate)
        self.same = source_rate == sample_rate
        self.source_rate, self.sample_rate = source_rate, sample_rate
        gcd = math.gcd(source_rate, sample_rate)
        self.orig, self.new = source_rate // gcd, sample_rate // gcd
        width = math.ceil(6 * self.orig / (min(self.orig, self.new) * 0.99))  # resample's default kernel
        self.context = self.orig * math.ceil(width / self.orig)  # whole strides, so blocks start on one
        self.pending = np.zeros(self.context, dtype=np.float32)  # the context before the next stride
        self.length = self.done = 0  # samples fed; output samples given

    def _strides(self, count: int) -> np.ndarray:
        chunk = self.pending[: 2 * self.context + count * self.orig]
        out = AF.resample(torch.from_numpy(chunk), self.source_rate, self.sample_rate).numpy()
        first = self.context // self.orig * self.new
        self.pending = self.pending[count * self.orig :]
        return out[first : first + count * self.new]

    def __call__(self, block: np.ndarray) -> np.ndarray:
        if self.same:
            return block
        self.pending = np.concatenate([self.pending, block.astype(np.float32, copy=False)])
        self.length += len(block)
        count = (len(self.pending) - 2 * self.context) // self.orig
        if count <= 0:
            return np.zeros(0, dtype=np.float32)
        out = self._strides(count)
        self.done += len(out)
        return out

    def flush(self) -> np.ndarray:
        """The rest of the output: the same length in all as `resample` gives for the whole signal."""
        if self.same:
            return np.zeros(0, dtype=np.float32)
        rest = math.ceil(self.new * self.length / self.orig) - self.done
        self.pending = np.concatenate([self.pending, np.zeros(self.context + self.orig, dtype=np.float32)])
        out = self._strides((len(self.pending) - 2 * self.context) // self.orig)[:rest]
        self.done += len(out)
        return np.ascontiguousarray(out)


def load_audio(path: Path, sample_rate: int) -> np.ndarray:
    """The file's channels averaged and resampled to `sample_rate` with torchaudio (see read_mono)."""
    mono, source_rate = read_mono(path)
    try:
        return resample(mono, source_rate, sample_rate)
    except AudioError as error:
        raise AudioError(f"{path}: {error}") from None


def write_wav(path: Path, audio: np.ndarray | Iterable[np.ndarray], sample_rate: int) -> None:
    """A mono float WAV (no clipping), written atomically: a whole waveform, or consecutive blocks
    written as they come (nothing is left at `path` if they stop with an error)."""
    blocks = [audio] if isinstance(audio, np.ndarray) else audio

    def write(f):
        with sf.SoundFile(f, "w", sample_rate, channels=1, format="WAV", subtype="FLOAT") as sound:
            for block in blocks:
                sound.write(np.asarray(block, dtype=np.float32))

    atomic_write(path, write)
