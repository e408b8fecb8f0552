import logging
from pathlib import Path

import pytest
import torch
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from aerecon.train import train
from aerecon.training.checkpoint import AtomicCheckpointIO, load_checkpoint_config
from aerecon.utils.errors import ConfigError, NumericalError


def scalars(tb_dir: Path, tag: str) -> list[tuple[int, float]]:
    events = EventAccumulator(str(tb_dir))
    events.Reload()
    return [(e.step, e.value) for e in events.Scalars(tag)]


@pytest.mark.parametrize("model", ["fc", "conv"])
def test_fit_writes_checkpoints_with_config_and_tensorboard_metrics(make_cfg, model):
    cfg = make_cfg(f"model={model}")
    results = train(cfg)
    run = Path(cfg.paths.run_dir)
    ckpts = run / "checkpoints"
    assert (ckpts / "last.ckpt").is_file()
    best = Path(results["best_checkpoint"])
    assert best.parent == ckpts and best.name.startswith("best-epoch")
    for path in (ckpts / "last.ckpt", best):
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        assert checkpoint["aerecon"]["config"]["model"]["net"]["_target_"].endswith(
            {"fc": "FCAutoencoder", "conv": "ConvAutoencoder"}[model]
        )
        assert checkpoint["aerecon"]["config"]["data"]["sample_rate"] == 2000  # resolved, not interpolations
    assert load_checkpoint_config(best)["model_name"] == model
    tb = Path(results["tensorboard"])
    for tag in ("train/loss_epoch", "val/loss", "val/mse", "val/mae", "val/rmse", "val/snr_db", "test/snr_db"):
        assert scalars(tb, tag), tag
    assert len(scalars(tb, "val/loss")) == cfg.trainer.max_epochs
    # train losses: every step here (log_every_n_steps=1); the epoch's value is the batch mean of its steps
    steps, epochs = scalars(tb, "train/loss_step"), scalars(tb, "train/loss_epoch")
    assert len(steps) == cfg.trainer.max_epochs * (len(steps) // cfg.trainer.max_epochs) and len(epochs) == 2
    per_epoch = len(steps) // cfg.trainer.max_epochs  # the tiny demo's batches are full: equal weights
    for e, (_, value) in enumerate(epochs):
        assert value == pytest.approx(
            sum(v for _, v in steps[e * per_epoch : (e + 1) * per_epoch]) / per_epoch, rel=1e-5
        )
    hparams = yaml.safe_load((tb / "hparams.yaml").read_text())
    assert hparams["model"]["net"]["latent"] == 8 and hparams["optimizer"]["lr"] == 1e-4
    assert results["best"]["val/loss"] == pytest.approx(min(v for _, v in scalars(tb, "val/loss")))
    assert results["test"]["test/mse"] > 0
    # metrics are computed on time-domain waveforms: a silent output would give SNR 0 dB, MSE = signal power
    assert results["best"]["val/mse"] < 1.0 and results["best"]["val/rmse"] == pytest.approx(
        results["best"]["val/mse"] ** 0.5, rel=1e-4
    )


def test_resume_is_exact(make_cfg, tmp_path):
    """Two epochs, then resumed to four == four straight: same val/loss curve, same final state."""
    overrides = ["model=conv", "callbacks.early_stopping.patience=50", "optimizer.lr=3e-3"]
    straight = make_cfg(*overrides, "trainer.max_epochs=4", f"paths.run_dir={tmp_path / 'straight'}")
    straight.paths.run_dir = str(tmp_path / "straight")
    train(straight)

    first = make_cfg(*overrides, "trainer.max_epochs=2")
    first.paths.run_dir = str(tmp_path / "split")
    train(first)
    resumed = make_cfg(*overrides, "trainer.max_epochs=4", f"ckpt_path={tmp_path / 'split/checkpoints/last.ckpt'}")
    resumed.paths.run_dir = str(tmp_path / "elsewhere")  # a new Hydra run folder; training must go to the old one
    results = train(resumed)
    assert results["run_dir"] == str(tmp_path / "split")
    assert not (tmp_path / "elsewhere" / "checkpoints").exists()

    assert_same_run(tmp_path / "straight", tmp_path / "split", epochs=4)


def assert_same_run(straight: Path, resumed: Path, epochs: int) -> None:
    """The resumed run's folder ends as the uninterrupted one's: val/loss curve, weights, optimizer, callbacks."""
    a = scalars(straight / "tensorboard", "val/loss")
    b = scalars(resumed / "tensorboard", "val/loss")  # one continuous curve in the same run
    assert [s for s, _ in a] == [s for s, _ in b] and len(a) == epochs
    assert [v for _, v in a] == [v for _, v in b]  # to the last bit
    assert a[0][1] != pytest.approx(a[-1][1], rel=1e-4)  # it actually trained
    train_a = scalars(straight / "tensorboard", "train/loss_epoch")  # a mid-epoch resume keeps the epoch's sums
    train_b = scalars(resumed / "tensorboard", "train/loss_epoch")
    assert len(train_a) == epochs and [v for _, v in train_a] == [v for _, v in train_b]

    end_a = torch.load(straight / "checkpoints/last.ckpt", weights_only=True)
    end_b = torch.load(resumed / "checkpoints/last.ckpt", weights_only=True)
    assert end_a["epoch"] == end_b["epoch"] == epochs - 1 and end_a["global_step"] == end_b["global_step"]
    for key, tensor in end_a["state_dict"].items():
        torch.testing.assert_close(tensor, end_b["state_dict"][key], rtol=1e-6, atol=1e-8)
    state_a, state_b = end_a["optimizer_states"][0]["state"], end_b["optimizer_states"][0]["state"]
    for k in state_a:
        torch.testing.assert_close(state_a[k]["exp_avg_sq"], state_b[k]["exp_avg_sq"], rtol=1e-6, atol=1e-12)
    stopping = [k for k in end_a["callbacks"] if k.startswith("EarlyStopping")]
    assert stopping and end_a["callbacks"][stopping[0]]["wait_count"] == end_b["callbacks"][stopping[0]]["wait_count"]
    best_key = [k for k in end_a["callbacks"] if k.startswith("BestMetrics")][0]
    assert end_a["callbacks"][best_key]["best_epoch"] == end_b["callbacks"][best_key]["best_epoch"]


def test_a_second_training_into_a_run_folder_in_use_is_refused(make_cfg, tmp_path):
    from filelock import FileLock

    cfg = make_cfg("trainer.max_epochs=1", "test=false")
    run_dir = Path(cfg.paths.run_dir)
    run_dir.mkdir(parents=True)
    with FileLock(str(run_dir / ".run.lock")):  # as a training started first with the same hydra.run.dir holds it
        with pytest.raises(
            ConfigError,
            match=r"run: another training is writing there now; wait for it to finish, "
            r"or leave hydra.run.dir out",
        ):
            train(cfg)
    assert not (run_dir / "checkpoints").exists()
    assert train(cfg)["epochs"] == 1


def test_resume_refuses_a_different_config(make_cfg, tmp_path):
    cfg = make_cfg("trainer.max_epochs=1")
    train(cfg)
    other = make_cfg("model=conv", f"ckpt_path={tmp_path / 'run/checkpoints/last.ckpt'}")
    with pytest.raises(
        ConfigError,
        match=r"different config \(model\.net\._target_: aerecon\.models\.FCAutoencoder in the "
        r"checkpoint, aerecon\.models\.ConvAutoencoder now;.*Resume with the original "
        r"overrides: aerecon-train .*experiment=tiny",
    ):
        train(other)


def test_ckpt_path_errors_are_clear(make_cfg, tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        train(make_cfg(f"ckpt_path={tmp_path / 'nope.ckpt'}"))
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(ConfigError, match="is not an aerecon checkpoint"):
        train(make_cfg(f"ckpt_path={foreign}"))
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"\x00not a zip")
    with pytest.raises(
        ConfigError, match=r"is not a PyTorch checkpoint \(it is not the zip archive torch.save writes\)"
    ):
        train(make_cfg(f"ckpt_path={garbage}"))


@pytest.mark.parametrize("representation", ["raw", "mulaw"])
def test_other_representations_train(make_cfg, representation):
    results = train(make_cfg(f"representation={representation}", "trainer.max_epochs=1", "test=false"))
    assert torch.isfinite(torch.tensor(results["best"]["val/loss"]))


def test_precision_and_gradient_checkpointing_options_train(make_cfg):
    cfg = make_cfg(
        "model=conv",
        "trainer.precision=bf16-mixed",
        "model.gradient_checkpointing=true",
        "trainer.max_epochs=1",
        "test=false",
    )
    results = train(cfg)
    assert torch.isfinite(torch.tensor(results["best"]["val/snr_db"]))


def test_a_nan_loss_stops_with_where_and_remedies_and_keeps_the_last_good_checkpoint(make_cfg, monkeypatch):
    import aerecon.models.losses
    from aerecon.models import AutoencoderModule

    poisoned = {"on": False}
    real_mse = aerecon.models.losses.F.mse_loss

    def mse(a, b):  # NaN from epoch 1 on, in training only
        loss = real_mse(a, b)
        return loss * float("nan") if poisoned["on"] and torch.is_grad_enabled() else loss

    def on_train_epoch_start(module):
        poisoned["on"] = module.current_epoch >= 1

    monkeypatch.setattr(aerecon.models.losses.F, "mse_loss", mse)
    monkeypatch.setattr(AutoencoderModule, "on_train_epoch_start", on_train_epoch_start)
    cfg = make_cfg("model=fc", "trainer.max_epochs=3")
    with pytest.raises(NumericalError) as info:
        train(cfg)
    message = str(info.value)
    last = Path(cfg.paths.run_dir) / "checkpoints" / "last.ckpt"
    assert "loss became nan at epoch 1, step" in message
    assert "optimizer.lr is 0.0001" in message and "trainer.gradient_clip_val" in message
    assert f"The last good checkpoint is kept: {last}" in message
    checkpoint = torch.load(last, map_location="cpu", weights_only=True)
    assert checkpoint["epoch"] == 0
    assert all(torch.isfinite(v).all() for v in checkpoint["state_dict"].values() if v.is_floating_point())


def test_a_failing_checkpoint_write_keeps_the_previous_checkpoint(tmp_path):
    io = AtomicCheckpointIO()
    path = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"epoch": 1, "w": torch.ones(3)}, path)

    class FailsMidWrite:  # pickled after the tensor: the write has begun when it fails
        def __reduce__(self):
            raise OSError("No space left on device")

    from aerecon.utils.errors import DiskError

    with pytest.raises(
        DiskError,
        match=f"cannot write the checkpoint {path} \\(No space left on device\\)\\. The "
        f"checkpoints written before are whole; .* ckpt_path={path}",
    ):
        io.save_checkpoint({"epoch": 2, "w": torch.zeros(100_000), "z": FailsMidWrite()}, path)
    assert torch.load(path, weights_only=True)["epoch"] == 1
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind


