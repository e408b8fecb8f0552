"""A fully convolutional autoencoder (DAC-style): no dense bottleneck, a [C, T] latent."""

import math

from torch import nn

from aerecon.models.conv import conv_lengths, output_padding
from aerecon.models.layers import Checkpointed, ResidualUnit
from aerecon.models.layers import activation as activation_layer
from aerecon.models.net import Net, check_latent
from aerecon.utils.errors import ConfigError


class ResConvAutoencoder(Net):
    """Input conv -> per stride: residual units (dilated convs) then a strided conv -> residual
    units at the latent rate -> a fitting conv to `latent_channels` x T frames. The decoder
    mirrors it with transposed convs.

    - `channels` has one more entry than `strides`: the width before each downsampling and after the last.
    - The latent holds exactly `latent` numbers: T = latent / latent_channels frames. The strided
      stack leaves L frames; a final conv of kernel L - T + 1 (no padding) brings them to T, so
      the latent can match another model's size exactly (3300 for 13230 samples: strides
      2,2,2,2 leave 826 frames, 4 channels x 825 frames).
    - Any input length round-trips: each transposed conv gets the output padding that restores
      the length its mirror conv received.
    - Works on any representation ([B, 1, n] in and out); a bottleneck (vq, vae) can act on the latent.
    """

    takes_bottleneck = True

    def __init__(
        self,
        input_length: int,
        channels: list[int] = (16, 32, 64, 128, 256),
        strides: list[int] = (2, 2, 2, 2),
        latent: int = 3300,
        latent_channels: int = 4,
        kernel_size: int = 7,
        dilations: list[int] = (1, 3, 9),
        activation: str = "snake",
    ):
        super().__init__()
        channels, strides = list(channels), list(strides)
        lengths, frames, fit = _strided_lengths(input_length, channels, strides, latent, latent_channels)

        def act(c: int) -> nn.Module:
            return activation_layer(activation, c)

        def units(c: int) -> list[nn.Module]:
            return [ResidualUnit(c, d, kernel_size, activation) for d in dilations]

        down = [nn.Conv1d(1, channels[0], kernel_size, padding=kernel_size // 2)]
        for i, s in enumerate(strides):
            down += [*units(channels[i]), act(channels[i]), _down(channels[i], channels[i + 1], s)]
        up = []
        for i in reversed(range(len(strides))):
            up += [act(channels[i + 1]), _up(channels[i + 1], channels[i], strides[i], lengths[i], lengths[i + 1])]
            up += units(channels[i])
        self.encoder = nn.Sequential(
            Checkpointed(*down, *units(channels[-1])), act(channels[-1]), nn.Conv1d(channels[-1], latent_channels, fit)
        )
        self.decoder = nn.Sequential(
            nn.ConvTranspose1d(latent_channels, channels[-1], fit),
            Checkpointed(*units(channels[-1]), *up),
            act(channels[0]),
            nn.Conv1d(channels[0], 1, kernel_size, padding=kernel_size // 2),
        )
        self.input_length, self.latent_shape = input_length, (latent_channels, frames)


def _down(c_in: int, c_out: int, stride: int) -> nn.Conv1d:
    return nn.Conv1d(c_in, c_out, 2 * stride, stride, math.ceil(stride / 2))


def _up(c_in: int, c_out: int, stride: int, length: int, strided_length: int) -> nn.ConvTranspose1d:
    """The mirror of `_down`, padded so that `strided_length` frames come back as `length` samples."""
    k, p = 2 * stride, math.ceil(stride / 2)
    return nn.ConvTranspose1d(
        c_in, c_out, k, stride, p, output_padding=output_padding(length, strided_length, k, stride, p)
    )


def _strided_lengths(
    input_length: int, channels: list[int], strides: list[int], latent: int, latent_channels: int
) -> tuple[list[int], int, int]:
    """(the length after each strided conv, the latent's frames, the fitting conv's kernel), or a
    ConfigError naming the setting to change."""
    if len(channels) != len(strides) + 1:
        raise ConfigError(
            f"model.net.channels={channels} needs one entry more than model.net.strides={strides}, "
            f"e.g. channels=[16,32,64,128,256] strides=[2,2,2,2]"
        )
    check_latent(latent, input_length)
    if latent % latent_channels:
        raise ConfigError(
            f"model.net.latent={latent} is not a whole number of frames of "
            f"model.net.latent_channels={latent_channels}; e.g. latent=3300 latent_channels=4"
        )
    frames = latent // latent_channels
    lengths = [input_length]
    for s in strides:
        lengths.append(conv_lengths(lengths[-1], 1, 2 * s, s, math.ceil(s / 2))[-1])
    fit = lengths[-1] - frames + 1
    if lengths[-1] < 1 or fit < 1 or fit > max(lengths[-1] // 2, 8):
        raise ConfigError(
            f"model.net.strides={strides} leave {lengths[-1]} frames of the {input_length}-sample input "
            f"(lengths {lengths}), but model.net.latent={latent} / latent_channels={latent_channels} asks for "
            f"{frames} frames: change model.net.latent_channels or model.net.strides so the two are close "
            f"(frames may be at most the strided length)"
        )
    return lengths, frames, fit
