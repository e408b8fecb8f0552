"""aerecon.load and aerecon-reconstruct: a trained model used outside training."""

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from omegaconf import OmegaConf

import aerecon
from aerecon.audio.io import Resampler, resample
from aerecon.audio.stitch import Stitcher
from aerecon.reconstruct import check, reconstruct
from aerecon.utils.config import CONF_DIR
from aerecon.utils.errors import AudioError, ConfigError

# One small checkpoint per model family, written by aerecon before the networks were separated from
# the training module: every later version must still load them (see fixtures/checkpoints/README.md).
FIXTURES = Path(__file__).parent / "fixtures" / "checkpoints"
LATENT = {"fc": 16, "conv": 16, "resconv": 48, "sparseconv": 40, "fourier_sparse": 30, "fourier_topk": 40}
# Stored: float32 values (32 bits); sparseconv's 20 positions among 50 x 5 coefficients, 8 bits each;
# fourier_sparse's 10 bins among 101, 7 bits each; resconv's VQ: 48 frames, a 9-bit index of 512 codes each.
CODE_BITS = {
    "fc": 16 * 32,
    "conv": 16 * 32,
    "resconv": 48 * 9,
    "sparseconv": 20 * (32 + 8),
    "fourier_sparse": 10 * (2 * 32 + 7),
    "fourier_topk": 40 * 32,
}


@pytest.mark.parametrize("name", sorted(LATENT))
def test_checkpoints_of_every_family_load_and_code_segments(name):
    model = aerecon.load(FIXTURES / f"{name}.ckpt", device="cpu")
    assert (model.sample_rate, model.segment_samples, model.latent_size) == (2000, 200, LATENT[name])
    assert model.config["model"]["net"]["latent"] == LATENT[name]
    assert model.code_bits == CODE_BITS[name]
    wave = 0.2 * torch.randn(3, 1, 200, generator=torch.Generator().manual_seed(0))
    latent = model.encode(wave)
    assert latent.shape == (3, LATENT[name]) and latent.dtype == torch.float32
    decoded = model.decode(latent)
    assert decoded.shape == (3, 1, 200)
    # the same as the training module's own reconstruction (what aerecon.evaluate scores)
    torch.testing.assert_close(decoded, model.module.reconstruct(wave), rtol=1e-5, atol=1e-6)

    song = 0.2 * torch.randn(1234, generator=torch.Generator().manual_seed(1))
    stitched = model.reconstruct(song)
    assert stitched.shape == song.shape
    torch.testing.assert_close(stitched, Stitcher(200)(model.module.reconstruct, song))


def test_a_sparse_code_reconstructs_a_song_of_any_length():
    model = aerecon.load(FIXTURES / "fourier_sparse.ckpt")
    t = np.arange(5 * 2000 + 37) / 2000
    song = (0.3 * np.sin(2 * np.pi * 100 * t) + 0.2 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)
    out = model.reconstruct(song).numpy()
    snr = 10 * math.log10(np.sum(song**2) / np.sum((song - out) ** 2))
    assert len(out) == len(song) and snr > 30


def test_reconstruct_runs_a_long_song_one_batch_at_a_time():
    model = aerecon.load(FIXTURES / "conv.ckpt")
    real, batches = model.module.reconstruct, []

    def recording(segments):
        batches.append(len(segments))
        return real(segments)

    model.module.reconstruct = recording
    model.reconstruct(torch.zeros(60 * 2000), batch_size=16)
    assert max(batches) == 16 and sum(batches) > 16 * 30  # a minute of segments, never more than 16 at once


def pieces(signal, sizes):
    """`signal` cut into consecutive blocks of the given sizes, repeated."""
    blocks, at = [], 0
    while at < len(signal):
        size = sizes[len(blocks) % len(sizes)]
        blocks.append(signal[at : at + size])
        at += size
    return blocks


@pytest.mark.parametrize("rates", [(44100, 2000), (48000, 4410), (2000, 44100), (22050, 22050)])
def test_resampling_in_blocks_equals_resampling_the_whole_signal(rates):
    signal = np.random.default_rng(0).standard_normal(9000).astype(np.float32)
    whole = resample(signal, *rates)
    for sizes in ([len(signal)], [1, 7, 500], [4096]):
        resampler = Resampler(*rates)
        streamed = np.concatenate([resampler(block) for block in pieces(signal, sizes)] + [resampler.flush()])
        assert len(streamed) == len(whole)
        np.testing.assert_allclose(streamed, whole, atol=1e-6)


