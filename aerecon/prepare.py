"""Prepare a folder of audio once for streaming: `aerecon-prepare data.root=DIR output=OUT`
(also `python -m aerecon.prepare`; conf/prepare.yaml).

Every usable file is decoded, mixed down and resampled once, in parallel (the waveform cache of
data=folder, with its checks and its `data_report.tsv`), split by song as data=folder splits it,
and each split's segments are written as LitData chunks with an index (`OUT/train`, `OUT/val`,
`OUT/test`), in a seeded random order so that every chunk mixes many songs. Training segments
keep `margin` of a segment of audio on either side, so data=stream can move them by up to that
much (data.jitter), as data=folder does. `OUT/aerecon.json` says what the chunks hold.

OUT may also be an object-store URL (s3://, gs://, azure://): the corpus is then written to a
local `staging` folder first and sent there by aerecon.data.upload.

A split whose index is written, for the same songs, is complete and is not redone; an
interrupted split continues from LitData's checkpoint of the chunks already written; a split
whose songs changed (added, removed or edited files) is written again.
"""

import ctypes
import hashlib
import json
import logging
import multiprocessing
import os
import re
import shlex
import shutil
import signal
import time
from pathlib import Path

import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf

from aerecon.data import FOLDER
from aerecon.data.cache import read_samples
from aerecon.data.segments import SPLITS, song_count, split_weights
from aerecon.data.upload import read_json, upload
from aerecon.utils.config import CONF_DIR, build, home_paths
from aerecon.utils.errors import ConfigError, DataError, DiskError, exit_on_user_error, first_line, sigterm_stops
from aerecon.utils.files import atomic_write, is_url, only_writer, sha256
from aerecon.utils.logs import silence_third_party
from aerecon.utils.settings import TRAIN, fraction, whole
from aerecon.utils.settings import check as check_settings

log = logging.getLogger(__name__)
FORMAT = 1  # of aerecon.json and the items
INFO = "aerecon.json"
INDEX = "index.json"  # LitData's, written last: a split with one is complete
LOCK = ".prepare.lock"
# What aerecon-prepare writes at the top of its output (a file's temporary twin included); anything
# else there is the user's, and is never replaced.
OWN = re.compile(
    rf"(aerecon\.json|data_report\.tsv|\.sent\.json|(train|val|test)(\.sha1)?)(\.\d+\.tmp)?"
    rf"|{re.escape(LOCK)}"
)


def segment_item(spec: list) -> dict:
    """One stored item: a segment's audio with its margins (`wave`), where the segment starts in it
    (`at`) and the segment's number in its split (`index`, which data=stream's jitter is drawn by)."""
    file, index, start, stop, at = spec
    return {"index": index, "at": at, "wave": read_samples(file, start, stop)}


def segment_specs(dataset, margin: int) -> list[list]:
    """(cache file, segment number, first and last sample stored, where the segment starts) of
    every segment of a data=folder split, with up to `margin` samples either side."""
    specs = []
    n = dataset.segment_samples
    for index, (s, grid) in enumerate(dataset.index):
        song = dataset.songs[s]
        start, stop = max(0, grid - margin), min(song.num_samples, grid + n + margin)
        specs.append([str(song.file), index, start, stop, grid - start])  # lists: LitData's checkpoint holds JSON
    return specs


def check(cfg: DictConfig) -> Path:
    """The folder to write the corpus to: `output`, or for an object store the local folder it is
    written to before it is sent (`staging`)."""
    if OmegaConf.is_missing(cfg, "output") or not cfg.output:
        raise ConfigError("output is not set: aerecon-prepare data.root=MUSIC output=PREPARED")
    if cfg.data.get("_target_") != FOLDER:
        raise ConfigError("aerecon-prepare reads a folder of audio: data=folder data.root=MUSIC (the default)")
    check_settings(
        cfg,
        {
            key: TRAIN[key]
            for key in ("data.sample_rate", "data.segment_seconds", "data.split_seed", "data.decode_workers")
        }
        | {
            "margin": (
                fraction,
                "a fraction of a segment from 0 to 1 (data=stream then allows data.jitter up to it)",
                "margin=0.5",
            ),
            "chunk_megabytes": (whole(1), "a whole number of megabytes, at least 1", "chunk_megabytes=64"),
        },
    )
    output = staging(cfg) if is_url(cfg.output) else Path(str(cfg.output)).expanduser().absolute()
    if output.exists() and not output.is_dir():
        raise ConfigError(f"output={output} is a file; name a folder")
    check_ownership(output)
    records = [(output, json.loads((output / INFO).read_text()))] if (output / INFO).is_file() else []
    if is_url(cfg.output) and (there := in_store(cfg.output, lambda: read_json(cfg.output, INFO))):
        records.append((cfg.output, there))
    wanted = settings(cfg)
    for place, saved in records:
        differ = [f"{k}: {saved.get(k)} there, {v} now" for k, v in wanted.items() if saved.get(k) != v]
        if differ:
            raise ConfigError(
                f"output={place} holds a corpus prepared with other settings ({'; '.join(differ)}); name a new folder"
            )
    return output


