"""A checkpoint is data: nothing named in its config is called unless it is one of aerecon's own
components, settings that must agree are checked, and a file that is not a checkpoint is named
as what it is."""

import copy
import gzip
import io
import pickle
import tarfile
import zipfile
from pathlib import Path

import pytest
import torch
from conftest import REPO, run_cli
from hydra.utils import get_class
from omegaconf import OmegaConf
from test_inference import FIXTURES

import aerecon
from aerecon.training.checkpoint import BUILT, COMPONENTS, PLACES, load_checkpoint_config, place_of
from aerecon.utils.config import compose_train
from aerecon.utils.errors import ConfigError

TORCH_WORDS = ("_use_new_zipfile_serialization", "mmap", "weights_only", "Unsupported global", "PytorchStreamReader")


def with_config(tmp_path: Path, name: str, change) -> Path:
    """A copy of the fc fixture whose stored config `change` edited: a file that still loads
    with weights_only=True (no pickled code at all)."""
    checkpoint = torch.load(FIXTURES / "fc.ckpt", map_location="cpu", weights_only=True)
    change(checkpoint["aerecon"]["config"])
    path = tmp_path / name
    torch.save(checkpoint, path)
    return path


def opener(marker: Path) -> dict:
    """A config node that, if anything called it, would create `marker` (as it could overwrite any file)."""
    return {"_target_": "builtins.open", "_args_": [str(marker), "w"]}


CHOICES = (
    [[f"model={p.stem}"] for p in sorted((REPO / "conf/model").glob("*.yaml"))]
    + [[f"experiment={p.stem}"] for p in sorted((REPO / "conf/experiment").glob("*.yaml"))]
    + [
        ["model=resconv", "bottleneck=vq"],
        ["model=resconv", "bottleneck=vae"],
        ["data=stream"],
        ["data=folder"],
        ["representation=mulaw"],
        ["loss=mse_stft"],
        ["optimizer=adafactor"],
    ]
)


def test_every_component_the_configs_build_is_registered_in_its_place_and_real():
    named, misplaced = set(), []

    def walk(node, key):
        if isinstance(node, dict):
            if "_target_" in node:
                named.add(node["_target_"])
                if node["_target_"] not in PLACES.get(place_of(key), ()):
                    misplaced.append((key, node["_target_"]))
            for name, value in node.items():
                walk(value, f"{key}.{name}")
        elif isinstance(node, list):
            for value in node:
                walk(value, key)

    for overrides in CHOICES:
        config = OmegaConf.to_container(compose_train(overrides), resolve=True)
        for key in BUILT:
            walk(config[key], key)
    assert named <= COMPONENTS and not misplaced, (sorted(named - COMPONENTS), misplaced)
    assert len(named) > 15
    for target in COMPONENTS:
        assert callable(get_class(target)), target


def _everywhere(marker: Path):
    def change(config):
        config["model"]["extra"] = opener(marker)
        config["data"]["extra"] = opener(marker)

    return change


@pytest.mark.parametrize("app", ["aerecon.reconstruct", "aerecon.export", "aerecon.evaluate"])
def test_a_config_naming_any_callable_is_refused_by_every_command_and_nothing_is_called(tmp_path, app):
    marker = tmp_path / "written_by_the_file"
    ckpt = with_config(tmp_path, "hostile.ckpt", _everywhere(marker))
    song = tmp_path / "song.wav"
    torch.manual_seed(0)
    import soundfile as sf

    sf.write(song, (0.1 * torch.randn(4000)).numpy(), 2000)
    args = {
        "aerecon.reconstruct": [f"input={song}", f"output={tmp_path / 'out.wav'}"],
        "aerecon.export": ["format=torchscript", f"output={tmp_path / 'exported'}"],
        "aerecon.evaluate": [f"paths.root_dir={tmp_path}", "data=folder", f"data.root={tmp_path}"],
    }[app]
    proc = run_cli(f"ckpt_path={ckpt}", *args, cwd=tmp_path, app=app)
    assert proc.returncode == 2, proc.stderr
    assert (
        "aerecon: error:" in proc.stderr and "'builtins.open', which is not one of aerecon's components" in proc.stderr
    )
    assert "model.extra._target_" in proc.stderr or "data.extra._target_" in proc.stderr
    assert not marker.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hostile.ckpt", "song.wav"]  # nothing written


