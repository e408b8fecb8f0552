"""Small building blocks shared by the models."""

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from aerecon.utils.errors import ConfigError


def dense_stack(widths: list[int], last_activation: bool) -> nn.Sequential:
    """Linear layers through `widths`, ReLU after each (after the last only if asked)."""
    layers = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(a, b))
        if last_activation or i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


WEIGHT_INITS = ("pytorch", "kaiming")


def init_weights(encoder: nn.Module, decoder: nn.Module, scheme: str) -> None:
    """`pytorch`: leave PyTorch's defaults (the thesis models). `kaiming`: He-normal weights and zero
    biases for the ReLU layers, and a zero output layer. PyTorch's defaults shrink the signal at each
    ReLU layer, and a deep ReLU autoencoder trained from them tends to learn to output silence; a
    zero output layer starts silent and learns only the directions the data supports."""
    if scheme not in WEIGHT_INITS:
        raise ConfigError(f"model.net.weight_init={scheme!r}: use one of {', '.join(WEIGHT_INITS)}")
    if scheme == "pytorch":
        return
    layers = [
        m
        for part in (encoder, decoder)
        for m in part.modules()
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.ConvTranspose1d))
    ]
    for layer in layers:
        # A transposed conv's weight is [in, out, k]: each output sums over its inputs, PyTorch's fan_out.
        mode = "fan_out" if isinstance(layer, nn.ConvTranspose1d) else "fan_in"
        nn.init.kaiming_normal_(layer.weight, mode=mode, nonlinearity="relu")
        nn.init.zeros_(layer.bias)
    nn.init.zeros_(layers[-1].weight)


class Checkpointed(nn.Sequential):
    """A Sequential that, when `enabled`, recomputes its activations in backward."""

    enabled = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.enabled and torch.is_grad_enabled():
            return checkpoint(super().forward, x, use_reentrant=False)
        return super().forward(x)


class Snake(nn.Module):
    """x + sin^2(alpha x) / alpha, alpha learned per channel: a periodic-friendly activation (DAC, BigVGAN)."""

    def __init__(self, channels: int):
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.sin(self.alpha * x).square() / (self.alpha + 1e-9)


def activation(name: str, channels: int) -> nn.Module:
    """snake (periodic-friendly, about 2x the time of elu on CPU), elu or leaky_relu."""
    if name == "snake":
        return Snake(channels)
    if name in ("elu", "leaky_relu"):
        return nn.ELU() if name == "elu" else nn.LeakyReLU(0.1)
    raise ConfigError(f"model.net.activation={name}: use snake, elu or leaky_relu")


class ResidualUnit(nn.Module):
    """x + conv1x1(act(dilated conv(act(x)))): length-preserving, receptive field 1 + (kernel-1) * dilation."""

    def __init__(self, channels: int, dilation: int, kernel_size: int = 7, act: str = "snake"):
        super().__init__()
        self.block = nn.Sequential(
            activation(act, channels),
            nn.Conv1d(channels, channels, kernel_size, dilation=dilation, padding=(kernel_size - 1) * dilation // 2),
            activation(act, channels),
            nn.Conv1d(channels, channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)
