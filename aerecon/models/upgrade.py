"""Checkpoints of earlier versions, read in today's form: configs, weight names and component names."""

# Checkpoints written before the networks were separated from the training module: each
# architecture was its own LightningModule, configured flat (`model._target_` was its class) and
# holding its weights at the top level (`encoder.0.weight`). They load as they are now.
MODULE_KEYS = {
    "representation": None,
    "loss": None,
    "optimizer": None,
    "scheduler": None,
    "bottleneck": None,
    "gradient_checkpointing": False,
}
MODULE_TARGET = "aerecon.models.AutoencoderModule"


def upgrade_model_config(model: dict) -> dict:
    """A checkpoint's `model` config in today's form: the training module around `net`."""
    if "net" in model:
        return model
    net = {k: v for k, v in model.items() if k not in MODULE_KEYS and k != "_convert_"}
    return {
        "_target_": MODULE_TARGET,
        "_convert_": "all",
        "net": net,
        **{k: model.get(k, default) for k, default in MODULE_KEYS.items()},
    }


def upgrade_state_dict(state: dict) -> dict:
    """A checkpoint's weights under today's names: the network's under `net.`."""
    if not state or any(k.startswith("net.") for k in state):
        return state
    return {
        k if k.startswith(("bottleneck.", "metrics.")) or k == "progress" else f"net.{k}": v for k, v in state.items()
    }


# Components whose module moved: a checkpoint names them as it was written, read under today's name.
MOVED = {
    **{f"aerecon.representation.{name}": f"aerecon.audio.representation.{name}" for name in ("RFFT", "Raw", "MuLaw")},
    **{
        f"aerecon.losses.{name}": f"aerecon.models.losses.{name}"
        for name in ("WeightedSum", "MSELoss", "MultiResolutionSTFTLoss")
    },
}


def upgrade_targets(node):
    """A stored config with each moved component's `_target_` under its name today (a copy)."""
    if isinstance(node, dict):
        return {
            k: MOVED.get(v, v) if k == "_target_" and isinstance(v, str) else upgrade_targets(v)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [upgrade_targets(v) for v in node]
    return node
