"""How noisy is seam_excess_db on a given set of songs? Measure it where there are no seams.

    python experiments/seam_noise.py CKPT [--split test] [--shifts 9]

Reconstructs the split's songs with the default stitching, then computes the seam measure at
the true seams and at the same positions moved by a fraction of a hop (where nothing special
happens). The spread of the moved values is the measure's noise floor on these songs.
"""

import argparse

import numpy as np
import torch
from hydra.utils import instantiate

from aerecon.audio.stitch import Stitcher
from aerecon.evaluate import select_songs
from aerecon.models.metrics import SeamExcess
from aerecon.training.checkpoint import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ckpt")
    parser.add_argument("--split", default="test")
    parser.add_argument("--shifts", type=int, default=9)
    args = parser.parse_args()
    model, config = load_model(args.ckpt)
    datamodule = instantiate(config["data"])
    stitcher = Stitcher(datamodule.segment_samples)
    songs = [torch.from_numpy(np.load(s.file)) for s in select_songs(datamodule, args.split)]
    recs = [stitcher(model.reconstruct, x) for x in songs]

    def excess(shift: int) -> float:
        seam = SeamExcess()
        for x, y in zip(songs, recs):
            seam.update(x, y, [p + shift for p in stitcher.seams(len(x)) if 0 < p + shift < len(x)])
        return float(seam.compute())

    moved = [excess(shift) for shift in np.linspace(37, stitcher.hop - 37, args.shifts).astype(int)]
    print(
        f"{config['model_name']}: {len(songs)} {args.split} songs, seam_excess_db at the seams {excess(0):.2f} dB; "
        f"at {len(moved)} moved positions {min(moved):.2f} to {max(moved):.2f} dB (std {np.std(moved):.2f})"
    )


if __name__ == "__main__":
    main()
