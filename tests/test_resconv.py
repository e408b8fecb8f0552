import math
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from test_train import scalars  # tests/ is on sys.path (pytest rootdir conftest)

from aerecon.audio.representation import RFFT, Raw
from aerecon.models import AutoencoderModule, FCAutoencoder, ResConvAutoencoder, VAEBottleneck, VectorQuantizer
from aerecon.train import train
from aerecon.training.checkpoint import load_model
from aerecon.utils.errors import ConfigError


@pytest.mark.parametrize("representation", [Raw(), RFFT()])
@pytest.mark.parametrize(
    "n, strides, channels, latent, latent_channels",
    [
        (13230, [2, 2, 2, 2], [4, 4, 4, 4, 4], 3300, 4),  # the thesis's latent size, exactly
        (13230, [4, 4], [4, 8, 8], 3300, 4),
        (1000, [4], [4, 8], 500, 2),
        (1001, [3, 2], [2, 4, 4], 330, 2),
    ],
)
def test_latent_size_is_exact_and_any_length_round_trips(representation, n, strides, channels, latent, latent_channels):
    net = ResConvAutoencoder(
        n, channels=channels, strides=strides, latent=latent, latent_channels=latent_channels, dilations=[1, 3]
    )
    model = AutoencoderModule(net, representation=representation)
    x = representation.encode(torch.randn(2, 1, n))
    z = net.encode(x)
    assert z.shape == (2, latent_channels, latent // latent_channels) and z[0].numel() == latent
    assert model(x).shape == x.shape
    assert model.reconstruct(torch.randn(2, 1, n)).shape == (2, 1, n)


def test_latent_matches_the_thesis_conv_models():
    resconv = ResConvAutoencoder(13230, channels=[2, 2, 2, 2, 2])
    assert resconv.encoder(torch.zeros(1, 1, 13230)).numel() == 3300  # the FC and conv models' latent


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(latent=3301, latent_channels=4), "latent_channels"),
        (dict(latent=3300, latent_channels=1), "frames"),  # 3300 frames > 826 left by the strides
        (dict(channels=[4, 8], strides=[2, 2]), "one entry more"),
        (dict(latent=20000), "between 1 and the model's input length"),
    ],
)
def test_bad_shapes_are_config_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        ResConvAutoencoder(13230, **{"channels": [4, 4, 4, 4, 4], **kwargs})


def test_bottleneck_on_a_model_without_a_channel_latent_is_refused():
    with pytest.raises(ConfigError, match="resconv"):
        AutoencoderModule(FCAutoencoder(1000, hidden=[16], latent=8), bottleneck=VectorQuantizer)


def test_vq_quantizes_to_codes_and_passes_gradients_straight_through():
    vq = VectorQuantizer(channels=3, codebook_size=8).eval()
    z = torch.randn(2, 3, 10, requires_grad=True)
    q, terms = vq(z)
    codes = vq.codebook
    assert q.shape == z.shape
    flat = q.detach().transpose(1, 2).reshape(-1, 3)
    assert all(torch.isclose(codes, row, atol=1e-6).all(1).any() for row in flat)  # every frame is a code
    q.sum().backward()
    assert torch.equal(z.grad, torch.ones_like(z))  # straight-through
    assert set(terms) == {"total", "commitment", "perplexity", "usage"}
    assert 1.0 <= terms["perplexity"] <= 8.0 and 0 < terms["usage"] <= 1
    assert terms["total"].item() == pytest.approx(0.25 * terms["commitment"].item())


def test_vq_restarts_revive_a_dead_code():
    torch.manual_seed(0)
    vq = VectorQuantizer(channels=2, codebook_size=4, decay=0.5, dead_threshold=0.01).train()
    vq.codebook.copy_(torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [100.0, 100.0]]))  # code 3: far off
    vq.ema_sum.copy_(vq.codebook * 10)
    vq.ema_count.fill_(10.0)
    vq.usage.fill_(10.0)  # all alive at first: code 3's use decays, as nothing is ever near it
    data = lambda: torch.randn(4, 2, 16)  # noqa: E731
    revived_at = None
    for step in range(30):
        vq(data())
        if vq.codebook[3].abs().max() < 10:
            revived_at = step
            break
    assert revived_at is not None and revived_at > 5, "code 3 restarts once its use has decayed, not before"
    # restarted at an encoder output, it is now chosen
    chosen = vq.eval()(torch.randn(64, 2, 16))[1]["usage"]
    assert chosen == 1.0


