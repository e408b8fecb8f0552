"""Spectral baselines at a given latent size: keep some RFFT bins, zero the rest.

The linear ones are the floor every learned model must clear: `LowpassRFFT` keeps the lowest
latent/2 bins; `FourierTopK` keeps the latent/2 bins with the most energy over the training
split, found in its one pass over it. `FourierSparse` is adaptive (non-linear): every segment
keeps its own strongest latent/3 bins, with their indices. None has parameters; all train for
one epoch (`Net.fits`), checkpoint and evaluate like any model.
"""

import torch

from aerecon.audio.representation import RFFT
from aerecon.models.net import VALUE_BITS, Net, check_latent, position_bits


def packed_positions(bins: torch.Tensor, length: int) -> torch.Tensor:
    """Boolean mask over RFFT's packed layout [re0, re1, im1, ...] selecting the given bins."""
    mask = torch.zeros(length, dtype=torch.bool, device="cpu")  # cpu even under a meta device context
    for b in bins.tolist():
        for position in (0,) if b == 0 else (2 * b - 1, 2 * b):
            if position < length:  # an even length's Nyquist bin has no imaginary slot
                mask[position] = True
    return mask


class SpectralBaseline(Net):
    """Encoder: the packed RFFT values of the kept bins (at most `latent` numbers). Decoder:
    those values back in place, zeros elsewhere."""

    representation = RFFT
    representation_hint = "keeps RFFT bins: use representation=rfft"
    fits = True
    dense_latent = False

    def __init__(self, input_length: int, latent: int = 3300):
        super().__init__()
        check_latent(latent, input_length)
        self.num_bins = min(self.bins_for(latent), input_length // 2 + 1)
        self.input_length = input_length
        self.latent_shape = (1, self.code_length())
        self.register_buffer("kept", torch.zeros(input_length, dtype=torch.bool))  # what checkpoints store
        # The kept positions as indices, padded to the code's length (`valid` zero on the padding):
        # fixed shapes, so the code exports to ONNX and TorchScript.
        self.register_buffer("positions", torch.zeros(self.latent_shape[-1], dtype=torch.long), persistent=False)
        self.register_buffer("valid", torch.zeros(self.latent_shape[-1]), persistent=False)
        self.register_load_state_dict_post_hook(lambda module, keys: module.keep(module.kept.cpu()))

    def code_length(self) -> int:
        return 2 * self.num_bins

    def keep(self, mask: torch.Tensor) -> None:
        """Keep the packed positions `mask` (a CPU boolean mask over the input) from now on."""
        index = mask.nonzero().flatten()[: self.latent_shape[-1]]
        positions = torch.zeros(self.latent_shape[-1], dtype=torch.long)
        positions[: len(index)] = index
        self.kept.copy_(mask)
        self.positions.copy_(positions)
        self.valid.copy_(torch.arange(self.latent_shape[-1]) < len(index))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return x.index_select(-1, self.positions) * self.valid.to(x.dtype)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        out = z.new_zeros(*z.shape[:-1], self.input_length)
        return out.index_add(-1, self.positions, z * self.valid.to(z.dtype))


class LowpassRFFT(SpectralBaseline):
    @staticmethod
    def bins_for(latent: int) -> int:
        return (latent + 1) // 2  # bin 0 is one number (its imaginary part is zero), the others two

    def code_length(self) -> int:
        return int(packed_positions(torch.arange(self.num_bins, device="cpu"), self.input_length).sum())

    def __init__(self, input_length: int, latent: int = 3300):
        super().__init__(input_length, latent)
        self.keep(packed_positions(torch.arange(self.num_bins, device="cpu"), input_length))


class FourierTopK(SpectralBaseline):
    """The code has room for two numbers per bin; a bin with one (bin 0, an even length's
    Nyquist bin) leaves a zero at the end of the code."""

    @staticmethod
    def bins_for(latent: int) -> int:
        return latent // 2  # any bin may be chosen, so count two numbers for each

    def __init__(self, input_length: int, latent: int = 3300):
        super().__init__(input_length, latent)
        self.register_buffer("energy", torch.zeros(input_length // 2 + 1, dtype=torch.float64), persistent=False)

    def fit_batch(self, wave: torch.Tensor) -> None:
        self.energy += torch.fft.rfft(wave.double()).abs().square().sum(dim=(0, 1))

    def fit_end(self) -> None:
        if self.energy.any():
            bins = torch.topk(self.energy, self.num_bins).indices.cpu()
            self.keep(packed_positions(bins, self.input_length))


class FourierSparse(SpectralBaseline):
    """Each segment's own strongest bins: latent / 3 of them, each stored as (real, imaginary,
    bin index), so the code is exactly as many numbers as the others' latents. The encoder is
    non-linear (a per-segment choice), not learned: what adaptivity alone buys at this size.
    """

    @staticmethod
    def bins_for(latent: int) -> int:
        return latent // 3

    def code_length(self) -> int:
        return 3 * self.num_bins

    def code_bits(self) -> int:
        return self.num_bins * (2 * VALUE_BITS + position_bits(self.input_length // 2 + 1))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        bins = RFFT.unpack(x)  # [..., n // 2 + 1, 2]
        index = bins.square().sum(-1).topk(self.num_bins, dim=-1).indices.sort(-1).values
        kept = bins.gather(-2, index.unsqueeze(-1).expand(*index.shape, 2))
        return torch.cat([kept.flatten(-2), index.float()], dim=-1)  # indices < 2**24: exact in fp32

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        k = self.num_bins
        values, index = z[..., : 2 * k].unflatten(-1, (k, 2)), z[..., 2 * k :].round().long()
        bins = z.new_zeros(*z.shape[:-1], self.input_length // 2 + 1, 2).scatter(
            -2, index.unsqueeze(-1).expand(*index.shape, 2), values
        )
        return RFFT.pack(bins, self.input_length)
