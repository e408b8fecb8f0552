"""Lightning callbacks aerecon adds to every run."""

import resource
import time

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger

from aerecon.errors import ConfigError
from aerecon.figures import spectrogram_figure, spectrum_figure, waveform_figure
from aerecon.stitch import Stitcher


class StoreConfig(L.Callback):
    """Puts the run's resolved config into every checkpoint, so a checkpoint is self-contained."""

    def __init__(self, config: dict):
        self.config = config

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        checkpoint["aerecon"] = {"config": self.config}


class BestMetrics(L.Callback):
    """Remembers every validation metric at the epoch where `monitor` was best.

    Stateful, so a resumed run reports the same best epoch as an uninterrupted one.
    """

    def __init__(self, monitor: str = "val/loss", mode: str = "min"):
        self.monitor, self.mode = monitor, mode
        self.best_epoch: int | None = None
        self.best: dict[str, float] = {}

    @property
    def state_key(self) -> str:
        return self._generate_state_key(monitor=self.monitor, mode=self.mode)

    def on_validation_end(self, trainer: L.Trainer, pl_module) -> None:
        if trainer.sanity_checking or self.monitor not in trainer.callback_metrics:
            return
        value = float(trainer.callback_metrics[self.monitor])
        previous = self.best.get(self.monitor)
        if previous is None or (value < previous if self.mode == "min" else value > previous):
            self.best_epoch = trainer.current_epoch
            self.best = {k: float(v) for k, v in trainer.callback_metrics.items()
                         if k.startswith("val/") and isinstance(v, torch.Tensor) and v.numel() == 1}

    def state_dict(self) -> dict:
        return {"best_epoch": self.best_epoch, "best": dict(self.best)}

    def load_state_dict(self, state_dict: dict) -> None:
        self.best_epoch, self.best = state_dict["best_epoch"], dict(state_dict["best"])


class EpochPerf(L.Callback):
    """Logs seconds per epoch (training plus validation) and peak memory, in GiB, as scalars.

    perf/peak_cuda_gb is the epoch's peak of allocated CUDA memory (the figure an 8 GB card
    cares about); perf/peak_rss_gb is the process's peak resident memory since it started.
    """

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.start = time.perf_counter()
        if pl_module.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(pl_module.device)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        stats = {"perf/epoch_seconds": time.perf_counter() - self.start,
                 "perf/peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}  # KiB on Linux
        if pl_module.device.type == "cuda":
            stats["perf/peak_cuda_gb"] = torch.cuda.max_memory_allocated(pl_module.device) / 2**30
        pl_module.log_dict(stats, on_step=False, on_epoch=True)


def tensorboard_writer(trainer: L.Trainer):
    """The run's TensorBoard SummaryWriter, or None when it logs elsewhere."""
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            return logger.experiment
    return None


class ReconstructionPreview(L.Callback):
    """Every `every_n_epochs` epochs, logs one fixed validation song's reconstruction to
    TensorBoard: the audio (the original once) and its waveform, spectrum and spectrogram figures.

    The song is stitched from overlapping segments like `aerecon.evaluate` does, cut to
    `max_seconds`; the step of these entries is the epoch.
    """

    def __init__(self, every_n_epochs: int = 5, song: int = 0, max_seconds: float = 30.0, stitch: dict | None = None):
        if every_n_epochs < 1:
            raise ConfigError(f"callbacks.reconstruction_preview.every_n_epochs={every_n_epochs}: must be >= 1, e.g. 5")
        self.every_n_epochs, self.song, self.max_seconds = every_n_epochs, song, max_seconds
        self.stitch = dict(stitch or {})
        self.original_logged = False

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module) -> None:
        epoch = trainer.current_epoch
        writer = tensorboard_writer(trainer)
        songs = getattr(trainer.datamodule, "songs", {}).get("val")
        if trainer.sanity_checking or epoch % self.every_n_epochs or writer is None or not songs:
            return
        data = trainer.datamodule
        song = songs[min(self.song, len(songs) - 1)]
        original = torch.from_numpy(np.load(song.file)[: int(self.max_seconds * data.sample_rate)].copy())
        stitcher = Stitcher(data.segment_samples, **self.stitch)
        reconstruction = stitcher(pl_module.reconstruct, original.to(pl_module.device), data.batch_size).cpu()
        if not self.original_logged:
            writer.add_audio("preview/original", original.clamp(-1, 1), epoch, sample_rate=data.sample_rate)
            self.original_logged = True
        writer.add_audio("preview/reconstruction", reconstruction.clamp(-1, 1), epoch, sample_rate=data.sample_rate)
        for name, draw in (("waveform", waveform_figure), ("spectrum", spectrum_figure),
                           ("spectrogram", spectrogram_figure)):
            writer.add_figure(f"preview/{name}", draw(original, reconstruction, data.sample_rate,
                                                      f"{song.name}, epoch {epoch}"), epoch)
