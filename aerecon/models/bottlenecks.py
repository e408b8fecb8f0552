"""Bottlenecks between an encoder's latent [B, C, T] and the decoder.

Each maps z to (z', terms): terms["total"] joins the training loss (already weighted), the
other entries are logged; `latent(z)` is z' in evaluation, without the terms. Built by the
training module with its network's latent channel count.
"""

import math

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

    scalable = False  # one rate: the codebook's

    def values(self, z: torch.Tensor) -> torch.Tensor:
        """The code's symbols [B, 1, T], as floats: each latent frame's codebook index."""
        b, c, t = z.shape
        return self.quantize(z.float().transpose(1, 2).reshape(b * t, c)).view(b, 1, t).float()

    def symbols(self, z: torch.Tensor) -> torch.Tensor:
        return self.values(z).long()

    def from_symbols(self, symbols: torch.Tensor, like: tuple[int, ...], scale: float = 1.0) -> torch.Tensor:
        return self.codebook.float()[symbols.view(symbols.shape[0], -1).long()].transpose(1, 2).reshape(like)

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


class FactorizedPrior(nn.Module):
    """A learned density for each latent channel (Ballé et al. 2018, "Variational image
    compression with a scale hyperprior", appendix 6.1): a small monotonic network per channel
    gives a cumulative c(x); the probability of an integer y, or of y plus uniform noise, is
    c(y + 1/2) - c(y - 1/2)."""

    def __init__(self, channels: int, filters: tuple[int, ...] = (3, 3, 3), init_scale: float = 10.0):
        super().__init__()
        sizes = (1, *filters, 1)
        scale = init_scale ** (1 / (len(sizes) - 1))
        self.matrices, self.biases, self.factors = nn.ParameterList(), nn.ParameterList(), nn.ParameterList()
        for i in range(len(sizes) - 1):
            init = math.log(math.expm1(1 / scale / sizes[i + 1]))
            self.matrices.append(nn.Parameter(torch.full((channels, sizes[i + 1], sizes[i]), init)))
            self.biases.append(nn.Parameter(torch.rand(channels, sizes[i + 1], 1) - 0.5))
            if i < len(sizes) - 2:
                self.factors.append(nn.Parameter(torch.zeros(channels, sizes[i + 1], 1)))

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        """c(x) before its sigmoid, for x [C, 1, N]."""
        for i, (matrix, bias) in enumerate(zip(self.matrices, self.biases)):
            x = F.softplus(matrix) @ x + bias
            if i < len(self.factors):
                x = x + torch.tanh(self.factors[i]) * torch.tanh(x)
        return x

    def likelihood(self, y: torch.Tensor) -> torch.Tensor:
        """The probability of each value of y [B, C, T] (at least 1e-9)."""
        b, c, t = y.shape
        v = y.transpose(0, 1).reshape(c, 1, b * t)
        lower, upper = self._logits(v - 0.5), self._logits(v + 0.5)
        sign = -torch.sign(lower + upper).detach()  # the sigmoids' flat side, for precision
        p = (torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower)).abs()
        return p.clamp_min(1e-9).reshape(c, b, t).transpose(0, 1)


