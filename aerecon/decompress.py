"""Decompress a song that aerecon-compress wrote:
`aerecon-decompress ckpt_path=CKPT input=SONG.aer output=SONG.wav` (also
`python -m aerecon.decompress`; conf/decompress.yaml), with the checkpoint that compressed it."""

import logging

import hydra
from omegaconf import DictConfig

from aerecon.audio.io import write_wav
from aerecon.coding.container import MAGIC, unpack
from aerecon.coding.learned import decompress
from aerecon.reconstruct import check_paths
from aerecon.training.checkpoint import load
from aerecon.utils.config import CONF_DIR, home_paths
from aerecon.utils.errors import DiskError, exit_on_user_error, sigterm_stops
from aerecon.utils.logs import silence_third_party
from aerecon.utils.settings import DECOMPRESS

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict:
    """Decode cfg.input into the WAV cfg.output; what was written (output, samples)."""
    source, target = check_paths(cfg, "aerecon-decompress", ".wav", "the decoded song is written as WAV", DECOMPRESS)
    model = load(cfg.ckpt_path, cfg.device)
    samples, blocks = decompress(model, cfg.ckpt_path, _read(source), f"input={source}", cfg.batch_size)
    try:
        write_wav(target, blocks, model.sample_rate)
    except OSError as error:  # a full, read-only or special file system: nothing half-written is left
        raise DiskError(f"cannot write output={target} ({error.strerror or error}); nothing was written") from None
    log.info("Wrote %s (%.1f s at %d Hz)", target, samples / model.sample_rate, model.sample_rate)
    return {"output": str(target), "samples": samples}


def _read(source) -> bytes:
    """The file's bytes, or DataError after its first bytes if it is not a compressed song (a large
    foreign file is not read whole)."""
    with open(source, "rb") as f:
        head = f.read(len(MAGIC))
        if head != MAGIC:
            unpack(head, f"input={source}")
        return head + f.read()


@home_paths
@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="decompress")
def main(cfg: DictConfig) -> None:
    silence_third_party()
    with exit_on_user_error(), sigterm_stops(lambda: "while decompressing; the output is written only when complete"):
        run(cfg)


if __name__ == "__main__":
    main()
