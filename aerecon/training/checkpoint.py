"""Reading aerecon checkpoints as data: tensors and plain values only (weights_only), and a config
that may name only aerecon's own components, checked before anything is built from it."""

import math
import zipfile
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from aerecon.data import DEMO, FOLDER, STREAM
from aerecon.models.inference import Autoencoder, pick_device
from aerecon.models.upgrade import upgrade_model_config, upgrade_state_dict, upgrade_targets
from aerecon.utils.config import segment_samples
from aerecon.utils.errors import ConfigError, DiskError, first_line
from aerecon.utils.files import atomic_write


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
            raise DiskError(
                f"cannot write the checkpoint {path} ({error.strerror or error}). "
                + (
                    f"The checkpoints written before are whole; free some space, then resume: the run's command "
                    f"with ckpt_path={resume}"
                    if resume
                    else "No checkpoint had been written yet"
                )
            ) from None


# What a checkpoint's `model` and `data` (the parts built from it) may name as a `_target_`, by
# the place it stands in: the components aerecon's own configs build there. Anything else (a file
# writer, a shell, any other callable, or a component out of its place, e.g. a network inside the
# optimizer's settings) is refused, never called.
NETS = frozenset(
    {
        "aerecon.models.FCAutoencoder",
        "aerecon.models.ConvAutoencoder",
        "aerecon.models.ResConvAutoencoder",
        "aerecon.models.SparseConvAutoencoder",
        "aerecon.models.LowpassRFFT",
        "aerecon.models.FourierTopK",
        "aerecon.models.FourierSparse",
    }
)
PLACES = {
    "model": frozenset({"aerecon.models.AutoencoderModule"}) | NETS,  # a net: written before the module existed
    "model.net": NETS,
    "model.bottleneck": frozenset(
        {"aerecon.models.VectorQuantizer", "aerecon.models.VAEBottleneck", "aerecon.models.ScalarQuantizer"}
    ),
    "model.representation": frozenset(
        {"aerecon.audio.representation.RFFT", "aerecon.audio.representation.Raw", "aerecon.audio.representation.MuLaw"}
    ),
    "model.loss": frozenset({"aerecon.models.losses.WeightedSum", "aerecon.models.losses.MSELoss"}),
    "model.loss.terms.*": frozenset({"aerecon.models.losses.MSELoss", "aerecon.models.losses.MultiResolutionSTFTLoss"}),
    "model.optimizer": frozenset({"torch.optim.Adam", "torch.optim.Adafactor"}),
    "model.scheduler": frozenset({"torch.optim.lr_scheduler.ReduceLROnPlateau"}),
    "data": frozenset({FOLDER, DEMO, STREAM}),
}
COMPONENTS = frozenset().union(*PLACES.values())
BUILT = ("model", "data")


def place_of(key: str) -> str:
    """The PLACES entry of a node's dotted key (a loss term's name is a wildcard)."""
    parts = key.split(".")
    if parts[:3] == ["model", "loss", "terms"] and len(parts) == 4:
        return "model.loss.terms.*"
    return key


ZIP, GZIP, PICKLE = b"PK\x03\x04", b"\x1f\x8b", b"\x80"


def check_components(node, path, key: str = "") -> None:
    """Refuses a config that names anything but aerecon's components, or holds an interpolation
    (a saved config is resolved, so one would only be there to run a resolver)."""
    if isinstance(node, dict):
        for name, value in node.items():
            where = f"{key}.{name}" if key else str(name)
            if name == "_target_" and not (isinstance(value, str) and value in PLACES.get(place_of(key), ())):
                which = (
                    "not one of aerecon's components"
                    if not isinstance(value, str) or value not in COMPONENTS
                    else "one of aerecon's components, but not one that belongs there"
                )
                raise ConfigError(
                    f"ckpt_path={path}: its config names {where}={value!r}, which is {which}; nothing "
                    "was built from it. Use a checkpoint aerecon wrote"
                )
            check_components(value, path, where)
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            check_components(value, path, f"{key}[{i}]")
    elif isinstance(node, str) and "${" in node:
        raise ConfigError(
            f"ckpt_path={path}: its config holds an interpolation at {key} ({node[:60]!r}); aerecon "
            "saves configs resolved, so the file was edited. Use a checkpoint aerecon wrote"
        )


