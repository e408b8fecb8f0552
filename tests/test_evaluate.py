"""aerecon.evaluate, aerecon.report, the baselines, the training-time previews and the notebook,
on tiny runs trained once for this module."""

import csv
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import REPO, compose_cfg, run_cli
from hydra.core.global_hydra import GlobalHydra
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from aerecon.report import table_epochs, write_report
from aerecon.train import train
from aerecon.training.checkpoint import load_model
from aerecon.utils.errors import ConfigError

EPOCHS = 10  # enough for the thesis table's epochs 0, 4 and 9


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, shared_dirs):
    """A two-run 'sweep' folder: a tiny FC trained 10 epochs, and the lowpass baseline."""
    root = tmp_path_factory.mktemp("sweep")
    runs = {}
    for name, overrides in (
        (
            "0_fc",
            [
                "model=fc",
                f"trainer.max_epochs={EPOCHS}",
                "+trainer.limit_train_batches=2",
                "callbacks.early_stopping.patience=100",
            ],
        ),
        ("1_lowpass", ["model=lowpass"]),
    ):
        runs[name] = train(compose_cfg(root / name, shared_dirs, *overrides))
    GlobalHydra.instance().clear()
    return root, runs


def test_baselines_fit_in_one_epoch_and_checkpoint(sweep):
    _, runs = sweep
    lowpass = runs["1_lowpass"]
    assert lowpass["epochs"] == 1 and Path(lowpass["best_checkpoint"]).is_file()
    model, config = load_model(lowpass["best_checkpoint"])
    assert config["model_name"] == "lowpass"
    wave = torch.randn(3, 1, model.input_length)
    spectrum = np.fft.rfft(wave.numpy())
    spectrum[..., (8 + 1) // 2 :] = 0  # latent 8 -> the lowest 4 bins
    assert np.allclose(
        model.reconstruct(wave).detach().numpy(), np.fft.irfft(spectrum, n=model.input_length), atol=1e-5
    )


def test_fourier_topk_keeps_the_training_splits_strongest_bins(make_cfg):
    cfg = make_cfg("model=fourier_topk", "model.net.latent=9")
    results = train(cfg)
    model, _ = load_model(results["best_checkpoint"])
    datamodule = __import__("hydra.utils", fromlist=["instantiate"]).instantiate(cfg.data)
    datamodule.setup()
    energy = sum(
        np.abs(np.fft.rfft(datamodule.datasets["train"][i].numpy().astype(np.float64))) ** 2
        for i in range(len(datamodule.datasets["train"]))
    ).ravel()
    expected = set(np.argsort(energy)[-4:].tolist())  # latent 9 -> 4 bins of two numbers
    kept_positions = set(model.net.kept.nonzero().flatten().tolist())
    kept_bins = {(p + 1) // 2 for p in kept_positions}
    assert kept_bins == expected
    assert len(kept_positions) <= 9


@pytest.mark.parametrize("n", [13230, 1001])
def test_fourier_sparse_keeps_each_segments_own_strongest_bins(n):
    from aerecon.models import AutoencoderModule, FourierSparse

    model = AutoencoderModule(FourierSparse(n, latent=3300 if n == 13230 else 300))
    k = model.net.num_bins
    wave = torch.randn(3, 1, n)
    latent = model.net.encode(model.representation.encode(wave))
    assert latent.shape == (3, 1, 3 * k) and 3 * k == (3300 if n == 13230 else 300)  # the latent's numbers, all
    spectrum = np.fft.rfft(wave.numpy().astype(np.float64))
    strongest = np.argsort(-np.abs(spectrum), axis=-1)[..., :k]
    kept = np.zeros_like(spectrum)
    np.put_along_axis(kept, strongest, np.take_along_axis(spectrum, strongest, -1), -1)
    assert np.allclose(model.reconstruct(wave).numpy(), np.fft.irfft(kept, n=n), atol=1e-4)
    # different segments keep different bins; a segment of at most k bins comes back whole
    assert not torch.equal(latent[0, 0, 2 * k :], latent[1, 0, 2 * k :])
    t = torch.arange(n, dtype=torch.float64) / n
    tones = sum(torch.cos(2 * torch.pi * b * t + b) for b in (0, 3, 40, n // 2 - 1)).reshape(1, 1, n).float()
    assert torch.allclose(model.reconstruct(tones), tones, atol=1e-4)


def test_fourier_sparse_trains_one_epoch_and_beats_the_linear_baselines(make_cfg):
    snr = {}
    for name in ("fourier_topk", "fourier_sparse"):
        cfg = make_cfg(f"model={name}", "model.net.latent=48")
        cfg.paths.run_dir = f"{cfg.paths.run_dir}_{name}"  # a run folder each
        results = train(cfg)
        assert results["epochs"] == 1
        snr[name] = results["best"]["val/snr_db"]
    assert snr["fourier_sparse"] > snr["fourier_topk"] > 0, snr


def test_training_logs_previews_and_perf_scalars(sweep):
    root, runs = sweep
    accumulator = EventAccumulator(str(root / "0_fc/run/tensorboard"), size_guidance={"audio": 0, "images": 0})
    accumulator.Reload()
    tags = accumulator.Tags()
    assert {"preview/original", "preview/reconstruction"} <= set(tags["audio"])
    assert {"preview/waveform", "preview/spectrum", "preview/spectrogram"} <= set(tags["images"])
    assert [e.step for e in accumulator.Images("preview/spectrum")] == [0, 2, 4, 6, 8]  # every 2 epochs (tiny)
    seconds = [e.value for e in accumulator.Scalars("perf/epoch_seconds")]
    assert len(seconds) == EPOCHS and all(s > 0 for s in seconds)
    assert all(e.value > 0.1 for e in accumulator.Scalars("perf/peak_rss_gb"))


def test_table_epochs_follow_the_thesis():
    assert table_epochs(list(range(100)), best=37) == [0, 4, 9, 24, 37, 49, 74, 99]
    assert table_epochs([0, 1], best=1) == [0, 1]


def test_report_on_a_two_run_sweep(sweep, tmp_path):
    root, runs = sweep
    written = write_report(root, tmp_path / "report")
    markdown = (tmp_path / "report/report.md").read_text()
    assert "## 0_fc/run (fc)" in markdown and "## 1_lowpass/run (lowpass)" in markdown
    rows = list(csv.DictReader((tmp_path / "report/report.csv").open()))
    fc_epochs = [int(r["epoch"]) for r in rows if r["run"] == "0_fc/run"]
    best = runs["0_fc"]["best_epoch"]
    assert fc_epochs == sorted({0, 4, 9, best})
    fc_best = next(r for r in rows if r["run"] == "0_fc/run" and r["best"] == "True")
    assert float(fc_best["val loss"]) == pytest.approx(runs["0_fc"]["best"]["val/loss"], rel=1e-5)
    assert float(fc_best["SNR (dB)"]) == pytest.approx(runs["0_fc"]["best"]["val/snr_db"], rel=1e-5)
    assert [int(r["epoch"]) for r in rows if r["run"] == "1_lowpass/run"] == [0]
    assert (tmp_path / "report/val_loss.png").stat().st_size > 10_000
    assert written["runs"]["0_fc/run"]["median_epoch_seconds"] > 0


def test_report_cli_errors_clearly(sweep, tmp_path):
    result = run_cli(str(tmp_path), cwd=tmp_path, app="aerecon.report")
    assert result.returncode == 2 and "No TensorBoard logs" in result.stderr and "Traceback" not in result.stderr

    root, _ = sweep
    run = tmp_path / "run"
    shutil.copytree(root / "0_fc/run", run)
    (run / "results.json").write_text("garbage")  # damaged by hand
    (tmp_path / "a file").write_text("mine")
    to_a_file = run_cli(str(run), "--out", str(tmp_path / "a file"), cwd=tmp_path, app="aerecon.report")
    assert to_a_file.returncode == 2 and "is a file; name a folder" in to_a_file.stderr
    assert (tmp_path / "a file").read_text() == "mine"
    damaged = run_cli(str(run), cwd=tmp_path, app="aerecon.report")
    assert damaged.returncode == 0 and "Traceback" not in damaged.stderr
    assert "results.json is not the JSON a run writes" in damaged.stderr and "(?)" in (run / "report.md").read_text()
    mine = tmp_path / "mine"
    shutil.copytree(root / "0_fc/run", mine / "run")
    (mine / "report.md").write_text("my own notes")
    refused = run_cli(str(mine), cwd=tmp_path, app="aerecon.report")
    assert refused.returncode == 2 and "holds report.md, which aerecon-report did not write" in refused.stderr
    assert (mine / "report.md").read_text() == "my own notes" and not (mine / "report.csv").exists()
    unwritable = run_cli(str(run), "--out", "/proc/report", cwd=tmp_path, app="aerecon.report")
    assert unwritable.returncode == 2 and "Traceback" not in unwritable.stderr
    assert unwritable.stderr.strip().splitlines()[-1].startswith("aerecon: error: cannot write /proc/report (")


def test_evaluate_writes_metrics_audio_and_figures(sweep, tmp_path, shared_dirs):
    _, runs = sweep
    ckpt = runs["0_fc"]["best_checkpoint"]
    out = tmp_path / "eval"
    result = run_cli(
        f"ckpt_path={ckpt}", f"hydra.run.dir={out}", cwd=tmp_path, shared=shared_dirs, app="aerecon.evaluate"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    expected = {
        "mse",
        "mae",
        "rmse",
        "snr_db",
        "si_sdr_db",
        "seam_excess_db",
        "stft_distance",
        "lsd_db",
        "band_snr_db_low",
        "band_snr_db_mid",
        "band_snr_db_high",
        "seam_excess_db_butt_joined",
        "snr_db_butt_joined",
    }
    assert set(metrics["overall"]) == expected and metrics["split"] == "test" and metrics["songs"]
    for name, song in metrics["songs"].items():
        assert set(song) == expected
        folder = out / "songs" / Path(name).stem
        original, rate = sf.read(folder / "original.wav", dtype="float32")
        reconstruction, _ = sf.read(folder / "reconstruction.wav", dtype="float32")
        residual, _ = sf.read(folder / "residual.wav", dtype="float32")
        assert rate == 2000 and len(original) == len(reconstruction) == 8000  # whole 4 s songs at 2 kHz
        assert np.allclose(residual, reconstruction - original, atol=1e-6)
        error = reconstruction - original
        assert np.mean(error**2) == pytest.approx(song["mse"], rel=1e-4)
        for figure in ("waveform", "spectrum", "spectrogram", "seam"):
            assert (folder / f"{figure}.png").stat().st_size > 5_000
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert rows[0]["song"] == "overall" and len(rows) == 1 + len(metrics["songs"])

    # the same folder again: refused, the first evaluation left as it was
    before = (out / "metrics.json").read_bytes()
    again = run_cli(
        f"ckpt_path={ckpt}", f"hydra.run.dir={out}", cwd=tmp_path, shared=shared_dirs, app="aerecon.evaluate"
    )
    assert again.returncode == 2 and f"aerecon: error: {out} already holds an evaluation" in again.stderr
    assert (out / "metrics.json").read_bytes() == before


def test_evaluate_every_song_of_a_new_folder_skipping_an_unreadable_one(sweep, tmp_path, shared_dirs):
    _, runs = sweep
    folder = tmp_path / "new"
    folder.mkdir()
    t = np.arange(3 * 8000) / 8000
    for i, freq in enumerate((110.0, 220.0)):
        sf.write(folder / f"song{i}.wav", 0.4 * np.sin(2 * np.pi * freq * t), 8000)
    (folder / "broken.wav").write_text("not audio")
    out = tmp_path / "eval"
    result = run_cli(
        f"ckpt_path={runs['0_fc']['best_checkpoint']}",
        f"data.root={folder}",
        "split=all",
        f"hydra.run.dir={out}",
        "max_media_songs=1",
        cwd=tmp_path,
        shared=shared_dirs,
        app="aerecon.evaluate",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert sorted(metrics["songs"]) == ["song0.wav", "song1.wav"]
    assert list(metrics["skipped"]) == [str(folder / "broken.wav")]
    assert "Not evaluated: " + str(folder / "broken.wav") in result.stdout + result.stderr  # reported, not dropped
    assert len(list((out / "songs").iterdir())) == 1  # media for at most max_media_songs
    assert sorted(p.name for p in folder.iterdir()) == ["broken.wav", "song0.wav", "song1.wav"]  # untouched


def test_every_song_gets_its_own_media_folder(sweep, tmp_path, shared_dirs):
    """Names that collide once made file-system-safe, and a nested name too long for one folder name."""
    _, runs = sweep
    folder = tmp_path / "clash"
    deep = "/".join(["a much longer folder name than anyone would type" + str(i) for i in range(6)])
    names = ["song.wav", "song.flac", "my song.wav", "my_song.wav", f"{deep}/{'ü' * 100}.wav"]
    t = np.arange(2 * 8000) / 8000
    for i, name in enumerate(names):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        sf.write(folder / name, 0.4 * np.sin(2 * np.pi * (110.0 + 50 * i) * t), 8000)
    out = tmp_path / "eval"
    result = run_cli(
        f"ckpt_path={runs['0_fc']['best_checkpoint']}",
        f"data.root={folder}",
        "split=all",
        f"hydra.run.dir={out}",
        cwd=tmp_path,
        shared=shared_dirs,
        app="aerecon.evaluate",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["songs"]) == 5
    media = list((out / "songs").iterdir())
    assert len(media) == 5 and all((m / "original.wav").is_file() and len(m.name.encode()) < 255 for m in media)
    assert {"song", "my_song"}.isdisjoint(m.name for m in media)  # colliding names carry their hash
    originals = {sf.read(m / "original.wav")[0][:400].round(4).tobytes() for m in media}
    assert len(originals) == 5  # five different songs, none overwritten


@pytest.mark.parametrize(
    "args, message",
    [
        (["ckpt_path=/nope.ckpt"], "does not exist"),
        (["data.sample_rate=8000"], "fixed by the checkpoint"),
        (["split=everything"], "split=everything: use one of"),
        (["stitch.window=crossfade", "stitch.overlap=0.9"], "overlap=0.9"),
        (["device=cuda:7"] if not torch.cuda.is_available() else ["device=tpu"], "device="),
    ],
)
def test_evaluate_user_errors(sweep, tmp_path, shared_dirs, args, message):
    ckpt = [f"ckpt_path={sweep[1]['0_fc']['best_checkpoint']}"] if not args[0].startswith("ckpt_path") else []
    result = run_cli(
        *ckpt, *args, f"hydra.run.dir={tmp_path / 'eval'}", cwd=tmp_path, shared=shared_dirs, app="aerecon.evaluate"
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert message in result.stderr and "Traceback" not in result.stderr


def test_notebook_executes_top_to_bottom(sweep, tmp_path, monkeypatch):
    """As Jupyter runs it: in the project's notebooks/ folder, finding the newest runs under ../logs."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    sweep_dir, _ = sweep
    project = tmp_path / "project"
    (project / "notebooks").mkdir(parents=True)
    copied = shutil.copytree(sweep_dir, project / "logs/train/multiruns/sweep")
    newest = {
        "0_fc": copied / "0_fc/run/checkpoints/last.ckpt",
        "1_lowpass": copied / "1_lowpass/run/checkpoints/last.ckpt",
    }
    for age, last in ((1, newest["1_lowpass"]), (0, newest["0_fc"])):  # fc is the newest, lowpass the one before
        os.utime(last, (time.time() - age, time.time() - age))
    for name in ("AERECON_CKPT_A", "AERECON_CKPT_B", "AERECON_RUN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")  # the kernel's python
    notebook = nbformat.read(REPO / "notebooks/explore_run.ipynb", as_version=4)
    nbclient.NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(project / "notebooks")}}
    ).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    printed = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert f"A: {newest['0_fc']}\nB: {newest['1_lowpass']}" in printed
    rich = [o for o in outputs if o.output_type == "display_data"]
    assert sum("image/png" in o.data for o in rich) >= 5  # four figures and the loss curves
    assert sum("audio" in o.data.get("text/html", "") for o in rich) == 3
    stitching = notebook.cells[6].source
    assert "evaluate.yaml" in stitching and "notches=" not in stitching  # evaluate's own stitching settings


class _Trap:
    """Unpickling this runs code (it creates a file): only a loader without weights_only would."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def test_checkpoints_from_elsewhere_are_refused_without_running_their_code(tmp_path):
    marker = tmp_path / "code_ran"
    trap = tmp_path / "trap.ckpt"
    torch.save({"state_dict": {}, "aerecon": {"config": {}}, "payload": _Trap(marker)}, trap)
    with pytest.raises(ConfigError, match="holds pickled Python objects .* that would run code"):
        load_model(trap)
    assert not marker.exists()
    plain = tmp_path / "plain.ckpt"
    torch.save({"state_dict": {"w": torch.ones(2)}}, plain)  # someone else's Lightning/PyTorch checkpoint
    with pytest.raises(ConfigError, match=f"ckpt_path={plain} is not an aerecon checkpoint"):
        load_model(plain)
