"""Small building blocks shared by the models."""

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint


def dense_stack(widths: list[int], last_activation: bool) -> nn.Sequential:
    """Linear layers through `widths`, ReLU after each (after the last only if asked)."""
    layers = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(a, b))
        if last_activation or i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class Checkpointed(nn.Sequential):
    """A Sequential that, when `enabled`, recomputes its activations in backward."""

    enabled = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.enabled and torch.is_grad_enabled():
            return checkpoint(super().forward, x, use_reentrant=False)
        return super().forward(x)