def check_lengths(config: dict, path) -> None:
    """The data's rate and segment length are positive numbers, and the network's input length is
    the segment length: a checkpoint that says otherwise would run the model on segments it was
    never trained on (or on none)."""
    data, model = config.get("data"), config.get("model")
    if not isinstance(data, dict) or not isinstance(model, dict):
        raise ConfigError(
            f"ckpt_path={path}: its config has no model and data settings; use a checkpoint aerecon wrote"
        )
    for key in ("sample_rate", "segment_seconds"):
        value = data.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise ConfigError(
                f"ckpt_path={path}: its data.{key}={value!r} is not a positive number; the file was "
                "edited. Use the run's own checkpoint"
            )
    net = model.get("net")
    if not isinstance(net, dict) or "input_length" not in net:
        return
    rate, seconds, length = data["sample_rate"], data["segment_seconds"], net["input_length"]
    if segment_samples(rate, seconds) != length:
        raise ConfigError(
            f"ckpt_path={path}: its settings disagree: data.sample_rate={rate} and "
            f"data.segment_seconds={seconds} make segments of {segment_samples(rate, seconds)} samples, "
            f"but model.net.input_length={length}. The file was edited; use the run's own checkpoint"
        )


def what_it_is(path: Path, error: BaseException) -> str:
    """Why a file torch cannot read as weights is not a checkpoint, in a user's words."""
    size = path.stat().st_size
    if size == 0:
        return "is empty (0 bytes), not a checkpoint"
    with open(path, "rb") as f:
        head = f.read(512)
    if head.startswith(ZIP):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError, ValueError):
            return f"is a truncated or damaged checkpoint ({size} bytes): its end is missing or overwritten"
        if not any(name.endswith("/data.pkl") for name in names):
            return "is a zip archive, not a PyTorch checkpoint"
        if "Unsupported global" in str(error) or "weights_only" in str(error):
            found = str(error).split("GLOBAL ", 1)[-1].split(" ", 1)[0] if "GLOBAL " in str(error) else "an object"
            return (
                f"holds pickled Python objects ({found}) that would run code when loaded, so aerecon does not "
                "load it; an aerecon checkpoint holds only tensors and plain values"
            )
        return f"is a damaged PyTorch checkpoint ({size} bytes): a part of it cannot be read"
    if len(head) > 262 and head[257:262] == b"ustar":
        return "is a tar archive, not a checkpoint"
    if head.startswith(GZIP):
        return "is a gzip-compressed file, not a checkpoint; decompress it first if it holds one"
    if head.startswith(PICKLE):
        return "is a pickle in PyTorch's legacy format, which aerecon cannot read as plain weights"
    return "is not a PyTorch checkpoint (it is not the zip archive torch.save writes)"


def load_checkpoint_config(path: str | Path) -> dict:
    """The resolved run config stored in an aerecon checkpoint, checked to be data; a clear error
    for anything else."""
    path = Path(path).expanduser()
    if path.is_dir():
        inside = next((p for p in (path / "checkpoints/last.ckpt", path / "last.ckpt") if p.is_file()), None)
        raise ConfigError(
            f"ckpt_path={path} is a folder, not a checkpoint; "
            + (
                f"its latest checkpoint: ckpt_path={inside}"
                if inside
                else "e.g. ckpt_path=logs/train/runs/<run>/checkpoints/last.ckpt"
            )
        )
    if path.exists() and not path.is_file():
        raise ConfigError(f"ckpt_path={path} is not a regular file (a pipe or a device), not a checkpoint")
    if not path.is_file():
        raise ConfigError(
            f"ckpt_path={path} does not exist; e.g. ckpt_path=logs/train/runs/<run>/checkpoints/last.ckpt"
        )
    checkpoint = read(path)
    config = checkpoint.get("aerecon", {}).get("config") if isinstance(checkpoint, dict) else None
    if not isinstance(config, dict):
        other = isinstance(checkpoint, dict) and any(k.startswith("pytorch-lightning") for k in checkpoint)
        raise ConfigError(
            f"ckpt_path={path} is not an aerecon checkpoint ("
            + ("a Lightning checkpoint of another project: " if other else "")
            + "it carries no aerecon config)"
        )
    for key in BUILT:  # the training run's callbacks, trainer and logger are a record, never built
        if key in config:
            config[key] = upgrade_targets(config[key])
        check_components(config.get(key), path, key)
    if isinstance(config.get("model"), dict):
        config["model"] = upgrade_model_config(config["model"])
    check_lengths(config, path)
    return config