def test_training_writes_its_checkpoints_atomically(make_cfg, monkeypatch):
    import aerecon.training.checkpoint

    written = []
    real = aerecon.training.checkpoint.atomic_write
    monkeypatch.setattr(
        aerecon.training.checkpoint, "atomic_write", lambda target, write: (written.append(target), real(target, write))
    )
    cfg = make_cfg("model=fc", "trainer.max_epochs=1", "test=false")
    results = train(cfg)
    last, best = Path(cfg.paths.run_dir) / "checkpoints" / "last.ckpt", Path(results["best_checkpoint"])
    assert best in written
    assert last in written or last.stat().st_ino == best.stat().st_ino  # or a hard link to the same weights


def test_best_and_last_checkpoints_share_storage_and_survive_each_other(make_cfg, tmp_path):
    cfg = make_cfg("model=fc", "trainer.max_epochs=1", "test=false")
    results = train(cfg)
    last, best = Path(cfg.paths.run_dir) / "checkpoints" / "last.ckpt", Path(results["best_checkpoint"])
    assert last.stat().st_ino == best.stat().st_ino and not last.is_symlink()  # one copy on disk
    weights = torch.load(best, weights_only=True)["state_dict"]
    best.unlink()  # e.g. replaced by a better epoch's checkpoint
    assert all(torch.equal(weights[k], v) for k, v in torch.load(last, weights_only=True)["state_dict"].items())

    # best (here: the highest val/loss, the first epoch) and last differ: two files
    cfg = make_cfg(
        "model=fc",
        "trainer.max_epochs=3",
        "test=false",
        "callbacks.model_checkpoint.monitor=epoch",
        "callbacks.early_stopping=null",
    )  # the "best" epoch is the first
    cfg.paths.run_dir = str(tmp_path / "apart")
    results = train(cfg)
    last, best = tmp_path / "apart/checkpoints/last.ckpt", Path(results["best_checkpoint"])
    assert best.name == "best-epoch000.ckpt" and last.stat().st_ino != best.stat().st_ino
    assert torch.load(last, weights_only=True)["epoch"] == 2