def test_aerecon_load_builds_only_registered_components(tmp_path):
    marker = tmp_path / "written"
    cases = {
        "model.extra._target_='builtins.open'": lambda c: c["model"].update(extra=opener(marker)),
        # an aerecon function that writes files is not a component: the list is exact, not a prefix
        "model._target_='aerecon.utils.files.atomic_write'": lambda c: c["model"].update(
            _target_="aerecon.utils.files.atomic_write", target=str(marker), write=None
        ),
        r"model.loss.terms\[1\]._target_='os.remove'": lambda c: c["model"]["loss"].update(
            terms=[{}, {"_target_": "os.remove", "_args_": [str(marker)]}]
        ),
        "model._target_=5": lambda c: c["model"].update(_target_=5),
        r"its config cannot build a model \(.*\); it was edited": lambda c: c["model"].update(_args_=[1, 2, 3]),
        r"model._target_=\['x'\], which is not one of aerecon's components": lambda c: c["model"].update(
            _target_=["x"]
        ),
        # a whole network (a 40000 x 40000 layer) where the optimizer's settings are: never built
        "model.optimizer.weight_decay._target_='aerecon.models.FCAutoencoder', which is one of aerecon's components, "
        "but not one that belongs there": lambda c: c["model"]["optimizer"].update(
            weight_decay={
                "_target_": "aerecon.models.FCAutoencoder",
                "input_length": 40000,
                "hidden": [],
                "latent": 40000,
            }
        ),
        r"an interpolation at model.latent \('\$\{oc.env:HOME\}'\)": lambda c: c["model"].update(
            latent="${oc.env:HOME}"
        ),
    }
    for i, (message, change) in enumerate(cases.items()):
        ckpt = with_config(tmp_path, f"{i}.ckpt", change)
        with pytest.raises(ConfigError, match=message):
            aerecon.load(ckpt, "cpu")
        assert not marker.exists()


def test_settings_that_must_agree_are_checked_when_a_checkpoint_is_read(tmp_path):
    def rate(c):
        c["data"]["sample_rate"] = 4000

    def seconds(c):
        c["data"]["segment_seconds"] = 0.2

    def not_a_number(c):
        c["data"]["segment_seconds"] = float("nan")

    def text(c):
        c["data"]["sample_rate"] = "2000"

    for change, message in (
        (
            rate,
            "data.sample_rate=4000 and data.segment_seconds=0.1 make segments of 400 samples, "
            "but model.net.input_length=200",
        ),
        (not_a_number, "its data.segment_seconds=nan is not a positive number"),
        (text, "its data.sample_rate='2000' is not a positive number"),
        (
            seconds,
            "data.sample_rate=2000 and data.segment_seconds=0.2 make segments of 400 "
            "samples, but model.net.input_length=200",
        ),
    ):
        ckpt = with_config(tmp_path, f"{change.__name__}.ckpt", change)
        with pytest.raises(ConfigError, match=message):
            aerecon.load(ckpt, "cpu")
    untouched = with_config(tmp_path, "same.ckpt", lambda c: None)
    assert aerecon.load(untouched, "cpu").segment_samples == 200


class _Trap:
    def __reduce__(self):
        return (print, ("code ran",))