def check_ownership(output: Path) -> None:
    """Refuses an output folder holding anything a prepare did not write: aerecon-prepare replaces
    only its own files (a split folder is its own once its `<split>.sha1` stamp is written, which
    comes after aerecon.json and before any chunk)."""
    if not output.is_dir():
        return
    names = sorted(path.name for path in output.iterdir())
    foreign = [name for name in names if not OWN.fullmatch(name)]
    foreign += [split for split in SPLITS if split in names and (INFO not in names or f"{split}.sha1" not in names)]
    foreign.sort()
    if foreign:
        shown = ", ".join(f"{name}/" if (output / name).is_dir() else name for name in foreign[:3])
        more = f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
        raise ConfigError(
            f"output={output} holds {shown}{more}, which aerecon-prepare did not write; it never "
            f"replaces files it did not write: name a new or empty folder, e.g. "
            f"output={output.with_name(output.name + '_prepared')}"
        )


def staging(cfg: DictConfig) -> Path:
    """Where a corpus bound for an object store is written first (and kept, so that a rerun sends
    only what the store lacks): `staging`, or a folder under paths.cache_dir named by the URL."""
    if cfg.get("staging"):
        return Path(str(cfg.staging)).expanduser().absolute()
    return (
        Path(str(cfg.paths.cache_dir)).expanduser().absolute()
        / "prepared"
        / hashlib.sha1(str(cfg.output).encode()).hexdigest()[:12]
    )


def in_store(url: str, action):
    """`action`'s result, with the store client's failures as one line that names the store."""
    try:
        return action()
    except DataError:
        raise
    except Exception as error:  # every store's client raises its own types
        raise DataError(
            f"output={url}: the object store failed ({first_line(error)}); check the URL and the "
            f"store's credentials, then run the same command again"
        ) from None


def settings(cfg: DictConfig) -> dict:
    """What the prepared chunks depend on (a rerun into the same folder must match)."""
    data = cfg.data
    return {
        "format": FORMAT,
        "root": str(Path(str(data.root)).expanduser().absolute()),
        "sample_rate": data.sample_rate,
        "segment_seconds": data.segment_seconds,
        "split": split_weights(OmegaConf.to_container(data.split) if OmegaConf.is_config(data.split) else data.split),
        "split_seed": data.split_seed,
        "margin": cfg.margin,
    }


def fingerprint(specs: list[list]) -> str:
    """What a split's chunks hold: its segments' cache entries (keyed by each file's path, size and
    modification time) and positions. OUT/<split>.sha1 records it before the chunks are written;
    a split begun for other segments is outdated."""
    return hashlib.sha1(json.dumps([[Path(s[0]).name, *s[1:]] for s in specs]).encode()).hexdigest()


def die_with(parent: int) -> None:
    """In the process leading LitData's group: should aerecon-prepare itself be killed outright
    (SIGKILL, which it cannot pass on), the whole group goes too, rather than writing on unseen."""
    signal.signal(signal.SIGTERM, lambda *_: os.killpg(0, signal.SIGKILL))
    try:  # Linux: SIGTERM to this process when its parent dies
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # it died before the request was made
        os.killpg(0, signal.SIGKILL)


def write_split(specs: list[list], target: Path, seed: int, chunk_megabytes: int, workers: int) -> None:
    """LitData's optimize in a process group of its own, so that a stop (Ctrl+C, SIGTERM) ends its
    workers at once and this process reports it (LitData's own Ctrl+C handler exits 0)."""
    from litdata import optimize  # here: the rest of aerecon does not need it

    order = np.random.default_rng(seed).permutation(len(specs))  # chunks mix songs
    context, parent = multiprocessing.get_context("fork"), os.getpid()

    def run() -> None:
        os.setpgrp()
        die_with(parent)
        optimize(
            fn=segment_item,
            inputs=[specs[i] for i in order],
            output_dir=str(target),
            chunk_bytes=chunk_megabytes * 2**20,
            num_workers=workers,
            use_checkpoint=True,
            mode=None,
            start_method="fork",
            verbose=False,
        )

    child = context.Process(target=run, daemon=False)
    child.start()
    try:
        child.join()
    finally:
        if child.is_alive():  # stopped: end LitData and its workers before reporting
            os.killpg(child.pid, signal.SIGKILL)
            child.join()
    if child.exitcode or not (target / INDEX).is_file():
        raise DataError(
            f"{target}: the chunks were not completed (exit code {child.exitcode}); run the same command "
            f"again to finish them"
        )


def prepare(cfg: DictConfig) -> Path:
    output = check(cfg)
    if is_url(cfg.output):
        log.info(
            "Writing the corpus for %s in %s first (kept: a rerun sends only what the store lacks)", cfg.output, output
        )
    created = not output.exists()
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"output={output}: cannot create it ({error.strerror or error})") from None
    try:
        with only_writer(
            output / LOCK,
            f"output={output}: another aerecon-prepare is writing there now; wait for it "
            f"to finish, or name another folder",
        ):
            check_ownership(output)  # again, now that no other prepare can be writing
            _prepare(cfg, output)
    except BaseException:
        if created and output.is_dir() and not [p for p in output.iterdir() if p.name != LOCK]:  # nothing to keep
            (output / LOCK).unlink(missing_ok=True)
            output.rmdir()
        raise
    if is_url(cfg.output):
        in_store(cfg.output, lambda: upload(output, cfg.output, last=INFO))
    log.info("Prepared %s. Train on it with: %s", cfg.output, shlex.join(train_command(cfg)))
    return output