def test_resume_says_how_the_songs_changed(make_cfg, tmp_path, caplog):
    import numpy as np
    import soundfile as sf

    music = tmp_path / "music"
    music.mkdir()
    t = np.arange(2 * 8000) / 8000
    for i in range(6):
        sf.write(music / f"song{i}.wav", 0.3 * np.sin(2 * np.pi * (100 + 20 * i) * t), 8000)
    folder = [
        "data=folder",
        f"data.root={music}",
        "~data.num_songs",
        "~data.song_seconds",
        "~data.render_rate",
        "data.split={train:1,val:1,test:1}",
        "data.num_workers=0",
        "model=fc",
        "test=false",
    ]
    cfg = make_cfg(*folder, "trainer.max_epochs=1")
    train(cfg)
    (music / "song5.wav").unlink()
    sf.write(music / "song6.wav", 0.3 * np.sin(2 * np.pi * 400 * t), 8000)
    sf.write(music / "song0.wav", 0.3 * np.sin(2 * np.pi * 90 * np.arange(3 * 8000) / 8000), 8000)  # edited
    resumed = make_cfg(*folder, "trainer.max_epochs=2", f"ckpt_path={cfg.paths.run_dir}/checkpoints/last.ckpt")
    train(resumed)
    warnings = [r.getMessage() for r in caplog.records if "changed since this checkpoint" in r.getMessage()]
    assert len(warnings) == 1 and "1 added, 1 removed, 1 changed" in warnings[0] and str(music) in warnings[0]


