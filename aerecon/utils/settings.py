"""Every numeric or enumerated setting a user types, checked before any work: one message per
fault, naming the key and a valid example (`aerecon: error: ...`, exit code 2)."""

import math
import re
from collections.abc import Callable

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from aerecon.utils.config import segment_samples
from aerecon.utils.errors import ConfigError

MISSING = object()


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def whole(low: int) -> Callable[[object], bool]:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= low


def positive(v) -> bool:
    return _number(v) and v > 0


def at_least_zero(v) -> bool:
    return _number(v) and v >= 0


def fraction(v) -> bool:
    return _number(v) and 0 <= v <= 1


def optional(check: Callable[[object], bool]) -> Callable[[object], bool]:
    return lambda v: v is None or check(v)


def boolean(v) -> bool:
    """true or false (or Hydra's spellings of them, which arrive as bools); `no`, `off`, `0` arrive
    as a string or a number, which Python would take as true or false by accident."""
    return isinstance(v, bool)


def booleans(*keys: str) -> dict:
    return {key: (boolean, "true or false", f"{key}=true") for key in keys}


def max_epochs(v) -> bool:  # Lightning: -1 (or null with no other limit) trains until stopped
    return v is None or v == -1 or whole(1)(v)


def max_time(v) -> bool:
    return v is None or isinstance(v, str) and re.fullmatch(r"\d+:\d{1,2}:\d{1,2}:\d{1,2}", v) is not None


def folder(v) -> bool:
    return isinstance(v, str) and v.strip() != ""


PATHS = {
    f"paths.{key}": (folder, "a folder", f"paths.{key}=DIR") for key in ("root_dir", "log_dir", "data_dir", "cache_dir")
}
# key: (check, what it must be, a valid example)
TRAIN = (
    PATHS
    | {
        "seed": (whole(0), "a whole number", "seed=1234"),
        "budget_gb": (optional(positive), "GiB above 0, or null (no check)", "budget_gb=8"),
        "data.batch_size": (whole(1), "a whole number of segments, at least 1", "data.batch_size=40"),
        "data.num_workers": (whole(0), "a whole number of loader processes, 0 or more", "data.num_workers=2"),
        "data.decode_workers": (
            optional(whole(1)),
            "a whole number of processes, at least 1, or null",
            "data.decode_workers=2",
        ),
        "data.sample_rate": (positive, "a positive rate in Hz", "data.sample_rate=4410"),
        "data.segment_seconds": (positive, "a positive length in seconds", "data.segment_seconds=3.0"),
        "data.split_seed": (whole(0), "a whole number", "data.split_seed=0"),
        "optimizer.lr": (positive, "a learning rate above 0", "optimizer.lr=1e-4"),
        "optimizer.weight_decay": (at_least_zero, "0 or more", "optimizer.weight_decay=1e-5"),
        "trainer.max_epochs": (
            max_epochs,
            "a whole number of epochs, at least 1 (or -1: no limit)",
            "trainer.max_epochs=500",
        ),
        "trainer.min_epochs": (optional(whole(0)), "a whole number of epochs, 0 or more", "trainer.min_epochs=1"),
        "trainer.max_time": (max_time, "a wall-clock limit DD:HH:MM:SS, or null", "trainer.max_time=00:12:00:00"),
        "trainer.log_every_n_steps": (whole(1), "a whole number of steps, at least 1", "trainer.log_every_n_steps=50"),
        "trainer.accumulate_grad_batches": (
            whole(1),
            "a whole number of batches, at least 1",
            "trainer.accumulate_grad_batches=2",
        ),
        "trainer.check_val_every_n_epoch": (
            whole(1),
            "a whole number of epochs, at least 1",
            "trainer.check_val_every_n_epoch=1",
        ),
        "trainer.gradient_clip_val": (optional(positive), "a norm above 0, or null", "trainer.gradient_clip_val=1.0"),
        "trainer.devices": (
            lambda v: whole(1)(v) or v == "auto" or isinstance(v, (list, tuple)) and v,
            "a number of devices, a list of them, or auto",
            "trainer.devices=1",
        ),
        "callbacks.early_stopping.patience": (
            whole(0),
            "a whole number of epochs, 0 or more",
            "callbacks.early_stopping.patience=50",
        ),
        "callbacks.reconstruction_preview.every_n_epochs": (
            whole(1),
            "a whole number of epochs, at least 1",
            "callbacks.reconstruction_preview.every_n_epochs=5",
        ),
        "callbacks.reconstruction_preview.max_seconds": (
            positive,
            "seconds above 0",
            "callbacks.reconstruction_preview.max_seconds=30",
        ),
        "trainer.deterministic": (
            lambda v: isinstance(v, bool) or v == "warn",
            "true, false or warn",
            "trainer.deterministic=true",
        ),
    }
    | booleans(
        "test",
        "plan.verbose",
        "model.gradient_checkpointing",
        "representation.quantize",
        "trainer.enable_progress_bar",
        "trainer.use_distributed_sampler",
        "logger.default_hp_metric",
        "loss.terms.mse.normalized",
        "callbacks.model_checkpoint.save_last",
        "callbacks.model_checkpoint.auto_insert_metric_name",
        "callbacks.early_stopping.check_on_train_epoch_end",
        "callbacks.model_summary.table",
    )
)
EVALUATE = {
    "batch_size": (whole(1), "a whole number of segments per pass, at least 1", "batch_size=40"),
    "max_media_songs": (
        optional(whole(0)),
        "a whole number of songs, 0 or more, or null (every song)",
        "max_media_songs=4",
    ),
} | booleans("butt_joined")  # stitch.*: aerecon.audio.stitch.check_stitch
RECONSTRUCT = (
    {"batch_size": EVALUATE["batch_size"]}
    | {"block_seconds": (positive, "seconds above 0", "block_seconds=60")}
    | booleans("overwrite")
)
DECOMPRESS = RECONSTRUCT
COMPRESS = RECONSTRUCT | {"kbps": (optional(positive), "a rate in kbit/s above 0, or null", "kbps=8")}


