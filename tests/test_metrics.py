"""Stitching and every evaluation metric against values worked out by hand."""

import math

import pytest
import torch

from aerecon.losses import MultiResolutionSTFTLoss
from aerecon.metrics import SeamExcess, band_snr_db, log_spectral_distance, song_metrics
from aerecon.stitch import crossfade_window, hop_length, seam_positions, segment_starts, stitch

RATE = 4410


def tone(freq: float, seconds: float = 2.0, amp: float = 0.5) -> torch.Tensor:
    t = torch.arange(int(seconds * RATE), dtype=torch.float64) / RATE
    return (amp * torch.sin(2 * math.pi * freq * t)).float()


def music_like(seconds: float = 7.3) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return tone(110, seconds) + tone(523, seconds, 0.2) + 0.05 * torch.randn(int(seconds * RATE), generator=g)


@pytest.mark.parametrize("segment, overlap", [(1000, 0.5), (1000, 0.25), (999, 0.1), (1000, 0.0)])
def test_crossfade_windows_sum_to_one(segment, overlap):
    hop = hop_length(segment, overlap)
    window = crossfade_window(segment, hop).double()
    total = torch.zeros(hop * 6 + segment, dtype=torch.float64)
    for k in range(7):
        total[k * hop : k * hop + segment] += window
    assert torch.allclose(total[segment : 6 * hop], torch.ones(6 * hop - segment, dtype=torch.float64), atol=1e-6)


def test_segments_cover_the_song():
    assert segment_starts(2500, 1000, 500) == [0, 500, 1000, 1500]
    assert segment_starts(300, 1000, 500) == [0]  # shorter than a segment: one padded segment
    assert seam_positions(2500, 1000, 0.0) == [1000, 2000]
    assert seam_positions(2500, 1000, 0.5) == [500, 1000, 1500, 2000]
    with pytest.raises(Exception, match="overlap"):
        hop_length(1000, 0.7)


@pytest.mark.parametrize("overlap", [0.0, 0.25, 0.5])
def test_identity_model_stitches_exactly(overlap):
    song = music_like()
    out = stitch(lambda x: x, song, segment=RATE * 3 // 2, overlap=overlap, batch_size=3)
    metrics = song_metrics(song, out, RATE, seam_positions(len(song), RATE * 3 // 2, overlap))
    assert out.shape == song.shape
    assert metrics["snr_db"] > 60
    assert abs(metrics["seam_excess_db"]) < 1e-6


def test_crossfades_remove_the_click_that_butt_joins_make():
    """A model that adds a fixed offset per segment (a crude stand-in for per-segment errors)."""
    song, segment = tone(110, 7.3) + tone(523, 7.3, 0.2), 2000
    counter = iter(range(10_000))

    def drifting(x):  # each segment shifted by a different constant: butt joins jump
        return x + torch.stack([torch.full_like(s, 0.2 * ((next(counter) % 3) - 1)) for s in x])

    butted = stitch(drifting, song, segment, overlap=0.0)
    faded = stitch(drifting, song, segment, overlap=0.5)
    excess = {name: song_metrics(song, out, RATE, seam_positions(len(song), segment, ov))["seam_excess_db"]
              for name, out, ov in (("butted", butted, 0.0), ("faded", faded, 0.5))}
    assert excess["butted"] > 3
    assert abs(excess["faded"]) <= 1


def test_snr_mse_mae_rmse_by_hand():
    ref = torch.tensor([1.0, -1.0, 1.0, -1.0])
    rec = torch.tensor([1.0, -1.0, 0.5, -1.5])  # error [0, 0, -0.5, -0.5]
    m = song_metrics(ref.repeat(300), rec.repeat(300), RATE, [])
    assert m["mse"] == pytest.approx(0.125)
    assert m["mae"] == pytest.approx(0.25)
    assert m["rmse"] == pytest.approx(math.sqrt(0.125))
    assert m["snr_db"] == pytest.approx(10 * math.log10(1 / 0.125), abs=1e-4)  # signal power 1, noise 0.125


def test_si_sdr_by_hand():
    ref = tone(220)
    orthogonal = tone(330, amp=0.25)  # whole periods over 2 s: orthogonal to ref
    m = song_metrics(ref, 0.5 * ref + orthogonal, RATE, [])
    # scaled target 0.5 * ref (power 0.5**2 * 0.125); distortion = orthogonal (power 0.25**2 / 2)
    assert m["si_sdr_db"] == pytest.approx(10 * math.log10((0.25 * 0.125) / (0.0625 / 2)), abs=1e-3)
    # SNR also counts the halved amplitude as error: noise power 0.25 * 0.125 + 0.0625 / 2
    assert m["snr_db"] == pytest.approx(10 * math.log10(0.125 / 0.0625), abs=1e-3)


def test_band_snr_separates_lows_from_highs():
    low, high = tone(100), tone(2000, amp=0.1)
    bands = band_snr_db(low + high, low + 0.5 * high, RATE)
    assert bands["low"] > 100  # untouched
    assert bands["high"] == pytest.approx(10 * math.log10(1 / 0.25), abs=1e-3)  # half its amplitude lost
    silent = band_snr_db(torch.zeros(4000), torch.ones(4000), RATE)
    assert all(math.isnan(v) for v in silent.values())  # no signal: undefined, never +-inf


def test_log_spectral_distance_by_hand():
    g = torch.Generator().manual_seed(1)
    noise = 0.3 * torch.randn(8000, generator=g)
    assert log_spectral_distance(noise, noise) == pytest.approx(0.0, abs=1e-9)
    assert log_spectral_distance(noise, 2 * noise) == pytest.approx(20 * math.log10(2), abs=1e-4)


def test_multi_resolution_stft_distance_by_hand():
    g = torch.Generator().manual_seed(2)
    noise = 0.3 * torch.randn(1, 1, 8000, generator=g)
    loss = MultiResolutionSTFTLoss()
    assert float(loss(noise, noise)["total"]) == pytest.approx(0.0, abs=1e-6)
    terms = loss(2 * noise, noise)  # magnitudes doubled: sc = 1, log term = ln 2 at every resolution
    assert float(terms["sc"]) == pytest.approx(1.0, rel=1e-5)
    assert float(terms["log_mag"]) == pytest.approx(math.log(2), rel=1e-3)


def test_seam_excess_pools_songs():
    song = music_like(3.0)
    clicked = song.clone()
    clicked[1000] += 0.5  # one click at the seam of song 1; song 2 is perfect
    seam = SeamExcess()
    seam.update(song, clicked, [1000])
    seam.update(song, song, [1000])
    one = SeamExcess()
    one.update(song, clicked, [1000])
    assert 0 < float(seam.compute()) < float(one.compute())