def test_resuming_a_checkpoint_kept_elsewhere_writes_only_into_a_run_folder(make_cfg, tmp_path):
    import shutil

    cfg = make_cfg("model=fc", "trainer.max_epochs=1", "test=false")
    train(cfg)
    elsewhere = tmp_path / "downloads"
    elsewhere.mkdir()
    kept = shutil.copy(Path(cfg.paths.run_dir) / "checkpoints/last.ckpt", elsewhere / "model.ckpt")
    resumed = make_cfg("model=fc", "trainer.max_epochs=2", "test=false", f"ckpt_path={kept}")
    resumed.paths.run_dir = str(tmp_path / "new_run")  # Hydra's fresh run folder
    results = train(resumed)
    assert sorted(p.name for p in elsewhere.iterdir()) == ["model.ckpt"]  # nothing written beside it
    assert results["epochs"] == 2 and (tmp_path / "new_run/results.json").is_file()
    assert (tmp_path / "new_run/checkpoints/last.ckpt").is_file()


def test_a_checkpoint_whose_weights_do_not_fit_its_config_is_one_clear_error(make_cfg, tmp_path):
    from aerecon.training.checkpoint import load_model

    cfg = make_cfg("model=fc", "trainer.max_epochs=1", "test=false")
    train(cfg)
    checkpoint = torch.load(Path(cfg.paths.run_dir) / "checkpoints/last.ckpt", weights_only=True)
    name = next(iter(checkpoint["state_dict"]))
    checkpoint["state_dict"][name] = torch.zeros(3, 3)  # weights of another model under this config
    edited = tmp_path / "edited" / "checkpoints" / "last.ckpt"
    edited.parent.mkdir(parents=True)
    torch.save(checkpoint, edited)
    message = rf"ckpt_path={edited}: its weights do not fit the model its config describes \({name} is \[3, 3\]"
    with pytest.raises(ConfigError, match=message):
        load_model(edited)
    with pytest.raises(ConfigError, match=message):
        train(make_cfg("model=fc", "trainer.max_epochs=2", "test=false", f"ckpt_path={edited}"))