def read(path: Path) -> Any:
    """torch.load of plain data, memory-mapped (a thesis checkpoint is 8 GB; only what is used is
    read), with a user's words for a file that is not a checkpoint."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except OSError as error:
        raise ConfigError(f"ckpt_path={path} cannot be read ({error.strerror or error})") from None
    except Exception as error:  # torch raises many types for a file that is not its format
        raise ConfigError(f"ckpt_path={path} {what_it_is(path, error)}") from None


def check_weights(model: torch.nn.Module, state: dict, path: str | Path) -> None:
    """A clear error when a checkpoint's weights do not fit the model its own config describes
    (an edited checkpoint, or one whose config was changed by hand)."""
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    found = {name: tuple(t.shape) for name, t in state.items()}
    missing, extra = sorted(expected.keys() - found.keys()), sorted(found.keys() - expected.keys())
    wrong = sorted(name for name in expected.keys() & found.keys() if expected[name] != found[name])
    if missing or extra or wrong:
        details = "; ".join(
            part
            for part in (
                f"missing {', '.join(missing[:3])}" if missing else "",
                f"unexpected {', '.join(extra[:3])}" if extra else "",
                "; ".join(
                    f"{name} is {list(found[name])} but the model has {list(expected[name])}" for name in wrong[:3]
                ),
            )
            if part
        )
        raise ConfigError(
            f"ckpt_path={path}: its weights do not fit the model its config describes ({details}). "
            "It was edited, or its config does not belong to it; use the run's own last.ckpt"
        )


def load_model(path: str | Path, device: str | torch.device = "cpu"):
    """(model in eval mode with the checkpoint's weights, the run's resolved config) from a checkpoint.

    The model is first built without memory (on torch's meta device) and its weights' shapes
    checked against the file's: a config that describes a larger model than the file holds
    allocates nothing."""
    from hydra.errors import InstantiationException

    from aerecon.utils.config import build  # here, so reading a config stays import-light

    config = load_checkpoint_config(path)
    state = upgrade_state_dict(read(Path(path).expanduser()).get("state_dict") or {})
    try:
        with torch.device("meta"):
            check_weights(build(config["model"]), state, path)
        model = build(config["model"])
    except (InstantiationException, TypeError, ValueError, RuntimeError) as error:
        reason = first_line(error.__cause__ or error)  # hydra wraps what the constructor raised
        raise ConfigError(
            f"ckpt_path={path}: its config cannot build a model ({reason}); it was edited, or written "
            "by another program. Use a checkpoint aerecon wrote"
        ) from None
    model.load_state_dict(state)
    return model.to(device).eval(), config


def load(ckpt_path: str | Path, device: str | torch.device | None = None) -> Autoencoder:
    """The model of an aerecon checkpoint, ready to encode, decode and reconstruct (see Autoencoder).

    `device`: None (the GPU when there is one, else the CPU), "cpu", "cuda", "cuda:1", ...
    Raises aerecon.utils.errors.ConfigError for a path that is not an aerecon checkpoint.
    """
    module, config = load_model(ckpt_path)
    return Autoencoder(module, config, pick_device(device))
