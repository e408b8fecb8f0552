import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from aerecon.audio.io import find_audio, load_audio
from aerecon.data import AudioDataModule, DemoDataModule, assign_split
from aerecon.data.cache import WaveformCache
from aerecon.data.segments import assign_splits
from aerecon.data.synth import ensure_demo_dataset, render_track
from aerecon.utils.errors import AudioError, ConfigError, DataError


def sine(freq, seconds, rate, channels=1, amplitude=0.5):
    t = np.arange(int(seconds * rate)) / rate
    mono = amplitude * np.sin(2 * np.pi * freq * t)
    return np.stack([mono] * channels, axis=1)


def write_songs(folder: Path, names, seconds=2.0, rate=8000):
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        sf.write(folder / name, sine(200 + 10 * i, seconds, rate), rate)


def datamodule(root, cache, **kwargs):
    kwargs = {
        "sample_rate": 1000,
        "segment_seconds": 0.5,
        "batch_size": 4,
        "split": {"train": 2, "val": 1, "test": 1},
        **kwargs,
    }
    return AudioDataModule(root=None if root is None else str(root), cache_dir=str(cache), **kwargs)


@pytest.mark.parametrize(
    "fmt, subtype, rate, channels",
    [
        ("wav", "PCM_16", 44100, 2),
        ("wav", "PCM_24", 48000, 1),
        ("wav", "FLOAT", 22050, 6),
        ("wav", "PCM_U8", 8000, 1),
        ("flac", "PCM_16", 96000, 2),
        ("ogg", "VORBIS", 44100, 2),
        ("mp3", "MPEG_LAYER_III", 44100, 2),
        ("opus", "OPUS", 48000, 2),
    ],
)
def test_any_format_rate_and_channels_decode_to_mono_at_target_rate(tmp_path, fmt, subtype, rate, channels):
    path = tmp_path / f"tone.{fmt}"
    sf.write(path, sine(441, 1.0, rate, channels), rate, subtype=subtype, format="OGG" if fmt == "opus" else None)
    assert path in find_audio(tmp_path)
    wave = load_audio(path, 4410)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert abs(len(wave) - 4410) <= 1200  # mp3 / vorbis add encoder padding
    spectrum = np.abs(np.fft.rfft(wave[:4096]))
    peak_hz = np.argmax(spectrum) * 4410 / 4096
    assert abs(peak_hz - 441) < 5


def test_split_by_song_has_no_leakage_and_covers_every_song(tmp_path):
    names = [f"artist{i % 3}/song_{i:02d}.wav" for i in range(24)]
    for name in names:
        write_songs(tmp_path / "music" / Path(name).parent, [Path(name).name], seconds=1.6)
    dm = datamodule(tmp_path / "music", tmp_path / "cache")
    dm.setup("fit")
    per_split = {s: {song.name for song in dm.songs[s]} for s in ("train", "val", "test")}
    assert set().union(*per_split.values()) == set(names)
    assert not (
        per_split["train"] & per_split["val"]
        or per_split["train"] & per_split["test"]
        or per_split["val"] & per_split["test"]
    )
    for split, dataset in dm.datasets.items():  # every segment of a split comes from that split's songs
        assert {dataset.songs[s].name for s, _ in dataset.index} <= per_split[split]
        assert len(dataset) == 3 * len(per_split[split])  # 1.6 s -> three whole 0.5 s segments


def test_split_is_stable_when_files_are_added(tmp_path):
    music = tmp_path / "music"
    write_songs(music, [f"a{i}.wav" for i in range(10)])
    first = datamodule(music, tmp_path / "cache")
    first.setup("fit")
    before = {song.name: s for s, songs in first.songs.items() for song in songs}
    write_songs(music / "more", [f"b{i}.flac" for i in range(30)])
    second = datamodule(music, tmp_path / "cache")
    second.setup("fit")
    after = {song.name: s for s, songs in second.songs.items() for song in songs}
    assert len(after) == 40
    assert {name: after[name] for name in before} == before


