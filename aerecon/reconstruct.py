"""Reconstruct one file with a trained model: `aerecon-reconstruct ckpt_path=CKPT input=IN output=OUT.wav`
(also `python -m aerecon.reconstruct`; conf/reconstruct.yaml)."""

import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from aerecon import CONF_DIR
from aerecon.audio import read_mono, resample, write_wav
from aerecon.checks import EVALUATE, check as check_settings
from aerecon.errors import ConfigError, DiskError, exit_on_user_error, sigterm_stops
from aerecon.inference import load
from aerecon.quiet import silence_third_party

log = logging.getLogger(__name__)
RATES = ("model", "input")


def check(cfg: DictConfig) -> tuple[Path, Path]:
    """(input, output) paths, after every fault that needs no decoding."""
    for key in ("ckpt_path", "input", "output"):
        if OmegaConf.is_missing(cfg, key) or cfg[key] in (None, ""):
            raise ConfigError(f"{key} is not set: aerecon-reconstruct ckpt_path=CKPT input=SONG output=OUT.wav")
    source, target = Path(str(cfg.input)).expanduser(), Path(str(cfg.output)).expanduser()
    if not source.is_file():
        raise ConfigError(f"input={source}: no such file" if not source.exists() else f"input={source} is not a file")
    if target.suffix.lower() != ".wav":
        raise ConfigError(f"output={target}: the reconstruction is written as WAV, e.g. output={target.with_suffix('.wav')}")
    if target.exists() and (target.is_dir() or target.resolve() == source.resolve()):
        raise ConfigError(f"output={target} is " + ("a folder" if target.is_dir() else "the input file") +
                          f"; name a new file, e.g. output={target.with_name(source.stem + '.reconstruction.wav')}")
    if target.exists() and not cfg.overwrite:
        raise ConfigError(f"output={target} exists; add overwrite=true to replace it, or name another file")
    if cfg.rate not in RATES:
        raise ConfigError(f"rate={cfg.rate}: use model (the model's sample rate) or input (the input file's)")
    check_settings(cfg, {key: EVALUATE[key] for key in ("batch_size", "stitch.window", "stitch.notches", "stitch.overlap")})
    if not target.parent.is_dir():
        raise ConfigError(f"output={target}: the folder {target.parent} does not exist")
    return source, target


def reconstruct(cfg: DictConfig) -> Path:
    source, target = check(cfg)
    model = load(cfg.ckpt_path, cfg.device)
    mono, source_rate = read_mono(source)
    wave = resample(mono, source_rate, model.sample_rate)
    log.info("Reconstructing %s (%.1f s) with %s", source, len(wave) / model.sample_rate, model)
    output = model.reconstruct(wave, batch_size=cfg.batch_size, **cfg.stitch).numpy()
    rate = model.sample_rate
    if cfg.rate == "input":
        output, rate = resample(output, model.sample_rate, source_rate), source_rate
    try:
        write_wav(target, output, rate)
    except OSError as error:  # a full, read-only or special file system: nothing half-written is left
        raise DiskError(f"cannot write output={target} ({error.strerror or error}); nothing was written") from None
    log.info("Wrote %s (%d Hz)", target, rate)
    return target


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="reconstruct")
def main(cfg: DictConfig) -> None:
    silence_third_party()
    with exit_on_user_error(), sigterm_stops(lambda: "while reconstructing; the output is written only when complete"):
        reconstruct(cfg)


if __name__ == "__main__":
    main()
