"""Real-music benchmark: every model family on Debian's nexuiz-music, at the thesis's settings.

    python experiments/benchmark_realmusic.py [--minutes 7] [--only NAME,...] [--out DIR] [--accelerator cpu]
    make bench                                    # the same, with the defaults

- Data: the 17 Ogg Vorbis tracks (83 minutes of electronic music) inside
  /usr/share/games/nexuiz/data/music.pk3 (a zip), installed with `apt-get install
  nexuiz-music` if missing; `thunder.ogg` (a sound effect) is left out. They are extracted
  once to data/nexuiz/{train,val,test}/ and split by song (`data.split=folders`): the
  val and test songs are fixed below, the other 13 train.
- Settings: 4410 Hz, 3 s segments (13230 samples), latent 3300 numbers for every model.
- Every learned model trains for the same wall-clock budget (`--minutes`, Lightning's
  `trainer.max_time`) with early stopping at patience 50; then its best checkpoint is scored
  by `aerecon.evaluate` on whole validation songs and on the test songs, which no model saw
  in training or model selection (stitching: notched, `stitch.notches=2`, 4 passes per sample).
- Writes DIR/table.md, table.csv and results.json (default experiments/results/realmusic/),
  and prints the table.
"""

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import torch

from aerecon.report import load_scalars, markdown_table

PK3 = Path("/usr/share/games/nexuiz/data/music.pk3")
SKIP = {"thunder.ogg"}  # a 48 s thunder sound effect, not music
# Chosen by hand among the shorter tracks, so that evaluation stays quick; the rest train.
SPLIT = {"val": ["beast-of-insanity.ogg", "stairs.ogg"], "test": ["brokenlight.ogg", "desert3.ogg"]}

# name -> overrides. Learned models get the time budget. The CPU sizes are the default ones of
# conf/model/fc.yaml and conv.yaml (the thesis shapes, scaled down) and conf/model_preset/realmusic_cpu/; the resconv
# runs share experiment=resconv_stft's sizes, batch and learning rate (resconv_mse_stft is that experiment).
RESCONV = ["model=resconv", "representation=raw", "data.batch_size=8", "optimizer.lr=2e-3"]  # as experiment=resconv_stft
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
    # the same model untrained (its MDCT start): what training adds
    "sparseconv_untrained": ["experiment=best", "data.split=folders", "optimizer.lr=0", "trainer.max_epochs=1"],
}
BASELINES = {"lowpass", "fourier_topk", "fourier_sparse", "sparseconv_untrained"}
# --full-size: the thesis shapes as published (for a GPU; no 8 GB budget check, the plan is still reported)
FULL_SIZE = {"fc_thesis": ["model.net.hidden=[9800,6500]", "budget_gb=null"],
             "conv_thesis": ["model.net.channels=[16,32,64]", "budget_gb=null"]}
COLUMNS = [("snr_db", "SNR dB"), ("si_sdr_db", "SI-SDR dB"), ("band_snr_db_low", "SNR <250 Hz"),
           ("band_snr_db_mid", "SNR 250-1000 Hz"), ("band_snr_db_high", "SNR >1000 Hz"),
           ("stft_distance", "MR-STFT dist.")]


def obtain_pk3() -> Path:
    if PK3.is_file():
        return PK3
    command = ["apt-get", "install", "-y", "-q", "nexuiz-music"]
    if os.geteuid() != 0:
        command = ["sudo", *command]
    print(f"{PK3} is missing: {' '.join(command)}", flush=True)
    try:
        subprocess.run(command, check=True)
    except (OSError, subprocess.CalledProcessError) as error:
        sys.exit(f"Could not install nexuiz-music ({error}). Install it with your package manager "
                 f"(Debian/Ubuntu: sudo apt-get install nexuiz-music) and run again.")
    return PK3


def extract(pk3: Path, root: Path) -> Path:
    """The tracks as root/{train,val,test}/NAME.ogg; written beside and renamed, so a partial copy never counts."""
    if (root / ".complete").is_file():
        return root
    partial = root.with_name(root.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    split_of = {name: split for split, names in SPLIT.items() for name in names}
    with zipfile.ZipFile(pk3) as archive:
        for member in archive.namelist():
            name = Path(member).name
            if not name.endswith(".ogg") or name in SKIP:
                continue
            target = partial / split_of.get(name, "train") / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive.read(member))
    (partial / ".complete").write_text("extracted from " + str(pk3))
    shutil.rmtree(root, ignore_errors=True)
    partial.rename(root)
    return root


def run(args: list[str], log: Path) -> None:
    with log.open("w") as out:
        status = subprocess.run([sys.executable, *args], stdout=out, stderr=subprocess.STDOUT)
    if status.returncode:
        sys.exit(f"failed ({status.returncode}): python {' '.join(args)}\n--- last lines of {log}:\n"
                 + "\n".join(log.read_text().splitlines()[-30:]))


