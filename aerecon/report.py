"""Sweep report: `python -m aerecon.report DIR` / `aerecon-report DIR`.

Reads the TensorBoard logs of a run folder or of every run under a multirun folder and writes
into DIR: report.md (a summary, then per run the thesis's Tables 1 and 2: epochs 0, 4, 9,
the best, every 25th and the last), report.csv (the same rows with a run column) and
val_loss.png (validation loss against epoch for all runs, the thesis's Figure 10). Runs that
differ only in `seed` (a sweep over seed=0,1,2) are also reported together: each metric as the
mean and 95% confidence interval over the seeds, in report.md and seeds.csv.
"""

import argparse
import csv
import io
import json
import math
import statistics
import sys
from pathlib import Path

import yaml
from matplotlib.figure import Figure
from scipy import stats
from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

from aerecon.utils.errors import AereconError, exit_on_user_error, sigterm_stops
from aerecon.utils.files import atomic_write

COLUMNS = {  # TensorBoard tag -> column
    "val/loss": "val loss",
    "val/mse": "MSE",
    "val/mae": "MAE",
    "val/rmse": "RMSE",
    "val/snr_db": "SNR (dB)",
    "perf/epoch_seconds": "s/epoch",
    "perf/peak_cuda_gb": "peak CUDA (GiB)",
    "perf/peak_rss_gb": "peak RSS (GiB)",
}
THESIS_EPOCHS = (0, 4, 9)
TEST_KEYS = {"test SNR (dB)": "snr_db", "test MSE": "mse"}
SEED_COLUMNS = ["val loss", "MSE", "MAE", "RMSE", "SNR (dB)", *TEST_KEYS]


class ReportError(AereconError):
    pass


def find_runs(root: Path) -> list[Path]:
    """Folders holding a `tensorboard/` folder with event files: root itself or any below it."""
    runs = {events.parent.parent for events in root.rglob("tensorboard/events.out.tfevents.*")}
    return sorted(runs)


def load_scalars(run: Path) -> dict[str, dict[int, float]]:
    """tag -> {epoch: value} for every epoch-level scalar (a resumed run's later values win)."""
    accumulator = EventAccumulator(str(run / "tensorboard"), size_guidance={SCALARS: 0})
    accumulator.Reload()
    tags = set(accumulator.Tags()[SCALARS])
    if "epoch" not in tags:
        return {}
    epoch_at = {e.step: int(e.value) for e in accumulator.Scalars("epoch")}
    return {
        tag: {epoch_at[e.step]: e.value for e in accumulator.Scalars(tag) if e.step in epoch_at}
        for tag in COLUMNS
        if tag in tags
    }


def run_name(run: Path, root: Path) -> str:
    return run.name if run == root else str(run.relative_to(root))


def model_name(run: Path) -> str:
    results = run / "results.json"
    if not results.is_file():
        return "?"
    try:
        return json.loads(results.read_text()).get("model", "?")
    except (ValueError, AttributeError, UnicodeDecodeError):
        print(f"aerecon: warning: {results} is not the JSON a run writes; its model is shown as ?", file=sys.stderr)
        return "?"


def run_setting(run: Path) -> tuple[str, str | None]:
    """(what the run was asked for apart from its seed, its seed), from Hydra's record of its overrides;
    a run without that record is a setting of its own."""
    record = run / ".hydra" / "overrides.yaml"
    try:
        overrides = yaml.safe_load(record.read_text()) if record.is_file() else None
    except (OSError, yaml.YAMLError):
        overrides = None
    if not isinstance(overrides, list):
        return str(run), None
    seed = next((o.split("=", 1)[1] for o in overrides if o.startswith("seed=")), None)
    kept = [o for o in overrides if not o.startswith(("seed=", "ckpt_path=", "hydra.", "paths."))]
    return " ".join(sorted(kept)) or "(defaults)", seed


def run_test_metrics(run: Path) -> dict[str, float]:
    results = run / "results.json"
    try:
        test = json.loads(results.read_text()).get("test") or {} if results.is_file() else {}
    except (ValueError, AttributeError, UnicodeDecodeError):
        return {}
    return {k: v for k, v in test.items() if isinstance(v, (int, float))}


def mean_and_interval(values: list[float]) -> tuple[float, float]:
    """(mean, half-width of its 95% confidence interval, Student's t over len(values) - 1 degrees of freedom)."""
    mean = statistics.fmean(values)
    half = stats.t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return mean, float(half)


