"""Config faults stop a run before any work (no audio scanned, nothing cached), with a message
that names the key and a valid example."""

import pytest

from conftest import TINY, run_cli
from aerecon.errors import ConfigError
from aerecon.train import train


@pytest.mark.parametrize("overrides, message", [
    (["model=fc", "model.latent=999999"],
     r"model.latent=999999 must be between 1 and the model's input length 1000 .* e.g. model.latent=250"),
    (["model=conv", "representation=raw", "data.segment_seconds=0.002", "model.channels=[2,2,2,2]", "model.latent=1"],
     r"data segment of 4 samples is too short for 4 conv layers .* e.g. data.segment_seconds=3.0"),
    (["model=resconv", "representation=raw", "data.segment_seconds=0.002", "model.latent=4"],
     r"model.strides=\[4\] leave .* change model.latent_channels or model.strides"),
    (["data.sample_rate=0"], r"data.sample_rate=0: must be a positive rate in Hz, e.g. 4410"),
    (["data.sample_rate=-8000"], r"data.sample_rate=-8000: must be a positive rate in Hz, e.g. 4410"),
    (["data=folder", "~data.num_songs", "~data.song_seconds", "~data.render_rate"],
     r"data.root is not set: .* e.g. data=folder data.root=\$HOME/music"),
    (["trainer.precision=17"], r"trainer.precision=17: plan and train support 32-true"),
    (["data.jitter=2"], r"data.jitter=2: .* e.g. 0.5"),
    (["loss=mse_stft", "~loss.terms.stft"], r"loss.weights names \['stft'\], .* e.g. loss=mse_stft"),
])
def test_config_faults_stop_before_any_work_and_name_the_key(make_cfg, tmp_path, overrides, message):
    cache = tmp_path / "fresh_cache"
    cfg = make_cfg(*overrides)
    cfg.paths.cache_dir = str(cache)
    with pytest.raises(ConfigError, match=message):
        train(cfg)
    assert not cache.exists()  # nothing was scanned or decoded


def test_unknown_model_or_option_names_the_choices(tmp_path):
    result = run_cli(*TINY, "model=transformer", cwd=tmp_path)
    assert result.returncode != 0
    assert "Could not find 'model/transformer'" in result.stderr
    assert all(f"\t{name}\n" in result.stderr for name in ("conv", "fc", "resconv"))  # the valid choices
    result = run_cli(*TINY, "model.hiden=[8]", cwd=tmp_path)
    assert result.returncode != 0 and "Key 'hiden' is not in struct" in result.stderr
    assert "full_key: model.hiden" in result.stderr