def test_split_proportions_follow_the_weights():
    counts = Counter(assign_split(f"song{i}", {"train": 1300, "val": 130, "test": 20}) for i in range(14500))
    assert counts["train"] == pytest.approx(13000, rel=0.03)
    assert counts["val"] == pytest.approx(1300, rel=0.1)
    assert counts["test"] == pytest.approx(200, rel=0.25)


THESIS_SPLIT = {"train": 1300, "val": 130, "test": 20}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_split_has_a_song_from_three_songs_on_and_adding_songs_moves_only_a_lent_one(seed):
    names = [f"music/song{i:03d}.ogg" for i in range(400)]
    own = {name: assign_split(name, THESIS_SPLIT, seed) for name in names}
    previous = None
    for n in (1, 2, *range(3, 40), 60, 100, 200, 400):
        splits = assign_splits(names[:n], THESIS_SPLIT, seed)
        counts = Counter(splits.values())
        if n >= 3:
            assert all(counts[split] >= 1 for split in ("train", "val", "test")), (n, counts)
        else:
            assert splits == {name: own[name] for name in names[:n]}
        lent = [name for name in splits if splits[name] != own[name]]
        assert len(lent) <= 2
        if previous:  # a song that moves was lent before or after
            moved = [name for name, split in previous.items() if splits[name] != split]
            assert all(own[name] != previous[name] or own[name] != splits[name] for name in moved)
        previous = splits
    assert counts["train"] == pytest.approx(400 * 1300 / 1450, rel=0.05)  # the weights' proportions on a large folder


@pytest.mark.parametrize("n", [3, 200])
def test_a_folder_of_three_songs_or_more_splits_with_the_default_weights(tmp_path, n, caplog):
    music = tmp_path / "music"
    folder = music / "album"
    folder.mkdir(parents=True)
    for i in range(n):
        sf.write(folder / f"track{i:03d}.wav", 0.3 * np.sin(np.arange(3300) * (0.05 + 0.001 * i)), 1000)
    dm = AudioDataModule(root=str(music), cache_dir=str(tmp_path / "cache"), sample_rate=1000, segment_seconds=3.0)
    with caplog.at_level("INFO"):
        dm.setup("fit")
    assert all(len(dm.datasets[split]) >= 1 for split in ("train", "val", "test"))
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("Songs / segments per split"))
    if n == 3:  # a split of a few songs is named
        for split in ("val", "test"):
            assert f"{split} 1 song / 1 segments ({dm.songs[split][0].name})" in line
    count = len(dm.songs["train"])
    assert f"train {count} song{'s' if count != 1 else ''} / " in line


def test_a_single_song_says_how_many_are_needed(tmp_path):
    write_songs(tmp_path / "music", ["a.wav"], seconds=1.0, rate=1000)
    dm = datamodule(tmp_path / "music", tmp_path / "cache", split={"train": 1300, "val": 130, "test": 20})
    with pytest.raises(
        DataError,
        match="has no 0.5 s segments .* It takes 3 songs of at least 0.5 s "
        r"\(one each for train, val and test\): add songs",
    ):
        dm.setup("fit")


def test_cache_decodes_each_file_once_and_rebuilds_when_it_changes(tmp_path, monkeypatch):
    music = tmp_path / "music"
    write_songs(music, ["x.wav", "y.wav"])
    calls = []
    import aerecon.data.cache as cache_module

    real = cache_module.load_audio
    monkeypatch.setattr(cache_module, "load_audio", lambda p, sr: calls.append(p) or real(p, sr))
    cache = WaveformCache(tmp_path / "cache", 1000)
    songs, skipped = cache.build(music, sorted(music.iterdir()))
    assert len(calls) == 2 and not skipped
    assert [s.num_samples for s in songs] == [2000, 2000]
    cache.build(music, sorted(music.iterdir()))
    assert len(calls) == 2  # cached
    WaveformCache(tmp_path / "cache", 2000).build(music, sorted(music.iterdir()))
    assert len(calls) == 4  # other settings, other entries
    write_songs(music, ["x.wav"], seconds=3.0)  # edited file
    songs, _ = cache.build(music, sorted(music.iterdir()))
    assert len(calls) == 5 and songs[0].num_samples == 3000
    before = (music / "y.wav").stat()
    data = bytearray((music / "y.wav").read_bytes())
    data[-2000:] = bytes(2000)  # an edit that keeps the size, then the modification time put back
    (music / "y.wav").write_bytes(bytes(data))
    os.utime(music / "y.wav", ns=(before.st_atime_ns, before.st_mtime_ns))
    songs, _ = cache.build(music, sorted(music.iterdir()))
    assert len(calls) == 6 and np.abs(np.load(songs[1].file)[-100:]).max() < 1e-6
    assert not list((tmp_path / "cache").rglob("*.tmp"))


