"""The k-sparse convolutional autoencoder (model=sparseconv, experiment=best)."""

import math
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from test_train import scalars

from aerecon.audio.representation import RFFT, Raw
from aerecon.models import AutoencoderModule, SparseConvAutoencoder
from aerecon.models.selection import Runs, TopK
from aerecon.train import train
from aerecon.training.checkpoint import load_model
from aerecon.utils.errors import ConfigError


def snr_db(reference: torch.Tensor, reconstruction: torch.Tensor) -> float:
    return 10 * math.log10(reference.square().sum() / (reference - reconstruction).square().sum())


def tones(n: int, rate: int = 4410) -> torch.Tensor:
    t = torch.arange(n, dtype=torch.float64) / rate
    return (
        (
            0.5 * torch.sin(2 * math.pi * 110 * t)
            + 0.3 * torch.sin(2 * math.pi * 523.25 * t + 1)
            + 0.1 * torch.sin(2 * math.pi * 1760 * t + 2)
        )
        .float()
        .reshape(1, 1, n)
    )


@pytest.mark.parametrize("n, hop", [(13230, 245), (1001, 64), (300, 300)])
def test_the_mdct_filterbank_pair_reconstructs_any_length_perfectly(n, hop):
    net = SparseConvAutoencoder(n, latent=2, hop=hop)
    net.select = TopK(2 * math.prod(net.latent_shape))  # keep every coefficient: the filterbanks alone
    wave = torch.randn(3, 1, n)
    assert torch.allclose(net(wave), wave, atol=1e-5)


def test_the_code_is_latent_numbers_the_largest_coefficients_and_their_positions():
    net = SparseConvAutoencoder(13230, latent=3300, hop=245)
    wave = torch.randn(4, 1, 13230)
    dense = net.encoder(torch.nn.functional.pad(wave, (0, -13230 % 245)))
    sparse = net.encode(wave)
    assert sparse.shape == dense.shape == (4, *net.latent_shape)
    assert (sparse != 0).flatten(1).sum(1).tolist() == [1650] * 4  # 1650 values + 1650 positions = 3300
    smallest_kept = sparse.abs().flatten(1).where(sparse.flatten(1) != 0, torch.inf).min(1).values
    largest_dropped = dense.abs().flatten(1).where(sparse.flatten(1) == 0, 0).max(1).values
    assert (smallest_kept >= largest_dropped).all()
    code = net.pack(sparse)  # the 1650 values, then their 1650 positions
    assert code.shape == (4, 3300) and torch.equal(net.unpack(code), sparse)


def test_the_mdct_start_already_codes_music_and_a_random_start_does_not():
    segment = tones(13230)
    mdct = AutoencoderModule(SparseConvAutoencoder(13230, latent=3300, hop=245), representation=Raw())
    torch.manual_seed(0)
    random = AutoencoderModule(SparseConvAutoencoder(13230, latent=3300, hop=245, init="random"), representation=Raw())
    with torch.no_grad():
        assert snr_db(segment, mdct.reconstruct(segment)) > 30
        assert snr_db(segment, random.reconstruct(segment)) < 5


def test_gradients_reach_the_kept_coefficients_filters():
    net = SparseConvAutoencoder(1000, latent=20, hop=50)
    wave = torch.randn(2, 1, 1000)
    net(wave).square().sum().backward()
    assert net.encoder.weight.grad.abs().sum() > 0 and net.decoder.weight.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(representation=RFFT()), "representation=raw"),
        (dict(hop=0), "model.net.hop=0"),
        (dict(latent=1), "at least 2"),
        (dict(latent=5000), "model.net.latent=5000"),
        (dict(init="dct"), "model.net.init=dct"),
        (dict(select="omp"), "model.net.select=omp"),
    ],
)
def test_bad_options_are_config_errors(kwargs, message):
    representation = kwargs.pop("representation", Raw())
    with pytest.raises(ConfigError, match=message):
        AutoencoderModule(
            SparseConvAutoencoder(1000, **{"latent": 250, "hop": 50, **kwargs}), representation=representation
        )


def test_runs_refuse_a_grid_whose_descriptors_float32_cannot_hold_exactly():
    with pytest.raises(ConfigError, match="model.net.select=runs: a run's descriptor"):
        SparseConvAutoencoder(60000, latent=250, hop=2, select="runs")


def test_short_fit_on_demo_data_checkpoints_and_reconstructs(make_cfg):
    cfg = make_cfg(
        "model=sparseconv",
        "representation=raw",
        "model.net.latent=250",
        "model.net.hop=50",
        "loss.terms.mse.normalized=true",
        "optimizer.weight_decay=0",
        "optimizer.lr=1e-3",
        "trainer.max_epochs=3",
    )
    results = train(cfg)
    snr = [v for _, v in scalars(Path(results["tensorboard"]), "val/snr_db")]
    assert len(snr) == 3 and all(math.isfinite(v) for v in snr) and max(snr) > 3, snr
    model, _ = load_model(results["best_checkpoint"])
    assert isinstance(model.net, SparseConvAutoencoder)
    wave = torch.randn(2, 1, model.input_length) * 0.1
    assert model.reconstruct(wave).shape == wave.shape


def test_best_experiment_composes_with_the_documented_command(make_cfg, tmp_path):
    cfg = make_cfg("experiment=best", "data=folder", f"data.root={tmp_path}", "trainer.max_time=00:12:00:00")
    model = instantiate(cfg.model)
    assert isinstance(model.net, SparseConvAutoencoder) and isinstance(model.net.select, Runs)
    assert model.net.select.numbers == 3300
    assert model.input_length == 13230 and sum(p.numel() for p in model.parameters()) == 2 * 245 * 490
    assert cfg.trainer.max_time == "00:12:00:00" and cfg.data.root == str(tmp_path)
    assert cfg.optimizer.weight_decay == 0 and model.loss.terms["mse"].normalized