def test_vq_codebook_learns_by_loss_when_asked():
    vq = VectorQuantizer(channels=2, codebook_size=4, update="loss").train()
    _, terms = vq(torch.randn(2, 2, 8))
    terms["total"].backward()
    assert isinstance(vq.codebook, torch.nn.Parameter) and vq.codebook.grad.abs().sum() > 0
    assert "codebook" in terms


def test_vae_samples_in_training_uses_the_mean_in_eval_and_warms_up_kl():
    vae = VAEBottleneck(channels=3, kl_weight=0.5, warmup_steps=4)
    z = torch.randn(2, 3, 10)
    a, terms = vae.train()(z)
    b, _ = vae(z)
    assert not torch.equal(a, b) and a.shape == z.shape
    assert terms["kl_weight"] == 0.0 and terms["total"] == 0.0  # first step: weight 0
    for _ in range(6):
        _, terms = vae(z)
    assert terms["kl_weight"] == 0.5 and terms["total"].item() == pytest.approx(0.5 * terms["kl"].item())
    e1, _ = vae.eval()(z)
    e2, _ = vae(z)
    assert torch.equal(e1, e2)
    with torch.no_grad():  # mean 0, log-variance 0: the prior itself, KL 0
        vae.stats.weight.zero_()
        vae.stats.bias.zero_()
    assert vae(z)[1]["kl"].item() == pytest.approx(0.0, abs=1e-7)


@pytest.mark.parametrize(
    "overrides",
    [
        ["representation=raw", "loss=mse"],
        ["representation=rfft", "loss=mse_stft"],
        ["representation=raw", "bottleneck=vq"],
        ["representation=raw", "bottleneck=vae"],
    ],
)
def test_resconv_builds_from_config(make_cfg, overrides):
    cfg = make_cfg("model=resconv", *overrides)
    model = instantiate(cfg.model)
    assert isinstance(model.net, ResConvAutoencoder) and model.net.latent_shape == (2, 250)
    kind = {"bottleneck=vq": VectorQuantizer, "bottleneck=vae": VAEBottleneck}.get(overrides[-1])
    assert (model.bottleneck is None) if kind is None else isinstance(model.bottleneck, kind)


@pytest.mark.parametrize(
    "overrides, tags",
    [
        (["representation=raw", "loss=mse"], []),
        (
            ["representation=rfft", "loss=mse_stft"],
            ["val/loss/mse", "val/loss/stft", "val/loss/stft/sc", "train/loss/stft/log_mag_epoch"],
        ),
        (
            ["representation=raw", "bottleneck=vq"],
            [
                "val/loss/vectorquantizer/perplexity",
                "train/loss/vectorquantizer/usage_epoch",
                "val/loss/vectorquantizer/commitment",
            ],
        ),
        (
            ["representation=raw", "bottleneck=vae"],
            ["val/loss/vaebottleneck/kl", "train/loss/vaebottleneck/kl_weight_epoch"],
        ),
    ],
    ids=["mse", "mse_stft_rfft", "vq", "vae"],
)
def test_short_fit_on_demo_data_logs_every_term_and_evaluates(make_cfg, overrides, tags):
    cfg = make_cfg("model=resconv", *overrides, "trainer.max_epochs=3", "optimizer.lr=3e-3")
    results = train(cfg)
    tb = Path(results["tensorboard"])
    for tag in ["val/loss", "val/snr_db", *tags]:
        values = [v for _, v in scalars(tb, tag)]
        assert values and all(math.isfinite(v) for v in values), tag
    val_loss = [v for _, v in scalars(tb, "val/loss")]
    if "bottleneck=vae" not in overrides:  # the VAE's KL weight ramps up, so its loss may rise
        assert val_loss[-1] < val_loss[0]
    model, config = load_model(results["best_checkpoint"])
    assert type(model.bottleneck).__name__ == {
        "bottleneck=vq": "VectorQuantizer",
        "bottleneck=vae": "VAEBottleneck",
    }.get(overrides[-1], "NoneType")
    wave = torch.randn(2, 1, model.input_length) * 0.1
    assert model.reconstruct(wave).shape == wave.shape


def test_resconv_stft_experiment_composes_with_the_documented_command(make_cfg, tmp_path):
    cfg = make_cfg("experiment=resconv_stft", "data=folder", f"data.root={tmp_path}", "trainer.max_time=00:12:00:00")
    model = instantiate(cfg.model)
    assert isinstance(model.net, ResConvAutoencoder) and model.net.encode(torch.zeros(1, 1, 13230)).numel() == 3300
    assert cfg.trainer.max_time == "00:12:00:00" and cfg.data.root == str(tmp_path)
    assert set(model.loss.terms) == {"mse", "stft"}
