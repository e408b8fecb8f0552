"""Evaluation entry point: `python -m aerecon.evaluate ckpt_path=CKPT` / `aerecon-eval` (conf/evaluate.yaml).

Reconstructs whole songs from cross-faded segments and writes, in its run folder:
metrics.json (overall and per song), metrics.csv, and per song the original, reconstruction
and residual as WAV plus waveform, spectrum, spectrogram and seam figures as PNG.
"""

import csv
import hashlib
import io
import json
import logging
import math
import re
from collections import Counter
from pathlib import Path

import hydra
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from torchmetrics.functional.audio import signal_noise_ratio
from tqdm import tqdm

from aerecon.audio.figures import seam_figure, spectrogram_figure, spectrum_figure, waveform_figure
from aerecon.audio.io import write_wav
from aerecon.audio.stitch import Stitcher, check_stitch
from aerecon.coding.learned import compress, compresses, decompress
from aerecon.data import DEMO, FOLDER, STREAM
from aerecon.data.cache import CachedSong
from aerecon.data.datamodule import AudioDataModule
from aerecon.data.segments import SPLITS
from aerecon.data.stream import read_info
from aerecon.models.inference import Autoencoder, pick_device
from aerecon.models.metrics import SeamExcess, song_metrics
from aerecon.training.checkpoint import load_model
from aerecon.utils.config import CONF_DIR, build, home_paths
from aerecon.utils.errors import ConfigError, DataError, exit_on_user_error, sigterm_stops
from aerecon.utils.files import atomic_write
from aerecon.utils.logs import silence_third_party
from aerecon.utils.settings import check_evaluate

log = logging.getLogger(__name__)
FIXED_BY_MODEL = ("sample_rate", "segment_seconds")  # the model's input length depends on them
DEMO_ONLY = ("num_songs", "song_seconds", "render_rate", "render_seed")
COMPRESSED = ("snr_db", "stft_distance", "lsd_db")  # scored again on the compressed file, where there is one


def data_config(cfg: DictConfig, saved: dict) -> dict:
    """The checkpoint's data settings with the user's overrides (see conf/evaluate.yaml)."""
    stored = saved["data"]
    explicit = {o.split("=", 1)[0].lstrip("+~") for o in _overrides()}
    for key in FIXED_BY_MODEL:
        if f"data.{key}" in explicit and cfg.data.get(key) != stored[key]:
            raise ConfigError(
                f"data.{key}={cfg.data.get(key)}: fixed by the checkpoint, which was trained with "
                f"data.{key}={stored[key]}; leave it out"
            )
    if _data_choice():  # a whole data group chosen: it replaces the checkpoint's settings
        data = OmegaConf.to_container(cfg.data, resolve=False)
        data["shuffle_seed"] = 0  # the group refers to the training seed; evaluation does not shuffle
        data = OmegaConf.to_container(OmegaConf.create({"data": data, "paths": cfg.paths}), resolve=True)["data"]
    else:
        if stored["_target_"] == STREAM:
            stored = songs_of_stream(stored, cfg)
        data = {**stored, **{k: v for k, v in OmegaConf.to_container(cfg.data, resolve=True).items() if v is not None}}
        if cfg.data.root is None and data["_target_"] == DEMO:
            # The demo renders from its seed: into this machine's data folder, never into a folder
            # named by the checkpoint (another machine's path, or anyone's, in a shared file).
            data["root"] = str(Path(cfg.paths.data_dir) / "demo")
        if cfg.data.root is not None and data["_target_"] == DEMO:
            # Any folder given on its own is the user's audio, not a place to render the demo into.
            data = {k: v for k, v in data.items() if k not in DEMO_ONLY}
            data["_target_"] = FOLDER
    data.update({key: stored[key] for key in FIXED_BY_MODEL})
    data["report"] = str(Path(cfg.paths.run_dir) / "data_report.tsv")  # this evaluation's, not the training run's
    return data


def songs_of_stream(stored: dict, cfg: DictConfig) -> dict:
    """data=folder settings for the songs a data=stream corpus was prepared from (its aerecon.json
    records their folder and split): whole songs to evaluate, in the same splits."""
    info = read_info(stored["root"], stored.get("cache_dir"))
    if cfg.data.root is None and not Path(info["root"]).is_dir():
        raise ConfigError(
            f"the songs the corpus at {stored['root']} was prepared from were at {info['root']}, which "
            f"is not a folder now; name where they are: data.root=DIR"
        )
    return {
        "_target_": FOLDER,
        "root": info["root"],
        "cache_dir": cfg.data.cache_dir,
        "sample_rate": stored["sample_rate"],
        "segment_seconds": stored["segment_seconds"],
        "batch_size": stored["batch_size"],
        "split": info["split"],
        "split_seed": info["split_seed"],
        "num_workers": 0,
    }


def _overrides() -> list[str]:
    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def _data_choice() -> str | None:
    return HydraConfig.get().runtime.choices.get("data") if HydraConfig.initialized() else None


