"""Evaluate every run of a sweep on whole test songs and print one Markdown table.

    python experiments/demo_results.py logs/train/multiruns/<time> [--name evaluate] [--copy-figures DIR] [OVERRIDE ...]

For each run folder it calls `python -m aerecon.evaluate` on the run's best checkpoint with
the given overrides (e.g. split=val stitch.window=crossfade); the results land in
<run>/<name>/. Then it prints the overall metrics of all runs side by side.
With --copy-figures, the first song's figures of each run are copied to DIR/<model>_<figure>.png
(the figures in docs/results.md come from here).
"""

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

from aerecon.report import markdown_table

COLUMNS = [
    ("snr_db", "SNR dB"),
    ("snr_db_butt_joined", "SNR dB (butt-joined)"),
    ("si_sdr_db", "SI-SDR dB"),
    ("band_snr_db_low", "SNR <250 Hz"),
    ("band_snr_db_mid", "SNR 250-1000 Hz"),
    ("band_snr_db_high", "SNR >1000 Hz"),
    ("stft_distance", "MR-STFT dist."),
    ("lsd_db", "LSD dB"),
    ("mse", "MSE"),
    ("mae", "MAE"),
    ("seam_excess_db", "seam excess dB (overlap-added)"),
    ("seam_excess_db_butt_joined", "seam excess dB (butt-joined)"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep", type=Path)
    parser.add_argument("--name", default="evaluate", help="folder for the results inside each run")
    parser.add_argument(
        "--reuse", action="store_true", help="tabulate existing <run>/<name>/metrics.json, no evaluation"
    )
    parser.add_argument("overrides", nargs="*", help="aerecon.evaluate overrides")
    parser.add_argument("--copy-figures", type=Path, default=None)
    args = parser.parse_intermixed_args()
    rows = []
    for results_file in sorted(args.sweep.glob("*/results.json")):
        run = results_file.parent
        results = json.loads(results_file.read_text())
        out = run / args.name
        if not args.reuse:
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "aerecon.evaluate",
                    f"ckpt_path={results['best_checkpoint']}",
                    *args.overrides,
                    f"hydra.run.dir={out}",
                ],
                check=True,
                capture_output=True,
            )
        metrics = json.loads((out / "metrics.json").read_text())
        overall = metrics["overall"]
        rows.append([results["model"], *(overall[key] for key, _ in COLUMNS)])
        if args.copy_figures:
            args.copy_figures.mkdir(parents=True, exist_ok=True)
            first = sorted((out / "songs").iterdir())[0]
            for figure in first.glob("*.png"):
                shutil.copy(figure, args.copy_figures / f"{results['model']}_{figure.name}")
    print(
        f"Whole {metrics['split']} songs ({len(metrics['songs'])}), stitching {metrics['stitch']}, "
        f"`python -m aerecon.evaluate {' '.join(args.overrides)}`:\n"
    )
    print(
        markdown_table(
            ["model", *(name for _, name in COLUMNS)],
            [[model, *(f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}" for v in values)] for model, *values in rows],
        )
    )


if __name__ == "__main__":
    main()
