"""aerecon-export: the encoder and decoder as ONNX (run with onnxruntime) and TorchScript."""

import json
import subprocess
import sys

import numpy as np
import onnxruntime
import pytest
import torch
from omegaconf import OmegaConf
from test_inference import FIXTURES, LATENT

import aerecon
from aerecon.export import export, within_tolerance
from aerecon.utils.errors import ConfigError


@pytest.fixture(scope="module")
def models():
    return {name: aerecon.load(FIXTURES / f"{name}.ckpt", "cpu") for name in LATENT}


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
@pytest.mark.parametrize("name", sorted(LATENT))
def test_every_family_exports_and_reproduces_the_model(models, tmp_path, name, fmt):
    model = models[name]
    info = export(model, fmt, tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        ["aerecon_export.json", info["encoder"]["file"], info["decoder"]["file"]]
    )  # small: one file each
    assert json.loads((tmp_path / "out/aerecon_export.json").read_text()) == info
    assert (info["sample_rate"], info["segment_samples"], info["latent_size"]) == (2000, 200, LATENT[name])

    wave = 0.1 * torch.randn(5, 1, 200, generator=torch.Generator().manual_seed(7))  # a batch size not seen before
    if fmt == "onnx":
        encoder, decoder = (
            onnxruntime.InferenceSession(str(tmp_path / "out" / info[part]["file"])) for part in ("encoder", "decoder")
        )
        code = torch.from_numpy(encoder.run(None, {"input": wave.numpy()})[0])
        out = torch.from_numpy(decoder.run(None, {"input": code.numpy()})[0])
    else:
        encoder, decoder = (
            torch.jit.load(str(tmp_path / "out" / info[part]["file"])) for part in ("encoder", "decoder")
        )
        code, out = encoder(wave), None
        out = decoder(code)
    assert code.shape == (5, LATENT[name]) and out.shape == (5, 1, 200)
    eager = model.encode(wave)
    if info["encoder_differs_only_at_near_ties"]:  # a VQ code picked the other of two equally near codes
        assert name == "resconv"
    else:
        assert within_tolerance(code, eager)[0]
    assert within_tolerance(out, model.decode(code))[0]  # the decoder, on the same code: waveforms, so within 1e-4


def test_a_failed_export_leaves_nothing_and_says_why(models, tmp_path, monkeypatch):
    import aerecon.export

    def fails(part, example, path):
        path.write_bytes(b"half an export")
        raise RuntimeError("Unsupported operator aten::something")

    monkeypatch.setitem(aerecon.export.WRITERS, "onnx", (fails, None))
    with pytest.raises(
        ConfigError,
        match=r"the encoder of FCAutoencoder cannot be exported to onnx \(Unsupported "
        r"operator aten::something\); try format=torchscript",
    ):
        export(models["fc"], "onnx", tmp_path / "out")
    assert list(tmp_path.iterdir()) == []  # neither the folder nor its staging copy


def test_export_command_writes_a_folder_and_refuses_to_reuse_one(tmp_path):
    command = [
        sys.executable,
        "-m",
        "aerecon.export",
        f"ckpt_path={FIXTURES / 'sparseconv.ckpt'}",
        "format=onnx",
        "output=exported",
    ]
    first = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "Wrote exported: encoder and decoder (onnx)" in first.stdout
    again = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert again.returncode == 2 and "aerecon: error: output=exported exists" in again.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exported"]  # no run folder
    wave = np.zeros((1, 1, 200), dtype=np.float32)
    session = onnxruntime.InferenceSession(str(tmp_path / "exported/encoder.onnx"))
    assert session.run(None, {"input": wave})[0].shape == (1, 40)


