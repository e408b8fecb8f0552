import sys

import pytest
import torch
from conftest import CONF, REPO
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate

from aerecon.models import AutoencoderModule, ConvAutoencoder, FCAutoencoder
from aerecon.utils.errors import ConfigError
from aerecon.utils.settings import check_train

THESIS_N = 13230  # 3 s at 4410 Hz

# (layer type, output shape without batch, parameters): the thesis's layer summaries
THESIS_FC = [
    ("Linear", [1, 9800], 129_663_800),
    ("Linear", [1, 6500], 63_706_500),
    ("Linear", [1, 3300], 21_453_300),
    ("Linear", [1, 6500], 21_456_500),
    ("Linear", [1, 9800], 63_709_800),
    ("Linear", [1, 13230], 129_667_230),
]
THESIS_CONV = [
    ("Conv1d", [16, 6615], 80),
    ("Conv1d", [32, 3307], 2_080),
    ("Conv1d", [64, 1653], 8_256),
    ("Linear", [3300], 349_116_900),
    ("Linear", [105792], 349_219_392),
    ("ConvTranspose1d", [32, 3307], 8_224),
    ("ConvTranspose1d", [16, 6615], 2_064),
    ("ConvTranspose1d", [1, 13230], 65),
]


def layer_summary(model, n):
    """(type, output shape, parameters) of every parametrised layer, from a meta-device forward."""
    rows = []
    hooks = [
        m.register_forward_hook(
            lambda m, i, o: rows.append((type(m).__name__, list(o.shape[1:]), sum(p.numel() for p in m.parameters())))
        )
        for m in model.modules()
        if isinstance(m, (torch.nn.Linear, torch.nn.Conv1d, torch.nn.ConvTranspose1d))
    ]
    model(torch.zeros(40, 1, n, device="meta"))
    for h in hooks:
        h.remove()
    return rows


@pytest.mark.parametrize(
    "cls, table, total",
    [
        (FCAutoencoder, THESIS_FC, 429_657_130),
        (ConvAutoencoder, THESIS_CONV, 698_357_061),
    ],
)
def test_thesis_models_layer_by_layer(cls, table, total):
    with torch.device("meta"):
        model = cls(THESIS_N)
    assert sum(p.numel() for p in model.parameters()) == total
    assert layer_summary(model, THESIS_N) == table


@pytest.mark.parametrize("model_name, total", [("fc", 429_657_130), ("conv", 698_357_061)])
def test_thesis_experiments_build_the_thesis_setup(make_cfg, model_name, total):
    cfg = make_cfg(f"experiment=thesis_{model_name}")
    with torch.device("meta"):
        model = instantiate(cfg.model)
    assert isinstance(model, AutoencoderModule)
    assert type(model.net).__name__ == {"fc": "FCAutoencoder", "conv": "ConvAutoencoder"}[model_name]
    assert model.input_length == model.net.input_length == THESIS_N
    assert sum(p.numel() for p in model.parameters()) == total
    assert (cfg.data.sample_rate, cfg.data.segment_seconds, cfg.data.batch_size) == (4410, 3.0, 40)
    assert cfg.representation._target_.endswith("RFFT") and cfg.representation.norm == "backward"
    assert (cfg.optimizer.lr, cfg.optimizer.weight_decay) == (1e-4, 1e-5)
    assert cfg.optimizer._target_ == "torch.optim.Adam"
    es = cfg.callbacks.early_stopping
    assert (es.monitor, es.patience, es.mode, cfg.trainer.max_epochs) == ("val/loss", 50, "min", 500)


def test_conv_thesis_output_padding():
    with torch.device("meta"):
        model = ConvAutoencoder(THESIS_N)
    pads = [m.output_padding[0] for m in model.modules() if isinstance(m, torch.nn.ConvTranspose1d)]
    assert pads == [1, 1, 0]


@pytest.mark.parametrize("n", [1000, 1001, 1003, 4410, 13231])
@pytest.mark.parametrize("kernel, stride, padding", [(4, 2, 1), (5, 3, 2), (3, 1, 1), (8, 4, 0)])
def test_conv_reconstructs_any_length(n, kernel, stride, padding):
    model = ConvAutoencoder(n, channels=[2, 3, 4], kernel_size=kernel, stride=stride, padding=padding, latent=8)
    assert model(torch.randn(2, 1, n)).shape == (2, 1, n)


def test_fc_output_shape_and_widths():
    model = FCAutoencoder(500, hidden=[64, 32], latent=7)
    assert model(torch.randn(3, 1, 500)).shape == (3, 1, 500)
    widths = [m.out_features for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert widths == [64, 32, 7, 32, 64, 500]


@pytest.mark.parametrize("cls, kwargs", [(FCAutoencoder, {"hidden": [16]}), (ConvAutoencoder, {"channels": [2, 4]})])
def test_gradient_checkpointing_gives_the_same_gradients(cls, kwargs):
    torch.manual_seed(0)
    plain = AutoencoderModule(cls(300, latent=5, **kwargs))
    ckpt = AutoencoderModule(cls(300, latent=5, **kwargs), gradient_checkpointing=True)
    ckpt.load_state_dict(plain.state_dict())
    ckpt.setup("fit")
    x = torch.randn(4, 1, 300)
    for model in (plain, ckpt):
        model.zero_grad()
        model(x).pow(2).mean().backward()
    for a, b in zip(plain.parameters(), ckpt.parameters()):
        torch.testing.assert_close(a.grad, b.grad)


def test_bad_sizes_are_config_errors():
    with pytest.raises(ConfigError, match="too short for 3 conv layers"):
        ConvAutoencoder(5, channels=[2, 2, 2])
    with pytest.raises(ConfigError, match="model.net.latent=600"):
        FCAutoencoder(500, latent=600)
    with pytest.raises(ConfigError, match="model.net.latent=0"):
        ConvAutoencoder(500, latent=0)


def test_every_real_music_benchmark_entry_passes_the_settings_check(tmp_path):
    """`make bench` composes each entry as below; a setting the checks refuse would stop it an hour in."""
    sys.path.insert(0, str(REPO / "experiments"))
    from benchmark_realmusic import ENTRIES, FULL_SIZE

    for name, overrides in ENTRIES.items():
        for extra in ([], FULL_SIZE.get(name)):
            if extra is None:
                continue
            entry = [*overrides, *extra, f"data.root={tmp_path}", "trainer.max_time=00:00:06:00", "test=false"]
            if not overrides[0].startswith("experiment="):
                entry.insert(0, "experiment=realmusic_cpu")
            GlobalHydra.instance().clear()
            with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
                cfg = compose(config_name="train", overrides=entry)
            check_train(cfg)  # raises ConfigError with the setting's name
    GlobalHydra.instance().clear()
