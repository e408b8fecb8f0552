"""Real-music benchmark: every model family on Debian's nexuiz-music, at the thesis's settings.

    python experiments/benchmark_realmusic.py [--minutes 6] [--only NAME,...] [--seeds 0,1,2] [--second DIR]
                                              [--out DIR] [--accelerator cpu]
    make bench                                    # the same, with the defaults

- Data: the 17 Ogg Vorbis tracks (83 minutes of electronic music) inside
  /usr/share/games/nexuiz/data/music.pk3 (a zip), installed with `apt-get install
  nexuiz-music` if missing; `thunder.ogg` (a sound effect) is left out. They are extracted
  once to data/nexuiz/{train,val,test}/ and split by song (`data.split=folders`): the
  val and test songs are fixed in bench_common.py, the other 13 train.
- Settings: 4410 Hz, 3 s segments (13230 samples), latent 3300 numbers for every model.
- Every learned model trains for the same wall-clock budget (`--minutes`, Lightning's
  `trainer.max_time`) with early stopping at patience 50; then its best checkpoint is scored
  by `aerecon.evaluate` on whole validation songs and on the test songs, which no model saw
  in training or model selection (stitching: notched, `stitch.notches=2`, 4 passes per sample).
- --seeds: every learned model trains once per seed (the codes that are not learned, once), and
  the table adds each metric's mean and 95% interval over the seeds (aerecon.report's rule).
- --second DIR: every model is also scored on all songs of DIR, another kind of music read as a
  user's folder would be (`aerecon.evaluate data.root=DIR split=all`), which chose nothing.
- Each row states the code's size in numbers and in bits per segment (values as float32,
  positions at the bits they need), the parameters and the training time; the header, the machine.
- Writes DIR/table.md, table.csv and results.json (default experiments/results/realmusic/),
  and prints the table.
"""

import argparse
import csv
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

import aerecon
from aerecon.report import load_scalars, markdown_table, mean_and_interval

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import machine, real_music  # noqa: E402

# name -> overrides. Learned models get the time budget. The CPU sizes are the default ones of
# conf/model/fc.yaml and conv.yaml (the thesis shapes, scaled down) and conf/model_preset/realmusic_cpu/; the resconv
# runs share experiment=resconv_stft's sizes, batch and learning rate (resconv_mse_stft is that experiment).
RESCONV = [
    "model=resconv",
    "representation=raw",
    "data.batch_size=8",
    "optimizer.lr=2e-3",
]  # as experiment=resconv_stft
ENTRIES = {
    "lowpass": ["model=lowpass"],
    "fourier_topk": ["model=fourier_topk"],
    "fourier_sparse": ["model=fourier_sparse"],  # adaptive, not learned: each segment's own strongest bins
    "fc_thesis": ["model=fc", "optimizer.lr=1e-4"],  # the thesis's rate: 1e-3 collapses them to silence
    "conv_thesis": ["model=conv", "optimizer.lr=1e-4"],
    "resconv_mse": [*RESCONV, "loss=mse"],
    "resconv_mse_stft": ["experiment=resconv_stft", "data.split=folders"],  # experiment=best until sparseconv
    "resconv_vq": [*RESCONV, "loss=mse", "bottleneck=vq"],
    "sparseconv=best": ["experiment=best", "data.split=folders"],
    # the same model untrained (its MDCT start): what training adds. Adam's steps are about lr in size,
    # so at 1e-30 they are far below the float32 resolution of the weights, which stay as they start.
    "sparseconv_untrained": ["experiment=best", "data.split=folders", "optimizer.lr=1e-30", "trainer.max_epochs=1"],
    # the MDCT code that experiment=best used before runs: each segment's 1650 largest coefficients
    "sparseconv_topk_untrained": [
        "experiment=best",
        "data.split=folders",
        "model.net.select=topk",
        "optimizer.lr=1e-30",
        "trainer.max_epochs=1",
    ],
}
BASELINES = {"lowpass", "fourier_topk", "fourier_sparse", "sparseconv_untrained", "sparseconv_topk_untrained"}
# --full-size: the thesis shapes as published (for a GPU; no 8 GB budget check, the plan is still reported)
FULL_SIZE = {
    "fc_thesis": ["model.net.hidden=[9800,6500]", "budget_gb=null"],
    "conv_thesis": ["model.net.channels=[16,32,64]", "budget_gb=null"],
}
COLUMNS = [
    ("snr_db", "SNR dB"),
    ("si_sdr_db", "SI-SDR dB"),
    ("band_snr_db_low", "SNR <250 Hz"),
    ("band_snr_db_mid", "SNR 250-1000 Hz"),
    ("band_snr_db_high", "SNR >1000 Hz"),
    ("stft_distance", "MR-STFT dist."),
]