@pytest.mark.parametrize("rate, seconds", [(2000, 0.5), (4410, 3.0)])  # 1000 samples, and the thesis's 13230
def test_an_rfft_model_exports_to_onnx_at_any_segment_length_within_float32_rounding(tmp_path, rate, seconds):
    from aerecon.audio.representation import RFFT
    from aerecon.models import AutoencoderModule, FCAutoencoder
    from aerecon.models.inference import Autoencoder

    torch.manual_seed(0)
    n = round(rate * seconds)
    module = AutoencoderModule(FCAutoencoder(n, hidden=[], latent=8), representation=RFFT())
    model = Autoencoder(module, {"data": {"sample_rate": rate, "segment_seconds": seconds}}, torch.device("cpu"))
    info = export(model, "onnx", tmp_path / "out")
    # the code is unnormalised RFFT bins into the hundreds: held to 1e-4 of its largest, as any export
    wave = 0.1 * torch.randn(4, 1, n, generator=torch.Generator().manual_seed(3))
    encoder, decoder = (
        onnxruntime.InferenceSession(str(tmp_path / "out" / info[part]["file"])) for part in ("encoder", "decoder")
    )
    code = encoder.run(None, {"input": wave.numpy()})[0]
    expected = model.encode(wave)
    assert np.abs(code - expected.numpy()).max() <= 1e-5 * np.abs(expected.numpy()).max()
    out = decoder.run(None, {"input": expected.numpy()})[0]
    assert np.abs(out - model.decode(expected).numpy()).max() <= 1e-5 * max(1.0, np.abs(out).max())


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_a_runs_code_exports_and_its_parts_reproduce_the_model(tmp_path, fmt):
    from aerecon.models.selection import Runs

    model = aerecon.load(FIXTURES / "sparseconv.ckpt", "cpu")
    model.module.net.select = Runs(40)  # experiment=best's selector, on the small fixture's filterbank
    info = export(model, fmt, tmp_path / "out")
    wave = 0.1 * torch.randn(5, 1, 200, generator=torch.Generator().manual_seed(7))
    _, run = aerecon.export.WRITERS[fmt]
    code = run(tmp_path / "out" / info["encoder"]["file"], wave)
    assert within_tolerance(code, model.encode(wave))[0] and (code[:, 0] > 0).all()  # some runs in every code
    out = run(tmp_path / "out" / info["decoder"]["file"], code)
    assert within_tolerance(out, model.decode(code))[0] and within_tolerance(out, model.module.reconstruct(wave))[0]


def test_a_stop_or_a_full_disk_inside_an_exporter_is_reported_as_such_and_leaves_nothing(models, tmp_path, monkeypatch):
    import errno

    import aerecon.export as exporting
    from aerecon.utils.errors import DiskError, Stopped

    write, run = exporting.WRITERS["onnx"]
    for inner, caught, message in (
        (Stopped("SIGTERM while exporting; nothing was written", 15), Stopped, "SIGTERM"),
        (KeyboardInterrupt(), KeyboardInterrupt, None),
        (
            OSError(errno.ENOSPC, "No space left on device"),
            DiskError,
            r"cannot write output=.*out \(No space left on device\); nothing was written",
        ),
    ):

        def wrapping(part, example, path, inner=inner):
            try:
                raise inner
            except BaseException as error:  # as the exporters do: their own exception around what they caught
                raise RuntimeError("Failed to export the model") from error

        monkeypatch.setitem(exporting.WRITERS, "onnx", (wrapping, run))
        with pytest.raises(caught, match=message):
            export(models["fc"], "onnx", tmp_path / "out")
        assert list(tmp_path.iterdir()) == []

    (tmp_path / "link").symlink_to(tmp_path / "nowhere" / "t")
    with pytest.raises(ConfigError, match="output=.*link is a symbolic link; name a new folder"):
        exporting.check(OmegaConf.create({"ckpt_path": "x.ckpt", "format": "onnx", "output": str(tmp_path / "link")}))
    (tmp_path / "link").unlink()
    monkeypatch.setattr(exporting.shutil, "disk_usage", lambda path: type("Usage", (), {"free": 1000})())
    with pytest.raises(DiskError, match=r"No space left on device: the export needs about 1 MiB, 0 MiB are free"):
        export(models["fc"], "torchscript", tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_sigterm_while_exporting_stops_with_143_and_leaves_nothing(tmp_path):
    import signal
    import time

    from test_inference import FIXTURES

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aerecon.export",
            f"ckpt_path={FIXTURES / 'resconv.ckpt'}",
            "format=onnx",
            f"output={tmp_path / 'exported'}",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".exported.*.tmp")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.005)
    time.sleep(0.2)  # inside the exporter
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr[-2000:]
    assert stderr.strip().splitlines()[-1] == "aerecon: stopped: SIGTERM while exporting; nothing was written"
    assert list(tmp_path.iterdir()) == []
