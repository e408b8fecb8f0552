"""Reconstruct one file with a trained model: `aerecon-reconstruct ckpt_path=CKPT input=IN output=OUT.wav`
(also `python -m aerecon.reconstruct`; conf/reconstruct.yaml)."""

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from aerecon.audio.io import Resampler, open_mono, write_wav
from aerecon.audio.stitch import check_stitch
from aerecon.training.checkpoint import load
from aerecon.utils.config import CONF_DIR, home_paths
from aerecon.utils.errors import AudioError, ConfigError, DiskError, exit_on_user_error, sigterm_stops
from aerecon.utils.logs import silence_third_party
from aerecon.utils.settings import RECONSTRUCT
from aerecon.utils.settings import check as check_settings

log = logging.getLogger(__name__)
RATES = ("model", "input")


def check_paths(cfg: DictConfig, command: str, suffix: str, what: str, settings: dict) -> tuple[Path, Path]:
    """(input, output) of `command` (aerecon-reconstruct, -compress, -decompress), whose output is
    a `suffix` file (`what` says so): set, the input a file, the output new (or overwrite=true) in a
    folder that exists, and not the input; and its `settings` (a table of aerecon.utils.settings)."""
    for key in ("ckpt_path", "input", "output"):
        if OmegaConf.is_missing(cfg, key) or cfg[key] in (None, ""):
            raise ConfigError(f"{key} is not set: {command} ckpt_path=CKPT input=SONG output=OUT{suffix}")
    source, target = Path(str(cfg.input)).expanduser(), Path(str(cfg.output)).expanduser()
    if not source.is_file():
        raise ConfigError(f"input={source}: no such file" if not source.exists() else f"input={source} is not a file")
    if target.suffix.lower() != suffix:
        raise ConfigError(f"output={target}: {what}, e.g. output={target.with_suffix(suffix)}")
    if target.exists() and (target.is_dir() or target.resolve() == source.resolve()):
        raise ConfigError(
            f"output={target} is "
            + ("a folder" if target.is_dir() else "the input file")
            + f"; name a new file, e.g. output={target.with_name(source.stem + '.out' + suffix)}"
        )
    check_settings(cfg, settings)
    if target.exists() and not cfg.overwrite:
        raise ConfigError(f"output={target} exists; add overwrite=true to replace it, or name another file")
    if not target.parent.is_dir():
        raise ConfigError(f"output={target}: the folder {target.parent} does not exist")
    return source, target


def check(cfg: DictConfig) -> tuple[Path, Path]:
    """(input, output) paths, after every fault that needs no decoding."""
    paths = check_paths(cfg, "aerecon-reconstruct", ".wav", "the reconstruction is written as WAV", RECONSTRUCT)
    if "stitch" in cfg:
        check_stitch(**cfg.stitch, prefix="stitch.")
    if cfg.rate not in RATES:
        raise ConfigError(f"rate={cfg.rate}: use model (the model's sample rate) or input (the input file's)")
    return paths


def exactly(pieces: Iterator[np.ndarray], total: Callable[[], int], tail: int = 1 << 14) -> Iterator[np.ndarray]:
    """`pieces`, cut or padded with silence to `total()` samples in all (known once they end):
    resampling there and back rounds each way up, a few samples too many. The last `tail`
    samples are held back until the end."""
    held, given = np.zeros(0, dtype=np.float32), 0
    for piece in pieces:
        held = np.concatenate([held, piece])
        if len(held) > tail:
            given += len(held) - tail
            yield held[:-tail]
            held = held[-tail:]
    want = max(0, total() - given)
    yield np.pad(held[:want], (0, max(0, want - len(held))))


def reconstruct(cfg: DictConfig) -> Path:
    """Decode, resample, reconstruct, resample back and write, a block at a time: memory does not
    grow with the song's length."""
    source, target = check(cfg)
    model = load(cfg.ckpt_path, cfg.device)
    with open_mono(source, block_frames=max(1, round(cfg.block_seconds * model.sample_rate))) as (source_rate, blocks):
        rate = source_rate if cfg.rate == "input" else model.sample_rate
        try:
            to_model, to_output = Resampler(source_rate, model.sample_rate), Resampler(model.sample_rate, rate)
        except AudioError as error:
            raise AudioError(f"input={source}: {error}") from None
        frames = 0

        def song():
            nonlocal frames
            with tqdm(
                desc=f"Reconstructing {source.name}",
                unit="s",
                unit_scale=False,
                bar_format="{desc}: {n:.0f} s of audio [{elapsed}, {rate_fmt}]",
            ) as progress:
                for block in blocks:
                    yield to_model(block)
                    frames += len(block)
                    progress.update(len(block) / source_rate)
            yield to_model.flush()

        def output():
            for piece in model.reconstruct_stream(song(), batch_size=cfg.batch_size, **cfg.stitch):
                yield to_output(piece.numpy())
            yield to_output.flush()

        pieces = exactly(output(), lambda: frames) if cfg.rate == "input" else output()

        log.info("Reconstructing %s with %s", source, model)
        try:
            write_wav(target, pieces, rate)
        except OSError as error:  # a full, read-only or special file system: nothing half-written is left
            raise DiskError(f"cannot write output={target} ({error.strerror or error}); nothing was written") from None
    log.info("Wrote %s (%.1f s at %d Hz)", target, frames / source_rate, rate)
    return target


@home_paths
@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="reconstruct")
def main(cfg: DictConfig) -> None:
    silence_third_party()
    with exit_on_user_error(), sigterm_stops(lambda: "while reconstructing; the output is written only when complete"):
        reconstruct(cfg)


if __name__ == "__main__":
    main()