@pytest.mark.parametrize("damage", ["truncated", "foreign array", "not a .npy", "empty"])
def test_a_damaged_cache_entry_is_decoded_again_with_a_warning(tmp_path, caplog, damage):
    music = tmp_path / "music"
    write_songs(music, ["x.wav", "y.wav"])
    cache = WaveformCache(tmp_path / "cache", 1000)
    songs, _ = cache.build(music, sorted(music.iterdir()))
    good = np.load(songs[0].file)
    entry = songs[0].file
    if damage == "truncated":
        entry.write_bytes(entry.read_bytes()[:-1000])
    elif damage == "foreign array":
        np.save(entry, np.zeros((3, 4), dtype=np.int64))
    elif damage == "not a .npy":
        entry.write_bytes(b"RIFF not a numpy file at all")
    else:
        entry.write_bytes(b"")
    songs, skipped = cache.build(music, sorted(music.iterdir()))
    assert not skipped and [s.num_samples for s in songs] == [2000, 2000]
    assert np.array_equal(np.load(songs[0].file), good)  # rebuilt from its source, never read as audio
    assert f"cache entry {entry} of {music / 'x.wav'} is damaged" in caplog.text


def test_file_names_in_any_encoding_are_used_and_reported(tmp_path):
    music = tmp_path / "music"
    music.mkdir()
    names = [b"ok.wav", b"caf\xe9.wav", b"b\xff\xfe.wav"]  # Latin-1 and invalid UTF-8, as old disks hold
    for i, name in enumerate(names):
        with open(os.fsencode(music) + b"/" + name, "wb") as f:
            sf.write(f, sine(200 + 10 * i, 2.0, 8000), 8000, format="WAV")
    report = tmp_path / "report.tsv"
    dm = datamodule(music, tmp_path / "cache", report=str(report), split={"train": 1, "val": 1, "test": 1})
    dm.setup()
    assert sorted(os.fsencode(s.name) for s in dm.all_songs()) == sorted(names) and not dm.skipped
    rows = report.read_text().splitlines()[1:]
    assert len(rows) == 3 and all(row.startswith("used\t") for row in rows)
    assert any("caf\\udce9.wav" in row for row in rows)  # the undecodable byte, escaped, not lost


def test_a_decoder_failure_skips_one_file_and_absurd_samples_are_named(tmp_path, monkeypatch):
    import aerecon.data.cache as cache_module

    music = tmp_path / "music"
    write_songs(music, ["a.wav", "b.wav", "c.wav"])
    sf.write(music / "loud.wav", np.full(2000, 1e30, dtype=np.float32), 8000, subtype="FLOAT")
    real = cache_module.load_audio
    monkeypatch.setattr(
        cache_module,
        "load_audio",
        lambda p, sr: (_ for _ in ()).throw(ValueError("odd frame")) if p.name == "b.wav" else real(p, sr),
    )
    songs, skipped = WaveformCache(tmp_path / "cache", 1000).build(music, sorted(music.iterdir()))
    assert [s.name for s in songs] == ["a.wav", "c.wav"]
    assert skipped[music / "b.wav"] == "the decoder failed (ValueError: odd frame)"
    assert skipped[music / "loud.wav"].startswith("samples reach 1e+30, over 1000 times full scale")


