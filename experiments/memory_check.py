"""Plan vs measured GPU memory of shipped experiments (needs a CUDA GPU).

    python experiments/memory_check.py [--steps 300] [--cap-gb 8] [--experiments E[:MODEL] ...]

For each experiment it composes the train config, plans it (aerecon.plan), then trains the
model for --steps optimizer steps with the process capped at --cap-gb
(torch.cuda.set_per_process_memory_fraction) on random waveform segments (memory does not
depend on the music). The peak counters are reset before each job, and it reports
max_memory_allocated against the plan's allocated part (everything but the CUDA context).
A job that runs out of memory under the cap is reported as such. The plan should be within
10% of the measurement.
"""

import argparse
import gc

import lightning as L
import torch
from hydra.utils import instantiate
from torch.utils.data import DataLoader, RandomSampler

from aerecon.plan import GIB, plan_memory
from aerecon.utils.config import compose_train

DEFAULT = [
    "demo:fc",
    "demo:conv",
    "thesis_fc_8gb:fc",
    "thesis_conv_8gb:conv",
    "thesis_fc:fc",
    "thesis_conv:conv",
    "resconv_stft:resconv",
    "best:sparseconv",
]


def measure(cfg, steps: int) -> tuple[float, str]:
    model = instantiate(cfg.model)
    batch = int(cfg.data.batch_size)
    accumulate = int(cfg.trainer.get("accumulate_grad_batches") or 1)
    waves = torch.randn(batch * 4, 1, model.input_length) * 0.1  # a tensor is a dataset of segments
    sampler = RandomSampler(waves, replacement=True, num_samples=batch * accumulate * (steps + 1))

    class Waves(L.LightningDataModule):
        def train_dataloader(self):
            return DataLoader(waves, batch_size=batch, sampler=sampler, pin_memory=True)

    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    trainer = L.Trainer(
        accelerator="gpu",
        devices=1,
        precision=cfg.trainer.precision,
        max_steps=steps,
        accumulate_grad_batches=accumulate,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    try:
        trainer.fit(model, datamodule=Waves())
        status = "ok"
    except torch.OutOfMemoryError:
        status = "out of memory under the cap"
    peak = torch.cuda.max_memory_allocated() / GIB
    del trainer, model
    gc.collect()
    torch.cuda.empty_cache()
    return peak, status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--cap-gb", type=float, default=8.0)
    parser.add_argument("--experiments", nargs="*", default=DEFAULT, help="experiment:model pairs")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        parser.exit(2, "memory_check.py needs a CUDA GPU; the plan alone: python -m aerecon.plan experiment=...\n")
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(min(1.0, args.cap_gb * GIB / total))
    print(f"{torch.cuda.get_device_name(0)}, capped at {args.cap_gb:g} GiB, {args.steps} steps per job\n")
    print(
        "| experiment | precision | optimizer | planned GiB (allocated) | measured max_memory_allocated GiB | "
        "plan / measured | status |"
    )
    print("|---|---|---|---|---|---|---|")
    for item in args.experiments:
        experiment, _, model = item.partition(":")
        cfg = compose_train([f"experiment={experiment}", f"model={model or 'fc'}", "budget_gb=null"])
        planned = plan_memory(cfg).allocated / GIB
        measured, status = measure(cfg, args.steps)
        print(
            f"| {experiment} ({model}) | {cfg.trainer.precision} | {cfg.optimizer._target_.split('.')[-1]} | "
            f"{planned:.2f} | {measured:.2f} | {planned / measured:.3f} | {status} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
