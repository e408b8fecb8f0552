"""Invertible transforms between waveform segments [B, 1, n] and model inputs [B, 1, n].

They run per batch on the model's device; losses live in the representation domain, metrics
always in the time domain (after `decode`).
"""

import math

import torch
import torchaudio.functional as AF
from torch import nn

from aerecon.errors import ConfigError


class Representation(nn.Module):
    def encode(self, wave: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class Raw(Representation):
    def encode(self, wave):
        return wave

    def decode(self, x):
        return x


class MuLaw(Representation):
    """Mu-law companding of [-1, 1] audio (clipped first, as in the thesis).

    Continuous by default; `quantize=True` uses torchaudio's 8-bit mu-law codec, rescaled
    to [-1, 1]. torchaudio has no continuous variant, so that one is the formula itself.
    """

    def __init__(self, mu: int = 255, quantize: bool = False):
        super().__init__()
        self.mu, self.quantize = mu, quantize

    def encode(self, wave):
        wave = wave.clamp(-1.0, 1.0)
        if self.quantize:
            return AF.mu_law_encoding(wave, self.mu + 1).to(wave.dtype) / self.mu * 2 - 1
        return torch.sign(wave) * torch.log1p(self.mu * wave.abs()) / math.log1p(self.mu)

    def decode(self, x):
        if self.quantize:
            codes = ((x + 1) / 2 * self.mu).round().clamp(0, self.mu).long()
            return AF.mu_law_decoding(codes, self.mu + 1).to(x.dtype)
        return torch.sign(x) * torch.expm1(x.abs() * math.log1p(self.mu)) / self.mu


class RFFT(Representation):
    """Real FFT of each segment, packed losslessly into n real values for n samples.

    Layout: [re0, re1, im1, re2, im2, ..., re_last(, im_last)]. im0 is always zero, and for
    even n so is the imaginary part of the Nyquist bin; those two are the ones dropped.
    (The thesis dropped the Nyquist bin's real and imaginary parts, which loses information.)
    `norm` is torch.fft's: "backward" is the unnormalised FFT the thesis's loss scale implies.
    """

    def __init__(self, norm: str = "backward"):
        super().__init__()
        if norm not in ("backward", "ortho", "forward"):
            raise ConfigError(f"representation.norm={norm!r}: use one of backward, ortho, forward")
        self.norm = norm

    @staticmethod
    def pack(bins: torch.Tensor, n: int) -> torch.Tensor:
        """[..., n // 2 + 1, 2] (real, imaginary) per bin -> the packed [..., n] layout."""
        interleaved = bins.flatten(-2)
        return torch.cat([interleaved[..., :1], interleaved[..., 2 : n + 1]], dim=-1)

    @staticmethod
    def unpack(x: torch.Tensor) -> torch.Tensor:
        """The packed [..., n] layout -> [..., n // 2 + 1, 2] (real, imaginary) per bin, fp32."""
        n = x.shape[-1]
        interleaved = x.new_zeros(*x.shape[:-1], 2 * (n // 2 + 1), dtype=torch.float32)
        interleaved[..., 0] = x[..., 0]
        interleaved[..., 2 : n + 1] = x[..., 1:]
        return interleaved.unflatten(-1, (n // 2 + 1, 2))

    def encode(self, wave):
        return self.pack(torch.view_as_real(torch.fft.rfft(wave.float(), norm=self.norm)), wave.shape[-1])

    def decode(self, x):
        return torch.fft.irfft(torch.view_as_complex(self.unpack(x)), n=x.shape[-1], norm=self.norm)