def test_a_cache_that_cannot_be_written_is_one_message_with_the_space_needed(tmp_path, monkeypatch):
    import errno

    import aerecon.data.cache as cache_module

    music = tmp_path / "music"
    write_songs(music, ["a.wav", "b.wav"], seconds=60.0)
    blocked = tmp_path / "a_file"
    blocked.write_text("")
    with pytest.raises(
        DataError,
        match=f"cannot write the audio cache in {blocked}/cache/sr1000 .*: decoding these 2 "
        r"files needs about 0.5 MB there \([\d,]+ MB free\)\. Point paths.cache_dir",
    ):
        WaveformCache(blocked / "cache", 1000).build(music, sorted(music.iterdir()))

    def full(target, write):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cache_module, "atomic_write", full)
    with pytest.raises(DataError, match=r"\(No space left on device\): decoding these 2 files needs about 0.5 MB"):
        WaveformCache(tmp_path / "cache", 1000).build(music, sorted(music.iterdir()))
    assert sorted(p.name for p in music.iterdir()) == ["a.wav", "b.wav"]


def test_unusable_files_are_skipped_with_a_reason(tmp_path, caplog):
    music = tmp_path / "music"
    write_songs(music, ["good.wav"])
    (music / "notes.wav").write_text("this is not audio")
    dm = datamodule(music, tmp_path / "cache", split={"train": 1, "val": 1e-9, "test": 0})
    songs = dm._cached_songs()
    assert [s.name for s in songs] == ["good.wav"]
    assert "notes.wav" in caplog.text and "cannot decode" in caplog.text
    dm.prepare_data()
    assert caplog.text.count("Skipping") == 1  # reported once, however often Lightning asks


def test_empty_folder_and_folder_without_audio_name_the_folder(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match=f"No audio files .* found under {empty}"):
        datamodule(empty, tmp_path / "cache").prepare_data()
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "readme.txt").write_text("hello")
    with pytest.raises(DataError, match=f"found under {docs}"):
        datamodule(docs, tmp_path / "cache").prepare_data()
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.wav").write_text("not audio")
    with pytest.raises(DataError, match=f"None of the 1 audio files under {broken} could be used"):
        datamodule(broken, tmp_path / "cache").prepare_data()
    with pytest.raises(DataError, match="is not a folder"):
        datamodule(tmp_path / "missing", tmp_path / "cache").prepare_data()
    with pytest.raises(ConfigError, match="data.root is not set"):
        datamodule(None, tmp_path / "cache")


def test_bad_data_settings_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="data.sample_rate=0"):
        datamodule(tmp_path, tmp_path, sample_rate=0)
    with pytest.raises(ConfigError, match="data.split"):
        datamodule(tmp_path, tmp_path, split={"train": 1, "val": 1})


def test_batches_are_raw_waveform_segments_in_a_seeded_per_epoch_order(tmp_path):
    music = tmp_path / "music"
    write_songs(music, [f"s{i}.wav" for i in range(12)])
    dm = datamodule(music, tmp_path / "cache")
    dm.setup("fit")
    loader = dm.train_dataloader()
    batch = next(iter(loader))
    assert batch.shape == (4, 1, 500) and batch.dtype == torch.float32

    def order(epoch):
        loader.sampler.set_epoch(epoch)
        return list(loader.sampler)

    assert order(0) == order(0) and order(0) != order(1)
    assert sorted(order(3)) == list(range(len(dm.datasets["train"])))


