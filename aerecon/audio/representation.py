"""Invertible transforms between waveform segments [B, 1, n] and model inputs [B, 1, n].

They run per batch on the model's device; losses live in the representation domain, metrics
always in the time domain (after `decode`).
"""

import math

import torch
import torchaudio.functional as AF
from torch import nn

from aerecon.utils.errors import ConfigError


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


def _factor(n: int) -> tuple[int, int]:
    """n = n1 * n2 with n1 the largest divisor of n not above its square root."""
    n1 = max(d for d in range(1, math.isqrt(n) + 1) if n % d == 0)
    return n1, n // n1


def _dft_matrix(n: int, sign: float) -> torch.Tensor:
    k = torch.arange(n, dtype=torch.float64)
    angle = sign * 2 * math.pi * torch.outer(k, k) / n
    return torch.stack([torch.cos(angle), torch.sin(angle)]).float()  # [2, n, n]: real, imaginary


class FactoredDFT(nn.Module):
    """The DFT of length n as two small DFTs and a twiddle (Cooley-Tukey, n = n1 * n2), written
    with matrix products only, so that an exported graph (ONNX) computes it exactly as torch.fft
    does to float32 rounding, at any length: onnxruntime's own DFT of a length that is not a
    power of two is a single-precision sum over all n points, too coarse for long segments.

    Input and output [..., n, 2] (real, imaginary); `sign` -1 is the forward transform, +1 the
    inverse (unscaled)."""

    def __init__(self, n: int, sign: float):
        super().__init__()
        self.n, (self.n1, self.n2) = n, _factor(n)
        m2, k1 = torch.arange(self.n2, dtype=torch.float64), torch.arange(self.n1, dtype=torch.float64)
        angle = sign * 2 * math.pi * torch.outer(k1, m2) / n
        self.register_buffer("first", _dft_matrix(self.n1, sign), persistent=False)
        self.register_buffer("second", _dft_matrix(self.n2, sign), persistent=False)
        self.register_buffer("twiddle", torch.stack([torch.cos(angle), torch.sin(angle)]).float(), persistent=False)

    @staticmethod
    def _mul(a: torch.Tensor, b: torch.Tensor, matmul: bool) -> tuple[torch.Tensor, torch.Tensor]:
        op = torch.matmul if matmul else torch.mul
        (ar, ai), (br, bi) = a, b
        return op(ar, br) - op(ai, bi), op(ar, bi) + op(ai, br)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grid = x.reshape(*x.shape[:-2], self.n1, self.n2, 2)  # x[n2 * m1 + m2] at [m1, m2]
        a = (grid[..., 0], grid[..., 1])
        b = self._mul((self.first[0], self.first[1]), a, matmul=True)  # over m1: [k1, m2]
        c = self._mul(b, (self.twiddle[0], self.twiddle[1]), matmul=False)
        d = self._mul(c, (self.second[0], self.second[1]), matmul=True)  # over m2: [k1, k2]
        out = torch.stack(d, dim=-1).transpose(-3, -2)  # X[k1 + n1 * k2] at [k2, k1]
        return out.reshape(*x.shape[:-2], self.n, 2)


class ExportableRFFT(Representation):
    """RFFT's encode and decode through FactoredDFT (matrix products only), for exported graphs;
    the same packing and normalisation as RFFT."""

    def __init__(self, rfft: RFFT, n: int):
        super().__init__()
        self.n, self.norm = n, rfft.norm
        self.forward_dft, self.inverse_dft = FactoredDFT(n, -1.0), FactoredDFT(n, 1.0)
        half = n // 2 + 1
        self.register_buffer("mirror", torch.arange(n - half, 0, -1), persistent=False)  # X[n - k] for k >= half
        self.forward_scale = {"backward": 1.0, "ortho": 1 / math.sqrt(n), "forward": 1 / n}[self.norm]
        self.inverse_scale = {"backward": 1 / n, "ortho": 1 / math.sqrt(n), "forward": 1.0}[self.norm]

    def encode(self, wave):
        x = torch.stack([wave.float(), torch.zeros_like(wave, dtype=torch.float32)], dim=-1)
        bins = self.forward_dft(x)[..., : self.n // 2 + 1, :] * self.forward_scale
        return RFFT.pack(bins, self.n)

    def decode(self, x):
        bins = RFFT.unpack(x)
        tail = bins.index_select(-2, self.mirror) * torch.tensor([1.0, -1.0])  # the conjugate half
        full = torch.cat([bins, tail], dim=-2)
        return self.inverse_dft(full)[..., 0] * self.inverse_scale
