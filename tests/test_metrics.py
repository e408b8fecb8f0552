"""Stitching and every evaluation metric against values worked out by hand."""

import math

import pytest
import torch

from aerecon.audio.stitch import Stitcher, check_stitch
from aerecon.models.losses import MultiResolutionSTFTLoss
from aerecon.models.metrics import SeamExcess, band_snr_db, log_spectral_distance, song_metrics
from aerecon.utils.errors import ConfigError

RATE = 4410


def tone(freq: float, seconds: float = 2.0, amp: float = 0.5) -> torch.Tensor:
    t = torch.arange(int(seconds * RATE), dtype=torch.float64) / RATE
    return (amp * torch.sin(2 * math.pi * freq * t)).float()


def music_like(seconds: float = 7.3) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return tone(110, seconds) + tone(523, seconds, 0.2) + 0.05 * torch.randn(int(seconds * RATE), generator=g)


WINDOWS = [
    dict(window="crossfade", overlap=0.0),
    dict(window="crossfade", overlap=0.25),
    dict(window="crossfade", overlap=0.5),
    dict(window="notched", notches=1),
    dict(window="notched", notches=2),
    dict(window="notched", notches=4),
]


@pytest.mark.parametrize("segment, options", [(1000, o) for o in WINDOWS] + [(999, o) for o in WINDOWS[:3]])
def test_windows_sum_to_a_constant(segment, options):
    stitcher = Stitcher(segment, **options)
    total = torch.zeros(stitcher.hop * 20 + segment, dtype=torch.float64)
    for k in range(21):
        total[k * stitcher.hop : k * stitcher.hop + segment] += stitcher.window
    inside = total[segment : 20 * stitcher.hop]
    assert torch.allclose(inside, inside.mean().expand_as(inside), atol=1e-9)


def test_segments_cover_the_song_and_seams_are_their_edges():
    butt = Stitcher(1000, "crossfade", overlap=0.0)
    assert butt.starts(2500) == [0, 1000, 2000] and butt.seams(2500) == [1000, 2000]
    half = Stitcher(1000, "crossfade", overlap=0.5)  # led in by half a segment of silence
    assert half.starts(2500) == [-500, 0, 500, 1000, 1500, 2000]
    assert half.seams(2500) == [500, 1000, 1500, 2000]
    notched = Stitcher(1000, "notched", notches=4)
    assert notched.hop == 125 and notched.starts(10)[0] == -875
    assert float(notched.window[[0, 250, 500, 750]].max()) < 1e-4  # zero at 0, n/4, n/2, 3n/4
    with pytest.raises(Exception, match="overlap=0.7"):
        Stitcher(1000, "crossfade", overlap=0.7)
    with pytest.raises(Exception, match="window='hann'"):
        Stitcher(1000, "hann")


def test_the_stitch_settings_are_checked_in_one_place_under_the_names_users_write():
    with pytest.raises(ConfigError, match=r"stitch.notches=0: .* e.g. stitch.notches=8"):
        check_stitch("notched", 0.5, 0, prefix="stitch.")
    with pytest.raises(ConfigError, match=r"stitch.overlap=abc: .* e.g. stitch.overlap=0.5"):
        check_stitch("crossfade", "abc", 8, prefix="stitch.")
    with pytest.raises(ConfigError, match=r"stitch.window='hann': use one of crossfade, notched"):
        check_stitch("hann", 0.5, 8, prefix="stitch.")
    check_stitch("notched", 0.5, 300, prefix="stitch.")  # the upper bound waits for the model's segment
    with pytest.raises(ConfigError, match=r"notches=300: .* a quarter of the segment"):
        Stitcher(1000, "notched", notches=300)


@pytest.mark.parametrize("options", WINDOWS)
def test_identity_model_stitches_exactly(options):
    song = music_like()
    stitcher = Stitcher(RATE * 3 // 2, **options)
    out = stitcher(lambda x: x, song, batch_size=3)
    metrics = song_metrics(song, out, RATE, stitcher.seams(len(song)))
    assert out.shape == song.shape
    assert metrics["snr_db"] > 60
    assert abs(metrics["seam_excess_db"]) < 1e-6


@pytest.mark.parametrize("options", [dict(window="crossfade", overlap=0.5), dict(window="notched", notches=2)])
def test_overlapping_windows_remove_the_click_that_butt_joins_make(options):
    """A model that adds a different constant to each segment: butt-joined segments jump."""
    song, segment = tone(110, 7.3) + tone(523, 7.3, 0.2), 2000
    counter = iter(range(10_000))

    def drifting(x):
        return x + torch.stack([torch.full_like(s, 0.2 * ((next(counter) % 3) - 1)) for s in x])

    excess = {}
    for name, stitcher in (
        ("butted", Stitcher(segment, "crossfade", overlap=0.0)),
        ("overlapped", Stitcher(segment, **options)),
    ):
        out = stitcher(drifting, song)
        excess[name] = song_metrics(song, out, RATE, stitcher.seams(len(song)))["seam_excess_db"]
    assert excess["butted"] > 3
    assert abs(excess["overlapped"]) <= 1


def test_notched_window_hides_impulses_at_fixed_points_of_each_segment():
    """The thesis conv model's failure mode: clicks at 0, n/4, n/2 and 3n/4 of every segment."""
    song, segment = tone(110, 7.3) + tone(523, 7.3, 0.2), 2000

    def clicking(x):
        y = x.clone()
        y[..., [0, segment // 4, segment // 2, 3 * segment // 4]] += 0.3
        return y

    notched = Stitcher(segment, "notched", notches=4)
    out = notched(clicking, song)
    assert song_metrics(song, out, RATE, notched.seams(len(song)))["snr_db"] > 40
    half = Stitcher(segment, "crossfade", overlap=0.5)
    assert song_metrics(song, half(clicking, song), RATE, half.seams(len(song)))["seam_excess_db"] > 3


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


@pytest.mark.parametrize("options", WINDOWS[1:])
def test_every_song_sample_gets_the_full_window_sum_even_at_the_ends(options):
    stitcher = Stitcher(1000, **options)
    length = 4321
    covered = torch.zeros(length + 2 * stitcher.segment, dtype=torch.float64)  # song starts at index segment
    for start in stitcher.starts(length):
        covered[start + stitcher.segment : start + 2 * stitcher.segment] += stitcher.window
    song = covered[stitcher.segment : stitcher.segment + length]
    assert torch.allclose(song, song.mean().expand_as(song), atol=1e-9)


def test_segment_snr_leaves_out_silent_references_and_is_never_nan():
    from torchmetrics.functional.audio import signal_noise_ratio

    from aerecon.models.metrics import SegmentSNR

    ref = torch.stack([tone(220)[:500], tone(330)[:500], torch.zeros(500)]).unsqueeze(1)
    rec = ref + 0.01 * torch.randn_like(ref)
    metric = SegmentSNR()
    metric.update(rec, ref)
    audible = signal_noise_ratio(rec[:2], ref[:2]).mean()
    assert float(metric.compute()) == pytest.approx(float(audible), rel=1e-5)  # the silent one is left out
    assert float(signal_noise_ratio(rec, ref).mean()) < float(audible) - 20  # what it would have dragged in
    only_silence = SegmentSNR()
    only_silence.update(torch.randn(2, 1, 100), torch.zeros(2, 1, 100))
    assert float(only_silence.compute()) == 0.0
