"""aerecon's configuration: where conf/ is, the resolvers its YAML uses, conf/train.yaml composed
outside a Hydra app (scripts, notebooks, tests), and objects built from a config."""

import functools
import os
import sys
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from aerecon.utils.errors import user_error

# Absolute, so the console scripts find conf/ too (Hydra would read a relative path as a Python
# package when called from one). The editable install keeps conf/ beside aerecon/.
CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")


def segment_samples(sample_rate: float, seconds: float) -> int:
    """Samples in a segment: the one rule for the data's segments and the models' input length."""
    return int(round(float(sample_rate) * float(seconds)))


def run_folder_of(ckpt_path) -> Path | None:
    """The run folder a checkpoint was saved in (`<run>/checkpoints/<name>.ckpt`, beside the run's
    `.hydra` record or its `tensorboard` logs), or None."""
    if not ckpt_path:
        return None
    path = Path(str(ckpt_path)).expanduser().resolve()
    run = path.parent.parent
    is_run = (run / ".hydra").is_dir() or (run / "tensorboard").is_dir()
    return run if path.is_file() and path.parent.name == "checkpoints" and is_run else None


def run_record(output_dir: str) -> str:
    """Where Hydra writes this job's record (config, overrides) inside its folder: `.hydra`, or, in a
    folder that already has one (a resumed run, or a folder named twice), `.hydra/<date>_<time>_<pid>`,
    so the run's own record is never overwritten."""
    if not (Path(output_dir) / ".hydra").exists():
        return ".hydra"
    return f".hydra/{datetime.now():%Y-%m-%d_%H-%M-%S}_{os.getpid()}"


# `${samples:rate,seconds}`: so model input sizes follow the data config.
OmegaConf.register_new_resolver("samples", segment_samples, replace=True)
# `${cwd:}`: where the command was started (Hydra does not chdir); usable before a job exists,
# unlike `${hydra:runtime.cwd}`, e.g. in the sweep folder's path.
OmegaConf.register_new_resolver("cwd", os.getcwd, replace=True)
# `${resume_folder:ckpt_path,fresh}`: Hydra's run folder; a resumed run continues in its own folder
# (its log and config record included) instead of leaving a new, empty one behind.
OmegaConf.register_new_resolver(
    "resume_folder", lambda ckpt_path, fresh: str(run_folder_of(ckpt_path) or fresh), replace=True
)
# `${pid:}`: in run and sweep folder names, so two runs started in the same second never share one.
# Cached, so a sweep's jobs (which Hydra gives a copy of the cache) resolve it to the launching process's.
OmegaConf.register_new_resolver("pid", os.getpid, replace=True, use_cache=True)
# `${run_record:${hydra.runtime.output_dir}}`: Hydra's output_subdir (see run_record).
OmegaConf.register_new_resolver("run_record", run_record, replace=True)


def build(node, **kwargs):
    """hydra's `instantiate`, except that a user's mistake (an AereconError raised by the
    constructor, which hydra wraps) comes out as itself, for callers and tests to catch."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as error:
        if (found := user_error(error)) is not None:
            raise found from error
        raise


def compose_train(overrides: Iterable[str] = ()) -> DictConfig:
    """The config `aerecon-train OVERRIDES` would run, with HydraConfig set (for the
    `${hydra:...}` interpolations) and, as in a real run, no `hydra` node."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=list(overrides), return_hydra_config=True)
    GlobalHydra.instance().clear()
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def home_paths(main: Callable) -> Callable:
    """Around a Hydra entry point: `key=~/music` on the command line means the home folder, as
    the shell would have it (Hydra's override grammar cannot read a value that starts with `~`;
    `~key` alone, Hydra's deletion, is left as it is)."""

    @functools.wraps(main)
    def run(*args, **kwargs):
        sys.argv[1:] = [expand_home(arg) for arg in sys.argv[1:]]
        return main(*args, **kwargs)

    return run


def expand_home(arg: str) -> str:
    key, equals, value = arg.partition("=")
    if equals and not key.startswith("-") and (value == "~" or value.startswith("~/")):
        return f"{key}={os.path.expanduser(value)}"
    return arg
