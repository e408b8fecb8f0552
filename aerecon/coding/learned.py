"""Compressed songs from a trained model whose code is discrete (bottleneck=quantized or vq).

The song is cut into whole segments (the last padded with silence), each segment's latent
becomes integer symbols (`bottleneck.symbols`), and the symbols of each latent channel, all
segments in order, are one group of aerecon.coding.entropy (constriction's range coder under the
group's histogram). The container names the codec `aerecon-<fingerprint>`, the checkpoint's
fingerprint, so a file is decoded only by the model that wrote it.
"""

import math
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch

from aerecon.coding import container, entropy
from aerecon.utils.errors import ConfigError, DataError
from aerecon.utils.files import sha256

PREFIX = "aerecon-"


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
def song_symbols(model, blocks: Iterable[np.ndarray], batch_size: int) -> tuple[np.ndarray, int]:
    """(symbols [segments, channels, frames] as int64, samples) of a song that arrives in blocks."""
    samples, parts = 0, []

    def counted() -> Iterator[np.ndarray]:
        nonlocal samples
        for block in blocks:
            samples += len(block)
            yield block

    for batch in segments(counted(), model.segment_samples, batch_size):
        wave = torch.from_numpy(batch).to(model.device)[:, None]
        parts.append(model.module.symbols(model.module.representation.encode(wave)).cpu().numpy())
    if not parts:
        raise DataError("the song holds no samples")
    return np.concatenate(parts), samples


def compress(model, ckpt_path, blocks: Iterable[np.ndarray], batch_size: int = 40) -> tuple[bytes, int]:
    """(a compressed file's bytes, samples) of a song: consecutive 1-D blocks at the model's sample rate."""
    discrete_bottleneck(model, ckpt_path)
    symbols, samples = song_symbols(model, blocks, batch_size)
    payload = entropy.encode([symbols[:, c].ravel() for c in range(symbols.shape[1])])
    return container.pack(PREFIX + fingerprint(ckpt_path), model.sample_rate, samples, payload), samples


def read_symbols(model, ckpt_path, data: bytes, what: str) -> tuple[np.ndarray, int]:
    """(symbols [segments, channels, frames], samples) of a compressed file's bytes; DataError if
    it is not one this checkpoint wrote, or not whole."""
    discrete_bottleneck(model, ckpt_path)
    codec, sample_rate, samples, payload = container.unpack(data, what)
    mine = PREFIX + fingerprint(ckpt_path)
    if not codec.startswith(PREFIX):
        raise DataError(f"{what} was written by the {codec} codec, not by a model; it needs that codec to decode")
    if codec != mine:
        raise DataError(
            f"{what} was compressed with another checkpoint (fingerprint {codec[len(PREFIX) :]}), not "
            f"ckpt_path={ckpt_path} ({mine[len(PREFIX) :]}); decompress it with the checkpoint that wrote it"
        )
    if sample_rate != model.sample_rate:
        raise DataError(f"{what} says {sample_rate} Hz, but its checkpoint's model runs at {model.sample_rate} Hz")
    groups = entropy.decode(payload, what)
    count = math.ceil(samples / model.segment_samples)
    frames = _frames(model)
    if len(groups) != frames[0] or any(len(g) != count * frames[1] for g in groups):
        raise DataError(f"{what} is damaged: its code does not fit {samples} samples of this model")
    return np.stack([g.reshape(count, frames[1]) for g in groups], axis=1), samples


def _frames(model) -> tuple[int, int]:
    """(channels, frames) of one segment's symbols."""
    probe = torch.zeros(1, 1, model.module.input_length, device=model.device)
    return tuple(model.module.symbols(probe).shape[1:])


def decompress(model, ckpt_path, data: bytes, what: str, batch_size: int = 40) -> tuple[int, Iterator[np.ndarray]]:
    """(samples, the song as consecutive 1-D blocks) of a compressed file's bytes."""
    symbols, samples = read_symbols(model, ckpt_path, data, what)
    module = model.module

    @torch.no_grad()
    def blocks() -> Iterator[np.ndarray]:
        left = samples
        for start in range(0, len(symbols), batch_size):
            part = torch.from_numpy(symbols[start : start + batch_size]).to(model.device)
            wave = module.representation.decode(module.from_symbols(part).float())
            wave = wave.flatten().cpu().numpy()[:left]
            left -= len(wave)
            yield wave

    return samples, blocks()


class LearnedCodec:
    """A trained model's compressed files behind the reference codecs' interface
    (aerecon.coding.reference): `encode` a song into bytes, `decode` them back."""

    def __init__(self, model, ckpt_path, batch_size: int = 40):
        discrete_bottleneck(model, ckpt_path)
        self.model, self.ckpt_path, self.batch_size = model, ckpt_path, batch_size
        self.name = f"{model.config.get('model_name', 'model')} ({Path(ckpt_path).name})"

    def encode(self, wave: np.ndarray, sample_rate: int) -> bytes:
        if sample_rate != self.model.sample_rate:
            raise ConfigError(f"{self.name} codes {self.model.sample_rate} Hz songs, not {sample_rate} Hz")
        return compress(self.model, self.ckpt_path, [wave], self.batch_size)[0]

    def decode(self, data: bytes, what: str = "the compressed song") -> np.ndarray:
        return np.concatenate(list(decompress(self.model, self.ckpt_path, data, what, self.batch_size)[1]))
