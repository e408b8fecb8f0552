"""A k-sparse convolutional autoencoder: a learned lapped filterbank with a sparse latent."""

import math

import torch
import torch.nn.functional as F
from torch import nn

from aerecon.audio.representation import Raw
from aerecon.models.net import Net, check_latent
from aerecon.models.selection import All, Runs, TopK
from aerecon.utils.errors import ConfigError


def mdct_basis(hop: int) -> torch.Tensor:
    """[hop, 2 hop] sine-windowed MDCT rows: as conv weights they analyse, as transposed-conv
    weights they synthesise, and the pair reconstructs perfectly (time-domain alias cancellation)."""
    n, k = torch.arange(2 * hop, dtype=torch.float64), torch.arange(hop, dtype=torch.float64)
    window = torch.sin(math.pi * (n + 0.5) / (2 * hop))
    cosines = torch.cos(math.pi / hop * (n[None] + 0.5 + hop / 2) * (k[:, None] + 0.5))
    return (math.sqrt(2 / hop) * cosines * window[None]).float()


SELECTORS = {"topk": TopK, "runs": Runs, "all": All}


class SparseConvAutoencoder(Net):
    """Conv encoder (1 -> `hop` channels, kernel 2 hop, stride hop) -> sparse code -> transposed-conv decoder.

    - The latent code is `latent` numbers, positions counted. `select=topk` keeps the latent / 2
      largest coefficients of the segment and their positions (3300 numbers = 1650 coefficients
      for the thesis's size); `select=runs` keeps runs of frames per channel, a descriptor each
      (aerecon.models.selection). `select=all` keeps every coefficient (`latent` is then unused):
      a dense latent, which bottleneck=quantized rounds into a transform code (experiment=codec).
    - `init=mdct` starts the filterbank as an MDCT (sine window), so an untrained model is
      already the adaptive MDCT code; training then adapts both filterbanks to the music.
      `init=random` starts from scratch.
    - Waveform in and out (`representation=raw`); the input is padded to whole hops and
      cropped back, so any length round-trips.
    """

    representation = Raw
    representation_hint = "filters waveforms: use representation=raw"

    def __init__(self, input_length: int, latent: int = 3300, hop: int = 245, init: str = "mdct", select: str = "topk"):
        super().__init__()
        check_latent(latent, input_length)
        if latent < 2:
            raise ConfigError(
                f"model.net.latent={latent}: the code holds values and positions, so at least 2, e.g. 3300"
            )
        if not 0 < hop <= input_length:
            raise ConfigError(
                f"model.net.hop={hop}: the filterbank's hop in samples, from 1 to the input length "
                f"{input_length}; e.g. model.net.hop=245 (55 ms at 4410 Hz)"
            )
        if init not in ("mdct", "random"):
            raise ConfigError(f"model.net.init={init}: use mdct or random")
        if select not in SELECTORS:
            raise ConfigError(f"model.net.select={select}: use {' or '.join(SELECTORS)}")
        self.hop = hop
        self.encoder = nn.Conv1d(1, hop, 2 * hop, stride=hop, padding=hop, bias=False)
        self.decoder = nn.ConvTranspose1d(hop, 1, 2 * hop, stride=hop, padding=hop, bias=False)
        if init == "mdct":
            with torch.no_grad():
                self.encoder.weight.copy_(mdct_basis(hop).unsqueeze(1))
                self.decoder.weight.copy_(mdct_basis(hop).unsqueeze(1))
        self.input_length, self.latent_shape = input_length, (hop, -(-input_length // hop) + 1)
        if select == "runs" and math.prod(self.latent_shape) * self.latent_shape[1] > 2**24:
            raise ConfigError(
                f"model.net.select=runs: a run's descriptor must stay below 2**24 to be exact in "
                f"float32, and {hop} x {self.latent_shape[1]}**2 frames is more; use a larger "
                f"model.net.hop or select=topk"
            )
        self.select = SELECTORS[select](latent)
        self.dense_latent = select == "all"

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The filterbank's coefficients [B, hop, frames], all but the kept ones zeroed."""
        return self.select(self.encoder(F.pad(x, (0, -x.shape[-1] % self.hop))))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)[..., : self.input_length].contiguous()  # metrics view it flat

    def pack(self, z: torch.Tensor) -> torch.Tensor:
        return self.select.pack(z)

    def unpack(self, code: torch.Tensor) -> torch.Tensor:
        return self.select.unpack(code, self.latent_shape)

    def code_bits(self) -> int:
        return self.select.code_bits(self.latent_shape)
