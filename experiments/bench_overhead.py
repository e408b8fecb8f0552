"""Framework overhead: aerecon's training against a bare PyTorch loop doing the same work.

    python experiments/bench_overhead.py [--steps N] [--repeats 5] [--models resconv_stft,best] [--device cpu]

- aerecon: the run `aerecon-train experiment=resconv_stft ...` (or best, ...) assembles
  (aerecon.train.assemble: the config's trainer, callbacks, TensorBoard logger, checkpoint IO),
  fitted for --steps optimizer steps (default per model: 60 for resconv_stft, 1200 for best),
  with validation and checkpointing off (they are per-epoch work a bare loop would do too);
  timed from `trainer.fit` to its return, so Lightning's start-up counts.
- bare: the same model class (same seed, so the same initial weights), the same DataModule
  loader (same batches in the same order), the same optimizer from the model's
  `configure_optimizers`, and the same `training_step` with logging made a no-op:
  zero_grad, loss, backward, step, --steps times.
- The two alternate (aerecon first on even repeats, bare first on odd ones); the figure is the
  median over repeats of aerecon's time / bare's time. Target: at most 1.05.
- Writes experiments/results/bench_overhead.md and prints it.
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import lightning as L
import torch

from aerecon.config import build, compose_train
from aerecon.train import assemble

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import machine, publish, real_music, without_trainer  # noqa: E402

# name: (overrides, default steps): enough steps that a run lasts ~10 s, so the ratio weighs the
# per-step cost, not only Lightning's start-up (best, sparseconv, takes ~8 ms a step on 2 cores)
MODELS = {"resconv_stft": (["experiment=resconv_stft"], 60), "best": (["experiment=best"], 1200),
          "demo_fc": (["experiment=demo", "model=fc", "data=folder"], 300)}


def config(name: str, root: Path, work: Path, steps: int, device: str):
    return compose_train([
        *MODELS[name][0], f"data.root={root}", "data.split=folders", f"paths.cache_dir={work / 'cache'}",
        f"paths.run_dir={work / 'run'}", f"+trainer.max_steps={steps}", "+trainer.limit_val_batches=0",
        "+trainer.num_sanity_val_steps=0", "+trainer.enable_checkpointing=false", "callbacks.model_checkpoint=null",
        "callbacks.early_stopping=null", "callbacks.reconstruction_preview=null",
        f"trainer.accelerator={'gpu' if device.startswith('cuda') else 'cpu'}",
    ])


def time_aerecon(cfg) -> float:
    run = assemble(cfg)
    started = time.perf_counter()
    run.trainer.fit(run.model, datamodule=run.datamodule)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - started
    assert run.trainer.global_step == cfg.trainer.max_steps, run.trainer.global_step
    return elapsed


def time_bare(cfg, device: str) -> float:
    L.seed_everything(cfg.seed, workers=True)
    datamodule = build(cfg.data)
    model = build(cfg.model).to(device)
    datamodule.prepare_data()
    datamodule.setup("fit")
    started = time.perf_counter()
    optimizer = without_trainer(model)  # inside the timing, as Lightning's fit builds its optimizer
    model.train()
    loader, step, epoch = datamodule.train_dataloader(), 0, 0
    while step < cfg.trainer.max_steps:  # as many epochs as the steps take, like Lightning
        loader.sampler.set_epoch(epoch)
        for wave in loader:
            optimizer.zero_grad(set_to_none=True)
            model.training_step(wave.to(device, non_blocking=True), step).backward()
            optimizer.step()
            step += 1
            if step == cfg.trainer.max_steps:
                break
        epoch += 1
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("data/nexuiz"))
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps per run (default: per model)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--models", default="resconv_stft,best", help=f"comma-separated, from {','.join(MODELS)}")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=Path("experiments/results/bench_overhead.md"))
    args = parser.parse_args()
    root = real_music(args.data)
    lines = [f"`python experiments/bench_overhead.py{f' --steps {args.steps}' if args.steps else ''} --repeats {args.repeats} "
             f"--models {args.models} --device {args.device}`, {machine(args.device)}",
             "", "| model | steps | aerecon s (median) | bare s (median) | ratio per repeat | median ratio |",
             "|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as work:
        for name in args.models.split(","):
            steps = args.steps or MODELS[name][1]
            cfg = config(name, root, Path(work), steps, args.device)
            time_bare(cfg, args.device)  # warm-up: builds the cache, loads libraries
            ours, bare = [], []
            for repeat in range(args.repeats):
                order = ("aerecon", "bare") if repeat % 2 == 0 else ("bare", "aerecon")
                for which in order:
                    if which == "aerecon":
                        ours.append(time_aerecon(config(name, root, Path(work), steps, args.device)))
                    else:
                        bare.append(time_bare(cfg, args.device))
                print(f"{name} repeat {repeat}: aerecon {ours[-1]:.2f} s, bare {bare[-1]:.2f} s", flush=True)
            ratios = [a / b for a, b in zip(ours, bare)]
            lines.append(f"| {name} | {steps} | {statistics.median(ours):.2f} | {statistics.median(bare):.2f} | "
                         f"{', '.join(f'{r:.3f}' for r in ratios)} | **{statistics.median(ratios):.3f}** |")
    lines += ["", "Target: median ratio at most 1.05."]
    publish(lines, args.out)


if __name__ == "__main__":
    main()
