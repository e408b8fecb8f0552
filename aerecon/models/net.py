"""What every network is: a plain nn.Module from representation-domain segments to a latent and back."""

import math

import torch
from torch import nn

from aerecon.utils.errors import ConfigError

VALUE_BITS = 32  # codes hold float32 values


def position_bits(choices: int) -> int:
    """Bits that one position among `choices` needs."""
    return max(1, math.ceil(math.log2(choices)))


def check_latent(latent: int, input_length: int) -> None:
    if not 0 < latent <= input_length:
        raise ConfigError(
            f"model.net.latent={latent} must be between 1 and the model's input length {input_length} (one "
            f"data.segment_seconds segment at data.sample_rate, in the representation): e.g. "
            f"model.net.latent={max(1, input_length // 4)}, or longer segments, e.g. data.segment_seconds=3.0"
        )


class Net(nn.Module):
    """`encode`: segments [B, 1, input_length] -> latents [B, *latent_shape]; `decode`: back.

    Subclasses build `encoder` and `decoder` (or override encode and decode) and set
    `input_length` and `latent_shape`. `pack` and `unpack` turn a latent into the numbers one
    segment's code holds (by default the latent itself, flattened); `code_bits` what they take
    stored (values as float32, positions at the bits they need). Class attributes say what a
    network needs around it:
    - `representation` and `representation_hint`: the representation it requires, if any;
    - `takes_bottleneck`: a [channels, frames] latent that a vq or vae bottleneck can act on;
    - `dense_latent`: the latent is numbers a quantized bottleneck can round (not positions);
    - `fits`: not learned by gradients, but fitted in one pass over the training split
      (`fit_batch` per batch of waveforms, `fit_end` once the pass is over).
    """

    input_length: int
    latent_shape: tuple[int, ...]
    representation: type | None = None
    representation_hint = ""
    takes_bottleneck = False
    dense_latent = True
    fits = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def pack(self, z: torch.Tensor) -> torch.Tensor:
        """Latents [B, *latent_shape] -> codes [B, numbers]."""
        return z.flatten(1)

    def unpack(self, code: torch.Tensor) -> torch.Tensor:
        return code.view(code.shape[0], *self.latent_shape)

    def code_bits(self) -> int:
        """Bits of one segment's code: its values as float32, its positions (if any) at the bits they need."""
        return VALUE_BITS * math.prod(self.latent_shape)

    def fit_batch(self, wave: torch.Tensor) -> None:
        """A fitted network's look at one training batch of waveforms [B, 1, n]."""

    def fit_end(self) -> None:
        """A fitted network's choice, once it has seen the training split."""
