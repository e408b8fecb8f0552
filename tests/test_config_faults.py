"""Config faults stop a run before any work (no audio scanned, nothing cached), with a message
that names the key and a valid example."""

import pytest

from conftest import TINY, run_cli
from aerecon.errors import ConfigError
from aerecon.train import train


@pytest.mark.parametrize("overrides, message", [
    (["model=fc", "model.net.latent=999999"],
     r"model.net.latent=999999 must be between 1 and the model's input length 1000 .* e.g. model.net.latent=250"),
    (["model=conv", "representation=raw", "data.segment_seconds=0.002", "model.net.channels=[2,2,2,2]", "model.net.latent=1",
      "callbacks.reconstruction_preview=null"],
     r"data segment of 4 samples is too short for 4 conv layers .* e.g. data.segment_seconds=3.0"),
    (["model=resconv", "representation=raw", "data.segment_seconds=0.002", "model.net.latent=4",
      "callbacks.reconstruction_preview=null"],
     r"model.net.strides=\[4\] leave .* change model.net.latent_channels or model.net.strides"),
    (["data.sample_rate=0"], r"data.sample_rate=0: must be a positive rate in Hz, e.g. data.sample_rate=4410"),
    (["data.sample_rate=-8000"], r"data.sample_rate=-8000: must be a positive rate in Hz, e.g. data.sample_rate=4410"),
    (["data=folder", "~data.num_songs", "~data.song_seconds", "~data.render_rate"],
     r"data.root is not set: .* e.g. data=folder data.root=\$HOME/music"),
    (["trainer.precision=17"], r"trainer.precision=17: plan and train support 32-true"),
    (["data.jitter=2"], r"data.jitter=2: .* e.g. data.jitter=0.5"),
    (["loss=mse_stft", "~loss.terms.stft"], r"loss.weights names \['stft'\], .* e.g. loss=mse_stft"),
    (["data.batch_size=0"], r"data.batch_size=0: must be a whole number of segments, at least 1, e.g. data.batch_size=40"),
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
    (["data.sample_rate=8", "data.segment_seconds=3"],
     r"data.segment_seconds=3 at data.sample_rate=8 is 24 samples, too short for the preview's window"),
    pytest.param(["trainer.accelerator=gpu"], r"trainer.accelerator=gpu: this torch sees no GPU here",
                 marks=pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has a GPU")),
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


def test_number_faults_on_the_command_line_are_one_line_and_exit_2(tmp_path):
    result = run_cli(*TINY, "data.batch_size=forty", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == ("aerecon: error: data.batch_size='forty': must be a whole number of segments, "
                                     "at least 1, e.g. data.batch_size=40")
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
    assert f"ckpt_path={run} is a folder, not a checkpoint; its latest checkpoint: ckpt_path={run}/checkpoints/last.ckpt" \
        in result.stderr
    result = run_cli(*TINY, f"ckpt_path={run}", cwd=tmp_path)
    assert result.returncode == 2 and "is a folder, not a checkpoint" in result.stderr
    result = run_cli("ckpt_path=x.ckpt", "batch_size=0", cwd=tmp_path, app="aerecon.evaluate")
    assert result.returncode == 2 and "batch_size=0: must be a whole number of segments per pass" in result.stderr