@pytest.mark.parametrize("window", ["notched", "crossfade"])
def test_a_song_reconstructed_in_blocks_equals_the_whole_song_to_the_bit(window):
    model = aerecon.load(FIXTURES / "conv.ckpt")
    song = torch.randn(7 * 200 + 13, generator=torch.Generator().manual_seed(0)) * 0.3
    whole = model.reconstruct(song, window=window, batch_size=5)
    for sizes in ([1, 13, 401], [len(song)], [199]):
        streamed = torch.cat(list(model.reconstruct_stream(pieces(song, sizes), window=window, batch_size=5)))
        assert torch.equal(streamed, whole)


def test_the_command_streams_the_file_and_writes_what_the_api_gives(tmp_path):
    t = np.arange(int(2.3 * 8000)) / 8000
    song = (0.4 * np.sin(2 * np.pi * 150 * t) * np.sin(2 * np.pi * 0.7 * t)).astype(np.float32)
    sf.write(tmp_path / "song.wav", song, 8000, subtype="FLOAT")
    model = aerecon.load(FIXTURES / "conv.ckpt", "cpu")
    expected = model.reconstruct(resample(song, 8000, 2000), batch_size=3).numpy()
    cfg = OmegaConf.load(Path(CONF_DIR) / "reconstruct.yaml")
    cfg.merge_with(
        {
            "ckpt_path": str(FIXTURES / "conv.ckpt"),
            "input": str(tmp_path / "song.wav"),
            "device": "cpu",
            "batch_size": 3,
            "block_seconds": 0.05,
        }
    )  # 100 blocks of 400 samples at 8 kHz
    cfg.pop("hydra"), cfg.pop("defaults")
    for rate, want in (("model", expected), ("input", resample(expected, 2000, 8000))):
        cfg.output, cfg.rate = str(tmp_path / f"{rate}.wav"), rate
        back, written_rate = sf.read(reconstruct(cfg), dtype="float32")
        assert written_rate == (2000 if rate == "model" else 8000) and len(back) == len(want)
        np.testing.assert_allclose(back, want, atol=2e-6)


@pytest.mark.parametrize("rate, seconds", [(48000, 1.2345), (22050, 2.0001), (44100, 0.73)])
def test_rate_input_keeps_the_input_length_exactly(tmp_path, rate, seconds):
    song = (0.3 * np.sin(2 * np.pi * 220 * np.arange(round(rate * seconds)) / rate)).astype(np.float32)
    sf.write(tmp_path / "song.wav", song, rate, subtype="FLOAT")
    cfg = OmegaConf.load(Path(CONF_DIR) / "reconstruct.yaml")
    cfg.merge_with(
        {
            "ckpt_path": str(FIXTURES / "fc.ckpt"),
            "input": str(tmp_path / "song.wav"),
            "device": "cpu",
            "output": str(tmp_path / "back.wav"),
            "rate": "input",
            "block_seconds": 0.1,
        }
    )
    cfg.pop("hydra"), cfg.pop("defaults")
    back, written_rate = sf.read(reconstruct(cfg), dtype="float32")
    assert written_rate == rate and len(back) == len(song)
    assert np.abs(back).max() > 0.01  # not silence


def test_a_fault_found_while_streaming_leaves_no_output(tmp_path):
    song = np.full(8000, 0.2, dtype=np.float32)
    song[6000] = np.nan  # found in the 15th block of 400 samples, after the output was begun
    sf.write(tmp_path / "damaged.wav", song, 8000, subtype="FLOAT")
    cfg = OmegaConf.create(
        {
            "ckpt_path": str(FIXTURES / "fc.ckpt"),
            "input": str(tmp_path / "damaged.wav"),
            "output": str(tmp_path / "out.wav"),
            "overwrite": False,
            "rate": "model",
            "device": "cpu",
            "batch_size": 2,
            "block_seconds": 0.05,
            "stitch": {"window": "notched", "notches": 8, "overlap": 0.5},
        }
    )
    with pytest.raises(AudioError, match="damaged.wav: contains NaN or Inf samples"):
        reconstruct(cfg)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["damaged.wav"]


def test_wrong_shapes_and_paths_are_clear():
    model = aerecon.load(FIXTURES / "fc.ckpt")
    with pytest.raises(ValueError, match=r"wave must have shape \[B, 1, 200\], got \[3, 200\]"):
        model.encode(torch.zeros(3, 200))
    with pytest.raises(ValueError, match=r"latent must have shape \[B, 16\], got \[2, 15\]"):
        model.decode(torch.zeros(2, 15))
    with pytest.raises(ValueError, match=r"wave must have shape \[B\]"):
        model.reconstruct(torch.zeros(1, 1, 400))
    with pytest.raises(ConfigError, match="does not exist"):
        aerecon.load(FIXTURES / "missing.ckpt")


