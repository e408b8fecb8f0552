"""Compressed songs from a trained model whose code is discrete (bottleneck=quantized or vq).

The song is cut into whole segments (the last padded with silence), each segment's latent
becomes integer symbols, and the symbols of each latent channel, all segments in order, are one
group of aerecon.coding.entropy (constriction's range coder under the group's histogram). The
payload starts with one factor on every quantisation step (float32: 1, unless a rate was asked
for). The container names the codec `aerecon-<fingerprint>`, the checkpoint's fingerprint, so a
file is decoded only by the model that wrote it.
"""

import math
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch

from aerecon.coding import container, entropy
from aerecon.utils.errors import ConfigError, DataError
from aerecon.utils.files import sha256

PREFIX = "aerecon-"
SCALE = struct.Struct("<f")  # the payload starts with the factor on every step (1 unless a rate was asked)


def fingerprint(ckpt_path: str | Path) -> str:
    """What names a checkpoint in the files it compresses: the first 16 hex digits of its SHA-256."""
    return sha256(Path(ckpt_path).expanduser())[:16]


def compresses(model) -> bool:
    """Whether `model` (an aerecon.models.inference.Autoencoder) has a discrete code, which compresses."""
    return hasattr(model.module.bottleneck, "symbols")


def discrete_bottleneck(model, ckpt_path) -> torch.nn.Module:
    """The bottleneck of `model` (an aerecon.models.inference.Autoencoder) that makes its code
    symbols, or a ConfigError naming what compresses."""
    bottleneck = model.module.bottleneck
    if not compresses(model):
        raise ConfigError(
            f"ckpt_path={ckpt_path}: this model's code is numbers, not symbols, so it has no compressed "
            "file; train one whose code is discrete (bottleneck=quantized, or bottleneck=vq with model=resconv)"
        )
    return bottleneck


def segments(blocks: Iterable[np.ndarray], size: int, batch: int) -> Iterator[np.ndarray]:
    """Consecutive blocks of a song -> batches [b, size] of its whole segments, the last padded with silence."""
    held = np.zeros(0, dtype=np.float32)
    for block in blocks:
        held = np.concatenate([held, np.asarray(block, dtype=np.float32)])
        whole = len(held) // (size * batch) * size * batch
        if whole:
            yield from held[:whole].reshape(-1, batch, size)
            held = held[whole:]
    if len(held):
        held = np.pad(held, (0, -len(held) % size))
        yield held.reshape(-1, size)


@torch.no_grad()
def song_values(model, blocks: Iterable[np.ndarray], batch_size: int) -> tuple[np.ndarray, int]:
    """(the code's values before rounding [segments, channels, frames] as float32, samples) of a
    song that arrives in blocks."""
    samples, parts = 0, []

    def counted() -> Iterator[np.ndarray]:
        nonlocal samples
        for block in blocks:
            samples += len(block)
            yield block

    for batch in segments(counted(), model.segment_samples, batch_size):
        wave = torch.from_numpy(batch).to(model.device)[:, None]
        parts.append(model.module.code_values(model.module.representation.encode(wave)).float().cpu().numpy())
    if not parts:
        raise DataError("the song holds no samples")
    return np.concatenate(parts), samples