class ScalarQuantizer(nn.Module):
    """Divides each latent channel by its quantisation step (learned, starting at `step`) and
    rounds: the code's symbols, priced in bits; the decoder receives symbols x step.

    - training adds uniform noise in [-1/2, 1/2) instead of rounding (Ballé et al. 2017), so the
      decoder learns what rounding does and the rate stays differentiable; evaluation rounds;
    - the rate is the symbols' information content under a learned FactorizedPrior per latent
      channel, in kbit/s of audio (`seconds` of audio per segment); the loss adds `rate_lambda` x kbit/s;
    - with `kbps` set, `rate_lambda` follows the rate: after `warmup_steps` training steps (the
      prior learns the latent's distribution first), each step multiplies it by
      (rate / kbps) ** `adapt`, so training settles near the target rate;
    - its own parameters (the prior and the steps) learn `lr_scale` times the optimizer's rate.
    A flat latent [B, n] counts as one channel. Compressed files code the symbols with
    constriction's range coder (aerecon.coding.learned).
    """

    needs_frames = False
    scalable = True  # compressed files may scale every step by one factor, to fit a rate

    def __init__(
        self,
        channels: int,
        seconds: float,
        rate_lambda: float = 0.01,
        kbps: float | None = None,
        adapt: float = 0.01,
        step: float = 1.0,
        warmup_steps: int = 1000,
        lr_scale: float = 10.0,
        filters: tuple[int, ...] = (3, 3, 3),
    ):
        super().__init__()
        if not (isinstance(rate_lambda, (int, float)) and math.isfinite(rate_lambda) and rate_lambda >= 0):
            raise ConfigError(f"model.bottleneck.rate_lambda={rate_lambda}: use a number of at least 0, e.g. 0.01")
        if kbps is not None and not (isinstance(kbps, (int, float)) and math.isfinite(kbps) and kbps > 0):
            raise ConfigError(f"codec.kbps={kbps}: use a rate in kbit/s above 0, e.g. codec.kbps=8")
        if not (isinstance(step, (int, float)) and math.isfinite(step) and step > 0):
            raise ConfigError(f"model.bottleneck.step={step}: use a quantisation step above 0, e.g. 1.0")
        self.seconds, self.kbps, self.adapt = float(seconds), kbps, adapt
        self.warmup_steps, self.lr_scale = warmup_steps, float(lr_scale)
        self.prior = FactorizedPrior(channels, tuple(filters))
        self.register_buffer("steps_taken", torch.zeros((), dtype=torch.long))
        self.log_step = nn.Parameter(torch.full((channels, 1), math.log(step)))
        self.register_buffer("rate_lambda", torch.tensor(float(rate_lambda)))  # follows the rate: resumes with it

    def values(self, z: torch.Tensor) -> torch.Tensor:
        """z [B, ...] in units of its channel's step, as [B, C, T]: rounded, the code's symbols."""
        channels = z.float().reshape(z.shape[0], z.shape[1] if z.dim() == 3 else 1, -1)
        return channels / self.log_step.exp()

    def symbols(self, z: torch.Tensor) -> torch.Tensor:
        """The integer symbols [B, C, T] of latents z."""
        return torch.round(self.values(z)).long()

    def from_symbols(self, symbols: torch.Tensor, like: tuple[int, ...], scale: float = 1.0) -> torch.Tensor:
        """Latents of shape `like` [B, ...] back from their symbols (of values divided by `scale`)."""
        return (symbols.float() * scale * self.log_step.exp()).reshape(like)

    def latent(self, z: torch.Tensor) -> torch.Tensor:
        return self.from_symbols(self.symbols(z), z.shape).to(z.dtype)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        y = self.values(z)
        if self.training:
            y = y + torch.empty_like(y).uniform_(-0.5, 0.5)
        else:
            y = torch.round(y)
        bits = -torch.log2(self.prior.likelihood(y)).sum((1, 2))
        kbps = bits.mean() / self.seconds / 1000
        if self.training and torch.is_grad_enabled():
            self.steps_taken += 1
            if self.kbps is not None and self.steps_taken > self.warmup_steps:
                self._follow(kbps.detach())
        terms = {"total": self.rate_lambda * kbps, "kbps": kbps.detach(), "rate_lambda": self.rate_lambda.clone()}
        return (y * self.log_step.exp()).reshape(z.shape).to(z.dtype), terms

    @torch.no_grad()
    def _follow(self, kbps: torch.Tensor) -> None:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            kbps = kbps.clone()  # every process takes the same step, from the global batch's rate
            torch.distributed.all_reduce(kbps)
            kbps /= torch.distributed.get_world_size()
        self.rate_lambda.mul_((kbps / self.kbps) ** self.adapt)