def test_a_full_disk_while_checkpointing_keeps_the_last_good_checkpoint(make_cfg, monkeypatch):
    import errno

    import aerecon.training.checkpoint
    from aerecon.utils.errors import DiskError

    real, saves = aerecon.training.checkpoint.atomic_write, []

    def fills_up(target, write):
        saves.append(target)
        if len(saves) > 2:  # the best of epochs 0 and 1 are written (last.ckpt links to each); epoch 2's is not
            raise OSError(errno.ENOSPC, "No space left on device")
        real(target, write)

    monkeypatch.setattr(aerecon.training.checkpoint, "atomic_write", fills_up)
    cfg = make_cfg(
        "model=fc",
        "trainer.max_epochs=3",
        "test=false",
        "callbacks.model_checkpoint.monitor=step",
        "callbacks.model_checkpoint.mode=max",
    )  # a new best every epoch
    with pytest.raises(
        DiskError,
        match=r"cannot write the checkpoint .* \(No space left on device\)\. The checkpoints "
        r"written before are whole; .* ckpt_path=.*last.ckpt",
    ):
        train(cfg)
    last = Path(cfg.paths.run_dir) / "checkpoints/last.ckpt"
    assert torch.load(last, weights_only=True)["epoch"] == 1 and not list(last.parent.glob("*.tmp"))


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the writer thread's own report
def test_a_full_disk_while_writing_tensorboard_logs_is_one_error_with_the_resume_command(make_cfg, monkeypatch):
    import errno

    from tensorboard.summary.writer.record_writer import RecordWriter

    from aerecon.models import AutoencoderModule
    from aerecon.utils.errors import DiskError

    full = {"on": False}
    real_write = RecordWriter.write

    def write(self, data):  # TensorBoard's event files, written by its writer thread
        if full["on"]:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(self, data)

    def on_train_epoch_start(module):
        full["on"] = module.current_epoch >= 1

    monkeypatch.setattr(RecordWriter, "write", write)
    monkeypatch.setattr(AutoencoderModule, "on_train_epoch_start", on_train_epoch_start)
    cfg = make_cfg("model=fc", "trainer.max_epochs=4", "test=false")
    last = Path(cfg.paths.run_dir) / "checkpoints" / "last.ckpt"
    with pytest.raises(
        DiskError,
        match=r"cannot write \(No space left on device\)\. The checkpoints written before "
        rf"are whole; free some space\. Resume with: aerecon-train .*ckpt_path={last}",
    ):
        train(cfg)
    assert torch.load(last, weights_only=True)["epoch"] >= 0
    assert not (Path(cfg.paths.run_dir) / "results.json").exists()


def test_a_full_disk_while_writing_results_is_one_error_with_the_resume_command(make_cfg, monkeypatch):
    import errno

    import aerecon.train
    from aerecon.utils.errors import DiskError

    def fails(target, write):
        raise OSError(errno.ENOSPC, "No space left on device", str(target))

    monkeypatch.setattr(aerecon.train, "atomic_write", fails)
    cfg = make_cfg("model=fc", "trainer.max_epochs=1", "test=false")
    run_dir = Path(cfg.paths.run_dir)
    with pytest.raises(
        DiskError,
        match=rf"cannot write {run_dir / 'results.json'} \(No space left on device\)\. .* "
        rf"Resume with: .*ckpt_path={run_dir / 'checkpoints/last.ckpt'}",
    ):
        train(cfg)


def test_resuming_a_run_that_early_stopping_ended_says_so_and_trains_nothing(make_cfg, tmp_path, caplog):
    # val/loss falls as the model trains: with mode=max it never improves after the first epoch, so patience 1 ends
    # the run at epoch 1
    stopping = [
        "callbacks.early_stopping.mode=max",
        "callbacks.early_stopping.patience=1",
        "trainer.max_epochs=6",
        "test=false",
    ]
    first = train(make_cfg("model=fc", *stopping))
    assert first["epochs"] == 2
    last = Path(first["run_dir"]) / "checkpoints" / "last.ckpt"
    before = last.stat().st_mtime_ns
    with caplog.at_level(logging.INFO, logger="aerecon.train"):
        again = train(make_cfg("model=fc", *stopping, f"ckpt_path={last}"))
    assert "early stopping ended it at epoch 1" in caplog.text and "callbacks.early_stopping.patience=2" in caplog.text
    assert again["best"] == first["best"] and last.stat().st_mtime_ns == before


