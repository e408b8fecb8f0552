"""Config faults stop a run before any work (no audio scanned, nothing cached), with a message
that names the key and a valid example."""

from pathlib import Path

import pytest
from conftest import CONF, TINY, run_cli
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf
from test_checkpoint_files import CHOICES

from aerecon.train import train
from aerecon.utils.config import compose_train
from aerecon.utils.errors import ConfigError
from aerecon.utils.settings import EVALUATE, RECONSTRUCT, TRAIN


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ["model=fc", "model.net.latent=999999"],
            r"model.net.latent=999999 must be between 1 and the model's input length 1000 .* e.g. model.net.latent=250",
        ),
        (
            [
                "model=conv",
                "representation=raw",
                "data.segment_seconds=0.002",
                "model.net.channels=[2,2,2,2]",
                "model.net.latent=1",
                "callbacks.reconstruction_preview=null",
            ],
            r"data segment of 4 samples is too short for 4 conv layers .* e.g. data.segment_seconds=3.0",
        ),
        (
            [
                "model=resconv",
                "representation=raw",
                "data.segment_seconds=0.002",
                "model.net.latent=4",
                "callbacks.reconstruction_preview=null",
            ],
            r"model.net.strides=\[4\] leave .* change model.net.latent_channels or model.net.strides",
        ),
        (["data.sample_rate=0"], r"data.sample_rate=0: must be a positive rate in Hz, e.g. data.sample_rate=4410"),
        (
            ["data.sample_rate=-8000"],
            r"data.sample_rate=-8000: must be a positive rate in Hz, e.g. data.sample_rate=4410",
        ),
        (
            ["data=folder", "~data.num_songs", "~data.song_seconds", "~data.render_rate"],
            r"data.root is not set: .* e.g. data=folder data.root=\$HOME/music",
        ),
        (["trainer.precision=17"], r"trainer.precision=17: plan and train support 32-true"),
        (["data.jitter=2"], r"data.jitter=2: .* e.g. data.jitter=0.5"),
        (["loss=mse_stft", "~loss.terms.stft"], r"loss.weights names \['stft'\], .* e.g. loss=mse_stft"),
        (
            ["data.batch_size=0"],
            r"data.batch_size=0: must be a whole number of segments, at least 1, e.g. data.batch_size=40",
        ),
        (["data.batch_size=-4"], r"data.batch_size=-4: must be"),
        (["data.batch_size=1.5"], r"data.batch_size=1.5: must be"),
        (["data.batch_size=forty"], r"data.batch_size='forty': must be a whole number"),
        (["data.num_workers=-1"], r"data.num_workers=-1: must be a whole number of loader processes, 0 or more"),
        (["trainer.max_epochs=0"], r"trainer.max_epochs=0: must be a whole number of epochs, at least 1 \(or -1"),
        (["optimizer.lr=-1"], r"optimizer.lr=-1: must be a learning rate above 0, e.g. optimizer.lr=1e-4"),
        (["optimizer.lr=fast"], r"optimizer.lr='fast': must be a learning rate above 0"),
        (["trainer.max_time=12h"], r"trainer.max_time='12h': must be a wall-clock limit DD:HH:MM:SS"),
        (["callbacks.early_stopping.patience=-5"], r"callbacks.early_stopping.patience=-5: must be a whole number"),
        (["budget_gb=0"], r"budget_gb=0: must be GiB above 0, or null"),
        (["trainer.accumulate_grad_batches=0"], r"trainer.accumulate_grad_batches=0: must be"),
        (["optimizer.lr=inf"], r"optimizer.lr=inf: must be a learning rate above 0"),
        (["data.segment_seconds=inf"], r"data.segment_seconds=inf: must be a positive length in seconds"),
        (["data.split={train:nan,val:1,test:1}"], r"data.split=\{'train': nan, .*\}: needs train, val, test weights"),
        (
            ["model=fc", "data.sample_rate=4000000", "model.net.hidden=[2000]"],
            r"this model has [\d,]+ parameters: its weights alone, even at 16 bits, need [\d.]+ GiB, "
            r"more than budget_gb=8; nothing was built",
        ),
        (["test=no"], r"test='no': must be true or false, e.g. test=true"),
        (["trainer.enable_progress_bar=off"], r"trainer.enable_progress_bar='off': must be true or false"),
        (["model.gradient_checkpointing=1"], r"model.gradient_checkpointing=1: must be true or false"),
        (["trainer.deterministic=yes"], r"trainer.deterministic='yes': must be true, false or warn"),
        (
            ["data.sample_rate=8", "data.segment_seconds=3"],
            r"data.segment_seconds=3 at data.sample_rate=8 is 24 samples, too short for the preview's window",
        ),
        pytest.param(
            ["trainer.accelerator=gpu"],
            r"trainer.accelerator=gpu: this torch sees no GPU here",
            marks=pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has a GPU"),
        ),
    ],
)
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


