"""Spectral baselines at a given latent size: keep some RFFT bins, zero the rest.

The linear ones are the floor every learned model must clear: `LowpassRFFT` keeps the lowest
latent/2 bins; `FourierTopK` keeps the latent/2 bins with the most energy over the training
split, found in its one pass over it. `FourierSparse` is adaptive (non-linear): every segment
keeps its own strongest latent/3 bins, with their indices. None has parameters; all train for
one epoch (`Net.fits`), checkpoint and evaluate like any model.
"""

import torch

from aerecon.models.net import Net, check_latent
from aerecon.representation import RFFT


def packed_positions(bins: torch.Tensor, length: int) -> torch.Tensor:
    """Boolean mask over RFFT's packed layout [re0, re1, im1, ...] selecting the given bins."""
    mask = torch.zeros(length, dtype=torch.bool, device="cpu")  # cpu even under a meta device context
    for b in bins.tolist():
        for position in ((0,) if b == 0 else (2 * b - 1, 2 * b)):
            if position < length:  # an even length's Nyquist bin has no imaginary slot
                mask[position] = True
    return mask


class SpectralBaseline(Net):
    """Encoder: the packed RFFT values of the kept bins (at most `latent` numbers). Decoder:
    those values back in place, zeros elsewhere."""

    representation = RFFT
    representation_hint = "keeps RFFT bins: use representation=rfft"
    fits = True

    def __init__(self, input_length: int, latent: int = 3300):
        super().__init__()
        check_latent(latent, input_length)
        self.num_bins = min(self.bins_for(latent), input_length // 2 + 1)
        self.register_buffer("kept", torch.zeros(input_length, dtype=torch.bool))
        self.input_length, self.latent_shape = input_length, (1, self.code_length())

    def code_length(self) -> int:
        return int(self.kept.sum())

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return x[..., self.kept]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        out = z.new_zeros(*z.shape[:-1], self.input_length)
        out[..., self.kept] = z
        return out


class LowpassRFFT(SpectralBaseline):
    @staticmethod
    def bins_for(latent: int) -> int:
        return (latent + 1) // 2  # bin 0 is one number (its imaginary part is zero), the others two

    def __init__(self, input_length: int, latent: int = 3300):
        super().__init__(input_length, latent)
        self.kept.copy_(packed_positions(torch.arange(self.num_bins, device="cpu"), input_length))
        self.latent_shape = (1, self.code_length())


class FourierTopK(SpectralBaseline):
    @staticmethod
    def bins_for(latent: int) -> int:
        return latent // 2  # any bin may be chosen, so count two numbers for each

    def __init__(self, input_length: int, latent: int = 3300):
        super().__init__(input_length, latent)
        self.register_buffer("energy", torch.zeros(input_length // 2 + 1, dtype=torch.float64), persistent=False)
        self.latent_shape = (1, 2 * self.num_bins)  # the kept positions are chosen in fit_end

    def fit_batch(self, wave: torch.Tensor) -> None:
        self.energy += torch.fft.rfft(wave.double()).abs().square().sum(dim=(0, 1))

    def fit_end(self) -> None:
        if self.energy.any():
            bins = torch.topk(self.energy, self.num_bins).indices.cpu()
            self.kept.copy_(packed_positions(bins, self.input_length))

    def pack(self, z: torch.Tensor) -> torch.Tensor:
        # bin 0 or an even length's Nyquist bin has one number: pad such codes to the same length
        flat = z.flatten(1)
        return torch.nn.functional.pad(flat, (0, self.latent_shape[-1] - flat.shape[-1]))

    def unpack(self, code: torch.Tensor) -> torch.Tensor:
        return code[:, : self.code_length()].unsqueeze(1)


class FourierSparse(SpectralBaseline):
    """Each segment's own strongest bins: latent / 3 of them, each stored as (real, imaginary,
    bin index), so the code is exactly as many numbers as the others' latents. The encoder is
    non-linear (a per-segment choice), not learned: what adaptivity alone buys at this size.
    """

    @staticmethod
    def bins_for(latent: int) -> int:
        return latent // 3

    def __init__(self, input_length: int, latent: int = 3300):
        super().__init__(input_length, latent)
        self.latent_shape = (1, 3 * self.num_bins)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        bins = RFFT.unpack(x)  # [..., n // 2 + 1, 2]
        index = bins.square().sum(-1).topk(self.num_bins, dim=-1).indices.sort(-1).values
        kept = bins.gather(-2, index.unsqueeze(-1).expand(*index.shape, 2))
        return torch.cat([kept.flatten(-2), index.float()], dim=-1)  # indices < 2**24: exact in fp32

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        k = self.num_bins
        values, index = z[..., : 2 * k].unflatten(-1, (k, 2)), z[..., 2 * k :].round().long()
        bins = z.new_zeros(*z.shape[:-1], self.input_length // 2 + 1, 2)
        bins.scatter_(-2, index.unsqueeze(-1).expand(*index.shape, 2), values)
        return RFFT.pack(bins, self.input_length)
