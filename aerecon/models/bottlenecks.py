"""Bottlenecks between an encoder's latent [B, C, T] and the decoder.

Each maps z to (z', terms): terms["total"] joins the training loss (already weighted), the
other entries are logged; `latent(z)` is z' in evaluation, without the terms. Built by the
training module with its network's latent channel count.
"""

import torch
import torch.nn.functional as F
from torch import nn

from aerecon.utils.errors import ConfigError


class VectorQuantizer(nn.Module):
    """VQ-VAE bottleneck: each latent frame (a C-vector) becomes its nearest of `codebook_size` codes.

    - straight-through gradients to the encoder, commitment loss `beta * ||z - sg(q)||^2`;
    - `update="ema"`: codes follow exponential moving averages of the vectors assigned to
      them (decay `decay`); `update="loss"`: codes learn by the codebook loss ||sg(z) - q||^2;
    - dead codes (moving-average use below `dead_threshold` assignments per batch) restart at
      randomly chosen encoder outputs of the current batch, which also initialises the codebook;
    - under DDP the codebook stays identical on every rank (statistics of the global batch).
    Logs the codebook usage (fraction of codes used in the batch) and perplexity.
    """

    def __init__(
        self,
        channels: int,
        codebook_size: int = 512,
        beta: float = 0.25,
        update: str = "ema",
        decay: float = 0.99,
        dead_threshold: float = 0.01,
        eps: float = 1e-5,
    ):
        super().__init__()
        if update not in ("ema", "loss"):
            raise ConfigError(f"model.bottleneck.update={update}: use ema or loss")
        self.codebook_size, self.beta, self.update, self.decay = codebook_size, beta, update, decay
        self.dead_threshold, self.eps = dead_threshold, eps
        codebook = torch.randn(codebook_size, channels) * 0.01
        if update == "loss":
            self.codebook = nn.Parameter(codebook)
        else:
            self.register_buffer("codebook", codebook)
            self.register_buffer("ema_sum", codebook.clone())
            self.register_buffer("ema_count", torch.zeros(codebook_size))
        self.register_buffer("usage", torch.zeros(codebook_size))  # moving average of assignments per batch

    def quantize(self, flat: torch.Tensor) -> torch.Tensor:
        """Index of the nearest code for each row of `flat` [N, C]."""
        codebook = self.codebook.float()
        distance = flat.square().sum(1, keepdim=True) - 2 * flat @ codebook.T + codebook.square().sum(1)
        return distance.argmin(1)

    @torch.no_grad()
    def _learn(self, flat: torch.Tensor, index: torch.Tensor) -> None:
        # Under DDP every rank makes the same update, from the whole global batch: assignment
        # counts and sums are summed across ranks, and restarted codes come from rank 0's batch.
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
        counts = torch.bincount(index, minlength=self.codebook_size).float()
        if distributed:
            torch.distributed.all_reduce(counts)
        self.usage.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        if self.update == "ema":
            sums = torch.zeros_like(self.ema_sum).index_add_(0, index, flat)
            if distributed:
                torch.distributed.all_reduce(sums)
            self.ema_count.mul_(self.decay).add_(counts, alpha=1 - self.decay)
            self.ema_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
            n = self.ema_count.sum()
            smoothed = (self.ema_count + self.eps) / (n + self.codebook_size * self.eps) * n  # Laplace
            self.codebook.copy_(self.ema_sum / smoothed.unsqueeze(1))
        dead = self.usage < self.dead_threshold
        if dead.any():
            pick = torch.randint(len(flat), (int(dead.sum()),), device=flat.device)
            fresh = flat[pick].contiguous()
            if distributed:
                torch.distributed.broadcast(fresh, src=0)
            self.codebook.data[dead] = fresh.to(self.codebook.dtype)
            self.usage[dead] = self.dead_threshold  # a restarted code gets time to be chosen
            if self.update == "ema":
                self.ema_count[dead] = self.dead_threshold
                self.ema_sum[dead] = fresh * self.dead_threshold

    def latent(self, z: torch.Tensor) -> torch.Tensor:
        """What the decoder receives in evaluation (each frame's nearest code), without the loss terms."""
        b, c, t = z.shape
        flat = z.float().transpose(1, 2).reshape(-1, c)
        return self.codebook.float()[self.quantize(flat)].reshape(b, t, c).transpose(1, 2).to(z.dtype)

    def equally_near(self, z: torch.Tensor, a: torch.Tensor, b: torch.Tensor, tolerance: float) -> bool:
        """Whether the quantized latents `a` and `b` of `z` [B, C, T] differ only in frames where
        their codes are equally near z (within `tolerance`): a near tie that rounding may break
        either way, as an exported graph's arithmetic can."""
        distance_a, distance_b = ((z - q).float().square().sum(1).sqrt() for q in (a, b))
        return bool(((distance_a - distance_b).abs() <= tolerance).all())

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        b, c, t = z.shape
        flat = z.float().transpose(1, 2).reshape(-1, c)
        index = self.quantize(flat)
        if self.training:
            self._learn(flat.detach(), index)
            index = self.quantize(flat)  # restarted codes take part at once
        quantized = self.codebook.float()[index]
        commitment = F.mse_loss(flat, quantized.detach())
        total = self.beta * commitment
        terms = {"commitment": commitment}
        if self.update == "loss":
            terms["codebook"] = F.mse_loss(quantized, flat.detach())
            total = total + terms["codebook"]
        with torch.no_grad():
            p = torch.bincount(index, minlength=self.codebook_size).float() / len(index)
            terms["perplexity"] = torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum())
            terms["usage"] = (p > 0).float().mean()
        out = flat + (quantized - flat).detach()  # straight-through estimator
        return out.reshape(b, t, c).transpose(1, 2).to(z.dtype), {"total": total, **terms}


class VAEBottleneck(nn.Module):
    """VAE bottleneck: a 1x1 conv gives a mean and log-variance per latent number; training
    samples z = mu + sigma * eps (reparameterisation), evaluation uses mu.

    KL(q || N(0, 1)) is averaged over latent numbers and weighted by `kl_weight`, ramped
    linearly from 0 over `warmup_steps` training steps (counted in a buffer, so resume is exact).
    """

    def __init__(self, channels: int, kl_weight: float = 1e-3, warmup_steps: int = 1000):
        super().__init__()
        self.kl_weight, self.warmup_steps = kl_weight, warmup_steps
        self.stats = nn.Conv1d(channels, 2 * channels, 1)
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    def current_weight(self) -> float:
        ramp = 1.0 if self.warmup_steps <= 0 else min(1.0, int(self.step) / self.warmup_steps)
        return self.kl_weight * ramp

    def latent(self, z: torch.Tensor) -> torch.Tensor:
        """What the decoder receives in evaluation (the mean), without the loss terms."""
        return self.stats(z).float().chunk(2, dim=1)[0].to(z.dtype)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        mean, log_var = self.stats(z).float().chunk(2, dim=1)
        log_var = log_var.clamp(-30.0, 20.0)
        weight = self.current_weight()
        if self.training:
            sample = mean + torch.randn_like(mean) * torch.exp(0.5 * log_var)
            if torch.is_grad_enabled():
                self.step += 1
        else:
            sample = mean
        kl = 0.5 * (mean.square() + log_var.exp() - 1.0 - log_var).mean()
        return sample.to(z.dtype), {"total": weight * kl, "kl": kl, "kl_weight": torch.tensor(weight)}
