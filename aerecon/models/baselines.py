"""Spectral baselines at a given latent size: keep some RFFT bins, zero the rest.

The linear ones are the floor every learned model must clear: `LowpassRFFT` keeps the lowest
latent/2 bins; `FourierTopK` keeps the latent/2 bins with the most energy over the training
split, found in its one training epoch. `FourierSparse` is adaptive (non-linear): every
segment keeps its own strongest latent/3 bins, with their indices. None has parameters; all
checkpoint and evaluate like any model.
"""

import torch
from torch import nn

from aerecon.errors import ConfigError
from aerecon.models.base import AutoencoderModule, check_latent
from aerecon.representation import RFFT


def packed_positions(bins: torch.Tensor, length: int) -> torch.Tensor:
    """Boolean mask over RFFT's packed layout [re0, re1, im1, ...] selecting the given bins."""
    mask = torch.zeros(length, dtype=torch.bool, device="cpu")  # cpu even under a meta device context
    for b in bins.tolist():
        for position in ((0,) if b == 0 else (2 * b - 1, 2 * b)):
            if position < length:  # an even length's Nyquist bin has no imaginary slot
                mask[position] = True
    return mask


class SpectralBaseline(AutoencoderModule):
    """Encoder: the packed RFFT values of the kept bins (at most `latent` numbers). Decoder:
    those values back in place, zeros elsewhere."""

    def __init__(self, input_length: int, latent: int = 3300, **kwargs):
        super().__init__(input_length, **kwargs)
        if not isinstance(self.representation, RFFT):
            raise ConfigError(f"model={type(self).__name__} keeps RFFT bins: use representation=rfft")
        check_latent(latent, input_length)
        self.num_bins = min(self.bins_for(latent), input_length // 2 + 1)
        self.register_buffer("kept", torch.zeros(input_length, dtype=torch.bool))
        self.automatic_optimization = False  # nothing to optimise...
        # ...but Lightning measures training progress in optimizer steps (no step, no checkpoint),
        # so each batch steps a no-op optimizer over this empty parameter.
        self.progress = nn.Parameter(torch.zeros(0), requires_grad=False)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return x[..., self.kept].flatten(1)

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        out = code.new_zeros(len(code), 1, self.input_length)
        out[:, 0, self.kept] = code
        return out

    def autoencode(self, x: torch.Tensor) -> tuple[torch.Tensor, dict]:
        return self.decode(self.encode(x)), {}

    def configure_optimizers(self):
        return torch.optim.SGD([self.progress], lr=0.0)

    def training_step(self, wave: torch.Tensor, batch_idx: int) -> None:
        self.fit_batch(wave)
        self.optimizers().step()

    def fit_batch(self, wave: torch.Tensor) -> None:
        """What a baseline learns from one training batch (nothing, by default)."""

    def on_train_epoch_end(self) -> None:
        self.trainer.should_stop = True  # one epoch is all a baseline needs


class LowpassRFFT(SpectralBaseline):
    @staticmethod
    def bins_for(latent: int) -> int:
        return (latent + 1) // 2  # bin 0 is one number (its imaginary part is zero), the others two

    def __init__(self, input_length: int, latent: int = 3300, **kwargs):
        super().__init__(input_length, latent, **kwargs)
        self.kept.copy_(packed_positions(torch.arange(self.num_bins, device="cpu"), input_length))


class FourierTopK(SpectralBaseline):
    @staticmethod
    def bins_for(latent: int) -> int:
        return latent // 2  # any bin may be chosen, so count two numbers for each

    def __init__(self, input_length: int, latent: int = 3300, **kwargs):
        super().__init__(input_length, latent, **kwargs)
        self.register_buffer("energy", torch.zeros(input_length // 2 + 1, dtype=torch.float64), persistent=False)

    def fit_batch(self, wave: torch.Tensor) -> None:
        self.energy += torch.fft.rfft(wave.double()).abs().square().sum(dim=(0, 1))

    def on_validation_epoch_start(self) -> None:
        # Lightning validates before on_train_epoch_end: choose the bins as soon as the epoch has seen the data.
        if not self.trainer.sanity_checking and self.energy.any():
            bins = torch.topk(self.energy, self.num_bins).indices.cpu()
            self.kept.copy_(packed_positions(bins, self.input_length))


class FourierSparse(SpectralBaseline):
    """Each segment's own strongest bins: latent / 3 of them, each stored as (real, imaginary,
    bin index), so the code is exactly as many numbers as the others' latents. The encoder is
    non-linear (a per-segment choice), not learned: what adaptivity alone buys at this size.
    """

    @staticmethod
    def bins_for(latent: int) -> int:
        return latent // 3

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        bins = RFFT.unpack(x.flatten(1))  # [B, n // 2 + 1, 2]
        index = bins.square().sum(-1).topk(self.num_bins, dim=-1).indices.sort(-1).values
        kept = bins.gather(-2, index.unsqueeze(-1).expand(*index.shape, 2))
        return torch.cat([kept.flatten(-2), index.float()], dim=-1)  # indices < 2**24: exact in fp32

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        k = self.num_bins
        values, index = code[:, : 2 * k].unflatten(-1, (k, 2)), code[:, 2 * k :].round().long()
        bins = code.new_zeros(len(code), self.input_length // 2 + 1, 2)
        bins.scatter_(-2, index.unsqueeze(-1).expand(*index.shape, 2), values)
        return RFFT.pack(bins, self.input_length).unsqueeze(1)
