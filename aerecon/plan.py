"""Memory plan: `python -m aerecon.plan [overrides]` / `aerecon-plan`, the same config as `train`.

Predicts the GPU memory of one training run before it starts, in bytes:

- parameters and gradients: the model's tensors in the precision's storage dtype;
- optimizer state: the configured optimizer takes one step on a meta-device copy of the
  model, so its state is allocated at the real shapes without memory, then counted;
- activations saved for backward and the loss buffers: measured in one real forward pass
  (CPU, batch sizes 1 and 2, extrapolated linearly to the configured batch) with saved-tensor
  hooks, under the precision's autocast and with gradient checkpointing as configured;
- the input batch, a workspace for the optimizer step, an allocator reserve and the CUDA
  context (outside PyTorch's allocator), from `plan.*` settings.

`train` runs the plan first and refuses a run over `budget_gb`, naming options that fit.
"""

import copy
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import hydra
import torch
import yaml
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from aerecon.models.layers import Checkpointed
from aerecon.utils.config import CONF_DIR, build, home_paths
from aerecon.utils.errors import ConfigError, exit_on_user_error
from aerecon.utils.logs import silence_third_party
from aerecon.utils.settings import check_train

log = logging.getLogger(__name__)
GIB = 2**30
STORAGE_DTYPE = {
    "32-true": torch.float32,
    "32": torch.float32,
    "16-mixed": torch.float32,
    "bf16-mixed": torch.float32,
    "16-true": torch.float16,
    "bf16-true": torch.bfloat16,
}
AUTOCAST_DTYPE = {"16-mixed": torch.float16, "bf16-mixed": torch.bfloat16}


@dataclass
class MemoryPlan:
    parts: dict[str, int]  # name -> bytes, in display order
    budget_gb: float | None
    notes: list[str] = field(default_factory=list)

    @property
    def allocated(self) -> int:
        """What torch.cuda.max_memory_allocated should report: everything but the CUDA context."""
        return sum(v for k, v in self.parts.items() if k != "CUDA context")

    @property
    def total(self) -> int:
        return sum(self.parts.values())

    @property
    def fits(self) -> bool:
        return self.budget_gb is None or self.total <= self.budget_gb * GIB

    def summary(self) -> str:
        """One line: the total against the budget."""
        if self.budget_gb is None:
            return f"{self.total / GIB:.2f} GiB planned, no budget (budget_gb=null)"
        return f"{self.total / GIB:.2f} GiB of the {self.budget_gb:g} GiB budget, " + (
            "fits" if self.fits else "DOES NOT FIT"
        )

    def render(self) -> str:
        lines = [f"{'':2}{name:<34}{value:>16,} B {value / GIB:>9.3f} GiB" for name, value in self.parts.items()]
        lines.append(f"{'':2}{'total':<34}{self.total:>16,} B {self.total / GIB:>9.3f} GiB")
        if self.budget_gb is None:
            lines.append("  budget: none (budget_gb=null)")
        else:
            verdict = "fits" if self.fits else "DOES NOT FIT"
            lines.append(f"  budget: {self.budget_gb:g} GiB -> {verdict} ({self.total / GIB:.2f} GiB planned)")
        return "\n".join(lines + [f"  note: {n}" for n in self.notes])


def _precision(cfg: DictConfig) -> str:
    precision = str(cfg.trainer.get("precision", "32-true"))
    if precision not in STORAGE_DTYPE:
        raise ConfigError(f"trainer.precision={precision}: plan and train support {', '.join(STORAGE_DTYPE)}")
    return precision


