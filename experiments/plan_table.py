"""Planned GPU memory of every shipped experiment against each memory option (README table).

    python experiments/plan_table.py [--budget 8]

Composes conf/train.yaml for each experiment and model, builds the model once on the CPU,
and prints the plan's total for the experiment as shipped and with each option of
aerecon.plan.OPTIONS; entries within the budget are marked.
"""

import argparse
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import open_dict

from aerecon.plan import GIB, OPTIONS, _with, plan_memory

CONF = str(Path(__file__).resolve().parents[1] / "conf")
EXPERIMENTS = [("demo", "fc"), ("demo", "conv"), ("thesis_fc", "fc"), ("thesis_conv", "conv"),
               ("thesis_fc_8gb", "fc"), ("thesis_conv_8gb", "conv")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=8.0)
    args = parser.parse_args()
    columns = [["as shipped"], *OPTIONS]
    header = ["experiment", *(" ".join(c) for c in columns)]
    rows = []
    for experiment, model_name in EXPERIMENTS:
        with initialize_config_dir(config_dir=CONF, version_base="1.3"):
            cfg = compose("train", overrides=[f"experiment={experiment}", f"model={model_name}",
                                              f"budget_gb={args.budget}"], return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
        with open_dict(cfg):
            del cfg["hydra"]
        model = instantiate(cfg.model)
        cells = []
        for overrides in columns:
            plan = plan_memory(cfg if overrides == ["as shipped"] else _with(cfg, overrides), model)
            cells.append(f"{plan.total / GIB:.2f}" + (" ✓" if plan.fits else ""))
        rows.append([f"{experiment} ({model_name})", *cells])
        print(f"done {experiment} {model_name}", flush=True)
    print(f"\nPlanned GiB (✓: within {args.budget:g} GiB), `python experiments/plan_table.py`:\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
