"""Learned codes in bits: bottleneck=quantized trains at a rate, and aerecon-compress /
aerecon-decompress write and read real files of it (and of a VQ code)."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import compose_cfg, run_cli
from test_inference import FIXTURES

import aerecon
from aerecon.audio.io import load_audio
from aerecon.coding import container, entropy, learned
from aerecon.train import train
from aerecon.utils.errors import ConfigError, DataError

RATE = 2000  # experiment=tiny's


@pytest.fixture(scope="module")
def quantized(tmp_path_factory, shared_dirs) -> dict:
    """A resconv with bottleneck=quantized, trained two epochs at a target rate: its results."""
    root = tmp_path_factory.mktemp("quantized")
    cfg = compose_cfg(
        root,
        shared_dirs,
        "model=resconv",
        "bottleneck=quantized",
        "model.bottleneck.kbps=1.0",
        "model.bottleneck.warmup_steps=5",
    )
    return train(cfg) | {"cfg": cfg}


def song(seconds: float, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    rng = np.random.default_rng(seed)
    wave = 0.3 * np.sin(2 * np.pi * 110 * t) + 0.1 * np.sin(2 * np.pi * 330 * t + 1.0)
    return (wave + 0.02 * rng.standard_normal(len(t))).astype(np.float32)


def by_segments(model, wave: np.ndarray) -> np.ndarray:
    """The model's eval-mode reconstruction of the song's whole segments (the last padded), cut to its length."""
    n = model.segment_samples
    segments = torch.from_numpy(np.pad(wave, (0, -len(wave) % n)).reshape(-1, 1, n))
    with torch.no_grad():
        return model.module.reconstruct(segments).flatten().numpy()[: len(wave)]


@pytest.mark.parametrize("name", ["fc", "conv", "resconv"])
def test_a_quantized_latent_trains_on_each_dense_network_and_logs_its_rate(make_cfg, name):
    results = train(make_cfg(f"model={name}", "bottleneck=quantized", "trainer.max_epochs=1", "test=false"))
    kbps = results["best"]["val/kbps"]
    # 0.5 s segments of 2000 Hz: a handful of symbols of a few bits each per segment
    assert 0 < kbps < 50
    model = aerecon.load(results["best_checkpoint"], "cpu")
    n = model.segment_samples
    code = model.encode(torch.from_numpy(song(1.0)[:n]).view(1, 1, n))
    bottleneck = model.module.bottleneck  # the code is whole steps: quantising it again changes nothing
    latent = model.module.net.unpack(code)
    assert torch.equal(bottleneck.latent(latent), latent)


def test_a_dense_network_is_the_only_kind_a_quantized_bottleneck_takes(make_cfg):
    with pytest.raises(ConfigError, match="not a latent of numbers to round: use bottleneck=quantized with model=fc"):
        train(
            make_cfg(
                "model=sparseconv",
                "representation=raw",
                "model.net.latent=250",
                "model.net.hop=50",
                "bottleneck=quantized",
            )
        )


def test_a_target_rate_moves_rate_lambda_towards_it(quantized):
    best = quantized["best"]
    assert best["val/loss/scalarquantizer/rate_lambda"] != pytest.approx(0.01)  # it followed the rate


def test_compress_then_decompress_gives_the_model_reconstruction_and_the_rate_is_the_files(quantized, tmp_path):
    ckpt = quantized["best_checkpoint"]
    wave = song(3.37)
    sf.write(tmp_path / "song.wav", wave, RATE, subtype="FLOAT")
    made = run_cli(
        f"ckpt_path={ckpt}", f"input={tmp_path / 'song.wav'}", f"output={tmp_path / 'song.aer'}",
        cwd=tmp_path, app="aerecon.compress",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr[-2000:]
    size = (tmp_path / "song.aer").stat().st_size
    assert f"{size} bytes for 3.4 s of song.wav, {8 * size / 3.37 / 1000:.2f} kbit/s" in made.stdout
    back = run_cli(
        f"ckpt_path={ckpt}", f"input={tmp_path / 'song.aer'}", f"output={tmp_path / 'back.wav'}",
        cwd=tmp_path, app="aerecon.decompress",
    )  # fmt: skip
    assert back.returncode == 0, back.stderr[-2000:]
    decoded, rate = sf.read(tmp_path / "back.wav", dtype="float32")
    model = aerecon.load(ckpt, "cpu")
    assert rate == RATE and len(decoded) == len(wave)
    np.testing.assert_allclose(decoded, by_segments(model, wave), atol=1e-5)
    assert np.abs(decoded).max() > 0.01  # not silence


def test_the_same_song_gives_the_same_bytes_and_a_vq_code_compresses_too(tmp_path):
    ckpt = FIXTURES / "resconv.ckpt"  # a VQ bottleneck, from an earlier version
    model = aerecon.load(ckpt, "cpu")
    wave = song(20.05, seed=3)
    data, samples = learned.compress(model, ckpt, [wave[:333], wave[333:]], batch_size=30)
    assert (data, samples) == learned.compress(model, ckpt, [wave], batch_size=7)
    count, blocks = learned.decompress(model, ckpt, data, "the song", batch_size=16)
    np.testing.assert_allclose(np.concatenate(list(blocks)), by_segments(model, wave), atol=1e-5)
    assert count == len(wave)
    # 201 segments (of 200 samples) of 48 codebook indices: the file is their information content
    # under its histogram, the histogram and a header of a few dozen bytes
    symbols = learned.song_symbols(learned.song_values(model, [wave], 30)[0])
    assert symbols.shape == (201, 1, 48)
    assert 8 * len(data) <= entropy.coded_bits([symbols.ravel()]) + 8 * 52 + 64


def test_a_model_without_symbols_says_which_do(tmp_path):
    (tmp_path / "s.wav").write_bytes(b"")
    sf.write(tmp_path / "s.wav", song(1.0), RATE)
    result = run_cli(
        f"ckpt_path={FIXTURES / 'fc.ckpt'}", f"input={tmp_path / 's.wav'}", f"output={tmp_path / 's.aer'}",
        cwd=tmp_path, app="aerecon.compress",
    )  # fmt: skip
    assert result.returncode == 2
    assert "code is numbers, not symbols" in result.stderr and "bottleneck=quantized" in result.stderr
    assert not (tmp_path / "s.aer").exists()


def test_a_file_that_is_not_this_checkpoints_whole_compressed_song_is_refused_and_nothing_is_written(
    quantized, tmp_path
):
    ckpt = Path(quantized["best_checkpoint"])
    model = aerecon.load(ckpt, "cpu")
    data, _ = learned.compress(model, ckpt, [song(1.3)])
    other = tmp_path / "other.ckpt"
    shutil.copy(ckpt, other)
    with open(other, "ab") as f:  # the same model, another file: another fingerprint
        f.write(b"\0")
    codec, rate, samples, payload = container.unpack(data, "x")
    cases = {
        "truncated": (data[:-3], ckpt, "truncated or damaged"),
        "damaged": (data[:-9] + bytes([data[-9] ^ 1]) + data[-8:], ckpt, "truncated or damaged"),
        "foreign": ((FIXTURES / "README.md").read_bytes(), ckpt, "not an aerecon compressed file"),
        "empty": (b"", ckpt, "not an aerecon compressed file"),
        "other checkpoint": (data, other, "compressed with another checkpoint"),
        "another codec": (container.pack("opus", rate, samples, payload), ckpt, "written by the opus codec"),
        "another rate": (container.pack(codec, 8000, samples, payload), ckpt, "says 8000 Hz"),
        "another length": (container.pack(codec, rate, samples * 3, payload), ckpt, "does not fit"),
    }
    for name, (content, path, message) in cases.items():
        (tmp_path / f"{name}.aer").write_bytes(content)
        with pytest.raises(DataError, match=message):
            learned.decompress(aerecon.load(path, "cpu"), path, content, name)
    result = run_cli(
        f"ckpt_path={ckpt}", f"input={tmp_path / 'truncated.aer'}", f"output={tmp_path / 'out.wav'}",
        cwd=tmp_path, app="aerecon.decompress",
    )  # fmt: skip
    assert result.returncode == 2 and "truncated or damaged" in result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and not (tmp_path / "out.wav").exists()


def test_evaluate_counts_the_rate_of_the_files_it_would_write(quantized, tmp_path, shared_dirs):
    ckpt = quantized["best_checkpoint"]
    out = tmp_path / "eval"
    result = run_cli(
        f"ckpt_path={ckpt}", f"hydra.run.dir={out}", "max_media_songs=0", "butt_joined=false",
        cwd=tmp_path, shared=shared_dirs, app="aerecon.evaluate",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads((out / "metrics.json").read_text())
    model = aerecon.load(ckpt, "cpu")
    bits = seconds = 0
    for name, scores in metrics["songs"].items():
        wave = load_audio(next(Path(metrics["data_root"]).rglob(name)), RATE).reshape(-1)  # as the cache holds it
        data, _ = learned.compress(model, ckpt, [wave])
        assert scores["kbps"] == pytest.approx(8 * len(data) / (len(wave) / RATE) / 1000)
        decoded = np.concatenate(list(learned.decompress(model, ckpt, data, name)[1]))
        snr = 10 * np.log10(np.sum(wave**2) / np.sum((wave - decoded) ** 2))
        assert scores["snr_db_compressed"] == pytest.approx(snr, abs=0.01)
        bits, seconds = bits + 8 * len(data), seconds + len(wave) / RATE
    assert metrics["overall"]["kbps"] == pytest.approx(bits / seconds / 1000)
    assert "Compressed files: " in result.stdout + result.stderr


def test_a_rate_asked_for_is_the_files_and_costs_quality_as_it_falls(quantized, tmp_path):
    ckpt = quantized["best_checkpoint"]
    model = aerecon.load(ckpt, "cpu")
    wave = song(30.0, seed=5)
    natural, _ = learned.compress(model, ckpt, [wave])
    natural_kbps = 8 * len(natural) / 30.0 / 1000
    reference = np.concatenate(list(learned.decompress(model, ckpt, natural, "x")[1]))
    errors = []
    for kbps in (natural_kbps / 2, natural_kbps / 4):
        data, _ = learned.compress(model, ckpt, [wave], kbps=kbps)
        assert 0.9 * kbps <= 8 * len(data) / 30.0 / 1000 <= kbps  # within 10% below the rate asked
        decoded = np.concatenate(list(learned.decompress(model, ckpt, data, "x")[1]))
        errors.append(np.sum((reference - decoded) ** 2))
    assert 0 < errors[0] < errors[1]  # coarser steps, further from the code at its own rate
    with pytest.raises(DataError, match="below the coarsest"):
        learned.compress(model, ckpt, [wave], kbps=0.001)
    vq = FIXTURES / "resconv.ckpt"
    with pytest.raises(ConfigError, match="this model's code has one rate"):
        learned.compress(aerecon.load(vq, "cpu"), vq, [wave], kbps=4)
