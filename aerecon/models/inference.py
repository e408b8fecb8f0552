"""A trained model outside training: `aerecon.load(ckpt_path)` encodes, decodes and reconstructs
waveforms, with no Trainer and no data module.

    model = aerecon.load("logs/train/runs/<run>/checkpoints/last.ckpt")
    latent = model.encode(segments)        # [B, 1, segment_samples] -> [B, latent_size]
    segments = model.decode(latent)        # [B, latent_size] -> [B, 1, segment_samples]
    song = model.reconstruct(waveform)     # any length at model.sample_rate, stitched as aerecon.evaluate does
    for piece in model.reconstruct_stream(blocks): ...   # the same, a block at a time
"""

from collections.abc import Iterable, Iterator

import numpy as np
import torch

from aerecon.audio.stitch import Stitcher
from aerecon.utils.config import segment_samples
from aerecon.utils.errors import ConfigError


def pick_device(device: str | torch.device | None) -> torch.device:
    """None or "auto": the GPU when this torch build can use one, else the CPU."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except RuntimeError as error:
        raise ConfigError(f"device={device}: {error}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"device={device}: this torch sees no GPU here (make doctor says why); use device=cpu or device=auto"
        )
    return device


class Autoencoder:
    """A trained aerecon model in eval mode, on waveforms at `sample_rate`.

    Attributes: `sample_rate`, `segment_samples` (the model's input length), `latent_size` (the
    numbers in one segment's code: for the sparse codes, values and positions), `code_bits` (what
    those numbers take stored: values as float32, positions at the bits they need), `config` (the
    run's resolved config) and `module` (the underlying torch module).
    """

    def __init__(self, module: torch.nn.Module, config: dict, device: torch.device):
        self.module, self.config, self.device = module.to(device).eval(), config, device
        data = config["data"]
        self.sample_rate = int(data["sample_rate"])
        self.segment_samples = segment_samples(data["sample_rate"], data["segment_seconds"])
        self.latent_size = int(self.encode(torch.zeros(1, 1, self.segment_samples)).shape[-1])
        self.code_bits = self.module.code_bits()

    def __repr__(self) -> str:
        return (
            f"Autoencoder({type(self.module.net).__name__}, sample_rate={self.sample_rate}, "
            f"segment_samples={self.segment_samples}, latent_size={self.latent_size}, code_bits={self.code_bits}, "
            f"device={self.device})"
        )

    def _tensor(self, x, what: str, shape: tuple) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
        if x.dim() != len(shape) or any(want is not None and got != want for got, want in zip(x.shape, shape)):
            expected = "[" + ", ".join("B" if want is None else str(want) for want in shape) + "]"
            raise ValueError(f"{what} must have shape {expected}, got {list(x.shape)}")
        return x.to(self.device, torch.float32)

    @torch.no_grad()
    def encode(self, wave) -> torch.Tensor:
        """Waveform segments [B, 1, segment_samples] -> their codes [B, latent_size]."""
        wave = self._tensor(wave, "wave", (None, 1, self.segment_samples))
        representation = self.module.representation.encode(wave)
        return self.module.encode(representation).float()

    @torch.no_grad()
    def decode(self, latent) -> torch.Tensor:
        """Codes [B, latent_size] -> waveform segments [B, 1, segment_samples]."""
        latent = self._tensor(latent, "latent", (None, self.latent_size))
        return self.module.representation.decode(self.module.decode(latent).float())

    @torch.no_grad()
    def reconstruct(
        self, wave, window: str = "notched", notches: int = 8, overlap: float = 0.5, batch_size: int = 40
    ) -> torch.Tensor:
        """A mono waveform of any length at `sample_rate` -> its reconstruction, the same length.

        Overlapping segments are reconstructed `batch_size` at a time and overlap-added
        (aerecon.audio.stitch), so memory beyond the song itself stays one batch's activations.
        """
        wave = self._tensor(wave, "wave", (None,))
        stitcher = Stitcher(self.segment_samples, window, overlap, notches)
        return stitcher(self.module.reconstruct, wave, batch_size).cpu()

    @torch.no_grad()
    def reconstruct_stream(
        self, blocks: Iterable, window: str = "notched", notches: int = 8, overlap: float = 0.5, batch_size: int = 40
    ) -> Iterator[torch.Tensor]:
        """`reconstruct` for a song that arrives as consecutive 1-D blocks at `sample_rate` (a file
        read a block at a time): yields the reconstruction as consecutive blocks, equal to
        `reconstruct` on the whole song, holding about one batch of segments at a time."""
        stitcher = Stitcher(self.segment_samples, window, overlap, notches)
        wave = (self._tensor(block, "block", (None,)) for block in blocks)
        for piece in stitcher.stream(self.module.reconstruct, wave, batch_size):
            yield piece.cpu()
