"""Compress one song with a trained model whose code is discrete:
`aerecon-compress ckpt_path=CKPT input=SONG output=SONG.aer` (also `python -m aerecon.compress`;
conf/compress.yaml). The file's rate is its size x 8 over the song's duration."""

import logging

import hydra
from omegaconf import DictConfig

from aerecon.audio.io import Resampler, open_mono
from aerecon.coding.learned import compress, discrete_bottleneck
from aerecon.reconstruct import check_paths
from aerecon.training.checkpoint import load
from aerecon.utils.config import CONF_DIR, home_paths
from aerecon.utils.errors import AudioError, DiskError, exit_on_user_error, sigterm_stops
from aerecon.utils.files import atomic_write
from aerecon.utils.logs import silence_third_party
from aerecon.utils.settings import COMPRESS

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict:
    """Compress cfg.input into cfg.output; what was written (output, samples, bytes, kbps)."""
    source, target = check_paths(cfg, "aerecon-compress", ".aer", "a compressed song is written as .aer", COMPRESS)
    model = load(cfg.ckpt_path, cfg.device)
    discrete_bottleneck(model, cfg.ckpt_path)
    with open_mono(source, block_frames=max(1, round(cfg.block_seconds * model.sample_rate))) as (rate, blocks):
        try:
            to_model = Resampler(rate, model.sample_rate)
        except AudioError as error:
            raise AudioError(f"input={source}: {error}") from None

        def song():
            for block in blocks:
                yield to_model(block)
            yield to_model.flush()

        data, samples = compress(model, cfg.ckpt_path, song(), cfg.batch_size, cfg.kbps)
    try:
        atomic_write(target, lambda f: f.write(data))
    except OSError as error:  # a full, read-only or special file system: nothing half-written is left
        raise DiskError(f"cannot write output={target} ({error.strerror or error}); nothing was written") from None
    seconds = samples / model.sample_rate
    kbps = 8 * len(data) / seconds / 1000
    log.info("Wrote %s: %d bytes for %.1f s of %s, %.2f kbit/s", target, len(data), seconds, source.name, kbps)
    return {"output": str(target), "samples": samples, "bytes": len(data), "kbps": kbps}


@home_paths
@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="compress")
def main(cfg: DictConfig) -> None:
    silence_third_party()
    with exit_on_user_error(), sigterm_stops(lambda: "while compressing; the output is written only when complete"):
        run(cfg)


if __name__ == "__main__":
    main()