def test_number_faults_on_the_command_line_are_one_line_and_exit_2(tmp_path):
    result = run_cli(*TINY, "data.batch_size=forty", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        "aerecon: error: data.batch_size='forty': must be a whole number of segments, "
        "at least 1, e.g. data.batch_size=40"
    )
    assert not (tmp_path / "logs").exists()  # a refused run leaves no folder behind
    result = run_cli(*TINY, "paths.root_dir=", cwd=tmp_path)  # empty: it would have meant / for logs, data, cache
    assert result.returncode == 2 and result.stderr.strip() == (
        "aerecon: error: paths.root_dir='': must be a folder, e.g. paths.root_dir=DIR"
    )
    assert not Path("/logs/train").exists()
    result = run_cli(*TINY, "optimizer.lr=-1", cwd=tmp_path, app="aerecon.plan")
    assert result.returncode == 2 and "optimizer.lr=-1: must be a learning rate above 0" in result.stderr


def test_evaluate_names_a_missing_or_folder_checkpoint(tmp_path):
    result = run_cli(cwd=tmp_path, app="aerecon.evaluate")
    assert result.returncode == 2 and "aerecon: error: ckpt_path is not set" in result.stderr
    run = tmp_path / "logs/train/runs/r1"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints/last.ckpt").write_bytes(b"")
    result = run_cli(f"ckpt_path={run}", cwd=tmp_path, app="aerecon.evaluate")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert (
        f"ckpt_path={run} is a folder, not a checkpoint; its latest checkpoint: ckpt_path={run}/checkpoints/last.ckpt"
        in result.stderr
    )
    result = run_cli(*TINY, f"ckpt_path={run}", cwd=tmp_path)
    assert result.returncode == 2 and "is a folder, not a checkpoint" in result.stderr
    result = run_cli("ckpt_path=x.ckpt", "batch_size=0", cwd=tmp_path, app="aerecon.evaluate")
    assert result.returncode == 2 and "batch_size=0: must be a whole number of segments per pass" in result.stderr


def _booleans(node, key=""):
    if isinstance(node, dict):
        return [
            k
            for name, value in node.items()
            if not str(name).startswith("_")
            for k in _booleans(value, f"{key}.{name}" if key else str(name))
        ]
    return [key] if isinstance(node, bool) else []


def test_every_true_false_setting_of_every_command_is_checked_as_one():
    found = {key for overrides in CHOICES for key in _booleans(OmegaConf.to_container(compose_train(overrides)))}
    assert "test" in found and not found - TRAIN.keys(), sorted(found - TRAIN.keys())
    for name, rules in (("evaluate", EVALUATE), ("reconstruct", RECONSTRUCT)):
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            keys = set(_booleans(OmegaConf.to_container(compose(name))))
        GlobalHydra.instance().clear()
        assert keys and not keys - rules.keys(), (name, sorted(keys - rules.keys()))


def test_overwrite_no_keeps_the_file(tmp_path):
    from test_inference import FIXTURES

    song, kept = tmp_path / "song.wav", tmp_path / "kept.wav"
    import numpy as np
    import soundfile as sf

    sf.write(song, np.full(400, 0.1), 2000)
    kept.write_bytes(b"the user's own file")
    for spelling in ("no", "off", "NO", "0"):
        result = run_cli(
            f"ckpt_path={FIXTURES / 'fc.ckpt'}",
            f"input={song}",
            f"output={kept}",
            f"overwrite={spelling}",
            cwd=tmp_path,
            app="aerecon.reconstruct",
        )
        assert result.returncode == 2 and "must be true or false, e.g. overwrite=true" in result.stderr, result.stderr
    assert kept.read_bytes() == b"the user's own file"


def test_a_path_given_with_a_tilde_means_the_home_folder(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "HOME": str(tmp_path / "home")}
    result = subprocess.run(
        [sys.executable, "-m", "aerecon.train", "data=folder", "data.root=~/music"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 2 and "LexerNoViableAlt" not in result.stderr
    assert f"{tmp_path / 'home' / 'music'}" in result.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize(
    "app, usage",
    [
        ("aerecon.reconstruct", "aerecon-reconstruct ckpt_path=CKPT input=SONG"),
        ("aerecon.export", "aerecon-export ckpt_path=CKPT format="),
        ("aerecon.prepare", "aerecon-prepare data.root=MUSIC output="),
        ("aerecon.evaluate", "aerecon-eval ckpt_path=CKPT"),
    ],
)
def test_each_command_help_lists_its_own_settings(tmp_path, app, usage):
    result = run_cli("--help", cwd=tmp_path, app=app)
    assert result.returncode == 0 and f"Usage: {usage}" in result.stdout
    assert "bottleneck: vae, vq" not in result.stdout and "ckpt_path" in result.stdout + "ckpt_path"
