"""A corpus of bad files through the cache build and one training epoch: each file is used
(after mixdown and resampling), kept for evaluation only (too short), or skipped with its reason."""

import csv
import logging
import math
import os
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import aerecon.audio.io
from aerecon.audio.io import load_audio, scan
from aerecon.data import AudioDataModule
from aerecon.train import train
from aerecon.utils.errors import AudioError, DataError

RATE = 1000  # the corpus is decoded at 1 kHz into 0.5 s segments


def tone(seconds: float, rate: int, channels: int = 1, freq: float = 110.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return np.repeat((0.4 * np.sin(2 * np.pi * freq * t))[:, None], channels, axis=1)


def truncated(path: Path, fmt: str, subtype: str) -> None:
    sf.write(path, tone(2.0, 44100, 2), 44100, format=fmt, subtype=subtype)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 5])


def build_corpus(root: Path) -> dict[str, str]:
    """Writes the corpus under root/{train,val,test}; returns each bad file's expected fate
    ("used", "short", a regex of the skip reason, or "used or skipped" where decoders differ)."""
    for split, count in (("train", 2), ("val", 1), ("test", 1)):
        (root / split).mkdir(parents=True)
        for i in range(count):
            sf.write(root / split / f"good{i}.wav", tone(2.0, 8000, freq=100 + 30 * i), 8000)
    bad = root / "train"
    expected = {}

    def add(name, fate, write):
        write(bad / name)
        expected[name] = fate

    add("empty.wav", "cannot decode", lambda p: p.write_bytes(b""))
    add("truncated.ogg", "used or skipped", lambda p: truncated(p, "OGG", "VORBIS"))
    add("truncated.mp3", "used or skipped", lambda p: truncated(p, "MP3", "MPEG_LAYER_III"))
    add("notes.wav", "cannot decode", lambda p: p.write_text("These are my notes, not audio.\n" * 20))
    add("header_only.wav", "contains no samples", lambda p: sf.write(p, np.zeros((0, 1)), 8000))
    add("short.wav", "short", lambda p: sf.write(p, tone(0.2, 8000), 8000))
    add(
        "nan.wav",
        "NaN or Inf",
        lambda p: sf.write(p, np.where(tone(1.0, 8000) > 0.3, np.nan, tone(1.0, 8000)), 8000, subtype="FLOAT"),
    )
    add(
        "inf.wav",
        "NaN or Inf",
        lambda p: sf.write(p, np.where(tone(1.0, 8000) > 0.3, np.inf, 0.1), 8000, subtype="FLOAT"),
    )
    add("silence.wav", "silent", lambda p: sf.write(p, np.zeros((8000, 1)), 8000))
    add("one_sample.wav", "short", lambda p: sf.write(p, np.full((1, 1), 0.5), 8000))
    add("eight_channels.wav", "used", lambda p: sf.write(p, tone(2.0, 8000, 8), 8000))
    add("eight_bit.wav", "used", lambda p: sf.write(p, tone(2.0, 8000), 8000, subtype="PCM_U8"))
    add("pcm24.wav", "used", lambda p: sf.write(p, tone(2.0, 8000), 8000, subtype="PCM_24"))
    add("rate8k.flac", "used", lambda p: sf.write(p, tone(2.0, 8000), 8000))
    add("rate192k.wav", "used", lambda p: sf.write(p, tone(2.0, 192000, 2), 192000))
    add("locked.wav", "cannot read \\(Permission denied\\)", lambda p: (sf.write(p, tone(2.0, 8000), 8000), p.chmod(0)))
    add("dangling.wav", "broken symbolic link to .*gone.wav", lambda p: p.symlink_to(root / "gone.wav"))
    return expected


