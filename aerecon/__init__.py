"""aerecon: train and compare neural audio autoencoders."""

from omegaconf import OmegaConf

__version__ = "0.1.0"

# `${samples:rate,seconds}`: segment length in samples, so model input sizes follow the data config.
OmegaConf.register_new_resolver(
    "samples", lambda rate, seconds: int(round(float(rate) * float(seconds))), replace=True
)