def select_songs(datamodule: AudioDataModule, split: str) -> list[CachedSong]:
    if split == "all":
        return datamodule.all_songs()
    if split not in SPLITS:
        raise ConfigError(f"split={split}: use one of {', '.join(SPLITS)}, all")
    datamodule.setup()
    songs = [s for s in datamodule.songs[split] if s.num_samples > 0]
    if not songs:
        raise DataError(f"The {split} split of {datamodule.root} has no songs; evaluate every song with split=all")
    return songs


MAX_NAME_BYTES = 120  # file systems allow 255 bytes a name; leave room for a suffix


def safe_name(song_name: str) -> str:
    """A song's relative path as one file-system-safe folder name."""
    return re.sub(r"[^\w.-]+", "_", str(Path(song_name).with_suffix(""))).strip("_") or "song"


def media_folders(song_names: list[str]) -> dict[str, str]:
    """A distinct, readable folder name per song: its safe name, with a short hash of the full
    relative path where two songs would share one (song.wav, song.flac; my song, my_song) or
    where it is too long for a file system."""
    safe = {name: safe_name(name) for name in song_names}
    taken = Counter(safe.values())
    folders = {}
    for name, folder in safe.items():
        if taken[folder] > 1 or len(folder.encode()) > MAX_NAME_BYTES:
            digest = hashlib.sha1(name.encode("utf-8", "surrogateescape")).hexdigest()[:10]
            folder = folder.encode()[:MAX_NAME_BYTES].decode("utf-8", "ignore") + "-" + digest
        folders[name] = folder
    return folders


def overall_metrics(per_song: dict[str, dict], lengths: dict[str, int], seams: dict[str, SeamExcess]) -> dict:
    """MSE and MAE over all samples; dB figures averaged over songs (NaNs, e.g. silent bands,
    left out); seam excess pooled over every seam."""
    total = sum(lengths.values())
    keys = next(iter(per_song.values())).keys()
    overall = {}
    for key in keys:
        values = [m[key] for m in per_song.values()]
        if key in ("mse", "mae", "kbps"):  # kbps: all the songs' bits over all their seconds
            overall[key] = sum(v * lengths[name] for v, name in zip(values, per_song)) / total
        elif key.startswith("seam_excess_db"):
            overall[key] = float(seams[key].compute())
        else:
            finite = [v for v in values if math.isfinite(v)]
            overall[key] = sum(finite) / len(finite) if finite else math.nan
    overall["rmse"] = math.sqrt(overall["mse"])
    return overall


def _write_figure(path: Path, figure) -> None:
    png = io.BytesIO()
    figure.savefig(png, format="png", dpi=110)
    atomic_write(path, lambda f: f.write(png.getvalue()))  # whole or absent, whatever stops the write


