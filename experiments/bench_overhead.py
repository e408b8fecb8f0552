"""Framework overhead: aerecon's training against a bare PyTorch loop doing the same work.

    python experiments/bench_overhead.py [--steps N] [--repeats 9] [--models resconv_stft,best,fixed_cost]
        [--device cpu]

- aerecon: the run `aerecon-train experiment=resconv_stft ...` (or best, ...) assembles
  (aerecon.train.assemble: the config's trainer, callbacks, TensorBoard logger, checkpoint IO),
  fitted for --steps optimizer steps (default per model: 40 for resconv_stft, 600 for best, 2000 for
  fixed_cost, best's configuration at almost no compute: what each loop costs per step),
  with validation and checkpointing off (they are per-epoch work a bare loop would do too);
  timed from `trainer.fit` to its return, so Lightning's start-up counts.
- bare: the same model class (same seed, so the same initial weights), the same DataModule
  loader (same batches in the same order), the same optimizer from the model's
  `configure_optimizers`, and the same loss its `training_step` computes, without logging
  (bench_common.bare_loss): zero_grad, loss, backward, step, --steps times.
- lightning: Lightning's own floor, for reference: the same module and DataModule in a plain
  `L.Trainer` with every feature off (no logger, callbacks, progress bar or model summary).
- The three take turns (the order reversed on odd repeats); the figures are medians over
  repeats of each repeat's ratios and per-step differences. Target: aerecon / lightning at most
  1.05 (Lightning's own loop, lightning / bare, is not aerecon's to shorten).
- Writes experiments/results/bench_overhead.md and prints it.
"""

import argparse
import functools
import statistics
import sys
import tempfile
import time
from pathlib import Path

import lightning as L
import torch

from aerecon.train import assemble
from aerecon.utils.config import build, compose_train

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import bare_loss, bare_optimizer, machine, publish, real_music  # noqa: E402

# name: (overrides, default steps): runs of several seconds each, long enough that Lightning's
# start-up weighs little, short enough for many alternating repeats on a noisy machine
MODELS = {
    "resconv_stft": (["experiment=resconv_stft"], 40),
    "best": (["experiment=best"], 600),
    # best's configuration on 2 x 1000-sample segments (a 10-channel filterbank): almost no compute,
    # so the run measures what each loop itself costs per step
    "fixed_cost": (
        [
            "experiment=best",
            "data.sample_rate=2000",
            "data.segment_seconds=0.5",
            "data.batch_size=2",
            "model.net.hop=10",
            "model.net.latent=20",
            "model.net.select=topk",
        ],
        2000,
    ),
    "demo_fc": (["experiment=demo", "model=fc", "data=folder"], 300),
}


def config(name: str, root: Path, work: Path, steps: int, device: str, *more: str):
    return compose_train(
        [
            *MODELS[name][0],
            f"data.root={root}",
            "data.split=folders",
            f"paths.cache_dir={work / 'cache'}",
            f"paths.run_dir={work / 'run'}",
            f"+trainer.max_steps={steps}",
            "+trainer.limit_val_batches=0",
            "+trainer.num_sanity_val_steps=0",
            "+trainer.enable_checkpointing=false",
            "callbacks.model_checkpoint=null",
            "callbacks.early_stopping=null",
            "callbacks.reconstruction_preview=null",
            f"trainer.accelerator={'gpu' if device.startswith('cuda') else 'cpu'}",
            *more,
        ]
    )


def fit_seconds(trainer: L.Trainer, model, datamodule) -> float:
    started = time.perf_counter()
    trainer.fit(model, datamodule=datamodule)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - started
    assert trainer.global_step == trainer.max_steps, trainer.global_step
    return elapsed


def time_aerecon(cfg) -> float:
    run = assemble(cfg)
    return fit_seconds(run.trainer, run.model, run.datamodule)


def time_lightning(cfg, *callbacks: L.Callback) -> float:
    L.seed_everything(cfg.seed, workers=True)
    datamodule, model = build(cfg.data), build(cfg.model)
    datamodule.prepare_data()
    trainer = L.Trainer(
        accelerator=cfg.trainer.accelerator,
        devices=1,
        precision=cfg.trainer.precision,
        max_steps=cfg.trainer.max_steps,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=list(callbacks),
    )
    return fit_seconds(trainer, model, datamodule)


def time_bare(cfg, device: str) -> float:
    L.seed_everything(cfg.seed, workers=True)
    datamodule = build(cfg.data)
    model = build(cfg.model).to(device)
    datamodule.prepare_data()
    datamodule.setup("fit")
    started = time.perf_counter()
    optimizer = bare_optimizer(model)  # inside the timing, as Lightning's fit builds its optimizer
    model.train()
    loader, step, epoch = datamodule.train_dataloader(), 0, 0
    while step < cfg.trainer.max_steps:  # as many epochs as the steps take, like Lightning
        loader.sampler.set_epoch(epoch)
        for wave in loader:
            optimizer.zero_grad(set_to_none=True)
            bare_loss(model, wave.to(device, non_blocking=True)).backward()
            optimizer.step()
            step += 1
            if step == cfg.trainer.max_steps:
                break
        epoch += 1
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - started


