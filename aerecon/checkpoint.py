"""Reading aerecon checkpoints safely (weights_only) without loading all their tensors."""

from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from aerecon.errors import ConfigError, DiskError
from aerecon.files import atomic_write


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, made atomic: the file is written beside its target, fsynced
    and renamed over it, so a kill or a failing write mid-save leaves the previous checkpoint whole
    (Lightning's own writer streams into the target itself)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any = None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO takes no storage_options")
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, lambda f: torch.save(checkpoint, f))
        except OSError as error:  # a full or read-only disk: the previous file is still whole
            kept = sorted(path.parent.glob("*.ckpt"), key=lambda p: p.stat().st_mtime)
            resume = next((p for p in kept if p.name == "last.ckpt"), kept[-1] if kept else None)
            raise DiskError(f"cannot write the checkpoint {path} ({error.strerror or error}). " + (
                f"The checkpoints written before are whole; free some space, then resume: the run's command "
                f"with ckpt_path={resume}" if resume else "No checkpoint had been written yet")) from None


# Checkpoints written before the networks were separated from the training module: each
# architecture was its own LightningModule, configured flat (`model._target_` was its class) and
# holding its weights at the top level (`encoder.0.weight`). They load as they are now.
MODULE_KEYS = {"representation": None, "loss": None, "optimizer": None, "scheduler": None, "bottleneck": None,
               "gradient_checkpointing": False}
MODULE_TARGET = "aerecon.models.AutoencoderModule"


def upgrade_model_config(model: dict) -> dict:
    """A checkpoint's `model` config in today's form: the training module around `net`."""
    if "net" in model:
        return model
    net = {k: v for k, v in model.items() if k not in MODULE_KEYS and k != "_convert_"}
    return {"_target_": MODULE_TARGET, "_convert_": "all", "net": net,
            **{k: model.get(k, default) for k, default in MODULE_KEYS.items()}}


def upgrade_state_dict(state: dict) -> dict:
    """A checkpoint's weights under today's names: the network's under `net.`."""
    if not state or any(k.startswith("net.") for k in state):
        return state
    return {k if k.startswith(("bottleneck.", "metrics.")) or k == "progress" else f"net.{k}": v
            for k, v in state.items()}


def load_checkpoint_config(path: str | Path) -> dict:
    """The resolved run config stored in an aerecon checkpoint; a clear error for anything else."""
    path = Path(path).expanduser()
    if path.is_dir():
        inside = next((p for p in (path / "checkpoints/last.ckpt", path / "last.ckpt") if p.is_file()), None)
        raise ConfigError(f"ckpt_path={path} is a folder, not a checkpoint; " + (
            f"its latest checkpoint: ckpt_path={inside}" if inside else
            "e.g. ckpt_path=logs/train/runs/<run>/checkpoints/last.ckpt"))
    if not path.is_file():
        raise ConfigError(f"ckpt_path={path} does not exist; e.g. ckpt_path=logs/train/runs/<run>/checkpoints/last.ckpt")
    try:
        # mmap: a thesis checkpoint is 8 GB; only the small config is actually read.
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as error:
        raise ConfigError(f"ckpt_path={path} is not a readable PyTorch checkpoint ({error})") from error
    config = checkpoint.get("aerecon", {}).get("config") if isinstance(checkpoint, dict) else None
    if not isinstance(config, dict):
        raise ConfigError(f"ckpt_path={path} is not an aerecon checkpoint (it carries no aerecon config)")
    if isinstance(config.get("model"), dict):
        config["model"] = upgrade_model_config(config["model"])
    return config


def check_weights(model: torch.nn.Module, state: dict, path: str | Path) -> None:
    """A clear error when a checkpoint's weights do not fit the model its own config describes
    (an edited checkpoint, or one whose config was changed by hand)."""
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    found = {name: tuple(t.shape) for name, t in state.items()}
    missing, extra = sorted(expected.keys() - found.keys()), sorted(found.keys() - expected.keys())
    wrong = sorted(name for name in expected.keys() & found.keys() if expected[name] != found[name])
    if missing or extra or wrong:
        details = "; ".join(part for part in (
            f"missing {', '.join(missing[:3])}" if missing else "",
            f"unexpected {', '.join(extra[:3])}" if extra else "",
            "; ".join(f"{name} is {list(found[name])} but the model has {list(expected[name])}" for name in wrong[:3]),
        ) if part)
        raise ConfigError(f"ckpt_path={path}: its weights do not fit the model its config describes ({details}). "
                          "It was edited, or its config does not belong to it; use the run's own last.ckpt")


def load_model(path: str | Path, device: str | torch.device = "cpu"):
    """(model in eval mode with the checkpoint's weights, the run's resolved config) from a checkpoint."""
    from aerecon.config import build  # here, so reading a config stays import-light

    config = load_checkpoint_config(path)
    model = build(config["model"])
    state = upgrade_state_dict(torch.load(Path(path).expanduser(), map_location="cpu", weights_only=True,
                                          mmap=True)["state_dict"])
    check_weights(model, state, path)
    model.load_state_dict(state)
    return model.to(device).eval(), config