def benchmark(name: str, overrides: list[str], data_root: Path, out: Path, minutes: float, accelerator: str) -> dict:
    job = out / "runs" / name.split("=")[0]
    shutil.rmtree(job, ignore_errors=True)
    job.mkdir(parents=True)
    seconds = int(minutes * 60)
    budget = f"00:{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    train_overrides = [*overrides, f"data.root={data_root}",
                       f"trainer.max_time={budget}", f"trainer.accelerator={accelerator}", "test=false",
                       f"hydra.run.dir={job}"]
    if not overrides[0].startswith("experiment="):
        train_overrides.insert(0, "experiment=realmusic_cpu")
    start = time.time()
    run(["-m", "aerecon.train", *train_overrides], job / "train.log")
    train_seconds = time.time() - start
    results = json.loads((job / "results.json").read_text())
    plan = subprocess.run([sys.executable, "-m", "aerecon.plan", *train_overrides[:-1], f"hydra.run.dir={job / 'plan'}"],
                          capture_output=True, text=True)
    planned = next((float(line.split()[-2]) for line in plan.stdout.splitlines()
                    if line.strip().startswith("total")), float("nan"))
    scores = {}
    for split in ("val", "test"):
        run(["-m", "aerecon.evaluate", f"ckpt_path={results['best_checkpoint']}", f"split={split}",
             "stitch.notches=2", "max_media_songs=1", f"hydra.run.dir={job / ('evaluate_' + split)}"],
            job / f"evaluate_{split}.log")
        scores[split] = json.loads((job / f"evaluate_{split}" / "metrics.json").read_text())["overall"]
    scalars = load_scalars(job)
    epoch_seconds = list(scalars.get("perf/epoch_seconds", {}).values())
    return {
        "name": name, "overrides": overrides, "model": results["model"],
        "parameters": count_parameters(results["best_checkpoint"]),
        "epochs": results["epochs"], "best_epoch": results["best_epoch"], "train_seconds": round(train_seconds),
        "seconds_per_epoch": sum(epoch_seconds) / len(epoch_seconds) if epoch_seconds else float("nan"),
        "planned_gib": planned, "val": scores["val"], "test": scores["test"],
    }


def count_parameters(checkpoint: str) -> int:
    """Learned numbers: parameters, plus an EMA-updated VQ codebook (a buffer, but learned)."""
    from aerecon.checkpoint import load_model

    model, _ = load_model(checkpoint)
    codebook = getattr(model.bottleneck, "codebook", None)
    extra = codebook.numel() if codebook is not None and not isinstance(codebook, torch.nn.Parameter) else 0
    return sum(p.numel() for p in model.parameters()) + extra


def table(rows: list[dict]) -> str:
    header = ["model", "params", "s/epoch", "epochs", "planned GiB"] + \
             [f"val {label}" for _, label in COLUMNS] + [f"test {label}" for _, label in COLUMNS[:2]]
    lines = [[r["name"], f"{r['parameters']:,}", f"{r['seconds_per_epoch']:.0f}", str(r["epochs"]),
              f"{r['planned_gib']:.2f}",
              *(f"{r['val'][key]:.2f}" for key, _ in COLUMNS), *(f"{r['test'][key]:.2f}" for key, _ in COLUMNS[:2])]
             for r in rows]
    return markdown_table(header, lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=6.0, help="training budget per learned model")
    parser.add_argument("--only", default=",".join(ENTRIES), help=f"comma-separated, from {','.join(ENTRIES)}")
    parser.add_argument("--out", type=Path, default=Path("experiments/results/realmusic"))
    parser.add_argument("--data", type=Path, default=Path("data/nexuiz"))
    parser.add_argument("--accelerator", default="cpu", help="cpu, gpu or auto (Lightning's trainer.accelerator)")
    parser.add_argument("--full-size", action="store_true", help="thesis-shaped models at their published size")
    args = parser.parse_args()
    names = args.only.split(",")
    unknown = [n for n in names if n not in ENTRIES]
    if unknown:
        sys.exit(f"--only: unknown {unknown}; choose from {', '.join(ENTRIES)}")
    data_root = extract(obtain_pk3(), args.data).resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    rows, started = [], time.time()
    for name in names:
        minutes = 0.0 if name in BASELINES else args.minutes
        print(f"[{time.time() - started:6.0f} s] {name}: {' '.join(ENTRIES[name])}", flush=True)
        overrides = ENTRIES[name] + (FULL_SIZE.get(name, []) if args.full_size else [])
        rows.append(benchmark(name, overrides, data_root, args.out, minutes or 30.0, args.accelerator))
        print(f"         val SNR {rows[-1]['val']['snr_db']:.2f} dB, test SNR {rows[-1]['test']['snr_db']:.2f} dB", flush=True)
    total = time.time() - started
    text = (f"nexuiz-music, {time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPU cores, accelerator={args.accelerator}, "
            f"{args.minutes:g} min per learned model, {total / 60:.0f} min in all: "
            f"`python experiments/benchmark_realmusic.py --minutes {args.minutes:g} --accelerator {args.accelerator}"
            f"{' --full-size' if args.full_size else ''}{'' if names == list(ENTRIES) else ' --only ' + args.only}"
            f"{'' if args.out == Path('experiments/results/realmusic') else f' --out {args.out}'}`\n\n"
            + table(rows) + "\n")
    (args.out / "table.md").write_text(text)
    (args.out / "results.json").write_text(json.dumps(rows, indent=2))
    with (args.out / "table.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["name", "parameters", "seconds_per_epoch", "epochs", "planned_gib",
                         *(f"{split}_{key}" for split in ("val", "test") for key, _ in COLUMNS)])
        for r in rows:
            writer.writerow([r["name"], r["parameters"], r["seconds_per_epoch"], r["epochs"], r["planned_gib"],
                             *(r[split][key] for split in ("val", "test") for key, _ in COLUMNS)])
    print("\n" + text)


if __name__ == "__main__":
    main()
