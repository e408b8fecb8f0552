"""AutoencoderModule: the one LightningModule, around any network (aerecon.models.net.Net).

It owns what every autoencoder shares: the representation, an optional bottleneck, the loss,
metrics, logging and optimisation. Data flows waveform -> representation.encode -> net.encode
-> [bottleneck] -> net.decode -> representation.decode; the loss (aerecon.models.losses) sees both
domains, the metrics the waveforms. `encode` and `decode` give and take each segment's code as
one flat row of numbers (aerecon.load uses them).
"""

from collections.abc import Callable

import lightning as L
import torch
from torch import nn
from torchmetrics import MeanMetric

from aerecon.audio.representation import RFFT, Representation
from aerecon.models.bottlenecks import VectorQuantizer
from aerecon.models.layers import Checkpointed
from aerecon.models.losses import MSELoss, WeightedSum
from aerecon.models.metrics import waveform_metrics
from aerecon.models.net import Net, position_bits
from aerecon.models.upgrade import upgrade_state_dict
from aerecon.utils.errors import ConfigError, NumericalError
from aerecon.utils.private_api import attached_trainer


class AutoencoderModule(L.LightningModule):
    def __init__(
        self,
        net: Net,
        representation: Representation | None = None,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., object] | None = None,
        gradient_checkpointing: bool = False,
        loss: nn.Module | None = None,
        bottleneck: Callable[..., nn.Module] | None = None,
    ):
        super().__init__()
        # Plain values only: the checkpoint stays loadable with weights_only=True. The full
        # resolved config (net, representation, optimizer, ...) rides in the checkpoint separately.
        self.save_hyperparameters(
            ignore=["net", "representation", "optimizer", "scheduler", "loss", "bottleneck"], logger=False
        )
        self.net = net
        self.representation = representation or RFFT()
        if net.representation is not None and not isinstance(self.representation, net.representation):
            raise ConfigError(f"model.net={type(net).__name__} {net.representation_hint}")
        self.bottleneck: nn.Module | None = None
        if bottleneck is not None:
            needs_frames = getattr(getattr(bottleneck, "func", bottleneck), "needs_frames", True)
            if not (net.takes_bottleneck if needs_frames else net.dense_latent):
                raise ConfigError(
                    f"{type(net).__name__} has no [channels, frames] latent for a bottleneck: "
                    f"use model=resconv with bottleneck=vq or bottleneck=vae"
                    if needs_frames
                    else f"{type(net).__name__}'s code is not a latent of numbers to round: "
                    f"use bottleneck=quantized with model=fc, conv or resconv"
                )
            channels = net.latent_shape[0] if len(net.latent_shape) == 2 else 1
            self.bottleneck = bottleneck(channels=channels)
        self.input_length = net.input_length
        self.loss = loss or WeightedSum({"mse": MSELoss()})
        self.optimizer_factory = optimizer or (lambda params: torch.optim.Adam(params, lr=1e-4, weight_decay=1e-5))
        self.scheduler_factory = scheduler
        self.gradient_checkpointing = gradient_checkpointing
        self.metrics = nn.ModuleDict({stage: waveform_metrics(stage) for stage in ("val", "test")})
        self._train_means: dict[str, MeanMetric] = {}  # see _log_train
        self._train_epoch: int | None = None
        self._latest: dict[str, torch.Tensor] = {}  # see latest_train_loss
        self.example_input_array = torch.zeros(2, 1, net.input_length)
        if net.fits:  # fitted in one pass, not by gradients
            self.automatic_optimization = False
            # Lightning measures training progress in optimizer steps (no step, no checkpoint), so
            # each batch steps a no-op optimizer over this empty parameter.
            self.progress = nn.Parameter(torch.zeros(0), requires_grad=False)

    def setup(self, stage: str) -> None:
        for module in self.modules():
            if isinstance(module, Checkpointed):
                module.enabled = self.gradient_checkpointing

    def _weights_dtype(self, x: torch.Tensor) -> torch.Tensor:
        weight = next(self.net.parameters(), None)  # 16-true models hold fp16 weights
        return x if weight is None else x.to(weight.dtype)

    def autoencode(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(representation-domain reconstruction of x [B, 1, n], the bottleneck's loss terms)."""
        z = self.net.encode(self._weights_dtype(x))
        terms = {}
        if self.bottleneck is not None:
            z, terms = self.bottleneck(z)
        return self.net.decode(z), terms

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.autoencode(x)[0]

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Representation-domain segments [B, 1, n] -> their codes [B, numbers] (after the bottleneck)."""
        z = self.net.encode(self._weights_dtype(x))
        if self.bottleneck is not None:
            z = self.bottleneck.latent(z) if not self.training else self.bottleneck(z)[0]
        return self.net.pack(z)

    def code_values(self, x: torch.Tensor) -> torch.Tensor:
        """Representation-domain segments [B, 1, n] -> their code before rounding [B, channels,
        frames], for a bottleneck whose code is discrete: rounded, its symbols (aerecon.coding.learned)."""
        return self.bottleneck.values(self.net.encode(self._weights_dtype(x)))

    def from_symbols(self, symbols: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        """Symbols [B, channels, frames] of code values divided by `scale` -> representation-domain
        segments [B, 1, n]."""
        z = self.bottleneck.from_symbols(symbols, (len(symbols), *self.net.latent_shape), scale)
        return self.net.decode(self._weights_dtype(z))

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        """Codes [B, numbers] -> representation-domain segments [B, 1, n]."""
        return self.net.decode(self.net.unpack(self._weights_dtype(code)))

    def code_bits(self) -> int:
        """Bits one segment's code takes stored: a VQ code is one codebook index per latent frame."""
        if isinstance(self.bottleneck, VectorQuantizer):
            return self.net.latent_shape[-1] * position_bits(self.bottleneck.codebook_size)
        return self.net.code_bits()

    def autoencode_wave(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """(representation-domain target, output in fp32, bottleneck terms) of waveform segments [B, 1, n]."""
        # FFTs and the loss stay in fp32 whatever the trainer's precision.
        with torch.autocast(self.device.type, enabled=False):
            target = self.representation.encode(wave.float())
        output, terms = self.autoencode(target)
        return target, output.float(), terms

    def reconstruct(self, wave: torch.Tensor) -> torch.Tensor:
        """Waveform segments [B, 1, n] in, their reconstructions (waveforms, fp32) out."""
        _, output, _ = self.autoencode_wave(wave)
        with torch.autocast(self.device.type, enabled=False):
            return self.representation.decode(output)

    def _loss(self, wave: torch.Tensor, stage: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(total loss, waveform reconstruction); logs every term as {stage}/loss/<name>."""
        target, output, latent_terms = self.autoencode_wave(wave)
        with torch.autocast(self.device.type, enabled=False):
            reconstruction = self.representation.decode(output)
            terms = self.loss(output, target, reconstruction, wave.float())
        total = terms.pop("total")
        kbps = latent_terms.pop("kbps", None)  # a code priced in bits: its rate stands beside the loss
        if latent_terms:
            total = total + latent_terms.pop("total")
            terms.update({f"{type(self.bottleneck).__name__.lower()}/{k}": v for k, v in latent_terms.items()})
        values = {"loss": total.detach()} | ({} if kbps is None else {"kbps": kbps})
        if len(terms) > 1 or latent_terms:
            values.update({f"loss/{k}": v.detach() for k, v in terms.items()})
        if stage == "train":
            self._log_train(values, len(wave))
        else:  # averaged across DDP ranks (early stopping and checkpointing must see one value on every rank)
            self.log(
                f"{stage}/loss", values.pop("loss"), on_epoch=True, prog_bar=True, batch_size=len(wave), sync_dist=True
            )
            if values:
                self.log_dict(
                    {f"{stage}/{k}": v for k, v in values.items()}, on_epoch=True, batch_size=len(wave), sync_dist=True
                )
        return total, reconstruction

    def _log_train(self, values: dict[str, torch.Tensor], batch_size: int) -> None:
        """Each training loss term feeds a torchmetrics MeanMetric (batch-weighted), logged as
        `train/<name>_epoch` at the epoch's end, and as `train/<name>_step` every
        `log_every_n_steps` steps, because each `self.log` call walks Lightning's result
        collection, a large share of a small model's CPU step. Lightning saves one process's
        metric states, so the states of every process ride in checkpoints (`on_save_checkpoint`)
        and a run resumed mid-epoch logs the same epoch means. The progress bar reads the latest
        loss itself (`latest_train_loss`), when it redraws."""
        if self._train_epoch != self.current_epoch:  # a new epoch, or resumed from the end of the last one
            self._train_means, self._train_epoch = {}, self.current_epoch
        for name, value in values.items():
            if name not in self._train_means:
                self._train_means[name] = _epoch_mean(self.device)
            self._train_means[name].update(value, batch_size)
        self._latest["loss"] = values["loss"]
        trainer = attached_trainer(self)
        every = trainer.log_every_n_steps if trainer is not None else 1
        if self.global_step % every == 0:
            self.log_dict(
                {f"train/{k}_step": v for k, v in values.items()}, on_step=True, on_epoch=False, batch_size=batch_size
            )

    def latest_train_loss(self) -> float | None:
        """The last training batch's loss (for the progress bar), or None before the first."""
        loss = self._latest.get("loss")
        return None if loss is None else float(loss)

    def on_train_start(self) -> None:
        for metric in self._train_means.values():  # restored from a checkpoint on the CPU
            metric.to(self.device)

    def on_train_epoch_end(self) -> None:
        if self.net.fits:
            self.trainer.should_stop = True  # one pass is all a fitted network needs
            return
        if self._train_epoch == self.current_epoch and self._train_means:
            # compute() sums the states of every DDP process before dividing
            means = {f"train/{k}_epoch": metric.compute() for k, metric in self._train_means.items()}
            self.log_dict(means, on_step=False, on_epoch=True)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # Every process saves (only rank 0 writes), so under DDP each one's states ride in the one file.
        names = sorted(self._train_means)
        mine = torch.zeros(len(names) + 1, dtype=torch.float64)
        if names:
            mine[0] = float(self._train_means[names[0]].weight)
            mine[1:] = torch.stack([self._train_means[k].mean_value.detach().cpu() for k in names]).double()
        ranks = (
            self.all_gather(mine.to(self.device)).view(-1, len(names) + 1).cpu()
            if self._world_size() > 1
            else mine[None]
        )
        checkpoint["aerecon_train_sums"] = {
            "epoch": self._train_epoch,
            "ranks": [{"seen": int(r[0]), "sums": dict(zip(names, r[1:].tolist()))} for r in ranks],
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["state_dict"] = upgrade_state_dict(checkpoint.get("state_dict", {}))  # before Lightning loads it
        state = checkpoint.get("aerecon_train_sums", {"epoch": None, "ranks": []})
        ranks = state.get("ranks", [state] if "seen" in state else [])  # older checkpoints: one process's sums
        mine = ranks[self.global_rank] if len(ranks) == self._world_size() else {"seen": 0, "sums": {}}
        self._train_means = {name: _epoch_mean(total=total, seen=mine["seen"]) for name, total in mine["sums"].items()}
        self._train_epoch = state["epoch"]

    def _world_size(self) -> int:
        trainer = attached_trainer(self)
        return trainer.world_size if trainer is not None else 1

    def on_validation_epoch_start(self) -> None:
        # Lightning validates before on_train_epoch_end: a fitted network chooses as soon as it has seen the data.
        if self.net.fits and not self.trainer.sanity_checking:
            self.net.fit_end()

    def training_step(self, wave: torch.Tensor, batch_idx: int) -> torch.Tensor | None:
        if self.net.fits:
            self.net.fit_batch(wave)
            self.optimizers().step()
            return None
        loss = self._loss(wave, "train")[0]
        if not torch.isfinite(loss):  # stop before the optimizer spreads it into the weights
            raise self.divergence(
                f"the training loss became {loss.item()} at epoch {self.current_epoch}, step {self.global_step}"
            )
        return loss

    def divergence(self, event: str) -> NumericalError:
        """The error for a loss that became NaN or Inf (`event` says which, and when): the remedies,
        and the last good checkpoint."""
        trainer = attached_trainer(self)
        last = getattr(trainer.checkpoint_callback, "last_model_path", "") if trainer else ""
        precision = str(trainer.precision) if trainer else "32-true"
        lr = getattr(self.optimizer_factory, "keywords", {}).get("lr")  # hydra's partial optimizer
        remedies = [
            f"a lower learning rate (optimizer.lr{f' is {lr:g}' if lr else ''})",
            "gradient clipping (trainer.gradient_clip_val=1.0)",
        ]
        if precision != "32-true":
            remedies.append(f"full precision (trainer.precision=32-true instead of {precision})")
        return NumericalError(
            f"{event}. Try {', '.join(remedies)}. "
            + (f"The last good checkpoint is kept: {last}" if last else "No checkpoint had been saved yet.")
        )

    def _evaluate(self, wave: torch.Tensor, stage: str) -> None:
        _, reconstruction = self._loss(wave, stage)
        metrics = self.metrics[stage]
        metrics.update(reconstruction, wave.float())
        self.log_dict(metrics, on_epoch=True, batch_size=len(wave))

    def validation_step(self, wave: torch.Tensor, batch_idx: int) -> None:
        self._evaluate(wave, "val")

    def test_step(self, wave: torch.Tensor, batch_idx: int) -> None:
        self._evaluate(wave, "test")

    def configure_optimizers(self):
        if self.net.fits:
            return torch.optim.SGD([self.progress], lr=0.0)
        scale = getattr(self.bottleneck, "lr_scale", 1.0)
        if scale == 1.0:
            optimizer = self.optimizer_factory(params=self.parameters())
        else:  # the bottleneck's own parameters (an entropy model) learn at their own rate
            own = {id(p) for p in self.bottleneck.parameters()}
            rest = [p for p in self.parameters() if id(p) not in own]
            optimizer = self.optimizer_factory(
                params=[{"params": rest}, {"params": list(self.bottleneck.parameters())}]
            )
            optimizer.param_groups[1]["lr"] *= scale
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer=optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": "val/loss"}}


def _epoch_mean(device: torch.device | str = "cpu", total: float = 0.0, seen: int = 0) -> MeanMetric:
    """A batch-weighted running mean of one loss term; the loss is checked for NaN where it is made."""
    metric = MeanMetric(nan_strategy="disable")
    metric.mean_value.fill_(total)
    metric.weight.fill_(seen)
    if seen:
        metric.update(torch.zeros(0))  # adds nothing, but marks the restored states as updated
    return metric.to(device)