@pytest.fixture
def corpus(tmp_path, monkeypatch) -> tuple[Path, dict[str, str]]:
    root = tmp_path / "corpus"
    expected = build_corpus(root)
    if os.geteuid() == 0:  # root reads a mode-000 file anyway: fail its open as the kernel would for a user
        real_open = open

        def open_as_user(path, *args, **kwargs):
            if Path(path).name == "locked.wav":
                raise PermissionError(13, "Permission denied", str(path))
            return real_open(path, *args, **kwargs)

        monkeypatch.setattr(aerecon.audio.io, "open", open_as_user, raising=False)
    yield root, expected
    (root / "train" / "locked.wav").chmod(0o644)


def read_report(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="") as f:
        return {Path(row["file"]).name: row for row in csv.DictReader(f, delimiter="\t") if "good" not in row["file"]}


def test_every_bad_file_is_used_or_skipped_with_its_reason(corpus, tmp_path, caplog):
    root, expected = corpus
    caplog.set_level(logging.INFO)
    report = tmp_path / "report.tsv"
    dm = AudioDataModule(
        root=str(root),
        cache_dir=str(tmp_path / "cache"),
        sample_rate=RATE,
        segment_seconds=0.5,
        batch_size=4,
        split="folders",
        report=str(report),
        decode_workers=1,
    )  # in this process, where the permission fault is simulated
    dm.prepare_data()
    dm.setup("fit")
    rows = read_report(report)
    assert set(rows) == set(expected)  # every file found, none twice, the broken link included
    for name, fate in expected.items():
        row = rows[name]
        if fate in ("used", "short"):
            assert row["status"] == fate, (name, row)
        elif fate == "used or skipped":  # how much of a truncated stream libsndfile recovers is its business
            assert row["status"] == "used" or (row["status"] == "skipped" and row["reason"]), (name, row)
        else:
            assert row["status"] == "skipped" and re.search(fate, row["reason"]), (name, row)
    used = {song.source.name: song for song in dm.all_songs()}
    for name in ("eight_channels.wav", "eight_bit.wav", "pcm24.wav", "rate8k.flac", "rate192k.wav"):
        wave = np.load(used[name].file)
        assert abs(len(wave) - 2 * RATE) <= 1 and np.isfinite(wave).all()
        assert np.sqrt(np.mean(wave**2)) == pytest.approx(0.4 / math.sqrt(2), rel=0.05), name  # mixdown, not sum
    summary = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Audio under")]
    skipped = sum(row["status"] == "skipped" for row in rows.values())
    assert len(summary) == 1 and f"{skipped} skipped, 0 other files; report: {report}" in summary[0]
    assert "2 of them shorter than one 0.5 s segment" in summary[0]
    assert len(dm.datasets["train"]) > 0


def test_a_folder_of_only_bad_files_names_the_folder_and_the_report(tmp_path):
    root = tmp_path / "bad"
    root.mkdir()
    (root / "a.wav").write_bytes(b"")
    sf.write(root / "b.wav", np.zeros((100, 1)), 8000)
    report = tmp_path / "report.tsv"
    dm = AudioDataModule(root=str(root), cache_dir=str(tmp_path / "cache"), sample_rate=RATE, report=str(report))
    with pytest.raises(DataError, match=f"None of the 2 audio files under {root} could be used; .*{report}"):
        dm.prepare_data()
    assert "silent" in report.read_text() and "cannot decode" in report.read_text()


def test_the_bad_corpus_trains_an_epoch_with_finite_metrics(corpus, make_cfg):
    root, _ = corpus
    cfg = make_cfg(
        "data=folder",
        f"data.root={root}",
        "data.split=folders",
        f"data.sample_rate={RATE}",
        "data.num_workers=0",
        "~data.num_songs",
        "~data.song_seconds",
        "~data.render_rate",
        "trainer.max_epochs=1",
        "model=fc",
        "data.decode_workers=1",
    )
    results = train(cfg)
    assert all(math.isfinite(v) for v in results["best"].values()), results["best"]
    assert all(math.isfinite(v) for v in results["test"].values()), results["test"]
    report = read_report(Path(cfg.paths.run_dir) / "data_report.tsv")
    assert report["rate192k.wav"]["status"] == "used" and report["notes.wav"]["status"] == "skipped"