def test_demo_tracks_are_deterministic_and_varied(tmp_path):
    a, info_a = render_track(3, seed=7, seconds=4.0, sr=8000)
    b, _ = render_track(3, seed=7, seconds=4.0, sr=8000)
    c, info_c = render_track(4, seed=7, seconds=4.0, sr=8000)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert 120 <= info_a["bpm"] <= 130 and np.abs(a).max() <= 0.9
    infos = [render_track(i, seed=0, seconds=0.5, sr=8000)[1] for i in range(24)]
    assert len({i["root_midi"] for i in infos}) >= 5  # varied keys
    assert {i["backbeat"] for i in infos} == {"snare", "clap"}
    assert {i["top"] for i in infos} == {"chords", "lead", "both"}
    # kick on every beat: strong low end, and hi-hats: real high-frequency energy
    spectrum = np.abs(np.fft.rfft(a)) ** 2
    freqs = np.fft.rfftfreq(len(a), 1 / 8000)
    assert spectrum[freqs < 150].sum() > 0.05 * spectrum.sum()
    assert spectrum[freqs > 2000].sum() > 1e-4 * spectrum.sum()


def test_demo_dataset_is_rendered_once_as_real_files(tmp_path):
    root = ensure_demo_dataset(tmp_path / "demo", num_songs=3, seconds=1.0, sample_rate=8000, seed=0)
    files = sorted(root.glob("*.flac"))
    assert len(files) == 3 and sf.info(files[0]).samplerate == 8000
    stamp = files[0].stat().st_mtime_ns
    ensure_demo_dataset(tmp_path / "demo", num_songs=3, seconds=1.0, sample_rate=8000, seed=0)
    assert files[0].stat().st_mtime_ns == stamp

    def demo():
        return DemoDataModule(
            root=str(tmp_path / "demo"),
            cache_dir=str(tmp_path / "cache"),
            num_songs=3,
            song_seconds=1.0,
            render_rate=8000,
            sample_rate=1000,
            segment_seconds=0.25,
            split={"train": 1, "val": 1, "test": 0},
        )

    assert len(demo()._cached_songs()) == 3
    shutil.rmtree(tmp_path / "demo")
    assert len(demo()._cached_songs()) == 3  # the next run renders it again
    assert len(list((tmp_path / "demo").glob("*.flac"))) == 3