def test_reconstruct_command_writes_the_song_at_either_rate(tmp_path):
    t = np.arange(int(3.5 * 44100)) / 44100
    sf.write(
        tmp_path / "song.flac",
        np.stack([0.3 * np.sin(2 * np.pi * 220 * t), 0.1 * np.sin(2 * np.pi * 90 * t)], 1),
        44100,
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "aerecon.reconstruct",
            f"ckpt_path={FIXTURES / 'fourier_sparse.ckpt'}",
            "input=song.flac",
            "output=back.wav",
            "rate=input",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Wrote back.wav (3.5 s at 44100 Hz)" in result.stdout
    back, rate = sf.read(tmp_path / "back.wav")
    assert rate == 44100 and len(back) == len(t)
    mono = 0.5 * (0.3 * np.sin(2 * np.pi * 220 * t) + 0.1 * np.sin(2 * np.pi * 90 * t))
    assert 10 * math.log10(np.sum(mono**2) / np.sum((mono - back) ** 2)) > 20  # low tones survive 2 kHz and back
    assert sorted(p.name for p in tmp_path.iterdir()) == ["back.wav", "song.flac"]  # no run folder

    (tmp_path / "locked").mkdir(mode=0o555)  # a folder it may not write into
    if not os.access(tmp_path / "locked", os.W_OK):  # (root may write anywhere)
        locked = subprocess.run(
            [
                sys.executable,
                "-m",
                "aerecon.reconstruct",
                f"ckpt_path={FIXTURES / 'fc.ckpt'}",
                "input=song.flac",
                "output=locked/back.wav",
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert locked.returncode == 2 and "cannot write output=locked/back.wav" in locked.stderr
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "aerecon.reconstruct",
            f"ckpt_path={FIXTURES / 'fc.ckpt'}",
            "input=song.flac",
            "output=/proc/back.wav",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2 and "aerecon: error: cannot write output=/proc/back.wav" in proc.stderr


def test_reconstruct_command_faults_are_one_line_and_touch_nothing(tmp_path):
    song, kept = tmp_path / "song.wav", tmp_path / "kept.wav"
    sf.write(song, np.zeros(100) + 0.1, 8000)
    kept.write_bytes(b"the user's own file")

    def cfg(**changes):
        return OmegaConf.create(
            {
                "ckpt_path": str(FIXTURES / "fc.ckpt"),
                "input": str(song),
                "output": str(tmp_path / "o.wav"),
                "overwrite": False,
                "rate": "model",
                "batch_size": 40,
                "block_seconds": 60,
                **changes,
            }
        )

    faults = {
        "input=.*nope.wav: no such file": cfg(input=str(tmp_path / "nope.wav")),
        "output=.*kept.wav exists; add overwrite=true": cfg(output=str(kept)),
        "output=.*song.wav is the input file": cfg(output=str(song), overwrite=True),
        "output=.*o.mp3: the reconstruction is written as WAV": cfg(output=str(tmp_path / "o.mp3")),
        "the folder .*missing does not exist": cfg(output=str(tmp_path / "missing" / "o.wav")),
        "rate=loud: use model .* or input": cfg(rate="loud"),
        "batch_size=0: must be a whole number": cfg(batch_size=0),
        "block_seconds=0: must be seconds above 0": cfg(block_seconds=0),
        "input is not set": OmegaConf.create({"ckpt_path": "x", "input": "???", "output": "o.wav"}),
    }
    for message, config in faults.items():
        with pytest.raises(ConfigError, match=message):
            check(config)
    assert kept.read_bytes() == b"the user's own file"


def test_a_rate_that_shares_no_common_factor_is_refused_before_any_memory_is_taken(tmp_path):
    for rate in (767999, 44101):  # a 6 GiB and a 0.8 GiB filter for torchaudio's exact resampler
        sf.write(tmp_path / "odd.wav", np.full(2000, 0.1, dtype=np.float32), rate, subtype="FLOAT")
        cfg = OmegaConf.create(
            {
                "ckpt_path": str(FIXTURES / "fc.ckpt"),
                "input": str(tmp_path / "odd.wav"),
                "output": str(tmp_path / "out.wav"),
                "overwrite": False,
                "rate": "model",
                "device": "cpu",
                "batch_size": 2,
                "block_seconds": 1,
                "stitch": {"window": "notched", "notches": 8, "overlap": 0.5},
            }
        )
        with pytest.raises(
            AudioError,
            match=rf"input=.*odd.wav: its sample rate, {rate} Hz, shares too small a "
            r"factor with 2000 Hz to resample exactly .* convert it to a common rate",
        ):
            reconstruct(cfg)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["odd.wav"]
    for common in (8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000, 88200, 96000, 192000):
        Resampler(common, 4410), Resampler(4410, common)  # every common rate, to the thesis's and back
