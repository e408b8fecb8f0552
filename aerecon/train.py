"""Training entry point: `python -m aerecon.train` / `aerecon-train` (a Hydra app, conf/train.yaml)."""

import json
import logging
import os
import shlex
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback as HydraCallback
from lightning.pytorch.callbacks import ProgressBar
from omegaconf import DictConfig, OmegaConf, open_dict

from aerecon.data.segments import split_weights
from aerecon.models.upgrade import upgrade_state_dict
from aerecon.plan import check_budget, check_model_size
from aerecon.training.callbacks import BestMetrics, GracefulStop, RNGState, StoreConfig
from aerecon.training.checkpoint import AtomicCheckpointIO, check_weights, load_checkpoint_config
from aerecon.utils.config import CONF_DIR, build, home_paths, run_folder_of
from aerecon.utils.errors import ConfigError, Forwarding, disk_error, exit_on_user_error, sigterm_stops
from aerecon.utils.files import atomic_write, is_url, only_writer
from aerecon.utils.logs import silence_third_party
from aerecon.utils.private_api import epochs_processed
from aerecon.utils.settings import check_train

log = logging.getLogger(__name__)
RESULTS = "results.json"
RUN_LOCK = ".run.lock"
# What must match for a checkpoint to be resumed under the current config.
RESUME_KEYS = (
    "model",
    "representation",
    "data.sample_rate",
    "data.segment_seconds",
    "data.split",
    "data.split_seed",
    "data.batch_size",
    "data.shuffle_seed",
    "data.jitter",
    "data.root",
    "optimizer",
    "seed",
)


def _select(config: dict, dotted: str):
    for part in dotted.split("."):
        config = config.get(part) if isinstance(config, dict) else None
    return config


def _resume_value(config: dict, key: str):
    value = _select(config, key)
    return split_weights(value) if key == "data.split" else value  # null and the weights it stands for are one


def _differences(key: str, saved, current) -> list[str]:
    """`key.leaf: A in the checkpoint, B now` for every leaf setting under `key` that differs."""
    if isinstance(saved, dict) and isinstance(current, dict):
        return [
            line
            for name in sorted(saved.keys() | current.keys(), key=str)
            for line in _differences(f"{key}.{name}", saved.get(name), current.get(name))
        ]
    return [] if saved == current else [f"{key}: {saved} in the checkpoint, {current} now"]


def _resume_into(cfg: DictConfig) -> Path:
    """Checks the checkpoint belongs to this config and returns its run folder."""
    saved = load_checkpoint_config(cfg.ckpt_path)
    current = OmegaConf.to_container(cfg, resolve=True)
    differ = [
        line
        for key in RESUME_KEYS
        for line in _differences(key, _resume_value(saved, key), _resume_value(current, key))
    ]
    if differ:
        details = "; ".join(differ)
        overrides = shlex.join(saved.get("overrides", []))
        raise ConfigError(
            f"ckpt_path={cfg.ckpt_path} was trained with a different config ({details}). "
            f"Resume with the original overrides: aerecon-train {overrides} ckpt_path={cfg.ckpt_path}"
        )
    # A checkpoint outside a run folder (e.g. copied elsewhere) continues in the new run folder.
    return run_folder_of(cfg.ckpt_path) or Path(cfg.paths.run_dir)


def resume_command(overrides: list[str], ckpt, *changes: str) -> str:
    """The command that resumes a run: its own overrides, with `changes` in place of theirs."""
    changed = {change.split("=", 1)[0] for change in changes} | {"ckpt_path"}
    kept = [o for o in overrides if o.split("=", 1)[0] not in changed]
    return shlex.join(["aerecon-train", *kept, *changes, f"ckpt_path={ckpt}"])  # quoted: it pastes into a shell


def finished(cfg: DictConfig, checkpoint: dict) -> tuple[str, str | None] | None:
    """(why the checkpoint's run has nothing left to train under this config, the override that would
    extend it or None), or None when there is training left."""
    epochs = epochs_processed(checkpoint)  # Lightning saves before it counts an epoch completed
    if cfg.trainer.max_epochs is not None and epochs >= cfg.trainer.max_epochs >= 0:
        return (
            f"it has trained all of its trainer.max_epochs={cfg.trainer.max_epochs} epochs",
            f"trainer.max_epochs={2 * max(cfg.trainer.max_epochs, 1)}",
        )
    stopper = next(
        (state for key, state in checkpoint.get("callbacks", {}).items() if key.startswith("EarlyStopping")), None
    )
    if stopper and stopper.get("stopped_epoch", 0) > 0 and stopper.get("wait_count", 0) >= stopper.get("patience", 0):
        return (
            f"early stopping ended it at epoch {stopper['stopped_epoch']} (val/loss had not improved for "
            f"{stopper['patience']} epochs; the patience is part of the run's state, so a longer run is a new "
            f"one, e.g. with callbacks.early_stopping.patience={2 * stopper['patience']})",
            None,
        )
    return None


