"""The thesis's 1-D convolutional autoencoder, for any input length."""

from torch import nn

from aerecon.models.layers import Checkpointed, init_weights
from aerecon.models.net import Net, check_latent
from aerecon.utils.errors import ConfigError


def conv_lengths(length: int, depth: int, kernel_size: int, stride: int, padding: int) -> list[int]:
    """Signal length before and after each of `depth` Conv1d layers."""
    lengths = [length]
    for _ in range(depth):
        lengths.append((lengths[-1] + 2 * padding - kernel_size) // stride + 1)
    return lengths


def output_padding(target: int, length: int, kernel_size: int, stride: int, padding: int) -> int:
    """The ConvTranspose1d output padding that turns `length` frames back into `target` samples."""
    return target - ((length - 1) * stride - 2 * padding + kernel_size)


class ConvAutoencoder(Net):
    """Conv1d stack -> dense bottleneck -> mirrored ConvTranspose1d stack.

    ReLU after every layer but the last. Each transposed conv gets the output padding that
    restores the length its mirror conv received, so any input length round-trips. Defaults
    on 13230 samples are the thesis model (698,357,061 parameters).
    """

    def __init__(
        self,
        input_length: int,
        channels: list[int] = (16, 32, 64),
        kernel_size: int = 4,
        stride: int = 2,
        padding: int = 1,
        latent: int = 3300,
        weight_init: str = "pytorch",
    ):
        super().__init__()
        lengths = conv_lengths(input_length, len(channels), kernel_size, stride, padding)
        if lengths[-1] < 1:
            raise ConfigError(
                f"data segment of {input_length} samples is too short for {len(channels)} conv layers "
                f"(kernel {kernel_size}, stride {stride}): lengths would be {lengths}. "
                "Use longer segments, e.g. data.segment_seconds=3.0, or fewer model.net.channels, "
                "e.g. model.net.channels=[16]"
            )
        flat = channels[-1] * lengths[-1]
        check_latent(latent, input_length)
        chans = [1, *channels]
        down, up = [], []
        for i in range(len(channels)):
            down += [nn.Conv1d(chans[i], chans[i + 1], kernel_size, stride, padding), nn.ReLU()]
        for i in reversed(range(len(channels))):
            up.append(
                nn.ConvTranspose1d(
                    chans[i + 1],
                    chans[i],
                    kernel_size,
                    stride,
                    padding,
                    output_padding=output_padding(lengths[i], lengths[i + 1], kernel_size, stride, padding),
                )
            )
            if i > 0:
                up.append(nn.ReLU())
        self.encoder = nn.Sequential(Checkpointed(*down), nn.Flatten(), nn.Linear(flat, latent), nn.ReLU())
        self.decoder = nn.Sequential(
            nn.Linear(latent, flat), nn.ReLU(), nn.Unflatten(1, (channels[-1], lengths[-1])), Checkpointed(*up)
        )
        init_weights(self.encoder, self.decoder, weight_init)
        self.input_length, self.latent_shape = input_length, (latent,)