def test_jitter_moves_training_segments_per_epoch_within_their_song(tmp_path):
    music = tmp_path / "music"
    write_songs(music, [f"s{i}.wav" for i in range(12)])
    dm = datamodule(music, tmp_path / "cache", jitter=0.5)
    dm.setup("fit")
    train, val = dm.datasets["train"], dm.datasets["val"]
    n = dm.segment_samples
    offsets = {epoch: [train.offset(i, epoch) for i in range(len(train))] for epoch in (0, 1)}
    assert offsets[0] == [train.offset(i, 0) for i in range(len(train))]  # a function of (seed, epoch, index)
    assert offsets[0] != offsets[1]
    grid = [offset for _, offset in train.index]
    assert all(abs(o - g) <= n // 2 for o, g in zip(offsets[0], grid))
    assert all(0 <= o <= train.songs[s].num_samples - n for o, (s, _) in zip(offsets[0], train.index))
    assert len({o - g for o, g in zip(offsets[0], grid)}) > len(train) // 2  # really moved, not a constant
    song = np.load(train.songs[train.index[3][0]].file)
    assert np.array_equal(train[(3, 1)].numpy()[0], song[offsets[1][3] : offsets[1][3] + n])
    # the sampler hands the epoch to the dataset; validation stays on the grid
    loader = dm.train_dataloader()
    loader.sampler.set_epoch(1)
    assert all(key[1] == 1 for key in loader.sampler)
    assert val.jitter == 0 and dm.val_dataloader().sampler.__class__.__name__ == "SequentialSampler"
    with pytest.raises(ConfigError, match="data.jitter=2"):
        datamodule(music, tmp_path / "cache", jitter=2)


def test_demo_never_renders_over_a_folder_of_other_files(tmp_path):
    music = tmp_path / "music"
    write_songs(music, ["mine.wav"])
    with pytest.raises(DataError, match="not a demo dataset"):
        ensure_demo_dataset(music, num_songs=2, seconds=1.0, sample_rate=8000, seed=0)
    assert [p.name for p in music.iterdir()] == ["mine.wav"]
    # a folder that happens to hold a manifest.json, even one shaped like the demo's, is no demo either
    manifest = {"spec": {"version": 1, "num_songs": 3, "seconds": 1.0, "sample_rate": 8000, "seed": 0}, "tracks": {}}
    (music / "manifest.json").write_text(json.dumps(manifest))
    for spec in (manifest["spec"], {**manifest["spec"], "num_songs": 2}):  # the same spec, and one to re-render
        with pytest.raises(DataError, match="not a demo dataset aerecon rendered"):
            ensure_demo_dataset(music, **{k: spec[k] for k in ("num_songs", "seconds", "sample_rate", "seed")})
        assert sorted(p.name for p in music.iterdir()) == ["manifest.json", "mine.wav"]


def test_demo_re_renders_only_its_own_folder(tmp_path):
    demo = tmp_path / "demo"
    ensure_demo_dataset(demo, num_songs=2, seconds=1.0, sample_rate=8000, seed=0)
    assert (demo / ".aerecon-demo").is_file() and len(list(demo.glob("*.flac"))) == 2
    ensure_demo_dataset(demo, num_songs=3, seconds=1.0, sample_rate=8000, seed=0)  # new settings: its own folder
    assert len(list(demo.glob("*.flac"))) == 3


def test_split_by_folders_follows_the_top_folder():
    assert assign_split("train/a/song.ogg", "folders") == "train"
    assert assign_split("val/song.wav", "folders") == "val"
    assert assign_split("test/x.flac", "folders") == "test"
    with pytest.raises(DataError, match="train/, val/ or test/"):
        assign_split("song.wav", "folders")
    with pytest.raises(DataError, match="extra/song.wav"):
        assign_split("extra/song.wav", "folders")


def test_split_folders_is_the_only_named_split(tmp_path):
    with pytest.raises(ConfigError, match="folders"):
        AudioDataModule(root=str(tmp_path), cache_dir=str(tmp_path / "c"), split="by_name")


def test_parallel_decoding_gives_the_same_cache_as_one_process(tmp_path):
    music = tmp_path / "music"
    write_songs(music, [f"s{i}.wav" for i in range(6)])
    (music / "bad.wav").write_text("not audio")
    sources = sorted(music.iterdir())
    one, skipped_one = WaveformCache(tmp_path / "one", 1000, workers=1).build(music, sources)
    two, skipped_two = WaveformCache(tmp_path / "two", 1000, workers=2).build(music, sources)
    assert [s.name for s in one] == [s.name for s in two] and len(one) == 6
    assert list(skipped_one.values()) == list(skipped_two.values()) and len(skipped_two) == 1
    for a, b in zip(one, two):
        np.testing.assert_array_equal(np.load(a.file), np.load(b.file))


EXIT_WITH_LIVE_WORKERS = """
import sys
from aerecon.data.datamodule import AudioDataModule
dm = AudioDataModule(root=sys.argv[1], cache_dir=sys.argv[2], sample_rate=1000, segment_seconds=0.5, batch_size=2,
                     split={"train": 2, "val": 1, "test": 1}, num_workers=2, decode_workers=1)
dm.prepare_data()
dm.setup("fit")
batches = iter(dm.train_dataloader())
print(tuple(next(batches).shape), flush=True)
"""  # exits with the iterator and its persistent workers alive, as a script or notebook may


def test_a_script_exits_while_loader_workers_are_alive(tmp_path):
    write_songs(tmp_path / "music", [f"s{i}.wav" for i in range(8)])
    result = subprocess.run(
        [sys.executable, "-c", EXIT_WITH_LIVE_WORKERS, str(tmp_path / "music"), str(tmp_path / "cache")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "(2, 1, 500)"


@pytest.mark.parametrize("workers", [0, 2])
def test_loader_batches_are_the_samplers_segments_in_order(tmp_path, workers):
    write_songs(tmp_path / "music", [f"s{i}.wav" for i in range(12)])
    dm = datamodule(tmp_path / "music", tmp_path / "cache", jitter=0.5, num_workers=workers, batch_size=5)
    dm.setup("fit")
    train = dm.datasets["train"]
    loader = dm.train_dataloader()
    loader.sampler.set_epoch(2)
    keys = list(loader.sampler)
    batches = list(loader)
    assert [tuple(b.shape) for b in batches[:-1]] == [(5, 1, dm.segment_samples)] * (len(batches) - 1)
    expected = torch.stack([train[key] for key in keys])  # one segment at a time, as __getitem__ reads it
    assert torch.equal(torch.cat(batches), expected)
    for (i, epoch), segment in zip(keys, expected):
        song = np.load(train.songs[train.index[i][0]].file)
        start = train.offset(i, epoch)
        assert np.array_equal(segment[0].numpy(), song[start : start + dm.segment_samples])


def write_with_ffmpeg(
    path: Path, codec: str, rate: int = 44100, video: str | None = None, seconds: float = 1.0
) -> None:
    """A stereo 441 Hz tone in any container and codec FFmpeg writes (PyAV), with a video track if asked."""
    import av

    with av.open(str(path), "w") as out:
        if video:
            picture = out.add_stream(video, rate=10)
            picture.width, picture.height, picture.pix_fmt = 32, 32, "yuv420p"
        sound = out.add_stream(codec, rate=rate, layout="stereo")
        codec_format = sound.codec_context.codec.audio_formats[0].name
        frame = av.AudioFrame.from_ndarray(
            np.tile(sine(441, seconds, rate).reshape(-1).astype(np.float32), (2, 1)), format="fltp", layout="stereo"
        )
        frame.sample_rate = rate
        resampler = av.AudioResampler(
            format=codec_format, layout="stereo", rate=rate, frame_size=sound.codec_context.frame_size or None
        )
        for chunk in resampler.resample(frame) + resampler.resample(None):
            out.mux(sound.encode(chunk))
        out.mux(sound.encode(None))
        if video:
            image = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
            for i in range(int(10 * seconds)):
                image.pts = i
                out.mux(picture.encode(image))
            out.mux(picture.encode(None))


@pytest.mark.parametrize(
    "name, codec, video",
    [
        ("aac.m4a", "aac", None),
        ("alac.m4a", "alac", None),
        ("raw.aac", "aac", None),
        ("film.mp4", "aac", "mpeg4"),
        ("film.mkv", "aac", "mpeg4"),
        ("clip.webm", "libopus", "libvpx"),
    ],
)
def test_aac_alac_and_the_audio_of_video_files_decode(tmp_path, name, codec, video):
    path = tmp_path / name
    write_with_ffmpeg(path, codec, rate=48000 if codec == "libopus" else 44100, video=video)
    assert find_audio(tmp_path) == [path]
    wave = load_audio(path, 4410)
    assert wave.dtype == np.float32 and abs(len(wave) - 4410) <= 300  # encoder priming and padding
    peak_hz = np.argmax(np.abs(np.fft.rfft(wave[:4096]))) * 4410 / 4096
    assert abs(peak_hz - 441) < 5
    assert np.sqrt(np.mean(wave[500:4000] ** 2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.05)  # mixed down, not summed


def test_a_video_without_sound_or_a_damaged_m4a_is_skipped_with_its_reason(tmp_path):
    import av

    silent_film = tmp_path / "silent.mp4"
    with av.open(str(silent_film), "w") as out:
        picture = out.add_stream("mpeg4", rate=10)
        picture.width, picture.height, picture.pix_fmt = 32, 32, "yuv420p"
        image = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
        for i in range(5):
            image.pts = i
            out.mux(picture.encode(image))
        out.mux(picture.encode(None))
    with pytest.raises(AudioError, match="silent.mp4: has no audio track"):
        load_audio(silent_film, 4410)
    damaged = tmp_path / "damaged.m4a"
    damaged.write_bytes(b"\x00\x00\x00\x18ftypM4A " + bytes(range(256)) * 4)
    with pytest.raises(AudioError, match="damaged.m4a: cannot decode"):
        load_audio(damaged, 4410)
