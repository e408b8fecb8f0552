"""AutoencoderModule: the train/val/test logic every autoencoder shares.

Subclasses build `self.encoder` and `self.decoder` (nn.Modules on [B, C, L] tensors). Data
flows waveform -> representation.encode -> encoder -> decoder -> representation.decode;
the loss is taken in the representation domain, the metrics on waveforms.
"""

from collections.abc import Callable

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from aerecon.errors import ConfigError
from aerecon.metrics import waveform_metrics
from aerecon.models.layers import Checkpointed
from aerecon.representation import Representation, RFFT


def check_latent(latent: int, input_length: int) -> None:
    if not 0 < latent <= input_length:
        raise ConfigError(
            f"model.latent={latent} must be between 1 and the input length {input_length}; e.g. model.latent=3300"
        )


class AutoencoderModule(L.LightningModule):
    encoder: nn.Module
    decoder: nn.Module

    def __init__(
        self,
        input_length: int,
        representation: Representation | None = None,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., object] | None = None,
        gradient_checkpointing: bool = False,
    ):
        super().__init__()
        # Plain values only: the checkpoint stays loadable with weights_only=True. The full
        # resolved config (representation, optimizer, ...) rides in the checkpoint separately.
        self.save_hyperparameters(ignore=["representation", "optimizer", "scheduler"], logger=False)
        self.input_length = input_length
        self.representation = representation or RFFT()
        self.optimizer_factory = optimizer or (lambda params: torch.optim.Adam(params, lr=1e-4, weight_decay=1e-5))
        self.scheduler_factory = scheduler
        self.gradient_checkpointing = gradient_checkpointing
        self.metrics = nn.ModuleDict({stage: waveform_metrics(stage) for stage in ("val", "test")})
        self.example_input_array = torch.zeros(2, 1, input_length)

    def setup(self, stage: str) -> None:
        for module in self.modules():
            if isinstance(module, Checkpointed):
                module.enabled = self.gradient_checkpointing

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Representation-domain reconstruction of representation-domain input [B, 1, n]."""
        weight = next(self.parameters(), None)  # in the weights' dtype: 16-true models hold fp16 weights
        return self.decoder(self.encoder(x if weight is None else x.to(weight.dtype)))

    def _reconstruct(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # FFTs and the loss stay in fp32 whatever the trainer's precision.
        with torch.autocast(self.device.type, enabled=False):
            target = self.representation.encode(wave.float())
        output = self(target).float()
        return target, output

    def reconstruct(self, wave: torch.Tensor) -> torch.Tensor:
        """Waveform segments [B, 1, n] in, their reconstructions (waveforms, fp32) out."""
        _, output = self._reconstruct(wave)
        with torch.autocast(self.device.type, enabled=False):
            return self.representation.decode(output)

    def training_step(self, wave: torch.Tensor, batch_idx: int) -> torch.Tensor:
        target, output = self._reconstruct(wave)
        loss = F.mse_loss(output, target)
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(wave))
        return loss

    def _evaluate(self, wave: torch.Tensor, stage: str) -> None:
        target, output = self._reconstruct(wave)
        self.log(f"{stage}/loss", F.mse_loss(output, target), on_epoch=True, prog_bar=True, batch_size=len(wave))
        with torch.autocast(self.device.type, enabled=False):
            reconstruction = self.representation.decode(output)
        metrics = self.metrics[stage]
        metrics.update(reconstruction, wave.float())
        self.log_dict(metrics, on_epoch=True, batch_size=len(wave))

    def validation_step(self, wave: torch.Tensor, batch_idx: int) -> None:
        self._evaluate(wave, "val")

    def test_step(self, wave: torch.Tensor, batch_idx: int) -> None:
        self._evaluate(wave, "test")

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(params=self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer=optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": "val/loss"}}
