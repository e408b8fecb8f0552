"""Losses as named terms (auraloss style): each returns a dict whose "total" is optimised and
whose other entries are logged.

Every loss takes the reconstruction in both domains, `(output, target, output_wave,
target_wave)`: the representation-domain tensors the model produced and was given, and their
waveforms. Each term picks the domain it works in.
"""

import torch
import torch.nn.functional as F
from torch import nn

from aerecon.utils.errors import ConfigError


class MSELoss(nn.Module):
    """Mean squared error in the representation domain (the thesis's loss).

    `normalized=True` divides by the target's mean square, making the term 1/SNR (linear) of
    the batch: then its scale no longer depends on the representation (an unnormalised RFFT's
    MSE is n/2 times the waveform's), which matters once it is weighed against other terms.
    """

    def __init__(self, normalized: bool = False, eps: float = 1e-8):
        super().__init__()
        self.normalized, self.eps = normalized, eps

    def forward(self, output, target, output_wave=None, target_wave=None) -> dict[str, torch.Tensor]:
        mse = F.mse_loss(output.float(), target.float())
        if self.normalized:
            mse = mse / target.float().square().mean().clamp_min(self.eps)
        return {"total": mse}


class MultiResolutionSTFTLoss(nn.Module):
    """Spectral convergence plus L1 log-magnitude distance, averaged over several FFT sizes.

    Per resolution: sc = ||S - S^||_F / ||S||_F and log_mag = mean |log(S + eps) - log(S^ + eps)|
    on Hann-windowed magnitude spectrograms (hop = fft_size / 4) of the waveforms. Always
    computed in fp32. Defaults suit 4410 Hz audio (29 ms to 116 ms windows).
    """

    def __init__(self, fft_sizes: tuple[int, ...] = (128, 256, 512), eps: float = 1e-7):
        super().__init__()
        self.fft_sizes, self.eps = tuple(fft_sizes), eps

    def _magnitude(self, x: torch.Tensor, n_fft: int) -> torch.Tensor:
        window = torch.hann_window(n_fft, device=x.device)
        spec = torch.stft(
            x.reshape(-1, x.shape[-1]).float(), n_fft, hop_length=n_fft // 4, window=window, return_complex=True
        )
        return spec.abs()

    def forward(self, output, target, output_wave=None, target_wave=None) -> dict[str, torch.Tensor]:
        # Called with two tensors (e.g. by the metrics), they are the waveforms.
        output, target = (output, target) if output_wave is None else (output_wave, target_wave)
        with torch.autocast(output.device.type, enabled=False):
            sc = log_mag = 0.0
            for n_fft in self.fft_sizes:
                s_hat, s = self._magnitude(output, n_fft), self._magnitude(target, n_fft)
                sc = sc + torch.linalg.vector_norm(s - s_hat) / torch.linalg.vector_norm(s).clamp_min(self.eps)
                log_mag = log_mag + (torch.log(s + self.eps) - torch.log(s_hat + self.eps)).abs().mean()
            sc, log_mag = sc / len(self.fft_sizes), log_mag / len(self.fft_sizes)
        return {"total": sc + log_mag, "sc": sc, "log_mag": log_mag}


class WeightedSum(nn.Module):
    """total = sum of weight * term["total"]; every term's parts are reported as "name/part".

    `terms` maps a name to a loss module, `weights` the same names to floats (default 1).
    """

    def __init__(self, terms: dict[str, nn.Module], weights: dict[str, float] | None = None):
        super().__init__()
        weights = dict(weights or {})
        unknown = set(weights) - set(terms)
        if unknown:
            raise ConfigError(
                f"loss.weights names {sorted(unknown)}, which are not among the terms {sorted(terms)}; "
                f"e.g. loss=mse_stft loss.weights.stft=0.1"
            )
        self.terms = nn.ModuleDict(terms)
        self.weights = {name: float(weights.get(name, 1.0)) for name in terms}

    def forward(self, output, target, output_wave, target_wave) -> dict[str, torch.Tensor]:
        report, total = {}, 0.0
        for name, term in self.terms.items():
            parts = term(output, target, output_wave, target_wave)
            total = total + self.weights[name] * parts["total"]
            report[name] = parts["total"]
            report.update({f"{name}/{part}": value for part, value in parts.items() if part != "total"})
        return {"total": total, **report}