@dataclass
class Run:
    """Everything `train` fits with, built from the config (benchmarks build the same)."""

    datamodule: L.LightningDataModule
    model: L.LightningModule
    trainer: L.Trainer
    best: BestMetrics


def assemble(cfg: DictConfig) -> Run:
    """Builds the run from its config, every config fault first, then scans the audio."""
    L.seed_everything(cfg.seed, workers=True)
    config = OmegaConf.to_container(cfg, resolve=True)
    overrides = HydraConfig.get().overrides.task if HydraConfig.initialized() else []
    config["overrides"] = [o for o in overrides if not o.startswith("ckpt_path=")]  # to repeat when resuming
    # Every config fault is found before any work: the data settings, the model, the memory plan.
    datamodule = build(cfg.data)
    check_model_size(cfg)  # before the model's memory is allocated
    model = build(cfg.model)
    check_budget(cfg, model)  # a run that cannot fit the card stops here
    datamodule.prepare_data()  # finds, decodes and caches the audio: bad data fails here, before training
    best = BestMetrics(monitor="val/loss")  # results.json's source, so not left to the config
    callbacks = [build(c) for c in cfg.callbacks.values() if c is not None]
    if not cfg.trainer.get("enable_progress_bar", True):  # Lightning refuses any progress bar it was told not to show
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    stop = GracefulStop(lambda ckpt: resume_command(config["overrides"], ckpt))
    callbacks += [best, StoreConfig(config), RNGState(), stop]
    logger = build(cfg.logger)
    trainer: L.Trainer = build(cfg.trainer, callbacks=callbacks, logger=logger, plugins=[AtomicCheckpointIO()])
    logger.log_hyperparams(config)
    return Run(datamodule, model, trainer, best)


def how_to_go_on(run_dir: Path) -> str:
    """What a run stopped early (by a signal or a full disk) should do next: resume from its last
    checkpoint, or run again when it has none."""
    last = run_dir / "checkpoints" / "last.ckpt"
    if not last.is_file():
        return "Nothing was trained yet: run the same command again"
    overrides = HydraConfig.get().overrides.task if HydraConfig.initialized() else []
    return f"Resume with: {resume_command(overrides, last)}"


def stopped_outside_an_epoch(run_dir: Path) -> str:
    """What SIGTERM outside a training epoch (scanning, caching, setup, sanity check, testing) says;
    inside an epoch, GracefulStop saves a checkpoint at the batch instead."""
    return f"outside a training epoch; every file written so far is complete. {how_to_go_on(run_dir)}"


def train(cfg: DictConfig) -> dict:
    """Fit one run (and test its best checkpoint); returns the results, also saved as results.json."""
    check_train(cfg)
    if cfg.data.get("root") and not is_url(cfg.data.root):  # absolute, so the checkpoint's config works anywhere
        with open_dict(cfg):
            cfg.data.root = str(Path(str(cfg.data.root)).expanduser().absolute())
    run_dir = run_folder_of(cfg.ckpt_path) or Path(cfg.paths.run_dir)
    try:
        with sigterm_stops(lambda: stopped_outside_an_epoch(run_dir)) as forwarding:
            return _train(cfg, forwarding)
    except OSError as error:  # a full disk while writing logs or results.json (checkpoints say so themselves)
        found = disk_error(error, f"The checkpoints written before are whole; free some space. {how_to_go_on(run_dir)}")
        if found is None:
            raise
        raise found from None


