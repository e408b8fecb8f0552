"""data=stream: a corpus prepared once (aerecon-prepare) and streamed with LitData holds the same
segments as data=folder, shuffles per epoch from the seed, and resumes exactly."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import CONF, run_cli
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf, open_dict
from test_train import assert_same_run, scalars

from aerecon.data.datamodule import AudioDataModule
from aerecon.data.stream import StreamDataModule
from aerecon.prepare import prepare
from aerecon.train import train
from aerecon.utils.errors import ConfigError, DataError, Stopped

RATE, SECONDS = 2000, 0.5  # tests/conf/experiment/tiny.yaml's segments: 1000 samples
SPLIT = {"train": 6, "val": 2, "test": 1}  # with split_seed 1: 11, 3 and 2 of the 16 songs


def compose_prepare(root: Path, output: Path, cache: Path, *overrides: str):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(
            "prepare",
            overrides=[
                f"data.root={root}",
                f"output={output}",
                f"paths.cache_dir={cache}",
                f"data.sample_rate={RATE}",
                f"data.segment_seconds={SECONDS}",
                "data.split={train: 6, val: 2, test: 1}",
                "data.split_seed=1",
                "data.decode_workers=2",
                *overrides,
            ],
        )
    GlobalHydra.instance().clear()
    return cfg


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Path]:
    """Sixteen songs of 2 to 4 s (and a file that is not audio), prepared once."""
    base = tmp_path_factory.mktemp("stream")
    music = base / "music"
    (music / "album").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(16):
        t = np.arange(int(8000 * (2 + i % 3) + 137 * i)) / 8000
        tone = 0.3 * np.sin(2 * np.pi * (110 + 30 * i) * t) * (1 + 0.5 * np.sin(2 * np.pi * 0.5 * t))
        sf.write(
            music / "album" / f"song{i:02d}.flac", (tone + 0.02 * rng.standard_normal(len(t))).astype(np.float32), 8000
        )
    (music / "cover.jpg").write_bytes(b"not audio")
    paths = {"music": music, "prepared": base / "prepared", "cache": base / "cache"}
    prepare(compose_prepare(music, paths["prepared"], paths["cache"]))
    return paths


def folder_module(corpus, jitter: float, seed: int) -> AudioDataModule:
    module = AudioDataModule(
        root=str(corpus["music"]),
        cache_dir=str(corpus["cache"]),
        sample_rate=RATE,
        segment_seconds=SECONDS,
        batch_size=4,
        split=SPLIT,
        split_seed=1,
        shuffle_seed=seed,
        jitter=jitter,
    )
    module.setup("fit")
    return module


def stream_module(root, jitter: float, seed: int, **options) -> StreamDataModule:
    module = StreamDataModule(
        root=str(root),
        sample_rate=RATE,
        segment_seconds=SECONDS,
        batch_size=4,
        num_workers=0,
        jitter=jitter,
        shuffle_seed=seed,
        **options,
    )
    module.prepare_data()
    module.setup("fit")
    return module


def rows(batches) -> Counter:
    return Counter(bytes(row.numpy().tobytes()) for batch in batches for row in batch)


def test_prepare_writes_every_split_with_its_index_and_the_report(corpus):
    prepared = corpus["prepared"]
    info = json.loads((prepared / "aerecon.json").read_text())
    folder = folder_module(corpus, jitter=0.0, seed=0)
    for split in ("train", "val", "test"):
        assert (prepared / split / "index.json").is_file()
        assert info["splits"][split] == {"songs": len(folder.songs[split]), "segments": len(folder.datasets[split])}
    assert info["segment_samples"] == 1000 and info["margin_samples"] == 500
    report = (prepared / "data_report.tsv").read_text()
    assert report.count("\nused\t") == 16 and "cover.jpg\tnot an audio file" in report


def test_streamed_batches_hold_the_folder_segments_moved_by_the_same_jitter(corpus):
    folder = folder_module(corpus, jitter=0.5, seed=7)
    stream = stream_module(corpus["prepared"], jitter=0.5, seed=7)
    loader = stream.train_dataloader()
    epochs = [[batch.clone() for batch in loader] for _ in range(2)]
    train = folder.datasets["train"]
    for epoch, batches in enumerate(epochs):
        assert all(b.shape[1:] == (1, 1000) for b in batches)
        expected = rows([train.__getitems__([(i, epoch) for i in range(len(train))])])
        assert rows(batches) == expected  # every segment once, where data=folder's jitter puts it that epoch
    assert rows(epochs[0]) != rows(epochs[1])  # the jitter moves with the epoch
    assert not torch.equal(epochs[0][0], epochs[1][0])  # and so does the order
    again = stream_module(corpus["prepared"], jitter=0.5, seed=7).train_dataloader()
    assert all(torch.equal(a, b) for a, b in zip(epochs[0], list(again)))  # the order is the seed's
    val = folder.datasets["val"]
    assert rows(stream.val_dataloader()) == rows([val.__getitems__(list(range(len(val))))])  # the grid, once each


def stream_cfg(make_cfg, root, *overrides: str, workers: int = 0):
    cfg = make_cfg(
        "model=fc",
        "optimizer.lr=3e-3",
        "trainer.max_epochs=3",
        "test=false",
        "callbacks.reconstruction_preview=null",
        *overrides,
    )
    with open_dict(cfg):
        cfg.data = OmegaConf.create(
            {
                "_target_": "aerecon.data.stream.StreamDataModule",
                "root": str(root),
                "sample_rate": RATE,
                "segment_seconds": SECONDS,
                "batch_size": 4,
                "num_workers": workers,
                "shuffle_seed": cfg.seed,
                "jitter": 0.5,
                "cache_dir": str(Path(cfg.paths.root_dir) / "stream-cache"),
                "max_cache_gb": None,
            }
        )
    return cfg


@pytest.mark.parametrize("workers", [0, 2])
def test_a_streamed_run_stopped_mid_epoch_resumes_exactly(make_cfg, corpus, tmp_path, workers):
    straight = stream_cfg(make_cfg, corpus["prepared"], workers=workers)
    straight.paths.run_dir = str(tmp_path / "straight")
    train(straight)

    stopped = stream_cfg(
        make_cfg,
        corpus["prepared"],
        "+callbacks.fault._target_=faults.SignalAt",
        "+callbacks.fault.epoch=1",
        "+callbacks.fault.batch=2",
        workers=workers,
    )
    stopped.paths.run_dir = str(tmp_path / "stopped")
    with pytest.raises(Stopped) as info:
        train(stopped)
    assert info.value.exit_code == 128 + signal.SIGTERM
    last = tmp_path / "stopped/checkpoints/last.ckpt"
    train(stream_cfg(make_cfg, corpus["prepared"], f"ckpt_path={last}", workers=workers))
    assert_same_run(tmp_path / "straight", tmp_path / "stopped", epochs=3)  # the epoch after the resumed one too


@pytest.mark.parametrize("workers", [0, 2])
def test_a_streamed_run_resumed_at_an_epoch_boundary_is_exact(make_cfg, corpus, tmp_path, workers):
    straight = stream_cfg(make_cfg, corpus["prepared"], workers=workers)
    straight.paths.run_dir = str(tmp_path / "straight")
    train(straight)
    first = stream_cfg(make_cfg, corpus["prepared"], "trainer.max_epochs=1", workers=workers)
    first.paths.run_dir = str(tmp_path / "resumed")
    train(first)
    last = tmp_path / "resumed/checkpoints/last.ckpt"
    train(stream_cfg(make_cfg, corpus["prepared"], f"ckpt_path={last}", workers=workers))
    assert_same_run(tmp_path / "straight", tmp_path / "resumed", epochs=3)


def test_an_object_store_url_streams_through_the_chunk_cache(make_cfg, corpus, tmp_path):
    # LitData's `local:` scheme takes the remote path (download into the cache, eviction) from a folder
    plain = stream_cfg(make_cfg, corpus["prepared"], "trainer.max_epochs=1")
    plain.paths.run_dir = str(tmp_path / "plain")
    train(plain)
    remote = stream_cfg(make_cfg, f"local:{corpus['prepared']}", "trainer.max_epochs=1")
    remote.paths.run_dir = str(tmp_path / "remote")
    train(remote)
    assert scalars(tmp_path / "plain/tensorboard", "val/loss") == scalars(tmp_path / "remote/tensorboard", "val/loss")
    assert list((tmp_path / "stream-cache").rglob("chunk-*.bin"))  # streamed into the cache, not read in place

    # whole-song evaluation goes back to the songs the corpus was prepared from, in the same split
    ckpt = json.loads((tmp_path / "plain/results.json").read_text())["best_checkpoint"]
    evaluated = run_cli(
        f"ckpt_path={ckpt}",
        f"hydra.run.dir={tmp_path / 'eval'}",
        "max_media_songs=0",
        cwd=tmp_path,
        shared={"cache_dir": corpus["cache"]},
        app="aerecon.evaluate",
    )
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    songs = json.loads((tmp_path / "eval/metrics.json").read_text())["songs"]
    assert sorted(songs) == sorted(song.name for song in folder_module(corpus, 0.0, 0).songs["test"])


def test_prepare_to_an_object_store_sends_the_corpus_last_record_last_and_a_rerun_only_what_is_missing(
    corpus, tmp_path, monkeypatch
):
    # LitData's `local:` stand-in, written through obstore as s3://, gs:// and azure:// are
    import aerecon.data.upload

    bucket, staged = tmp_path / "bucket/prepared", tmp_path / "staged"
    cfg = compose_prepare(corpus["music"], f"local:{bucket}", corpus["cache"], f"staging={staged}")
    put, sent = aerecon.data.upload.obstore.put, []

    def failing_put(store, path, file):
        if len(sent) == 3:
            raise ConnectionError("connection reset by peer")
        sent.append(path)
        return put(store, path, file)

    monkeypatch.setattr(aerecon.data.upload.obstore, "put", failing_put)
    with pytest.raises(DataError, match=r"local:.*: the object store failed \(connection reset by peer\)"):
        prepare(cfg)
    assert len([p for p in bucket.rglob("*") if p.is_file()]) == 3 and not (bucket / "aerecon.json").exists()
    with pytest.raises(DataError, match="cannot read aerecon.json"):  # a reader sees no corpus, not a partial one
        stream_module(f"local:{bucket}", jitter=0.0, seed=0, cache_dir=str(tmp_path / "c0"))

    monkeypatch.setattr(aerecon.data.upload.obstore, "put", put)
    first = {p: p.stat().st_mtime_ns for p in bucket.rglob("*") if p.is_file()}
    prepare(cfg)  # a rerun: the corpus is staged already, and only what the store lacks is sent
    files = {
        p.relative_to(staged): p.read_bytes()
        for p in staged.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(staged).parts)
    }  # the writer's own
    assert {p.relative_to(bucket): p.read_bytes() for p in bucket.rglob("*") if p.is_file()} == files
    assert all(p.stat().st_mtime_ns == mtime for p, mtime in first.items())
    streamed = stream_module(f"local:{bucket}", jitter=0.5, seed=3, cache_dir=str(tmp_path / "c1"))
    local = stream_module(corpus["prepared"], jitter=0.5, seed=3)
    assert rows(streamed.train_dataloader()) == rows(local.train_dataloader())

    kept = {p: p.stat().st_mtime_ns for p in bucket.rglob("*") if p.is_file()}
    prepare(cfg)  # complete: nothing sent
    assert {p: p.stat().st_mtime_ns for p in bucket.rglob("*") if p.is_file()} == kept

    next(bucket.rglob("chunk-*.bin")).unlink()  # lost from the store: the rerun sends it, record last
    sent.clear()
    sent.extend([None] * 3)  # the next put fails
    monkeypatch.setattr(aerecon.data.upload.obstore, "put", failing_put)
    with pytest.raises(DataError, match="the object store failed"):
        prepare(cfg)
    assert not (bucket / "aerecon.json").exists()  # withdrawn before anything else changed
    monkeypatch.setattr(aerecon.data.upload.obstore, "put", put)
    prepare(cfg)
    assert {p.relative_to(bucket): p.read_bytes() for p in bucket.rglob("*") if p.is_file()} == files
    with pytest.raises(ConfigError, match=r"output=local:.* prepared with other settings \(margin: 0.5 there"):
        prepare(
            compose_prepare(
                corpus["music"], f"local:{bucket}", corpus["cache"], "margin=0.25", f"staging={tmp_path / 'other'}"
            )
        )


def test_a_rerun_finishes_an_incomplete_split_and_keeps_the_complete_ones(corpus, tmp_path):
    prepared = tmp_path / "prepared"
    cfg = compose_prepare(corpus["music"], prepared, corpus["cache"])
    prepare(cfg)
    kept = {p: p.stat().st_mtime_ns for p in (prepared / "val").iterdir()}
    index = json.loads((prepared / "train" / "index.json").read_text())
    (prepared / "train" / "index.json").unlink()  # as an interrupted prepare leaves it: no index yet
    prepare(cfg)
    assert json.loads((prepared / "train" / "index.json").read_text())["chunks"] == index["chunks"]
    assert {p: p.stat().st_mtime_ns for p in (prepared / "val").iterdir()} == kept


def test_bad_settings_are_one_clear_error(corpus, tmp_path):
    with pytest.raises(DataError, match="not a corpus prepared by aerecon-prepare"):
        stream_module(corpus["music"], jitter=0.0, seed=0)
    with pytest.raises(ConfigError, match="holds 1000-sample segments at 2000 Hz"):
        StreamDataModule(root=str(corpus["prepared"]), sample_rate=RATE, segment_seconds=1.0).prepare_data()
    with pytest.raises(ConfigError, match=r"data.jitter=0.8: .* use data.jitter<=0.5"):
        stream_module(corpus["prepared"], jitter=0.8, seed=0)
    with pytest.raises(DataError, match="cannot read aerecon.json"):
        stream_module(f"local:{tmp_path / 'nothing'}", jitter=0.0, seed=0, cache_dir=str(tmp_path / "c"))
    with pytest.raises(DataError, match="s3://bucket/prepared: no S3 credentials found"):
        with pytest.MonkeyPatch.context() as env:
            for name in [name for name in os.environ if name.startswith("AWS_")]:
                env.delenv(name)
            env.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
            env.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
            env.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance-metadata request leaves the machine
            prepare(
                compose_prepare(
                    corpus["music"], "s3://bucket/prepared", corpus["cache"], f"staging={tmp_path / 'staged'}"
                )
            )
    with pytest.raises(ConfigError, match=r"prepared with other settings \(margin: 0.5 there, 0.25 now\)"):
        prepare(compose_prepare(corpus["music"], corpus["prepared"], corpus["cache"], "margin=0.25"))
    with pytest.raises(ConfigError, match="margin=2: must be a fraction of a segment from 0 to 1"):
        prepare(compose_prepare(corpus["music"], tmp_path / "p", corpus["cache"], "margin=2"))
    with pytest.raises(ConfigError, match="margin='abc': must be a fraction of a segment"):
        prepare(compose_prepare(corpus["music"], tmp_path / "p", corpus["cache"], "margin=abc"))
    streamed = compose_prepare(corpus["music"], tmp_path / "p", corpus["cache"])
    streamed.data = OmegaConf.create(
        {
            "_target_": "aerecon.data.stream.StreamDataModule",
            "root": str(corpus["music"]),
            "sample_rate": RATE,
            "segment_seconds": SECONDS,
            "split_seed": 0,
        }
    )  # data=stream
    with pytest.raises(ConfigError, match="reads a folder of audio: data=folder"):
        prepare(streamed)
    with pytest.raises(ConfigError, match="output=/proc/prepared: cannot create it"):
        prepare(compose_prepare(corpus["music"], "/proc/prepared", corpus["cache"]))
    with pytest.raises(DataError, match="is not a folder"):
        prepare(compose_prepare(tmp_path / "no-music", tmp_path / "p", corpus["cache"]))
    assert not (tmp_path / "p").exists()  # a prepare that failed leaves no empty folder behind


def test_ranks_stream_disjoint_shards_and_validation_scores_every_segment_once(corpus, monkeypatch):
    folder = folder_module(corpus, jitter=0.0, seed=0)
    shards = {"train": [], "val": []}
    for rank in (0, 1):  # as LitData finds them under DDP (torch.distributed's rank and world size)
        monkeypatch.setenv("WORLD_SIZE", "2")
        monkeypatch.setenv("GLOBAL_RANK", str(rank))
        stream = stream_module(corpus["prepared"], jitter=0.0, seed=3)
        for split in shards:
            shards[split].append(list(getattr(stream, f"{split}_dataloader")()))
    train = [rows(batches) for batches in shards["train"]]
    assert len(shards["train"][0]) == len(shards["train"][1])  # the same number of steps on both ranks
    assert not set(train[0]) & set(train[1])  # disjoint
    everything = rows([folder.datasets["train"].__getitems__(list(range(len(folder.datasets["train"]))))])
    assert train[0] + train[1] <= everything and sum((train[0] + train[1]).values()) >= sum(everything.values()) - 8
    val = folder.datasets["val"]
    assert shards_rows(shards["val"]) == rows([val.__getitems__(list(range(len(val))))])  # each once, none twice


def shards_rows(shards) -> Counter:
    return sum((rows(batches) for batches in shards), Counter())


def test_ddp_on_a_stream_stopped_mid_epoch_resumes_exactly(corpus, tmp_path):
    common = [
        "data=stream",
        f"data.root={corpus['prepared']}",
        f"data.sample_rate={RATE}",
        f"data.segment_seconds={SECONDS}",
        "data.batch_size=4",
        "data.num_workers=0",
        "data.jitter=0.5",
        f"data.cache_dir={tmp_path / 'cache'}",
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "model=fc",
        "model.net.latent=8",
        "optimizer.lr=3e-3",
        "trainer.max_epochs=3",
        "test=false",
        "trainer.enable_progress_bar=false",
        "trainer.log_every_n_steps=1",
        "callbacks.model_summary=null",
        "callbacks.reconstruction_preview=null",
        "budget_gb=null",
    ]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}

    def run(name: str, *extra: str, code: int = 0) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [sys.executable, "-m", "aerecon.train", *common, *extra, f"hydra.run.dir={tmp_path / name}"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
            env=env,
        )
        assert done.returncode == code, done.stderr[-3000:]
        return done

    run("straight")
    stopped = run(
        "stopped",
        "+callbacks.fault._target_=faults.SignalAt",
        "+callbacks.fault.epoch=1",
        "+callbacks.fault.batch=1",
        "+callbacks.fault.rank=1",
        code=128 + signal.SIGTERM,
    )
    assert "SIGTERM at epoch 1, batch 2" in stopped.stderr + stopped.stdout  # every rank stopped there
    run("stopped", f"ckpt_path={tmp_path / 'stopped/checkpoints/last.ckpt'}")
    assert_same_run(tmp_path / "straight", tmp_path / "stopped", epochs=3)


def in_session(session: int) -> list[int]:
    """The live processes of a session (the prepare command started one of its own)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