def breakdown(name: str, make_cfg, repeats: int) -> list[str]:
    """Where the fixed per-step costs go, from runs of `name` (fixed_cost: almost no compute)."""
    cfg = make_cfg()
    steps = cfg.trainer.max_steps
    empty = [L.Callback() for _ in range(9)]
    pairs = {"callbacks": [], "logging": []}
    for _ in range(repeats):
        pairs["callbacks"].append((time_lightning(cfg, *empty), time_lightning(cfg)))
        pairs["logging"].append(
            (
                time_aerecon(make_cfg("trainer.log_every_n_steps=1")),
                time_aerecon(make_cfg(f"trainer.log_every_n_steps={steps + 1}")),
            )
        )

    def per_step(which: str, per: int = 1) -> float:  # us
        return statistics.median((a - b) / steps / per * 1e6 for a, b in pairs[which])

    return [
        "",
        f"Where the fixed costs go ({name}; medians of {repeats} pairs of runs):",
        "",
        f"- each callback, even one that does nothing: {per_step('callbacks', len(empty)):.1f} us a step "
        f"(a plain Trainer with {len(empty)} empty callbacks against none)",
        f"- a logged step: {per_step('logging'):,.0f} us more than another (aerecon logging every step against never)",
    ]


def fresh_aerecon(name: str, root: Path, work: Path, steps: int, device: str) -> float:
    return time_aerecon(config(name, root, work, steps, device))


def ratios(a: list[float], b: list[float]) -> list[float]:
    return [x / y for x, y in zip(a, b)]


def cost(a: list[float], b: list[float], steps: int) -> float:
    """a's extra time per step over b's, in microseconds (the median over repeats)."""
    return statistics.median((x - y) / steps * 1e6 for x, y in zip(a, b))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("data/nexuiz"))
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps per run (default: per model)")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument(
        "--models", default="resconv_stft,best,fixed_cost", help=f"comma-separated, from {','.join(MODELS)}"
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=Path("experiments/results/bench_overhead.md"))
    args = parser.parse_args()
    root = real_music(args.data)
    lines = [
        f"`python experiments/bench_overhead.py{f' --steps {args.steps}' if args.steps else ''} "
        f"--repeats {args.repeats} "
        f"--models {args.models} --device {args.device}`, {machine(args.device)}",
        "",
        "| model | steps | bare ms/step | Lightning's cost, us/step | aerecon's on top, us/step | "
        "lightning / bare | **aerecon / lightning** (range) | aerecon / bare |",
        "|---|---|---|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as work:
        for name in args.models.split(","):
            steps = args.steps or MODELS[name][1]
            cfg = config(name, root, Path(work), steps, args.device)
            time_bare(cfg, args.device)  # warm-up: builds the cache, loads libraries
            runs = {
                "bare": functools.partial(time_bare, cfg, args.device),
                "lightning": functools.partial(time_lightning, cfg),
                "aerecon": functools.partial(fresh_aerecon, name, root, Path(work), steps, args.device),
            }
            times = {which: [] for which in runs}
            for repeat in range(args.repeats):
                for which in list(runs) if repeat % 2 == 0 else list(runs)[::-1]:
                    times[which].append(runs[which]())
                print(
                    f"{name} repeat {repeat}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()), flush=True
                )
            ours = ratios(times["aerecon"], times["lightning"])
            lines.append(
                f"| {name} | {steps} | {statistics.median(times['bare']) / steps * 1e3:.2f} | "
                f"{cost(times['lightning'], times['bare'], steps):,.0f} | "
                f"{cost(times['aerecon'], times['lightning'], steps):,.0f} | "
                f"{statistics.median(ratios(times['lightning'], times['bare'])):.3f} | "
                f"**{statistics.median(ours):.3f}** ({min(ours):.2f}-{max(ours):.2f}) | "
                f"{statistics.median(ratios(times['aerecon'], times['bare'])):.3f} |"
            )
        lines += [
            "",
            "Per-step figures and ratios are medians over the repeats of each repeat's own figure. "
            "Target: aerecon / lightning at most 1.05.",
        ]
        if "fixed_cost" in args.models.split(","):
            steps = args.steps or MODELS["fixed_cost"][1]
            lines += breakdown(
                "fixed_cost",
                lambda *more: config("fixed_cost", root, Path(work), steps, args.device, *more),
                args.repeats,
            )
    publish(lines, args.out)


if __name__ == "__main__":
    main()
