"""The thesis's fully connected ("base") autoencoder."""

from aerecon.models.layers import Checkpointed, dense_stack, init_weights
from aerecon.models.net import Net, check_latent


class FCAutoencoder(Net):
    """input_length -> hidden... -> latent -> reversed(hidden)... -> input_length.

    ReLU after every layer but the last. Defaults on 13230 samples are the thesis model:
    13230 -> 9800 -> 6500 -> 3300 -> 6500 -> 9800 -> 13230, 429,657,130 parameters.
    """

    def __init__(
        self, input_length: int, hidden: list[int] = (9800, 6500), latent: int = 3300, weight_init: str = "pytorch"
    ):
        super().__init__()
        check_latent(latent, input_length)
        widths = [input_length, *hidden, latent]
        self.encoder = Checkpointed(*dense_stack(widths, last_activation=True))
        self.decoder = Checkpointed(*dense_stack(widths[::-1], last_activation=False))
        init_weights(self.encoder, self.decoder, weight_init)
        self.input_length, self.latent_shape = input_length, (1, latent)
