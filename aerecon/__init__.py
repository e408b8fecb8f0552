"""aerecon: train and compare neural audio autoencoders."""

import os

from omegaconf import OmegaConf

__version__ = "0.1.0"

# `${samples:rate,seconds}`: segment length in samples, so model input sizes follow the data config.
OmegaConf.register_new_resolver(
    "samples", lambda rate, seconds: int(round(float(rate) * float(seconds))), replace=True
)
# `${cwd:}`: where the command was started (Hydra does not chdir); usable before a job exists,
# unlike `${hydra:runtime.cwd}`, e.g. in the sweep folder's path.
OmegaConf.register_new_resolver("cwd", os.getcwd, replace=True)