def write_media(folder: Path, name: str, original, reconstruction, butted, sample_rate: int, segment: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for kind, audio in (
        ("original", original),
        ("reconstruction", reconstruction),
        ("residual", reconstruction - original),
    ):
        write_wav(folder / f"{kind}.wav", audio.cpu().numpy(), sample_rate)
    _write_figure(folder / "waveform.png", waveform_figure(original, reconstruction, sample_rate, name))
    _write_figure(folder / "spectrum.png", spectrum_figure(original, reconstruction, sample_rate, name))
    _write_figure(folder / "spectrogram.png", spectrogram_figure(original, reconstruction, sample_rate, name))
    if butted is not None and len(original) > segment:
        _write_figure(
            folder / "seam.png", seam_figure(original, reconstruction, butted, sample_rate, segment, title=name)
        )


def evaluate(cfg: DictConfig) -> dict:
    check_evaluate(cfg)
    if "stitch" in cfg:
        check_stitch(**cfg.stitch, prefix="stitch.")
    with sigterm_stops(lambda: "while evaluating; every file written so far is complete. Run the same command again"):
        return _evaluate(cfg)


def _refuse_an_evaluated_folder(out: Path) -> None:
    if (out / "metrics.json").exists() or (out / "songs").exists():
        raise ConfigError(
            f"{out} already holds an evaluation (metrics.json, songs/); leave hydra.run.dir out for a "
            f"new folder, or name an empty one"
        )


def _evaluate(cfg: DictConfig) -> dict:
    out = Path(cfg.paths.run_dir)
    _refuse_an_evaluated_folder(out)
    device = pick_device(cfg.device)
    module, saved = load_model(cfg.ckpt_path, device)
    model = Autoencoder(module, saved, device)
    datamodule = build(data_config(cfg, saved))
    songs = select_songs(datamodule, cfg.split)
    log.info("Evaluating %s on %d %s songs of %s -> %s", cfg.ckpt_path, len(songs), cfg.split, datamodule.root, out)

    per_song, lengths, not_evaluated = {}, {}, {}
    seams = {"seam_excess_db": SeamExcess()} | ({"seam_excess_db_butt_joined": SeamExcess()} if cfg.butt_joined else {})
    media_left = len(songs) if cfg.max_media_songs is None else cfg.max_media_songs
    folders = media_folders([song.name for song in songs])
    for song in tqdm(songs, desc=f"Evaluating {len(songs)} {cfg.split} songs", unit="song"):
        original = torch.from_numpy(song.waveform())
        if len(original) < 2:
            not_evaluated[str(song.source)] = "shorter than 2 samples"
            continue
        metrics, reconstruction, butted = score_song(model, original, cfg, seams)
        per_song[song.name], lengths[song.name] = metrics, len(original)
        if media_left > 0:
            media_left -= 1
            write_media(
                out / "songs" / folders[song.name],
                song.name,
                original,
                reconstruction,
                butted,
                model.sample_rate,
                model.segment_samples,
            )
    if not per_song:
        raise DataError(f"No song of {datamodule.root} could be evaluated")

    results = {
        "checkpoint": str(Path(cfg.ckpt_path).expanduser().resolve()),
        "model": saved.get("model_name"),
        "data_root": str(datamodule.root),
        "split": cfg.split,
        "sample_rate": model.sample_rate,
        "segment_samples": model.segment_samples,
        "stitch": OmegaConf.to_container(cfg.stitch),
        "overall": overall_metrics(per_song, lengths, seams),
        "songs": per_song,
        "skipped": {**datamodule.skipped, **not_evaluated},
    }
    write_results(out, results)
    return results


def score_song(model: Autoencoder, original: torch.Tensor, cfg: DictConfig, seams: dict[str, SeamExcess]):
    """(metrics, reconstruction, butt-joined reconstruction or None) of one song, reconstructed as
    aerecon-reconstruct does; adds its seams to `seams`."""
    reconstruction = model.reconstruct(original, **cfg.stitch, batch_size=cfg.batch_size)
    stitched_seams = Stitcher(model.segment_samples, **cfg.stitch).seams(len(original))
    metrics = song_metrics(original, reconstruction, model.sample_rate, stitched_seams)
    if compresses(model):
        metrics |= compressed_metrics(model, original, cfg)
    seams["seam_excess_db"].update(original, reconstruction, stitched_seams)
    if not cfg.butt_joined:
        return metrics, reconstruction, None
    butted = model.reconstruct(original, window="crossfade", overlap=0.0, batch_size=cfg.batch_size)
    butt_seams = Stitcher(model.segment_samples, "crossfade", overlap=0.0).seams(len(original))
    one = SeamExcess()
    one.update(original, butted, butt_seams)
    seams["seam_excess_db_butt_joined"].update(original, butted, butt_seams)
    metrics["seam_excess_db_butt_joined"] = float(one.compute())
    metrics["snr_db_butt_joined"] = float(signal_noise_ratio(butted, original))
    return metrics, reconstruction, butted


def compressed_metrics(model: Autoencoder, original: torch.Tensor, cfg: DictConfig) -> dict[str, float]:
    """The song's rate in the file aerecon-compress writes (its bytes x 8 over its duration), and
    the distortion of that file decoded, for a model whose code is discrete."""
    data, _ = compress(model, cfg.ckpt_path, [original.numpy()], cfg.batch_size)
    _, blocks = decompress(model, cfg.ckpt_path, data, "the compressed song", cfg.batch_size)
    decoded = torch.from_numpy(np.concatenate(list(blocks)))
    scores = song_metrics(original, decoded, model.sample_rate, [])
    seconds = len(original) / model.sample_rate
    return {"kbps": 8 * len(data) / seconds / 1000} | {f"{k}_compressed": scores[k] for k in COMPRESSED}


def write_results(out: Path, results: dict) -> None:
    atomic_write(out / "metrics.json", lambda f: f.write(json.dumps(results, indent=2).encode()))
    atomic_write(out / "metrics.csv", lambda f: f.write(metrics_csv(results).encode("utf-8", "backslashreplace")))
    overall = results["overall"]
    log.info(
        "Overall: snr_db %.2f, si_sdr_db %.2f, seam_excess_db %.2f, band_snr_db low/mid/high %.2f/%.2f/%.2f",
        overall["snr_db"],
        overall["si_sdr_db"],
        overall["seam_excess_db"],
        overall["band_snr_db_low"],
        overall["band_snr_db_mid"],
        overall["band_snr_db_high"],
    )
    if "kbps" in overall:
        log.info(
            "Compressed files: %.2f kbit/s; decoded: snr_db %.2f, stft_distance %.3f, lsd_db %.2f",
            overall["kbps"],
            overall["snr_db_compressed"],
            overall["stft_distance_compressed"],
            overall["lsd_db_compressed"],
        )
    for source, reason in results["skipped"].items():
        log.warning("Not evaluated: %s (%s)", source, reason)
    log.info("Metrics: %s", out / "metrics.json")


def metrics_csv(results: dict) -> str:
    keys = list(results["overall"])
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["song", *keys])
    writer.writerow(["overall", *(results["overall"][k] for k in keys)])
    for name, metrics in results["songs"].items():
        writer.writerow([name, *(metrics[k] for k in keys)])
    return buffer.getvalue()


@home_paths
@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="evaluate")
def main(cfg: DictConfig) -> float | None:
    silence_third_party()
    with exit_on_user_error():
        return evaluate(cfg)["overall"]["snr_db"]


if __name__ == "__main__":
    main()