def _value(cfg: DictConfig, key: str):
    try:
        return OmegaConf.select(cfg, key, default=MISSING, throw_on_missing=True)
    except MissingMandatoryValue:
        return MISSING


def check(cfg: DictConfig, rules: dict) -> None:
    """Raises ConfigError for the first setting in `rules` that `cfg` holds with an unusable value
    (a setting the config does not have, e.g. a disabled callback's, is not checked)."""
    for key, (ok, must, example) in rules.items():
        value = _value(cfg, key)
        if value is MISSING or ok(value):
            continue
        shown = f"'{value}'" if isinstance(value, str) else value
        raise ConfigError(f"{key}={shown}: must be {must}, e.g. {example}")


def check_train(cfg: DictConfig) -> None:
    check(cfg, TRAIN)
    accelerator = _value(cfg, "trainer.accelerator")
    if accelerator in ("gpu", "cuda"):
        import torch  # here: reading a config stays light

        if not torch.cuda.is_available():
            raise ConfigError(
                f"trainer.accelerator={accelerator}: this torch sees no GPU here (make doctor says why); "
                f"train on the CPU with trainer=cpu, or trainer.accelerator=auto"
            )
    notches = _value(cfg, "callbacks.reconstruction_preview.stitch.notches")
    segment = segment_samples(cfg.data.sample_rate, cfg.data.segment_seconds)
    if notches is not MISSING and isinstance(notches, int) and notches > segment // 4:
        raise ConfigError(
            f"data.segment_seconds={cfg.data.segment_seconds} at data.sample_rate={cfg.data.sample_rate} "
            f"is {segment} samples, too short for the preview's window "
            f"(callbacks.reconstruction_preview.stitch.notches={notches} needs {4 * notches}); "
            f"e.g. data.segment_seconds=3.0"
        )


def check_evaluate(cfg: DictConfig) -> None:
    if _value(cfg, "ckpt_path") in (MISSING, None, ""):
        raise ConfigError(
            "ckpt_path is not set: name the checkpoint to evaluate, e.g. "
            "ckpt_path=logs/train/runs/<run>/checkpoints/last.ckpt"
        )
    check(cfg, EVALUATE)