def _train(cfg: DictConfig, forwarding: Forwarding) -> dict:
    checkpoint = None
    if cfg.ckpt_path:
        run_dir = _resume_into(cfg)
        with open_dict(cfg):
            cfg.paths.run_dir = str(run_dir)
        # mmap: the tensors are not read, only what is looked at
        checkpoint = torch.load(Path(cfg.ckpt_path).expanduser(), map_location="cpu", weights_only=True, mmap=True)
        done = finished(cfg, checkpoint)
        if done:
            why, extend = done
            if extend:
                overrides = checkpoint["aerecon"]["config"].get("overrides", [])
                why += f". To train further: {resume_command(overrides, cfg.ckpt_path, extend)}"
            log.info("Nothing to resume in %s: %s", run_dir, why)
            results_file = run_dir / RESULTS
            return json.loads(results_file.read_text()) if results_file.is_file() else {"best": {}}
        log.info("Resuming %s in %s", cfg.ckpt_path, run_dir)
    run_dir = Path(cfg.paths.run_dir)
    with only_run_in(run_dir):
        return _fit(cfg, forwarding, checkpoint, run_dir)


@contextmanager
def only_run_in(run_dir: Path):
    """Within: no other training writes into `run_dir` (a command started twice with one
    hydra.run.dir, or resumed twice); the DDP ranks a run starts share its lock."""
    if os.environ.get("LOCAL_RANK", "0") != "0" or os.environ.get("NODE_RANK", "0") != "0":
        yield
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    with only_writer(
        run_dir / RUN_LOCK,
        f"{run_dir}: another training is writing there now; wait for it to finish, "
        f"or leave hydra.run.dir out for a new run folder",
    ):
        yield


def _fit(cfg: DictConfig, forwarding: Forwarding, checkpoint: dict | None, run_dir: Path) -> dict:
    if checkpoint is None and (any((run_dir / "checkpoints").glob("*.ckpt")) or (run_dir / RESULTS).exists()):
        raise ConfigError(
            f"{run_dir} already holds a run (its checkpoints, results.json): resume it with "
            f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}, or leave hydra.run.dir out for a new "
            f"run folder"
        )
    run = assemble(cfg)
    forwarding.add(run.trainer.strategy.launcher)  # DDP ranks started by this process stop with it
    if checkpoint is not None:  # Lightning's own loading would fail deep inside with a traceback
        check_weights(run.model, upgrade_state_dict(checkpoint.get("state_dict", {})), cfg.ckpt_path)
    datamodule, model, trainer, best, logger = run.datamodule, run.model, run.trainer, run.best, run.trainer.logger

    trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.ckpt_path, weights_only=True)

    results = {
        "model": cfg.model_name,
        "run_dir": str(run_dir),
        "epochs": trainer.current_epoch,
        "interrupted": trainer.interrupted,
        "best_epoch": best.best_epoch,
        "best": best.best,
        "best_checkpoint": trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else None,
        "tensorboard": logger.log_dir,
    }
    if cfg.test and not trainer.interrupted:
        if len(datamodule.datasets["test"]):
            results["test"] = trainer.test(model, datamodule=datamodule, ckpt_path="best", weights_only=True)[0]
        else:
            log.warning("The test split is empty; skipping the test (adjust data.split to have one)")
    if trainer.is_global_zero:  # under DDP, one process reports
        atomic_write(run_dir / RESULTS, lambda f: f.write(json.dumps(results, indent=2).encode()))
        log.info("%s", summary_line(results))
        log.info("TensorBoard: tensorboard --logdir %s", results["tensorboard"])
    return results


def summary_line(results: dict) -> str:
    best = results["best"]
    return (
        f"{results['model']:<12} best val/loss {best.get('val/loss', float('nan')):>12.4f}   "
        f"val/snr_db {best.get('val/snr_db', float('nan')):>7.2f} dB   epoch {results['best_epoch']}   "
        f"run {results['run_dir']}"
    )


class PrintSummary(HydraCallback):
    """After a sweep, one line per job with its best val/loss and val/snr_db, and where the logs are."""

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        results = [json.loads(p.read_text()) for p in sorted(sweep_dir.glob(f"*/{RESULTS}"))]
        if not results:
            return
        print(f"\nSweep summary ({len(results)} runs):")
        for r in results:
            print("  " + summary_line(r))
        print(f"TensorBoard: tensorboard --logdir {sweep_dir}   (or `make tensorboard` for all runs)")


@home_paths
@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
def main(cfg: DictConfig) -> float | None:
    silence_third_party()
    with exit_on_user_error():
        results = train(cfg)
    return results["best"].get("val/loss")  # the objective for Hydra sweepers (e.g. Optuna)


if __name__ == "__main__":
    main()
