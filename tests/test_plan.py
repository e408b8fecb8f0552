"""The memory plan: exact state sizes of the thesis models, measured activations, the refusal."""

import pytest
import torch
from conftest import TINY, run_cli
from hydra.utils import instantiate

from aerecon.models import AutoencoderModule, ConvAutoencoder, FCAutoencoder
from aerecon.plan import GIB, _with, optimizer_state_bytes, plan_memory, saved_bytes
from aerecon.train import train
from aerecon.utils.config import compose_train
from aerecon.utils.errors import ConfigError


def adam(params):
    return torch.optim.Adam(params, lr=1e-4, weight_decay=1e-5)


@pytest.mark.parametrize("cls, parameters", [(FCAutoencoder, 429_657_130), (ConvAutoencoder, 698_357_061)])
def test_thesis_models_parameters_gradients_and_adam_state_in_bytes(cls, parameters):
    with torch.device("meta"):
        model = cls(13230)
    assert sum(p.nbytes for p in model.parameters()) == 4 * parameters  # fp32 weights, and as many gradient bytes
    state, _ = optimizer_state_bytes(model, adam)
    assert state == 8 * parameters  # exp_avg and exp_avg_sq, fp32 each
    with torch.device("meta"):
        half = cls(13230).half()
    assert optimizer_state_bytes(half, adam)[0] == 4 * parameters


def test_adafactor_state_formula_matches_a_real_step():
    layer = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Conv1d(2, 4, 3))
    real = torch.optim.Adafactor(layer.parameters())
    layer(torch.randn(2, 3))  # give every parameter a gradient
    for p in layer.parameters():
        p.grad = torch.randn_like(p)
    real.step()
    measured = sum(t.nbytes for s in real.state.values() for k, t in s.items() if k != "step")
    with torch.device("meta"):
        meta = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Conv1d(2, 4, 3))
    planned, _ = optimizer_state_bytes(meta, lambda params: torch.optim.Adafactor(params))
    assert planned == measured == 4 * ((5 + 3) + 5 + (4 * 2 + 4 * 3) + 4)


def test_activations_fall_with_gradient_checkpointing_and_16_bit_and_grow_linearly():
    model = AutoencoderModule(ConvAutoencoder(13230, channels=[16, 32, 64], latent=128))
    full = saved_bytes(model, 3, "32-true", checkpointing=False)["model"]
    assert saved_bytes(model, 3, "32-true", checkpointing=True)["model"] < full / 2
    assert saved_bytes(model, 3, "16-true", checkpointing=False)["model"] == full // 2
    # (bf16-mixed is not smaller at every batch size: autocast keeps bf16 copies of the weights)
    one, two = (saved_bytes(model, b, "32-true", False)["model"] for b in (1, 2))
    assert full == one + 2 * (two - one)  # what the plan extrapolates from batches of 1 and 2


def test_train_refuses_a_run_over_budget_naming_total_budget_and_an_option(make_cfg, tmp_path):
    cfg = make_cfg("plan.cuda_context_gb=0")
    model = instantiate(cfg.model)
    base = plan_memory(cfg, model).total
    lean = plan_memory(_with(cfg, ["optimizer=adafactor"]), model).total
    assert lean < base
    budget = (base + lean) / 2 / GIB
    with pytest.raises(ConfigError) as refused:
        train(make_cfg("plan.cuda_context_gb=0", f"budget_gb={budget}"))
    message = str(refused.value)
    assert f"{base:,} B" in message and f"budget_gb={budget:g}" in message
    assert "Options that fit: " in message and "optimizer=adafactor" in message
    assert not (tmp_path / "run" / "checkpoints").exists()  # refused before any training


@pytest.mark.parametrize("precision", ["32-true", "16-true"])
def test_adafactor_trains_and_budget_null_turns_the_check_off(make_cfg, precision):
    results = train(
        make_cfg(
            "model=conv",
            "optimizer=adafactor",
            f"trainer.precision={precision}",
            "budget_gb=null",
            "trainer.max_epochs=1",
            "test=false",
        )
    )
    assert results["epochs"] == 1 and 0 < results["best"]["val/loss"] < float("inf")


@pytest.mark.parametrize(
    "experiment, model, below", [("thesis_fc_8gb", "FCAutoencoder", 7.5), ("thesis_conv_8gb", "ConvAutoencoder", 6.5)]
)
def test_shipped_8gb_thesis_experiments_plan_under_8_gib(experiment, model, below):
    """The thesis-size models themselves (built on the CPU once), as shipped for an 8 GB card."""
    cfg = compose_train([f"experiment={experiment}"])
    assert cfg.model.net._target_.endswith(model)
    plan = plan_memory(cfg)
    assert plan.fits and plan.total < below * GIB


def test_plan_cli_prints_the_breakdown_and_verdict(tmp_path, shared_dirs):
    result = run_cli(*TINY, "budget_gb=8", cwd=tmp_path, shared=shared_dirs, app="aerecon.plan")
    assert result.returncode == 0, result.stderr[-2000:]
    for part in ("parameters", "gradients", "optimizer state", "activations (batch 8)", "CUDA context", "total"):
        assert part in result.stdout
    assert "budget: 8 GiB -> fits" in result.stdout