def _state_bytes_by_formula(optimizer: torch.optim.Optimizer, params: list[torch.Tensor]) -> int | None:
    """State of optimizers that cannot step on the meta device (they call .item())."""
    if isinstance(optimizer, torch.optim.Adafactor):  # factored: row and column statistics per matrix
        total = 0
        for p in params:
            if p.dim() >= 2:
                total += (p.numel() // p.shape[-1] + p.numel() // p.shape[-2]) * p.element_size()
            else:
                total += p.numel() * p.element_size()
        return total
    return None


def optimizer_state_bytes(
    meta_model: torch.nn.Module, optimizer_factory: Callable
) -> tuple[int, torch.optim.Optimizer]:
    """Bytes of device-resident optimizer state after one step (meta device: no memory used)."""
    params = [p for p in meta_model.parameters() if p.requires_grad]
    for p in params:
        p.grad = torch.empty_like(p)
    optimizer = optimizer_factory(params=params)
    try:
        optimizer.step()
    except (RuntimeError, NotImplementedError) as error:
        total = _state_bytes_by_formula(optimizer, params)
        if total is None:
            raise ConfigError(
                f"cannot plan the memory of {type(optimizer).__name__}: it does not run on the meta "
                f"device ({error}); set budget_gb=null to train without a plan"
            ) from error
        return total, optimizer
    return sum(
        t.nbytes
        for state in optimizer.state.values()
        for t in state.values()
        if isinstance(t, torch.Tensor) and t.device.type == "meta"
    ), optimizer


class SavedTensors:
    """saved_tensors_hooks that add up the distinct storages autograd keeps for backward,
    leaving out the parameters (counted on their own) and tagging each by the current phase."""

    def __init__(self, exclude: set[int], storage_dtype: torch.dtype):
        self.exclude, self.storage_dtype = exclude, storage_dtype
        self.seen: set[int] = set()
        self.bytes: dict[str, int] = {}
        self.phase = "model"

    def pack(self, tensor: torch.Tensor):
        storage = tensor.untyped_storage()
        key = storage.data_ptr()
        if key not in self.exclude and key not in self.seen and storage.nbytes():
            self.seen.add(key)
            size = storage.nbytes()
            if tensor.is_floating_point() and self.storage_dtype != torch.float32:  # 16-true: measured in fp32
                size = size * torch.finfo(self.storage_dtype).bits // torch.finfo(tensor.dtype).bits
            self.bytes[self.phase] = self.bytes.get(self.phase, 0) + size
        return tensor

    def hooks(self):
        return torch.autograd.graph.saved_tensors_hooks(self.pack, lambda tensor: tensor)


def saved_bytes(model, batch_size: int, precision: str, checkpointing: bool) -> dict[str, int]:
    """{"model": ..., "loss": ...} bytes saved for backward, measured on CPU at this batch size."""
    flags = {m: m.enabled for m in model.modules() if isinstance(m, Checkpointed)}
    for m in flags:
        m.enabled = checkpointing
    exclude = {p.untyped_storage().data_ptr() for p in model.parameters()}
    counter = SavedTensors(exclude, STORAGE_DTYPE[precision])
    wave = torch.zeros(batch_size, 1, model.input_length)
    autocast = torch.autocast(
        "cpu", dtype=AUTOCAST_DTYPE.get(precision, torch.float32), enabled=precision in AUTOCAST_DTYPE
    )
    buffers = {name: b.clone() for name, b in model.named_buffers()}  # a VQ codebook, a VAE's step count
    try:
        with counter.hooks(), autocast, torch.enable_grad():
            target, output, _ = model.autoencode_wave(wave)
            counter.phase = "loss"
            with torch.autocast("cpu", enabled=False):
                model.loss(output, target, model.representation.decode(output), wave)
    finally:
        for m, enabled in flags.items():
            m.enabled = enabled
        for name, b in model.named_buffers():
            b.copy_(buffers[name])  # measuring is not training: leave the model as it was
    return {"model": counter.bytes.get("model", 0), "loss": counter.bytes.get("loss", 0)}


def plan_memory(cfg: DictConfig, model=None) -> MemoryPlan:
    """The memory plan of the run `cfg` describes (`model`: its already built CPU model, if any)."""
    precision = _precision(cfg)
    dtype = STORAGE_DTYPE[precision]
    model = model if model is not None else instantiate(cfg.model)
    with torch.device("meta"):
        meta_model = instantiate(cfg.model).to(dtype)
    batch, accumulate = int(cfg.data.batch_size), int(cfg.trainer.get("accumulate_grad_batches") or 1)
    checkpointing = bool(cfg.model.get("gradient_checkpointing", False))

    parameters = sum(p.nbytes for p in meta_model.parameters())
    trainable = [p for p in meta_model.parameters() if p.requires_grad]
    gradients = sum(p.nbytes for p in trainable)
    state, optimizer = optimizer_state_bytes(meta_model, instantiate(cfg.optimizer)) if trainable else (0, None)
    one, two = saved_bytes(model, 1, precision, checkpointing), saved_bytes(model, 2, precision, checkpointing)
    activations = {k: one[k] + (two[k] - one[k]) * (batch - 1) for k in one}  # per-sample growth, measured
    # The optimizer step's temporaries: a multi-tensor ("foreach", PyTorch's default on CUDA)
    # step makes whole-model copies (gradients plus weight decay, the second moment's root);
    # a per-parameter step (optimizer.foreach=false) only copies one parameter at a time.
    foreach = optimizer is not None and "foreach" in optimizer.defaults and optimizer.defaults["foreach"] is not False
    workspace = 2 * (gradients if foreach else max((p.nbytes for p in trainable), default=0))
    plan_cfg = cfg.get("plan") or {}
    parts = {
        "parameters": parameters,
        "gradients": gradients,
        "optimizer state": state,
        f"activations (batch {batch})": activations["model"],
        "loss and representation buffers": activations["loss"],
        "input batch": batch * model.input_length * 4,
        "optimizer step workspace" + (" (foreach)" if foreach else ""): workspace,
    }
    allocated = sum(parts.values())
    parts["allocator reserve"] = math.ceil(allocated * float(plan_cfg.get("allocator_reserve", 0.05)))
    parts["CUDA context"] = int(float(plan_cfg.get("cuda_context_gb", 0.4)) * GIB)
    notes = (
        [
            "optimizer step workspace is an estimate (2x what a step copies at once) until "
            "experiments/memory_check.py has measured it on a GPU"
        ]
        if workspace
        else []
    )
    if accumulate > 1:
        notes.append(
            f"accumulate_grad_batches={accumulate}: activations are per batch of {batch}; "
            f"the effective batch is {batch * accumulate}"
        )
    if precision == "16-true":
        notes.append("16-true: activations measured in fp32 on CPU and counted at 2 bytes per value")
    return MemoryPlan(parts, cfg.get("budget_gb"), notes)


# Changes that cut memory, tried in this order when a run does not fit.
OPTIONS = [
    ["trainer.precision=bf16-mixed"],
    ["model.gradient_checkpointing=true"],
    ["optimizer=adafactor"],
    ["optimizer=adafactor", "trainer.precision=bf16-mixed"],
    ["optimizer=adafactor", "model.gradient_checkpointing=true"],
    ["optimizer=adafactor", "optimizer.foreach=false"],
    ["trainer.precision=16-true", "optimizer.foreach=false"],
    ["trainer.precision=16-true"],
    ["optimizer=adafactor", "trainer.precision=16-true"],
]


def _with(cfg: DictConfig, overrides: list[str]) -> DictConfig:
    variant = copy.deepcopy(cfg)
    with open_dict(variant):
        for override in overrides:
            key, value = override.split("=", 1)
            if key == "optimizer":
                variant.optimizer = OmegaConf.load(Path(CONF_DIR) / "optimizer" / f"{value}.yaml")
            else:
                OmegaConf.update(variant, key, yaml.safe_load(value), force_add=True)
    return variant


def options_that_fit(cfg: DictConfig, model) -> list[tuple[str, MemoryPlan]]:
    found = []
    for overrides in OPTIONS:
        plan = plan_memory(_with(cfg, overrides), model)
        if plan.fits:
            found.append((" ".join(overrides), plan))
    return found


def check_model_size(cfg: DictConfig) -> None:
    """Before the model is built (which allocates its weights): refuses a run that no option of the
    plan could fit, whose weights alone, even at 16 bits, exceed budget_gb (counted on the meta
    device, where nothing is allocated)."""
    if cfg.get("budget_gb") is None:
        return
    with torch.device("meta"):
        count = sum(p.numel() for p in build(cfg.model).parameters())
    if 2 * count > cfg.budget_gb * GIB:
        raise ConfigError(
            f"this model has {count:,} parameters: its weights alone, even at 16 bits, need "
            f"{2 * count / GIB:.2f} GiB, more than budget_gb={cfg.budget_gb:g}; nothing was built. "
            f"Choose a smaller model (model.net.latent, data.segment_seconds, data.sample_rate), or set "
            f"budget_gb=null to build it anyway"
        )


def check_budget(cfg: DictConfig, model) -> MemoryPlan | None:
    """Plan the run; raise ConfigError naming the total, the budget and options that fit if it does not."""
    if cfg.get("budget_gb") is None:
        return None
    plan = plan_memory(cfg, model)
    if plan.fits:
        if cfg.plan.get("verbose", False):
            log.info("Memory plan:\n%s", plan.render())
        else:
            log.info("Memory plan: %s (plan.verbose=true or python -m aerecon.plan for the breakdown)", plan.summary())
        return plan
    fitting = options_that_fit(cfg, model)
    advice = (
        "; ".join(f"{o} ({p.total / GIB:.2f} GiB)" for o, p in fitting[:4])
        or "none of the single options; lower data.batch_size or the model size"
    )
    raise ConfigError(
        f"this run needs {plan.total / GIB:.2f} GiB but budget_gb={plan.budget_gb:g}.\n{plan.render()}\n"
        f"Options that fit: {advice}. Or set budget_gb=null to train anyway."
    )


@home_paths
@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="plan")
def main(cfg: DictConfig) -> None:
    silence_third_party()
    with exit_on_user_error():
        check_train(cfg)
        check_model_size(cfg)
        model = instantiate(cfg.model)
        plan = plan_memory(cfg, model)
        print(f"Memory plan for model={cfg.model_name} precision={_precision(cfg)} batch={cfg.data.batch_size}:")
        print(plan.render())
        if not plan.fits:
            fitting = options_that_fit(cfg, model)
            print("Options that fit:" if fitting else "No single option fits; lower data.batch_size or the model size.")
            for overrides, option in fitting:
                print(f"  {overrides:<60} {option.total / GIB:6.2f} GiB")


if __name__ == "__main__":
    main()
