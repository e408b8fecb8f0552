"""Planned GPU memory of every shipped experiment against each memory option (the table in docs/memory.md).

    python experiments/plan_table.py [--budget 8]

Composes conf/train.yaml for each experiment and model, builds the model once on the CPU,
and prints the plan's total for the experiment as shipped and with each option of
aerecon.plan.OPTIONS; entries within the budget are marked.
"""

import argparse

from hydra.utils import instantiate

from aerecon.plan import GIB, OPTIONS, _with, plan_memory
from aerecon.report import markdown_table
from aerecon.utils.config import compose_train

EXPERIMENTS = [
    ("demo", "fc"),
    ("demo", "conv"),
    ("thesis_fc", "fc"),
    ("thesis_conv", "conv"),
    ("thesis_fc_8gb", "fc"),
    ("thesis_conv_8gb", "conv"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=8.0)
    args = parser.parse_args()
    columns = [["as shipped"], *OPTIONS]
    header = ["experiment", *(" ".join(c) for c in columns)]
    rows = []
    for experiment, model_name in EXPERIMENTS:
        cfg = compose_train([f"experiment={experiment}", f"model={model_name}", f"budget_gb={args.budget}"])
        model = instantiate(cfg.model)
        cells = []
        for overrides in columns:
            plan = plan_memory(cfg if overrides == ["as shipped"] else _with(cfg, overrides), model)
            cells.append(f"{plan.total / GIB:.2f}" + (" ✓" if plan.fits else ""))
        rows.append([f"{experiment} ({model_name})", *cells])
        print(f"done {experiment} {model_name}", flush=True)
    print(f"\nPlanned GiB (✓: within {args.budget:g} GiB), `python experiments/plan_table.py`:\n")
    print(markdown_table(header, rows))


if __name__ == "__main__":
    main()