def run(args: list[str], log: Path) -> None:
    with log.open("w") as out:
        status = subprocess.run([sys.executable, *args], stdout=out, stderr=subprocess.STDOUT)
    if status.returncode:
        sys.exit(
            f"failed ({status.returncode}): python {' '.join(args)}\n--- last lines of {log}:\n"
            + "\n".join(log.read_text().splitlines()[-30:])
        )


def benchmark(
    name: str,
    overrides: list[str],
    data_root: Path,
    out: Path,
    minutes: float,
    accelerator: str,
    seed: int | None,
    second: Path | None,
) -> dict:
    job = out / "runs" / name.split("=")[0] / ("" if seed is None else f"seed{seed}")
    shutil.rmtree(job, ignore_errors=True)
    job.mkdir(parents=True)
    seconds = int(minutes * 60)
    budget = f"00:{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    train_overrides = [
        *overrides,
        f"data.root={data_root}",
        f"trainer.max_time={budget}",
        f"trainer.accelerator={accelerator}",
        "test=false",
        *([] if seed is None else [f"seed={seed}"]),
        f"hydra.run.dir={job}",
    ]
    if not overrides[0].startswith("experiment="):
        train_overrides.insert(0, "experiment=realmusic_cpu")
    start = time.time()
    run(["-m", "aerecon.train", *train_overrides], job / "train.log")
    train_seconds = time.time() - start
    results = json.loads((job / "results.json").read_text())
    plan = subprocess.run(
        [sys.executable, "-m", "aerecon.plan", *train_overrides[:-1], f"hydra.run.dir={job / 'plan'}"],
        capture_output=True,
        text=True,
    )
    planned = next(
        (float(line.split()[-2]) for line in plan.stdout.splitlines() if line.strip().startswith("total")), float("nan")
    )
    scores = {}
    sets = {"val": ["split=val"], "test": ["split=test"]}
    if second is not None:
        sets["second"] = [f"data.root={second}", "split=all"]
    for split, data in sets.items():
        run(
            [
                "-m",
                "aerecon.evaluate",
                f"ckpt_path={results['best_checkpoint']}",
                *data,
                "stitch.notches=2",
                "max_media_songs=1",
                f"hydra.run.dir={job / ('evaluate_' + split)}",
            ],
            job / f"evaluate_{split}.log",
        )
        scores[split] = json.loads((job / f"evaluate_{split}" / "metrics.json").read_text())["overall"]
    code = aerecon.load(results["best_checkpoint"], device="cpu")
    scalars = load_scalars(job)
    epoch_seconds = list(scalars.get("perf/epoch_seconds", {}).values())
    return {
        "name": name,
        "seed": seed,
        "overrides": overrides,
        "model": results["model"],
        "parameters": count_parameters(code.module),
        "code_numbers": code.latent_size,
        "code_bits": code.code_bits,
        "epochs": results["epochs"],
        "best_epoch": results["best_epoch"],
        "train_seconds": round(train_seconds),
        "seconds_per_epoch": sum(epoch_seconds) / len(epoch_seconds) if epoch_seconds else float("nan"),
        "planned_gib": planned,
        **scores,
    }


def count_parameters(model: torch.nn.Module) -> int:
    """Learned numbers: parameters, plus an EMA-updated VQ codebook (a buffer, but learned)."""
    codebook = getattr(model.bottleneck, "codebook", None)
    extra = codebook.numel() if codebook is not None and not isinstance(codebook, torch.nn.Parameter) else 0
    return sum(p.numel() for p in model.parameters()) + extra


def scored(rows: list[dict]) -> list[tuple[str, str, str]]:
    """(split, metric key, label) of the table's score columns."""
    second = [("second", key, f"2nd set {label}") for key, label in (COLUMNS[0], COLUMNS[-1])]
    return (
        [("val", key, f"val {label}") for key, label in COLUMNS]
        + [("test", key, f"test {label}") for key, label in (*COLUMNS[:2], COLUMNS[-1])]
        + (second if "second" in rows[0] else [])
    )


def table(rows: list[dict]) -> str:
    header = [
        "model",
        "seed",
        "params",
        "code numbers",
        "code bits",
        "train min",
        "s/epoch",
        "epochs",
        "planned GiB",
        *(label for _, _, label in scored(rows)),
    ]
    lines = [
        [
            r["name"],
            "-" if r["seed"] is None else str(r["seed"]),
            f"{r['parameters']:,}",
            str(r["code_numbers"]),
            f"{r['code_bits']:,}",
            f"{r['train_seconds'] / 60:.1f}",
            f"{r['seconds_per_epoch']:.0f}",
            str(r["epochs"]),
            f"{r['planned_gib']:.2f}",
            *(f"{r[split][key]:.2f}" for split, key, _ in scored(rows)),
        ]
        for r in rows
    ]
    return markdown_table(header, lines)