def over_seeds(report: dict) -> list[dict]:
    """Runs of one setting with different seeds (at least two): every metric at their best epochs, and
    their test metrics, as the mean and 95% interval over the seeds."""
    groups: dict[str, list[str]] = {}
    for name, run in report.items():
        if run["seed"] is not None:
            groups.setdefault(run["setting"], []).append(name)
    rows = []
    for setting, names in groups.items():
        seeds = sorted({report[n]["seed"] for n in names})
        if len(names) < 2 or len(seeds) < len(names):
            continue
        metrics = {}
        for column in SEED_COLUMNS:
            values = [value for n in names if (value := best_value(report[n], column)) is not None]
            if len(values) == len(names):
                metrics[column] = mean_and_interval(values)
        rows.append(
            {"setting": setting, "model": report[names[0]]["model"], "seeds": seeds, "runs": names, "metrics": metrics}
        )
    return rows


def best_value(run: dict, column: str) -> float | None:
    if column.startswith("test "):
        return run["test"].get(f"test/{TEST_KEYS[column]}")
    best = next((r for r in run["rows"] if r["best"]), {})
    return best.get(column)


def table_epochs(epochs: list[int], best: int) -> list[int]:
    """The thesis's rows: epochs 0, 4, 9, the best, then every 25th epoch, and the last one."""
    chosen = {e for e in THESIS_EPOCHS if e in epochs} | {best, epochs[-1]}
    chosen |= {e for e in epochs if (e + 1) % 25 == 0}
    return sorted(chosen)


def run_rows(scalars: dict[str, dict[int, float]]) -> tuple[list[dict], int | None]:
    losses = scalars.get("val/loss", {})
    if not losses:
        return [], None
    epochs = sorted(losses)
    best = min(epochs, key=lambda e: losses[e])
    rows = []
    for epoch in table_epochs(epochs, best):
        row = {"epoch": epoch, "best": epoch == best}
        row.update({column: scalars.get(tag, {}).get(epoch) for tag, column in COLUMNS.items()})
        rows.append(row)
    return rows, best


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.4e}"
    return str(value)


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def build_report(root: Path) -> dict:
    runs = find_runs(root)
    if not runs:
        raise ReportError(
            f"No TensorBoard logs (tensorboard/events.out.tfevents.*) under {root}; "
            "give a run folder or a multirun folder, e.g. logs/train/multiruns/<time>"
        )
    report = {}
    for run in runs:
        scalars = load_scalars(run)
        if not scalars.get("val/loss"):
            print(
                f"aerecon: warning: {run / 'tensorboard'} holds no val/loss: the run stopped before its first "
                f"validation, or its event files are damaged",
                file=sys.stderr,
            )
        rows, best = run_rows(scalars)
        seconds = list(scalars.get("perf/epoch_seconds", {}).values())
        peak = scalars.get("perf/peak_cuda_gb") or scalars.get("perf/peak_rss_gb") or {}
        setting, seed = run_setting(run)
        report[run_name(run, root)] = {
            "model": model_name(run),
            "rows": rows,
            "best": best,
            "losses": scalars.get("val/loss", {}),
            "setting": setting,
            "seed": seed,
            "test": run_test_metrics(run),
            "epochs": len(scalars.get("val/loss", {})),
            "median_epoch_seconds": statistics.median(seconds) if seconds else None,
            "peak_gb": max(peak.values()) if peak else None,
            "peak_kind": "CUDA" if scalars.get("perf/peak_cuda_gb") else "RSS",
        }
    return report


SUMMARY_COLUMNS = [
    "run",
    "model",
    "epochs",
    "best epoch",
    "val loss",
    "MSE",
    "MAE",
    "RMSE",
    "SNR (dB)",
    "s/epoch (median)",
    "peak memory",
]


def render_markdown(report: dict) -> str:
    parts = [
        "# Sweep report",
        "",
        "Validation metrics at the best epoch (lowest val loss); MSE, MAE, RMSE and SNR on the waveform, "
        "val loss in the representation domain; peak memory in GiB.",
        "",
        markdown_table(SUMMARY_COLUMNS, [_summary_row(name, run) for name, run in report.items()]),
    ]
    parts += _seed_section(over_seeds(report))
    for name, run in report.items():
        columns = [c for c in COLUMNS.values() if any(r[c] is not None for r in run["rows"])]
        rows = [[f"{r['epoch']} (best)" if r["best"] else r["epoch"], *(r[c] for c in columns)] for r in run["rows"]]
        parts += ["", f"## {name} ({run['model']})", "", markdown_table(["epoch", *columns], rows)]
    return "\n".join(parts) + "\n"


def _summary_row(name: str, run: dict) -> list:
    """One run's line of the summary (SUMMARY_COLUMNS): its metrics at the best epoch."""
    best = next((r for r in run["rows"] if r["best"]), {})
    peak = None if run["peak_gb"] is None else f"{run['peak_gb']:.2f} {run['peak_kind']}"
    metrics = [best.get(c) for c in ("val loss", "MSE", "MAE", "RMSE", "SNR (dB)")]
    return [name, run["model"], run["epochs"], run["best"], *metrics, run["median_epoch_seconds"], peak]