SLOW_PREPARE = """
import sys, time
import aerecon.prepare as prepare
item = prepare.segment_item
prepare.segment_item = lambda spec: (time.sleep(0.02), item(spec))[1]  # seconds to stop it mid-way
sys.argv = ["aerecon-prepare", *sys.argv[1:]]
prepare.main()
"""


@pytest.mark.parametrize("name", ["SIGTERM", "SIGINT", "SIGKILL"])
def test_a_prepare_stopped_while_writing_chunks_stops_at_once_and_a_rerun_finishes_it(corpus, tmp_path, name):
    music = tmp_path / "music"
    for i in range(60):  # 480 segments of 0.5 s
        t = np.arange(4 * 8000) / 8000
        sf.write(
            music / f"{i % 3}" / f"s{i:03d}.wav"
            if (music / f"{i % 3}").mkdir(parents=True, exist_ok=True) is None
            else None,
            (0.3 * np.sin(2 * np.pi * (100 + 7 * i) * t)).astype(np.float32),
            8000,
        )
    args = [
        f"data.root={music}",
        f"paths.cache_dir={tmp_path / 'cache'}",
        f"data.sample_rate={RATE}",
        f"data.segment_seconds={SECONDS}",
        "data.split={train: 6, val: 2, test: 1}",
        "chunk_megabytes=1",
        "data.decode_workers=2",
    ]
    out = tmp_path / "stopped"
    child = subprocess.Popen(
        [sys.executable, "-c", SLOW_PREPARE, *args, f"output={out}"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while not list((out / "train").glob("chunk-*.bin")) and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.05)
    assert child.poll() is None, "prepare ended before it could be stopped"
    started = time.monotonic()
    os.kill(child.pid, signal.Signals[name])  # to the prepare process only, as a scheduler's kill would
    _, stderr = child.communicate(timeout=60)
    assert time.monotonic() - started < 10  # LitData's workers stopped with it, not after finishing the split
    if name == "SIGKILL":  # nothing can be said; LitData's processes follow it all the same
        assert child.returncode == -signal.SIGKILL
        time.sleep(1)
    else:
        assert child.returncode == 128 + signal.Signals[name]
        assert f"aerecon: stopped: {name} while preparing; run the same command again to finish" in stderr
        assert "Traceback" not in stderr
    deadline = time.monotonic() + 2
    while in_session(child.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not in_session(child.pid)  # no LitData process left writing
    assert not (out / "train" / "index.json").exists()  # nor one that went on to finish the split unseen
    written = sorted((p.name, p.stat().st_size) for p in (out / "train").rglob("*") if p.is_file())
    time.sleep(1)
    assert sorted((p.name, p.stat().st_size) for p in (out / "train").rglob("*") if p.is_file()) == written
    with pytest.raises(DataError, match="did not finish this corpus"):
        stream_module(out, jitter=0.0, seed=0)

    again = run_cli(*args, f"output={out}", cwd=tmp_path, app="aerecon.prepare")
    assert again.returncode == 0, again.stderr[-3000:]
    whole = run_cli(*args, f"output={tmp_path / 'whole'}", cwd=tmp_path, app="aerecon.prepare")
    assert whole.returncode == 0, whole.stderr[-3000:]
    for split in ("train", "val"):
        a, b = (
            getattr(stream_module(root, jitter=0.0, seed=0), f"{split}_dataloader")()
            for root in (out, tmp_path / "whole")
        )
        assert rows(a) == rows(b) and sum(rows(a).values()) > 0  # the same segments as an uninterrupted prepare


def test_songs_added_after_preparing_are_prepared_by_a_rerun(corpus, tmp_path):
    music = tmp_path / "music"
    shutil.copytree(corpus["music"], music)
    cfg = compose_prepare(music, tmp_path / "prepared", corpus["cache"])
    prepare(cfg)
    for i in range(6):
        t = np.arange(3 * 8000) / 8000
        sf.write(
            music / "album" / f"new{i}.flac", (0.2 * np.sin(2 * np.pi * (300 + 50 * i) * t)).astype(np.float32), 8000
        )
    prepare(cfg)
    folder = AudioDataModule(
        root=str(music),
        cache_dir=str(corpus["cache"]),
        sample_rate=RATE,
        segment_seconds=SECONDS,
        split=SPLIT,
        split_seed=1,
    )
    folder.setup("fit")
    info = json.loads((tmp_path / "prepared" / "aerecon.json").read_text())
    for split in ("train", "val", "test"):
        assert info["splits"][split]["segments"] == len(folder.datasets[split])
    stream = stream_module(tmp_path / "prepared", jitter=0.0, seed=0)
    val = folder.datasets["val"]
    assert rows(stream.val_dataloader()) == rows([val.__getitems__(list(range(len(val))))])


def test_prepare_never_replaces_what_it_did_not_write(corpus, tmp_path):
    # the user's own folder laid out for data.split=folders, named as the output
    music = tmp_path / "music"
    for split in ("train", "val", "test"):
        (music / split).mkdir(parents=True)
        (music / split / "mine.flac").write_bytes(b"the user's song")
    with pytest.raises(
        ConfigError,
        match=r"output=.*music holds test/, train/, val/, which aerecon-prepare did not "
        r"write; it never replaces files it did not write: name a new or empty "
        r"folder, e.g. output=.*music_prepared",
    ):
        prepare(compose_prepare(corpus["music"], music, corpus["cache"]))
    # a split folder without the record of a prepare that began writing it, beside a finished one's files
    done = tmp_path / "done"
    shutil.copytree(corpus["prepared"], done)
    (done / "val.sha1").unlink()
    with pytest.raises(ConfigError, match="holds val/, which aerecon-prepare did not write"):
        prepare(compose_prepare(corpus["music"], done, corpus["cache"]))
    (done / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="holds notes.txt, val/"):
        prepare(compose_prepare(corpus["music"], done, corpus["cache"]))
    for split in ("train", "val", "test"):
        assert (music / split / "mine.flac").read_bytes() == b"the user's song"
    assert (done / "notes.txt").read_text() == "mine" and (done / "val" / "index.json").is_file()


def test_a_second_prepare_into_the_same_output_is_refused_while_the_first_writes(corpus, tmp_path):
    from filelock import FileLock

    output = tmp_path / "prepared"
    output.mkdir()
    with FileLock(str(output / ".prepare.lock")):  # as a prepare started first holds it
        with pytest.raises(ConfigError, match=r"output=.*prepared: another aerecon-prepare is writing there now"):
            prepare(compose_prepare(corpus["music"], output, corpus["cache"]))
    prepare(compose_prepare(corpus["music"], output, corpus["cache"]))
    assert (output / "train" / "index.json").is_file()


def test_a_damaged_corpus_is_refused_naming_the_file_never_trained_on(corpus, tmp_path):
    from aerecon.utils.errors import message_of

    info = json.loads((corpus["prepared"] / "aerecon.json").read_text())
    assert any(name.startswith("train/chunk-") for name in info["files"])  # recorded when prepared
    damaged = tmp_path / "damaged"
    shutil.copytree(corpus["prepared"], damaged)
    chunk = sorted((damaged / "train").glob("chunk-*.bin"))[0]
    whole = chunk.read_bytes()
    chunk.write_bytes(whole[: len(whole) // 2])  # a partly copied chunk
    with pytest.raises(
        DataError,
        match=rf"data.root=.*damaged is damaged: train/{chunk.name} holds {len(whole) // 2} "
        rf"bytes, not the {len(whole)} it was written with; prepare it again",
    ):
        stream_module(damaged, jitter=0.0, seed=0)
    chunk.write_bytes(whole)
    (damaged / "train" / "index.json").unlink()
    with pytest.raises(DataError, match="train/index.json is missing; prepare it again"):
        stream_module(damaged, jitter=0.0, seed=0)

    overwritten = tmp_path / "overwritten"  # the same size, other bytes: found when the chunk is first read
    shutil.copytree(corpus["prepared"], overwritten)
    chunk = sorted((overwritten / "train").glob("chunk-*.bin"))[0]
    data = bytearray(chunk.read_bytes())
    data[-100:] = bytes(100)
    chunk.write_bytes(bytes(data))
    for workers in (0, 2):
        module = StreamDataModule(
            root=str(overwritten), sample_rate=RATE, segment_seconds=SECONDS, batch_size=4, num_workers=workers
        )
        module.prepare_data()
        module.setup("fit")
        loader = module.train_dataloader()
        with pytest.raises(DataError) as caught:
            list(loader)
        assert message_of(caught.value) == (
            f"{chunk} is damaged: its content differs from what aerecon-prepare wrote (SHA-256 "
            f"{__import__('hashlib').sha256(bytes(data)).hexdigest()[:12]}…, recorded "
            f"{info['files'][f'train/{chunk.name}']['sha256'][:12]}…); prepare the corpus again"
        )


def test_an_object_store_rerun_after_a_song_changed_sends_every_changed_chunk(corpus, tmp_path):
    music = tmp_path / "music"
    shutil.copytree(corpus["music"], music)
    bucket, staged = tmp_path / "bucket", tmp_path / "staged"
    cfg = compose_prepare(music, f"local:{bucket}", tmp_path / "cache", f"staging={staged}")
    prepare(cfg)
    before = {p.relative_to(bucket): p.read_bytes() for p in bucket.rglob("*") if p.is_file()}
    for song in sorted((music / "album").glob("*.flac")):  # edited: the same lengths, other samples
        wave, rate = sf.read(song, dtype="float32")
        sf.write(song, -wave, rate)
    prepare(cfg)
    after = {p.relative_to(bucket): p.read_bytes() for p in bucket.rglob("*") if p.is_file()}
    staged_files = {
        p.relative_to(staged): p.read_bytes()
        for p in staged.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(staged).parts)
    }
    assert after == staged_files
    changed = [name for name in after if name.suffix == ".bin" and after[name] != before.get(name)]
    assert changed and all(len(after[name]) == len(before[name]) for name in changed)  # sizes alone would miss them


def test_prepare_onto_a_disk_without_room_stops_before_writing_a_chunk(corpus, tmp_path, monkeypatch):
    import aerecon.prepare as preparing
    from aerecon.utils.errors import DiskError

    output = tmp_path / "prepared"
    monkeypatch.setattr(preparing.shutil, "disk_usage", lambda path: type("Usage", (), {"free": 2**20})())
    with pytest.raises(
        DiskError,
        match=r"cannot write .*prepared/train \(No space left on device: its chunks need "
        r"about \d+ MiB, 1 MiB are free\); free some space",
    ):
        prepare(compose_prepare(corpus["music"], output, corpus["cache"]))
    assert not (output / "train").exists()
