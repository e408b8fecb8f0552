"""Lightning callbacks aerecon adds to every run."""

import lightning as L
import torch


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
