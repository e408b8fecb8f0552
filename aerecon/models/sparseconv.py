"""A k-sparse convolutional autoencoder: a learned lapped filterbank with a top-k latent."""

import math

import torch
import torch.nn.functional as F
from torch import nn

from aerecon.errors import ConfigError
from aerecon.models.net import VALUE_BITS, Net, check_latent, position_bits
from aerecon.representation import Raw


def mdct_basis(hop: int) -> torch.Tensor:
    """[hop, 2 hop] sine-windowed MDCT rows: as conv weights they analyse, as transposed-conv
    weights they synthesise, and the pair reconstructs perfectly (time-domain alias cancellation)."""
    n, k = torch.arange(2 * hop, dtype=torch.float64), torch.arange(hop, dtype=torch.float64)
    window = torch.sin(math.pi * (n + 0.5) / (2 * hop))
    cosines = torch.cos(math.pi / hop * (n[None] + 0.5 + hop / 2) * (k[:, None] + 0.5))
    return (math.sqrt(2 / hop) * cosines * window[None]).float()


class TopK(nn.Module):
    """Keeps the k largest-magnitude numbers of each segment's [C, T] latent and zeroes the rest.

    The code is then k values and k positions: 2k numbers. Gradients reach the kept values only
    (as in k-sparse autoencoders).
    """

    def __init__(self, k: int):
        super().__init__()
        self.k = k

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        flat = z.flatten(1)
        index = flat.abs().topk(self.k, dim=1).indices
        kept = torch.zeros_like(flat, dtype=torch.bool).scatter(1, index, torch.ones_like(index, dtype=torch.bool))
        return (flat * kept).view_as(z)


class SparseConvAutoencoder(Net):
    """Conv encoder (1 -> `hop` channels, kernel 2 hop, stride hop) -> top-k -> transposed-conv decoder.

    - The latent code is `latent` numbers: the latent / 2 largest coefficients of the segment
      and their positions (3300 numbers = 1650 coefficients for the thesis's size).
    - `init=mdct` starts the filterbank as an MDCT (sine window), so an untrained model is
      already the adaptive MDCT code; training then adapts both filterbanks to the music.
      `init=random` starts from scratch.
    - Waveform in and out (`representation=raw`); the input is padded to whole hops and
      cropped back, so any length round-trips.
    """

    representation = Raw
    representation_hint = "filters waveforms: use representation=raw"

    def __init__(self, input_length: int, latent: int = 3300, hop: int = 245, init: str = "mdct"):
        super().__init__()
        check_latent(latent, input_length)
        if latent < 2:
            raise ConfigError(f"model.net.latent={latent}: the code holds values and positions, so at least 2, "
                              f"e.g. 3300")
        if not 0 < hop <= input_length:
            raise ConfigError(f"model.net.hop={hop}: the filterbank's hop in samples, from 1 to the input length "
                              f"{input_length}; e.g. model.net.hop=245 (55 ms at 4410 Hz)")
        if init not in ("mdct", "random"):
            raise ConfigError(f"model.net.init={init}: use mdct or random")
        self.hop = hop
        self.encoder = nn.Conv1d(1, hop, 2 * hop, stride=hop, padding=hop, bias=False)
        self.decoder = nn.ConvTranspose1d(hop, 1, 2 * hop, stride=hop, padding=hop, bias=False)
        if init == "mdct":
            with torch.no_grad():
                self.encoder.weight.copy_(mdct_basis(hop).unsqueeze(1))
                self.decoder.weight.copy_(mdct_basis(hop).unsqueeze(1))
        self.topk = TopK(latent // 2)
        self.input_length, self.latent_shape = input_length, (hop, -(-input_length // hop) + 1)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The filterbank's coefficients [B, hop, frames], all but the top k zeroed."""
        return self.topk(self.encoder(F.pad(x, (0, -x.shape[-1] % self.hop))))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)[..., : self.input_length]

    def pack(self, z: torch.Tensor) -> torch.Tensor:
        """The kept coefficients' values, then their positions in the [hop, frames] grid: [B, latent]."""
        flat = z.flatten(1)
        position = flat.abs().topk(self.topk.k, dim=1).indices.sort(dim=1).values
        return torch.cat([flat.gather(1, position), position.to(flat.dtype)], dim=1)  # positions < 2**24: exact

    def code_bits(self) -> int:
        return self.topk.k * (VALUE_BITS + position_bits(math.prod(self.latent_shape)))

    def unpack(self, code: torch.Tensor) -> torch.Tensor:
        k = self.topk.k
        flat = code.new_zeros(code.shape[0], math.prod(self.latent_shape)).scatter(1, code[:, k:].round().long(),
                                                                                   code[:, :k])
        return flat.view(code.shape[0], *self.latent_shape)