def song_symbols(values: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """The symbols of code values whose steps are all scaled by `scale` (rounded half to even, as torch rounds)."""
    return np.round(values / np.float32(scale)).astype(np.int64)


def _groups(symbols: np.ndarray) -> list[np.ndarray]:
    return [symbols[:, c].ravel() for c in range(symbols.shape[1])]


def fit_scale(values: np.ndarray, budget: float) -> float:
    """The smallest factor on every step (to 0.1%) whose symbols' information content, with their
    histograms, fits `budget` bits; DataError if even the coarsest does not."""

    def fits(log_scale: float) -> bool:
        return entropy.coded_bits(_groups(song_symbols(values, 2.0**log_scale))) <= budget

    low, high = -12.0, 12.0
    if not fits(high):
        raise DataError("the rate asked for is below the coarsest this code reaches for the song; ask for more")
    while high - low > 1e-3:
        middle = (low + high) / 2
        low, high = (low, middle) if fits(middle) else (middle, high)
    return float(2.0**high)


def compress(
    model, ckpt_path, blocks: Iterable[np.ndarray], batch_size: int = 40, kbps: float | None = None
) -> tuple[bytes, int]:
    """(a compressed file's bytes, samples) of a song: consecutive 1-D blocks at the model's sample
    rate. With `kbps`, every step is scaled by the one factor that fits the file to that rate."""
    bottleneck = discrete_bottleneck(model, ckpt_path)
    values, samples = song_values(model, blocks, batch_size)
    codec = _codec(ckpt_path)  # the checkpoint is read once, however many files are tried

    def file(scale: float) -> bytes:
        payload = SCALE.pack(scale) + entropy.encode(_groups(song_symbols(values, scale)))
        return container.pack(codec, model.sample_rate, samples, payload)

    if kbps is None:
        return file(1.0), samples
    if not bottleneck.scalable:
        raise ConfigError(f"kbps={kbps:g}: this model's code has one rate; leave kbps out")
    seconds = samples / model.sample_rate
    frame = len(container.pack(codec, 0, 0, b""))  # what a file adds to its code
    budget = kbps * 1000 * seconds - 8 * (frame + SCALE.size)
    for _ in range(8):  # the coder's last words are not in the estimate: fit again below what was over
        data = file(fit_scale(values, budget))
        over = 8 * len(data) - kbps * 1000 * seconds
        if over <= 0:
            return data, samples
        budget -= over + 32
    raise DataError(f"kbps={kbps:g}: the file does not fit; ask for a little more")


def _codec(ckpt_path) -> str:
    return PREFIX + fingerprint(ckpt_path)


def read_symbols(model, ckpt_path, data: bytes, what: str) -> tuple[np.ndarray, float, int]:
    """(symbols [segments, channels, frames], the steps' factor, samples) of a compressed file's
    bytes; DataError if it is not one this checkpoint wrote, or not whole."""
    discrete_bottleneck(model, ckpt_path)
    codec, sample_rate, samples, payload = container.unpack(data, what)
    mine = _codec(ckpt_path)
    if not codec.startswith(PREFIX):
        raise DataError(f"{what} was written by the {codec} codec, not by a model; it needs that codec to decode")
    if codec != mine:
        raise DataError(
            f"{what} was compressed with another checkpoint (fingerprint {codec[len(PREFIX) :]}), not "
            f"ckpt_path={ckpt_path} ({mine[len(PREFIX) :]}); decompress it with the checkpoint that wrote it"
        )
    if sample_rate != model.sample_rate:
        raise DataError(f"{what} says {sample_rate} Hz, but its checkpoint's model runs at {model.sample_rate} Hz")
    if len(payload) < SCALE.size:
        raise DataError(f"{what} is truncated or damaged: it ends early")
    (scale,) = SCALE.unpack_from(payload)
    if not (math.isfinite(scale) and scale > 0):
        raise DataError(f"{what} is damaged: its steps' factor is {scale}")
    groups = entropy.decode(payload[SCALE.size :], what)
    count = math.ceil(samples / model.segment_samples)
    frames = _frames(model)
    if len(groups) != frames[0] or any(len(g) != count * frames[1] for g in groups):
        raise DataError(f"{what} is damaged: its code does not fit {samples} samples of this model")
    return np.stack([g.reshape(count, frames[1]) for g in groups], axis=1), scale, samples


def _frames(model) -> tuple[int, int]:
    """(channels, frames) of one segment's symbols."""
    probe = torch.zeros(1, 1, model.module.input_length, device=model.device)
    with torch.no_grad():
        return tuple(model.module.code_values(probe).shape[1:])


def decompress(model, ckpt_path, data: bytes, what: str, batch_size: int = 40) -> tuple[int, Iterator[np.ndarray]]:
    """(samples, the song as consecutive 1-D blocks) of a compressed file's bytes."""
    symbols, scale, samples = read_symbols(model, ckpt_path, data, what)
    module = model.module

    @torch.no_grad()
    def blocks() -> Iterator[np.ndarray]:
        left = samples
        for start in range(0, len(symbols), batch_size):
            part = torch.from_numpy(symbols[start : start + batch_size]).to(model.device)
            wave = module.representation.decode(module.from_symbols(part, scale).float())
            wave = wave.flatten().cpu().numpy()[:left]
            left -= len(wave)
            yield wave

    return samples, blocks()


class LearnedCodec:
    """A trained model's compressed files behind the reference codecs' interface
    (aerecon.coding.reference): `encode` a song into bytes, `decode` them back."""

    def __init__(self, model, ckpt_path, batch_size: int = 40, kbps: float | None = None):
        discrete_bottleneck(model, ckpt_path)
        self.model, self.ckpt_path, self.batch_size, self.kbps = model, ckpt_path, batch_size, kbps
        self.name = f"{model.config.get('model_name', 'model')} ({Path(ckpt_path).name})"

    def encode(self, wave: np.ndarray, sample_rate: int) -> bytes:
        if sample_rate != self.model.sample_rate:
            raise ConfigError(f"{self.name} codes {self.model.sample_rate} Hz songs, not {sample_rate} Hz")
        return compress(self.model, self.ckpt_path, [wave], self.batch_size, self.kbps)[0]

    def decode(self, data: bytes, what: str = "the compressed song") -> np.ndarray:
        return np.concatenate(list(decompress(self.model, self.ckpt_path, data, what, self.batch_size)[1]))