def test_a_header_claiming_an_absurd_rate_channels_or_length_is_refused_before_decoding(tmp_path):
    path = tmp_path / "hostile.wav"
    sf.write(path, tone(1.0, 8000), 8000, subtype="PCM_16")  # 16 KB
    data = bytearray(path.read_bytes())
    data[24:28] = (2**31 - 1).to_bytes(4, "little")  # the fmt chunk's sample rate
    path.write_bytes(bytes(data))
    with pytest.raises(
        AudioError, match=r"hostile.wav: its header claims 2147483647 Hz \(readable: 100 to 768000 Hz\)"
    ):
        load_audio(path, 4410)
    data[24:28] = (8000).to_bytes(4, "little")
    data[22:24] = (1000).to_bytes(2, "little")  # channels
    path.write_bytes(bytes(data))
    with pytest.raises(AudioError, match="its header claims 1000 channels"):
        load_audio(path, 4410)


def test_linked_folders_are_followed_once_and_every_other_file_is_reported(tmp_path):
    root, elsewhere = tmp_path / "music", tmp_path / "elsewhere"
    sf.write(mkdirs(root / "albums/a.wav"), tone(1.0, 8000), 8000)
    sf.write(mkdirs(elsewhere / "b.flac"), tone(1.0, 8000), 8000)
    (root / "albums/cover.jpg").write_bytes(b"not audio")
    (root / "linked").symlink_to(elsewhere)  # a folder kept on another disk
    (root / "albums/loop").symlink_to(root)  # a link back up: followed, it would never end
    audio, other = scan(root)
    assert audio == [root / "albums/a.wav", root / "linked/b.flac"]
    assert other[root / "albums/cover.jpg"].startswith("not an audio file")
    assert other[root / "albums/loop"].startswith("a link to a folder already scanned")
    assert len(other) == 2


def mkdirs(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def test_a_pipe_is_reported_not_opened_and_a_linked_file_is_used_once(tmp_path):
    import os
    import threading

    root = tmp_path / "music"
    sf.write(mkdirs(root / "a/song.wav"), tone(1.0, 8000), 8000)
    os.link(root / "a/song.wav", root / "a/hard.wav")  # the same file under two names
    mkdirs(root / "b/x").parent.joinpath("soft.wav").symlink_to(root / "a/song.wav")
    os.mkfifo(root / "a/pipe.wav")  # opened, it would wait for a writer for ever
    found = {}
    scanning = threading.Thread(target=lambda: found.update(zip(("audio", "other"), scan(root))), daemon=True)
    scanning.start()
    scanning.join(timeout=30)
    assert not scanning.is_alive(), "the scan waited on the pipe"
    assert found["audio"] == [root / "a/hard.wav"]  # the first name of the file in order; its twins are reported
    other = found["other"]
    assert other[root / "a/pipe.wav"] == "not a regular file (a pipe, socket or device)"
    assert other[root / "a/song.wav"] == f"the same file as {root / 'a/hard.wav'} (a link to it), used once"
    assert other[root / "b/soft.wav"] == f"the same file as {root / 'a/hard.wav'} (a link to it), used once"


def test_aerecon_s_own_run_folders_under_data_root_are_not_music(tmp_path):
    root = tmp_path / "music"
    sf.write(mkdirs(root / "song.wav"), tone(1.0, 8000), 8000)
    evaluation = root / "logs/evaluate/runs/x"
    sf.write(mkdirs(evaluation / "songs/song/reconstruction.wav"), tone(1.0, 8000), 8000)
    (evaluation / ".hydra").mkdir()
    audio, other = scan(root)
    assert audio == [root / "song.wav"]
    assert other == {evaluation: "a run folder of aerecon's (it has a .hydra record): its outputs are not music"}
