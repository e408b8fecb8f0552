"""Losses as named terms (auraloss style): each returns a dict whose "total" is optimised and
whose other entries are logged."""

import torch
from torch import nn


class MultiResolutionSTFTLoss(nn.Module):
    """Spectral convergence plus L1 log-magnitude distance, averaged over several FFT sizes.

    Per resolution: sc = ||S - S^||_F / ||S||_F and log_mag = mean |log(S + eps) - log(S^ + eps)|
    on Hann-windowed magnitude spectrograms (hop = fft_size / 4). Always computed in fp32.
    Defaults suit 4410 Hz audio (29 ms to 116 ms windows).
    """

    def __init__(self, fft_sizes: tuple[int, ...] = (128, 256, 512), eps: float = 1e-7):
        super().__init__()
        self.fft_sizes, self.eps = tuple(fft_sizes), eps

    def _magnitude(self, x: torch.Tensor, n_fft: int) -> torch.Tensor:
        window = torch.hann_window(n_fft, device=x.device)
        spec = torch.stft(x.reshape(-1, x.shape[-1]).float(), n_fft, hop_length=n_fft // 4, window=window,
                          return_complex=True)
        return spec.abs()

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.autocast(output.device.type, enabled=False):
            sc = log_mag = 0.0
            for n_fft in self.fft_sizes:
                s_hat, s = self._magnitude(output, n_fft), self._magnitude(target, n_fft)
                sc = sc + torch.linalg.vector_norm(s - s_hat) / torch.linalg.vector_norm(s).clamp_min(self.eps)
                log_mag = log_mag + (torch.log(s + self.eps) - torch.log(s_hat + self.eps)).abs().mean()
            sc, log_mag = sc / len(self.fft_sizes), log_mag / len(self.fft_sizes)
        return {"total": sc + log_mag, "sc": sc, "log_mag": log_mag}