def test_a_run_that_max_steps_ends_mid_epoch_ends_cleanly(make_cfg):
    # no validation has run when the steps run out: early stopping has nothing to check, and must not fail
    results = train(make_cfg("model=fc", "+trainer.max_steps=2", "test=false"))
    assert not results["interrupted"]
    last = torch.load(Path(results["run_dir"]) / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 2 and last["epoch"] == 0


def test_a_nan_validation_loss_stops_the_run_before_it_is_saved_as_the_best(make_cfg, monkeypatch):
    import aerecon.models.losses
    from aerecon.models import AutoencoderModule

    poisoned = {"on": False}
    real_mse = aerecon.models.losses.F.mse_loss

    def mse(a, b):  # training stays finite; validation from epoch 1 on is NaN
        loss = real_mse(a, b)
        return loss * float("nan") if poisoned["on"] and not torch.is_grad_enabled() else loss

    def on_validation_epoch_start(module):
        poisoned["on"] = module.current_epoch >= 1 and not module.trainer.sanity_checking

    monkeypatch.setattr(aerecon.models.losses.F, "mse_loss", mse)
    monkeypatch.setattr(AutoencoderModule, "on_validation_epoch_start", on_validation_epoch_start)
    cfg = make_cfg("model=fc", "trainer.max_epochs=3")
    with pytest.raises(
        NumericalError,
        match=r"val/loss became nan at epoch 1: .*optimizer\.lr.* The last good "
        r"checkpoint is kept: .*last.ckpt",
    ):
        train(cfg)
    checkpoints = Path(cfg.paths.run_dir) / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["best-epoch000.ckpt", "last.ckpt"]
    assert torch.load(checkpoints / "last.ckpt", weights_only=True)["epoch"] == 0
    assert not (Path(cfg.paths.run_dir) / "results.json").exists()


def test_resume_commands_paste_into_a_shell_as_they_are_printed():
    import shlex

    from aerecon.train import resume_command

    overrides = ["data=folder", "data.root=/home/me/my music", "data.split={train:1,val:1,test:0}", "ckpt_path=old"]
    command = resume_command(overrides, Path("/runs/a b/checkpoints/last.ckpt"), "trainer.max_epochs=4")
    assert shlex.split(command) == [
        "aerecon-train",
        "data=folder",
        "data.root=/home/me/my music",
        "data.split={train:1,val:1,test:0}",
        "trainer.max_epochs=4",
        "ckpt_path=/runs/a b/checkpoints/last.ckpt",
    ]


def test_a_folder_that_holds_a_run_is_not_trained_into_again(make_cfg):
    cfg = make_cfg("model=fc", "trainer.max_epochs=1", "test=false")
    train(cfg)
    run = Path(cfg.paths.run_dir)
    before = (run / "results.json").read_bytes()
    with pytest.raises(
        ConfigError,
        match=rf"{run} already holds a run .* resume it with "
        rf"ckpt_path={run / 'checkpoints/last.ckpt'}",
    ):
        train(make_cfg("model=fc", "trainer.max_epochs=1", "test=false"))
    assert (run / "results.json").read_bytes() == before


def test_a_checkpoint_holds_the_weights_the_optimizer_state_and_little_else(make_cfg, tmp_path):
    results = train(make_cfg("model=fc", "trainer.max_epochs=1", "test=false"))
    path = Path(results["run_dir"]) / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(path, weights_only=True)

    def tensor_bytes(node) -> int:
        if isinstance(node, torch.Tensor):
            return node.nbytes
        if isinstance(node, dict):
            return sum(tensor_bytes(v) for v in node.values())
        return sum(tensor_bytes(v) for v in node) if isinstance(node, (list, tuple)) else 0

    weights, optimizer = tensor_bytes(checkpoint["state_dict"]), tensor_bytes(checkpoint["optimizer_states"])
    assert weights == sum(p.nbytes for p in checkpoint["state_dict"].values())
    assert path.stat().st_size <= weights + optimizer + 256 * 1024  # run state, config and zip headers: small


def test_a_checkpoint_that_stored_the_thesis_split_resumes_under_the_null_that_stands_for_it():
    from aerecon.data.segments import THESIS_SPLIT
    from aerecon.train import _resume_value

    before = {"data": {"split": dict(THESIS_SPLIT)}}  # what checkpoints stored before the default moved
    assert _resume_value(before, "data.split") == _resume_value({"data": {"split": None}}, "data.split")
    assert _resume_value({"data": {"split": {"train": 1, "val": 1, "test": 1}}}, "data.split") != _resume_value(
        before, "data.split"
    )
