"""aerecon: train and compare neural audio autoencoders.

The commands are the modules at this level (`python -m aerecon.train`, `aerecon-train`, ...);
the pieces they compose live in rooms by concern: `audio` (decoding and writing, representations,
stitching, figures), `data` (datamodules, cache, stream, upload), `models` (nets, bottlenecks, the
LightningModule, losses, metrics), `training` (callbacks, checkpoints, the run folder and resume)
and `utils` (errors, files, logs, config helpers, settings rules).
"""

__version__ = "0.1.0"


def load(ckpt_path, device=None):
    """A trained model from its checkpoint, to encode, decode and reconstruct waveforms without a
    Trainer: see aerecon.models.inference.Autoencoder."""
    from aerecon.training.checkpoint import load as load_checkpoint  # here, so `import aerecon` stays light

    return load_checkpoint(ckpt_path, device)
