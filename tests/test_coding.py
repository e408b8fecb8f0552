"""Coding songs into bits: the entropy coder, the compressed-file framing and the reference codecs,
on real bytes."""

import numpy as np
import pytest

from aerecon.coding import container, entropy
from aerecon.coding.reference import CODECS, kbps_of, reference_codec
from aerecon.utils.errors import ConfigError, DataError

RATE = 4410


def snr_db(reference: np.ndarray, reconstruction: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(reference**2) / np.sum((reference - reconstruction) ** 2)))


@pytest.fixture(scope="module")
def song() -> np.ndarray:
    """Three seconds of a bass, a chord and a little noise, as music at 4410 Hz has them."""
    t = np.arange(3 * RATE) / RATE
    rng = np.random.default_rng(0)
    wave = 0.4 * np.sin(2 * np.pi * 110 * t) * (1 + 0.5 * np.sin(2 * np.pi * 2 * t))
    wave += sum(0.1 * np.sin(2 * np.pi * f * t + p) for f, p in ((440, 0.3), (554, 1.0), (659, 2.0)))
    return (wave + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


def test_entropy_coding_round_trips_every_kind_of_group_and_approaches_the_information_content():
    rng = np.random.default_rng(1)
    groups = [
        np.round(rng.laplace(0, 3, 5000)).astype(np.int64),  # a peaked, wide alphabet
        np.full(700, -4, dtype=np.int64),  # one value only: costs no bits
        np.zeros(0, dtype=np.int64),  # empty
        rng.integers(-1000, 1000, 300),  # nearly flat
    ]
    data = entropy.encode(groups)
    decoded = entropy.decode(data, "the test stream")
    assert [list(g) for g in decoded] == [list(g) for g in groups]
    assert 8 * len(data) <= entropy.coded_bits(groups) + 64  # the range coder adds at most a couple of words
    assert entropy.encode(groups) == data  # the same symbols give the same bytes


def test_a_damaged_entropy_stream_is_refused_in_plain_words():
    groups = [np.arange(100, dtype=np.int64) % 7]
    data = entropy.encode(groups)
    with pytest.raises(DataError, match="the test stream is truncated or damaged"):
        entropy.decode(data[:-3], "the test stream")
    with pytest.raises(DataError, match="the test stream is truncated or damaged: it ends early"):
        entropy.decode(data[:3], "the test stream")


def test_the_framing_refuses_foreign_truncated_and_damaged_files():
    packed = container.pack("dct", RATE, 1000, b"payload bytes")
    assert container.unpack(packed, "song.aer") == ("dct", RATE, 1000, b"payload bytes")
    with pytest.raises(DataError, match="song.aer is not an aerecon compressed file"):
        container.unpack(b"OggS" + packed[4:], "song.aer")
    with pytest.raises(DataError, match="song.aer is truncated: it ends inside its header"):
        container.unpack(packed[:10], "song.aer")
    with pytest.raises(DataError, match="does not match the checksum"):
        container.unpack(packed[:-1] + b"X", "song.aer")
    with pytest.raises(DataError, match="format version 9"):
        container.unpack(packed[:4] + bytes([9]) + packed[5:], "song.aer")


@pytest.mark.parametrize(
    "name, kbps, least_snr, rate_slack",
    [
        ("pcm8", None, 30.0, 0.01),
        ("mulaw8", None, 25.0, 0.01),
        ("dct", 4.0, 8.0, 0.02),
        ("dct", 16.0, 25.0, 0.02),
        ("opus", 16.0, 3.0, 0.25),
        ("mp3", 16.0, 3.0, 0.25),
        ("aac", 16.0, 3.0, 0.25),
    ],
)
def test_each_reference_codec_writes_real_bytes_at_its_rate_and_decodes_the_song(
    song, name, kbps, least_snr, rate_slack
):
    codec = reference_codec(name, kbps)
    data = codec.encode(song, RATE)
    decoded = codec.decode(data)
    assert decoded.dtype == np.float32 and decoded.shape == song.shape
    rate = kbps_of(data, len(song), RATE)
    assert rate == pytest.approx(kbps or 8 * RATE / 1000, rel=rate_slack)
    assert snr_db(song, decoded) > least_snr  # lined up: the codec's delay is cut
    assert np.array_equal(codec.decode(data), decoded)  # decoding is deterministic


def test_more_bits_buy_a_closer_transform_code(song):
    snrs = [
        snr_db(song, reference_codec("dct", k).decode(reference_codec("dct", k).encode(song, RATE)))
        for k in (2, 4, 8, 16)
    ]
    assert snrs == sorted(snrs) and snrs[-1] - snrs[0] > 10


def test_codec_mistakes_are_refused_naming_what_is_wrong(song):
    with pytest.raises(ConfigError, match="codec=vorbis: use one of pcm8, mulaw8, dct, opus, mp3, aac"):
        reference_codec("vorbis", 8)
    with pytest.raises(ConfigError, match="codec=opus needs a rate above 0 kbit/s"):
        reference_codec("opus")
    data = reference_codec("dct", 8).encode(song, RATE)
    with pytest.raises(DataError, match="the compressed song was compressed with dct, not opus"):
        reference_codec("opus", 8).decode(data)
    assert set(CODECS) == {"pcm8", "mulaw8", "dct", "opus", "mp3", "aac"}