def _not_checkpoints(tmp_path: Path) -> dict[str, Path]:
    whole = (FIXTURES / "fc.ckpt").read_bytes()
    files = {
        "is empty \\(0 bytes\\)": b"",
        "is a truncated or damaged checkpoint": whole[: len(whole) // 2],
        "is not a PyTorch checkpoint": bytes(range(256)) * 8,
        "is a gzip-compressed file": gzip.compress(whole),
    }
    out = {}
    for i, (message, data) in enumerate(files.items()):
        out[message] = tmp_path / f"{i}.ckpt"
        out[message].write_bytes(data)
    out["is a zip archive, not a PyTorch checkpoint"] = tmp_path / "notes.ckpt"
    with zipfile.ZipFile(out["is a zip archive, not a PyTorch checkpoint"], "w") as archive:
        archive.writestr("notes.txt", "hello")
    out["is a tar archive"] = tmp_path / "bundle.ckpt"
    with tarfile.open(out["is a tar archive"], "w") as archive:
        info = tarfile.TarInfo("weights.bin")
        info.size = 4
        archive.addfile(info, io.BytesIO(b"abcd"))
    out["a Lightning checkpoint of another project"] = tmp_path / "other.ckpt"
    torch.save(
        {"state_dict": {"w": torch.ones(2)}, "pytorch-lightning_version": "2.6.0"},
        out["a Lightning checkpoint of another project"],
    )
    trap = out[r"holds pickled Python objects \(print\) that would run code"] = tmp_path / "trap.ckpt"
    torch.save({"aerecon": {"config": {}}, "payload": _Trap()}, trap)
    out["is a pickle in PyTorch's legacy format"] = tmp_path / "legacy.ckpt"
    out["is a pickle in PyTorch's legacy format"].write_bytes(pickle.dumps({"a": 1}))
    return out


def test_files_that_are_not_checkpoints_are_named_as_what_they_are(tmp_path):
    import os

    os.mkfifo(tmp_path / "pipe.ckpt")
    with pytest.raises(ConfigError, match=r"pipe.ckpt is not a regular file \(a pipe or a device\)"):
        load_checkpoint_config(tmp_path / "pipe.ckpt")
    for message, path in _not_checkpoints(tmp_path).items():
        with pytest.raises(ConfigError, match=f"ckpt_path={path} .*{message}") as caught:
            load_checkpoint_config(path)
        assert not any(word in str(caught.value) for word in TORCH_WORDS), str(caught.value)


def test_a_file_that_is_not_a_checkpoint_is_one_line_from_a_command(tmp_path):
    path = tmp_path / "empty.ckpt"
    path.write_bytes(b"")
    proc = run_cli(f"ckpt_path={path}", "format=onnx", f"output={tmp_path / 'out'}", cwd=tmp_path, app="aerecon.export")
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"aerecon: error: ckpt_path={path} is empty (0 bytes), not a checkpoint"


def test_checkpoints_written_by_earlier_versions_pass_the_checks():
    for path in sorted(FIXTURES.glob("*.ckpt")):
        config = load_checkpoint_config(path)
        assert config["model"]["_target_"] == "aerecon.models.AutoencoderModule"
        assert copy.deepcopy(config) == load_checkpoint_config(path)


def test_a_config_that_describes_a_huge_model_allocates_nothing(tmp_path):
    def huge(config):  # 800 GB of weights described by a file of a few hundred kilobytes
        config["model"]["hidden"] = [1_000_000_000]

    ckpt = with_config(tmp_path, "huge.ckpt", huge)
    with pytest.raises(
        ConfigError,
        match=r"its weights do not fit the model its config describes .*"
        r"but the model has \[1000000000\]",
    ):
        aerecon.load(ckpt, "cpu")


def test_evaluating_a_demo_checkpoint_renders_the_demo_here_not_where_the_file_says(tmp_path):
    victim = tmp_path / "someone" / "else"
    victim.mkdir(parents=True)
    ckpt = with_config(tmp_path, "demo.ckpt", lambda c: c["data"].update(root=str(victim)))
    result = run_cli(
        f"ckpt_path={ckpt}", "max_media_songs=0", "butt_joined=false", cwd=tmp_path, app="aerecon.evaluate"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert list(victim.iterdir()) == []
    assert any((tmp_path / "data" / "demo").glob("*.flac"))  # this machine's data folder (paths.data_dir)


@pytest.mark.parametrize("name", ["fc", "resconv", "fourier_topk"])
def test_the_epoch_loss_means_of_an_earlier_version_carry_into_the_metrics_and_back_unchanged(name):
    """Checkpoints written when the epoch's training losses were plain sums resume into
    torchmetrics' running means: the means they give are the sums over the batches seen, and
    saving again writes the same numbers."""
    from aerecon.training.checkpoint import load_model, read

    stored = read(FIXTURES / f"{name}.ckpt")
    old = copy.deepcopy(stored["aerecon_train_sums"])
    module, _ = load_model(FIXTURES / f"{name}.ckpt")
    module.on_load_checkpoint(stored)
    resumed = {}
    module.on_save_checkpoint(resumed)
    assert resumed["aerecon_train_sums"] == old
    sums = old["ranks"][0]
    for term, total in sums["sums"].items():  # resconv's five terms, fc's one, a fitted network's none
        mean = module._train_means[term].compute()
        assert mean.dtype == torch.float32 and float(mean) == pytest.approx(total / sums["seen"], rel=1e-6)