def seed_table(rows: list[dict]) -> str:
    """Each model trained over several seeds: mean and half-width of the 95% interval of every score."""
    names = [n for n in dict.fromkeys(r["name"] for r in rows) if sum(r["name"] == n for r in rows) > 1]
    if not names:
        return ""
    lines = []
    for name in names:
        runs = [r for r in rows if r["name"] == name]
        intervals = (mean_and_interval([r[split][key] for r in runs]) for split, key, _ in scored(rows))
        lines.append([name, str(len(runs)), *(f"{mean:.2f} ± {half:.2f}" for mean, half in intervals)])
    return markdown_table(["model", "seeds", *(label for _, _, label in scored(rows))], lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=6.0, help="training budget per learned model")
    parser.add_argument("--only", default=",".join(ENTRIES), help=f"comma-separated, from {','.join(ENTRIES)}")
    parser.add_argument("--out", type=Path, default=Path("experiments/results/realmusic"))
    parser.add_argument("--data", type=Path, default=Path("data/nexuiz"))
    parser.add_argument("--accelerator", default="cpu", help="cpu, gpu or auto (Lightning's trainer.accelerator)")
    parser.add_argument("--full-size", action="store_true", help="thesis-shaped models at their published size")
    parser.add_argument("--seeds", default=None, help="comma-separated seeds for the learned models, e.g. 0,1,2")
    parser.add_argument(
        "--second",
        type=Path,
        default=None,
        help="a second folder of music to score every model on, e.g. /usr/share/hyperrogue/music",
    )
    args = parser.parse_args()
    names = args.only.split(",")
    unknown = [n for n in names if n not in ENTRIES]
    if unknown:
        sys.exit(f"--only: unknown {unknown}; choose from {', '.join(ENTRIES)}")
    try:
        seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else [None]
    except ValueError:
        sys.exit(f"--seeds {args.seeds}: comma-separated integers, e.g. 0,1,2")
    if args.second is not None and not args.second.is_dir():
        sys.exit(
            f"--second {args.second}: not a folder (Debian: apt-get install hyperrogue-music, then "
            f"--second /usr/share/hyperrogue/music)"
        )
    data_root = real_music(args.data)
    args.out.mkdir(parents=True, exist_ok=True)
    rows, started = [], time.time()
    for name in names:
        minutes = 0.0 if name in BASELINES else args.minutes
        overrides = ENTRIES[name] + (FULL_SIZE.get(name, []) if args.full_size else [])
        for seed in [None] if name in BASELINES else seeds:
            print(
                f"[{time.time() - started:6.0f} s] {name}{'' if seed is None else f' seed={seed}'}: "
                f"{' '.join(ENTRIES[name])}",
                flush=True,
            )
            rows.append(
                benchmark(name, overrides, data_root, args.out, minutes or 30.0, args.accelerator, seed, args.second)
            )
            print(
                f"         val SNR {rows[-1]['val']['snr_db']:.2f} dB, test SNR {rows[-1]['test']['snr_db']:.2f} dB",
                flush=True,
            )
    total = time.time() - started
    options = [
        f"--minutes {args.minutes:g}",
        f"--accelerator {args.accelerator}",
        *(["--full-size"] if args.full_size else []),
        *([] if names == list(ENTRIES) else [f"--only {args.only}"]),
        *([f"--seeds {args.seeds}"] if args.seeds else []),
        *([f"--second {args.second}"] if args.second else []),
        *([] if args.out == Path("experiments/results/realmusic") else [f"--out {args.out}"]),
    ]
    over_seeds = seed_table(rows)
    data = f"nexuiz-music{f' (second set: {args.second})' if args.second else ''}"
    text = (
        f"{data}, {machine('cuda' if args.accelerator == 'gpu' else 'cpu')}, accelerator={args.accelerator}, "
        f"{args.minutes:g} min per learned model, {total / 60:.0f} min in all: "
        f"`python experiments/benchmark_realmusic.py {' '.join(options)}`\n\n"
        + table(rows)
        + "\n"
        + (f"\nOver seeds (mean ± half-width of the 95% interval):\n\n{over_seeds}\n" if over_seeds else "")
    )
    (args.out / "table.md").write_text(text)
    (args.out / "results.json").write_text(json.dumps(rows, indent=2))
    with (args.out / "table.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        splits = [split for split in ("val", "test", "second") if split in rows[0]]
        writer.writerow(
            [
                "name",
                "seed",
                "parameters",
                "code_numbers",
                "code_bits",
                "train_seconds",
                "seconds_per_epoch",
                "epochs",
                "planned_gib",
                *(f"{split}_{key}" for split in splits for key, _ in COLUMNS),
            ]
        )
        for r in rows:
            writer.writerow(
                [
                    r["name"],
                    r["seed"],
                    r["parameters"],
                    r["code_numbers"],
                    r["code_bits"],
                    r["train_seconds"],
                    r["seconds_per_epoch"],
                    r["epochs"],
                    r["planned_gib"],
                    *(r[split][key] for split in splits for key, _ in COLUMNS),
                ]
            )
    print("\n" + text)


if __name__ == "__main__":
    main()