def _seed_section(seeded: list[dict]) -> list[str]:
    if not seeded:
        return []
    columns = [c for c in SEED_COLUMNS if any(c in row["metrics"] for row in seeded)]
    rows = [
        [row["setting"], row["model"], len(row["seeds"]), *(_interval(row["metrics"].get(c)) for c in columns)]
        for row in seeded
    ]
    return [
        "",
        "## Over seeds",
        "",
        "Runs that differ only in `seed`: the mean and the half-width of its 95% confidence interval "
        "(Student's t) at each run's best epoch, and on the test split. Two settings differ beyond "
        "noise where their intervals do not overlap.",
        "",
        markdown_table(["setting", "model", "seeds", *columns], rows),
    ]


def _interval(value: tuple[float, float] | None) -> str:
    return "-" if value is None else f"{_fmt(value[0])} ± {_fmt(value[1])}"


def render_seeds_csv(report: dict) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["setting", "model", "seeds", "metric", "mean", "ci95_half_width", "runs"])
    for row in over_seeds(report):
        for column, (mean, half) in row["metrics"].items():
            writer.writerow(
                [row["setting"], row["model"], len(row["seeds"]), column, mean, half, " ".join(row["runs"])]
            )
    return buffer.getvalue()


def render_csv(report: dict) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["run", "model", "epoch", "best", *COLUMNS.values()])
    for name, run in report.items():
        for row in run["rows"]:
            writer.writerow([name, run["model"], row["epoch"], row["best"], *(row[c] for c in COLUMNS.values())])
    return buffer.getvalue()


def loss_figure(report: dict) -> Figure:
    fig = Figure(figsize=(8, 4.5), layout="constrained")
    ax = fig.add_subplot()
    for name, run in report.items():
        epochs = sorted(run["losses"])
        ax.plot(
            epochs,
            [run["losses"][e] for e in epochs],
            marker="." if len(epochs) < 40 else None,
            label=f"{name} ({run['model']})",
        )
    ax.set(xlabel="epoch", ylabel="validation loss", yscale="log", title="Validation loss")
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


WRITES = ("report.md", "report.csv", "val_loss.png", "seeds.csv")


def check_own(out: Path) -> None:
    """Refuses a folder holding a report file that aerecon-report did not write: its report.md
    begins with its title, and the other files come with it."""
    present = [name for name in WRITES if (out / name).exists()]
    ours = (out / "report.md").is_file() and (out / "report.md").read_bytes().startswith(b"# Sweep report")
    if present and not ours:
        raise ReportError(
            f"{out} holds {', '.join(present)}, which aerecon-report did not write; it replaces only its "
            f"own reports: name another folder with --out DIR"
        )


def write_report(root: Path, out: Path | None = None) -> dict:
    root = Path(root).expanduser()
    out = Path(out).expanduser() if out else root
    report = build_report(root)
    if out.exists() and not out.is_dir():
        raise ReportError(f"--out {out} is a file; name a folder for report.md, report.csv and val_loss.png")
    check_own(out)
    out.mkdir(parents=True, exist_ok=True)
    markdown = render_markdown(report)
    atomic_write(out / "report.md", lambda f: f.write(markdown.encode()))
    atomic_write(out / "report.csv", lambda f: f.write(render_csv(report).encode()))
    png = io.BytesIO()
    loss_figure(report).savefig(png, format="png", dpi=110)
    atomic_write(out / "val_loss.png", lambda f: f.write(png.getvalue()))
    files = [out / "report.md", out / "report.csv", out / "val_loss.png"]
    if over_seeds(report):
        atomic_write(out / "seeds.csv", lambda f: f.write(render_seeds_csv(report).encode()))
        files.append(out / "seeds.csv")
    return {"runs": report, "markdown": markdown, "files": files}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="aerecon-report", description=__doc__.split("\n\n")[1])
    parser.add_argument("dir", type=Path, help="a run folder or a multirun folder (logs/train/multiruns/<time>)")
    parser.add_argument("--out", type=Path, default=None, help="where to write the report (default: DIR)")
    args = parser.parse_args(argv)
    if not args.dir.expanduser().is_dir():
        parser.exit(2, f"aerecon: error: {args.dir} is not a folder\n")
    with exit_on_user_error(), sigterm_stops(lambda: "while writing the report; every file written is complete"):
        try:
            written = write_report(args.dir, args.out)
        except ReportError as error:
            parser.exit(2, f"aerecon: error: {error}\n")
        except OSError as error:  # a full disk, or a folder the user may not write: each file is whole or absent
            parser.exit(
                2,
                f"aerecon: error: cannot write {error.filename or args.out or args.dir} "
                f"({error.strerror or error}); every file written is complete\n",
            )
    print(written["markdown"])
    print("Wrote " + ", ".join(str(p) for p in written["files"]))


if __name__ == "__main__":
    main(sys.argv[1:])
