"""Lightning callbacks aerecon adds to every run."""

import logging
import math
import resource
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint, ModelSummary, RichProgressBar
from lightning.pytorch.loggers import TensorBoardLogger

from aerecon.audio.figures import spectrogram_figure, spectrum_figure, waveform_figure
from aerecon.audio.stitch import Stitcher
from aerecon.utils.errors import ConfigError, Stopped
from aerecon.utils.private_api import BestAndLastCheckpoint, state_key  # noqa: F401  (BestAndLastCheckpoint: conf/callbacks)

log = logging.getLogger(__name__)


class StoreConfig(L.Callback):
    """Puts the run's resolved config into every checkpoint, so a checkpoint is self-contained."""

    def __init__(self, config: dict):
        self.config = config

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        checkpoint["aerecon"] = {"config": self.config}


class ProgressBar(RichProgressBar):
    """Lightning's rich progress bar, brought up to date at most every `interval` seconds, and at
    each bar's first and last batch.

    Lightning's updates it after every batch (rich's task bookkeeping and the bar's metrics) for
    a display that rich redraws `refresh_rate` times a second (experiments/bench_overhead.py
    measures what that costs a small model's step).
    """

    def __init__(self, interval: float = 0.25, **kwargs):
        if interval < 0:
            raise ConfigError(f"callbacks.progress_bar.interval must be at least 0 seconds, got {interval}")
        super().__init__(**kwargs)
        self.interval = interval
        self._updated = -float("inf")

    def _due(self, batch_idx: int, batches: float | int) -> bool:
        """A bar's first and last batch, and any batch `interval` seconds after the last update."""
        now = time.monotonic()
        if now - self._updated < self.interval and 0 < batch_idx < batches - 1:
            return False
        self._updated = now
        return True

    def get_metrics(self, trainer: L.Trainer, pl_module) -> dict:
        metrics = super().get_metrics(trainer, pl_module)
        loss = pl_module.latest_train_loss() if hasattr(pl_module, "latest_train_loss") else None
        if loss is not None and trainer.training:  # read here, not logged every step (see AutoencoderModule._log_train)
            metrics["train/loss"] = loss
        return metrics

    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if self._due(batch_idx, trainer.num_training_batches):
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def on_validation_batch_end(
        self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        batches = (trainer.num_sanity_val_batches if trainer.sanity_checking else trainer.num_val_batches)[
            dataloader_idx
        ]
        if self._due(batch_idx, batches):
            super().on_validation_batch_end(trainer, pl_module, outputs, batch, batch_idx, dataloader_idx)

    def on_test_batch_end(
        self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        if self._due(batch_idx, trainer.num_test_batches[dataloader_idx]):
            super().on_test_batch_end(trainer, pl_module, outputs, batch, batch_idx, dataloader_idx)


class ModelSize(ModelSummary):
    """One line with the model's size when a run starts; `table=True` prints Lightning's table of
    every layer (to `max_depth`) instead."""

    def __init__(self, table: bool = False, max_depth: int = 3):
        super().__init__(max_depth=max_depth)
        self.table = table

    def summarize(
        self,
        summary_data,
        total_parameters: int,
        trainable_parameters: int,
        model_size: float,
        total_training_modes,
        total_flops: int = 0,
        **kwargs,
    ) -> None:
        if self.table:
            super().summarize(
                summary_data,
                total_parameters,
                trainable_parameters,
                model_size,
                total_training_modes,
                total_flops,
                **kwargs,
            )
            return
        log.info(
            "Model: %s parameters (%s trainable), %.1f MB as float32; callbacks.model_summary.table=true "
            "lists its layers",
            f"{total_parameters:,}",
            f"{trainable_parameters:,}",
            model_size,
        )


class RNGState(L.Callback):
    """Saves torch's global RNG states (CPU and CUDA) in checkpoints and restores them on resume,
    so models that draw random numbers while training (VAE sampling, VQ restarts, dropout)
    continue exactly as an uninterrupted run would."""

    def state_dict(self) -> dict:
        state = {"cpu": torch.get_rng_state()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        torch.set_rng_state(state_dict["cpu"])
        if "cuda" in state_dict and torch.cuda.is_available() and len(state_dict["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(state_dict["cuda"])


class GracefulStop(L.Callback):
    """SIGINT (Ctrl+C) or SIGTERM (a scheduler's stop): finish the current training batch, save
    last.ckpt there (resumable mid-epoch), and stop with a message saying how to resume.

    A second SIGINT stops at once, as Ctrl+C usually does; last.ckpt is then the previous one.
    Outside fit (caching, testing) the signals keep their usual meaning.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, resume_command: Callable[[Path], str] = lambda ckpt: f"aerecon-train ckpt_path={ckpt}"):
        self.resume_command = resume_command
        self.received: signal.Signals | None = None
        self._previous: dict = {}

    def _handle(self, signum: int, frame) -> None:
        if self.received is not None and signum == signal.SIGINT:
            self._restore()
            raise KeyboardInterrupt
        self.received = signal.Signals(signum)
        log.warning(
            "%s received: stopping after this batch, with last.ckpt saved (Ctrl+C again stops at once)",
            self.received.name,
        )

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def on_train_start(self, trainer: L.Trainer, pl_module) -> None:
        # after Lightning registered its own SIGTERM handler, which this one stands in for until fit ends
        self.received = None
        if threading.current_thread() is threading.main_thread():
            self._previous = {signum: signal.signal(signum, self._handle) for signum in self.SIGNALS}

    def on_fit_end(self, trainer: L.Trainer, pl_module) -> None:
        self._restore()

    def on_exception(self, trainer: L.Trainer, pl_module, exception: BaseException) -> None:
        self._restore()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        stop = self.received is not None
        if trainer.world_size > 1:  # DDP: every rank stops at the same batch if any rank was signalled
            stop = trainer.strategy.reduce_boolean_decision(stop, all=False)
        if not stop:
            return
        received = self.received or signal.SIGTERM
        callback = trainer.checkpoint_callback
        directory = Path(callback.dirpath) if callback and callback.dirpath else Path(trainer.default_root_dir)
        last = directory / f"{ModelCheckpoint.CHECKPOINT_NAME_LAST}{ModelCheckpoint.FILE_EXTENSION}"
        trainer.save_checkpoint(last)
        for logger in trainer.loggers:
            logger.finalize("interrupted")
        raise Stopped(
            f"{received.name} at epoch {trainer.current_epoch}, batch {batch_idx + 1} of "
            f"{trainer.num_training_batches} (step {trainer.global_step}); saved {last}. "
            f"Resume with: {self.resume_command(last)}",
            received.value,
        )


class BestMetrics(L.Callback):
    """Remembers every validation metric at the epoch where `monitor` was best.

    Stateful, so a resumed run reports the same best epoch as an uninterrupted one.
    """

    def __init__(self, monitor: str = "val/loss", mode: str = "min"):
        self.monitor, self.mode = monitor, mode
        self._state_key = state_key(self, monitor=monitor, mode=mode)
        self.best_epoch: int | None = None
        self.best: dict[str, float] = {}

    @property
    def state_key(self) -> str:  # Lightning reads it at every hook call, so it is built once
        return self._state_key

    def on_validation_end(self, trainer: L.Trainer, pl_module) -> None:
        if trainer.sanity_checking or self.monitor not in trainer.callback_metrics:
            return
        value = float(trainer.callback_metrics[self.monitor])
        if not math.isfinite(value):  # before the checkpoint callbacks (Lightning runs them last) save it as a best
            raise pl_module.divergence(
                f"{self.monitor} became {value} at epoch {trainer.current_epoch}: the model's "
                f"reconstructions are not finite"
            )
        previous = self.best.get(self.monitor)
        if previous is None or (value < previous if self.mode == "min" else value > previous):
            self.best_epoch = trainer.current_epoch
            self.best = {
                k: float(v)
                for k, v in trainer.callback_metrics.items()
                if k.startswith("val/") and isinstance(v, torch.Tensor) and v.numel() == 1
            }

    def state_dict(self) -> dict:
        return {"best_epoch": self.best_epoch, "best": dict(self.best)}

    def load_state_dict(self, state_dict: dict) -> None:
        self.best_epoch, self.best = state_dict["best_epoch"], dict(state_dict["best"])


class EpochPerf(L.Callback):
    """Logs seconds per epoch (training plus validation) and peak memory, in GiB, as scalars.

    perf/peak_cuda_gb is the epoch's peak of allocated CUDA memory (the figure an 8 GB card
    cares about); perf/peak_rss_gb is the process's peak resident memory since it started.
    """

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.on_train_epoch_start(trainer, pl_module)  # a run resumed mid-epoch starts there, not at an epoch start

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.start = time.perf_counter()
        if pl_module.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(pl_module.device)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        stats = {
            "perf/epoch_seconds": time.perf_counter() - self.start,
            "perf/peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        }  # KiB on Linux
        if pl_module.device.type == "cuda":
            stats["perf/peak_cuda_gb"] = torch.cuda.max_memory_allocated(pl_module.device) / 2**30
        pl_module.log_dict(stats, on_step=False, on_epoch=True, sync_dist=True, reduce_fx="max")  # the slowest rank


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

    def setup(self, trainer: L.Trainer, pl_module, stage: str) -> None:
        segment = getattr(trainer.datamodule, "segment_samples", None)
        if segment is not None:
            try:  # here, before the first epoch, rather than at the first preview
                Stitcher(segment, **self.stitch)
            except ConfigError as error:
                raise ConfigError(f"callbacks.reconstruction_preview.stitch: {error}") from None

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module) -> None:
        epoch = trainer.current_epoch
        writer = tensorboard_writer(trainer)
        songs = getattr(trainer.datamodule, "songs", {}).get("val")
        if (
            trainer.sanity_checking
            or not trainer.is_global_zero
            or epoch % self.every_n_epochs
            or writer is None
            or not songs
        ):
            return
        data = trainer.datamodule
        song = songs[min(self.song, len(songs) - 1)]
        original = torch.from_numpy(song.waveform(0, int(self.max_seconds * data.sample_rate)))
        stitcher = Stitcher(data.segment_samples, **self.stitch)
        reconstruction = stitcher(pl_module.reconstruct, original.to(pl_module.device), data.batch_size).cpu()
        if not self.original_logged:
            writer.add_audio("preview/original", original.clamp(-1, 1), epoch, sample_rate=data.sample_rate)
            self.original_logged = True
        writer.add_audio("preview/reconstruction", reconstruction.clamp(-1, 1), epoch, sample_rate=data.sample_rate)
        for name, draw in (
            ("waveform", waveform_figure),
            ("spectrum", spectrum_figure),
            ("spectrogram", spectrogram_figure),
        ):
            writer.add_figure(
                f"preview/{name}",
                draw(original, reconstruction, data.sample_rate, f"{song.name}, epoch {epoch}"),
                epoch,
            )