def train_command(cfg: DictConfig) -> list[str]:
    root = cfg.output if is_url(cfg.output) else Path(str(cfg.output)).expanduser().absolute()
    command = ["aerecon-train", "data=stream", f"data.root={root}"]
    if (cfg.data.sample_rate, cfg.data.segment_seconds) != (4410, 3.0):  # conf/data/stream.yaml's
        command += [f"data.sample_rate={cfg.data.sample_rate}", f"data.segment_seconds={cfg.data.segment_seconds}"]
    return command


def _prepare(cfg: DictConfig, output: Path) -> None:
    datamodule = build(cfg.data, jitter=0.0, report=str(output / "data_report.tsv"))
    datamodule.prepare_data()  # scans, decodes in parallel into the cache, writes data_report.tsv
    datamodule.setup("fit")
    if not (output / INFO).is_file():  # the settings first, so that a rerun after a stop is checked against them
        write_info(output, settings(cfg))  # (a finished corpus keeps its record, matching: see check)
    margin = round(cfg.margin * datamodule.segment_samples)
    counts = {}
    for split in SPLITS:
        dataset, target = datamodule.datasets[split], output / split
        specs = segment_specs(dataset, margin if split == "train" else 0)
        counts[split] = {"songs": len(dataset.songs), "segments": len(specs)}
        stamp, wanted = output / f"{split}.sha1", fingerprint(specs)
        if target.exists() and not (stamp.is_file() and stamp.read_text() == wanted):
            log.info(
                "%s holds other segments than the songs under %s give now (they changed): writing it again",
                target,
                cfg.data.root,
            )
            shutil.rmtree(target)
        if (target / INDEX).is_file():
            log.info("%s: complete already (%d segments)", target, len(specs))
            continue
        if not specs:
            log.warning("The %s split has no segments: nothing written for it", split)
            continue
        room(target, specs)
        atomic_write(stamp, lambda f, text=wanted: f.write(text.encode()))  # before any chunk: what they are to hold
        log.info("Writing %d %s segments of %s to %s", len(specs), split, song_count(len(dataset.songs)), target)
        started = time.perf_counter()
        write_split(specs, target, cfg.data.split_seed, cfg.chunk_megabytes, datamodule.cache.workers)
        log.info("Wrote %s in %.0f s", target, time.perf_counter() - started)
    write_info(
        output,
        settings(cfg)
        | {
            "segment_samples": datamodule.segment_samples,
            "margin_samples": margin,
            "splits": counts,
            "files": checksums(output),
        },
    )
    log.info(
        "Wrote %s: %s",
        output,
        ", ".join(f"{split} {c['segments']} segments of {song_count(c['songs'])}" for split, c in counts.items()),
    )


def room(target: Path, specs: list[list]) -> None:
    """A DiskError before a split is written onto a disk without room for it: LitData's writer
    dies on a full disk and its parent then waits for it for ever."""
    need = sum(4 * (stop - start) + 64 for _, _, start, stop, _ in specs) + 2**20  # float32 samples, item headers
    free = shutil.disk_usage(target.parent).free
    if free < need:
        raise DiskError(
            f"cannot write {target} (No space left on device: its chunks need about "
            f"{need / 2**20:.0f} MiB, {free / 2**20:.0f} MiB are free); free some space, then run the same "
            f"command again"
        )


def checksums(output: Path) -> dict[str, dict]:
    """Size and SHA-256 of every file of the splits (chunks and indexes), which data=stream checks
    before it trains on them and a rerun compares with what an object store holds; unchanged files
    (same size and modification time) keep the hash recorded before."""
    before = json.loads((output / INFO).read_text()).get("files", {}) if (output / INFO).is_file() else {}
    files = {}
    for split in SPLITS:
        for path in sorted((output / split).glob("*")) if (output / split).is_dir() else []:
            if not path.is_file():
                continue
            name, stat = path.relative_to(output).as_posix(), path.stat()
            known = before.get(name, {})
            if (known.get("size"), known.get("mtime_ns")) == (stat.st_size, stat.st_mtime_ns):
                files[name] = known
                continue
            files[name] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha256(path)}
    return files


def write_info(output: Path, info: dict) -> None:
    atomic_write(output / INFO, lambda f: f.write(json.dumps(info, indent=2).encode()))


@home_paths
@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="prepare")
def main(cfg: DictConfig) -> None:
    silence_third_party()
    with exit_on_user_error(), sigterm_stops(lambda: "while preparing; run the same command again to finish"):
        prepare(cfg)


if __name__ == "__main__":
    main()
