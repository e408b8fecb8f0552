"""aerecon's progress bar: Lightning's rich bar, updated at most every `interval` seconds."""

import pytest
from lightning.pytorch.callbacks import RichProgressBar

from aerecon.train import assemble
from aerecon.training.callbacks import ProgressBar
from aerecon.utils.errors import ConfigError


@pytest.fixture
def updates(monkeypatch) -> list[tuple[str, int]]:
    """Every (hook, batch_idx) at which the rich bar itself was brought up to date."""
    seen = []
    for hook in ("on_train_batch_end", "on_validation_batch_end"):
        original = getattr(RichProgressBar, hook)

        def spy(self, trainer, pl_module, outputs, batch, batch_idx, *args, _hook=hook, _original=original):
            seen.append((_hook, batch_idx))
            _original(self, trainer, pl_module, outputs, batch, batch_idx, *args)

        monkeypatch.setattr(RichProgressBar, hook, spy)
    return seen


def fit(make_cfg, interval: float):
    run = assemble(
        make_cfg(
            "trainer.enable_progress_bar=true",
            f"callbacks.progress_bar.interval={interval}",
            "trainer.max_epochs=2",
            "data.split={train: 4, val: 2, test: 1}",
            "data.batch_size=2",
        )
    )
    assert isinstance(run.trainer.progress_bar_callback, ProgressBar)  # Lightning shows aerecon's, not its own
    run.trainer.fit(run.model, datamodule=run.datamodule)
    return run.trainer


def test_a_long_interval_updates_each_bars_first_and_last_batch_only(make_cfg, updates):
    trainer = fit(make_cfg, interval=3600)
    last_train, last_val = trainer.num_training_batches - 1, trainer.num_val_batches[0] - 1
    assert last_train >= 2 and last_val >= 1  # batches in between that a per-batch bar would show
    train = [i for hook, i in updates if hook == "on_train_batch_end"]
    val = [i for hook, i in updates if hook == "on_validation_batch_end"]
    assert train == [0, last_train] * 2  # each epoch's bar starts and ends complete
    last_sanity = trainer.num_sanity_val_batches[0] - 1
    assert val == [0, last_sanity] + [0, last_val] * 2  # so do the sanity check's and each epoch's validation


def test_interval_zero_updates_every_batch(make_cfg, updates):
    trainer = fit(make_cfg, interval=0)
    train = [i for hook, i in updates if hook == "on_train_batch_end"]
    assert train == list(range(trainer.num_training_batches)) * 2


def test_the_bar_shows_the_latest_training_loss_without_logging_it(make_cfg, monkeypatch):
    shown = []
    original = ProgressBar.get_metrics

    def spy(self, trainer, pl_module):
        metrics = original(self, trainer, pl_module)
        if trainer.training:
            shown.append((metrics.get("train/loss"), pl_module.latest_train_loss()))
        return metrics

    monkeypatch.setattr(ProgressBar, "get_metrics", spy)
    trainer = fit(make_cfg, interval=0)
    assert shown and all(bar == latest and latest > 0 for bar, latest in shown)
    assert "train/loss" not in trainer.logged_metrics  # the TensorBoard curves are train/loss_step and _epoch


def test_the_bar_is_dropped_when_progress_bars_are_off(make_cfg):
    run = assemble(make_cfg("trainer.enable_progress_bar=false"))  # Lightning refuses a bar it may not show
    assert run.trainer.progress_bar_callback is None
    assert not [c for c in run.trainer.callbacks if isinstance(c, ProgressBar)]


def test_a_negative_interval_is_refused():
    with pytest.raises(ConfigError, match="callbacks.progress_bar.interval"):
        ProgressBar(interval=-1)
