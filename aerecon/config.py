"""conf/train.yaml composed outside a Hydra app (scripts, notebooks, tests), and objects built from it."""

import functools
import os
import sys
from collections.abc import Callable, Iterable

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, open_dict

from aerecon import CONF_DIR
from aerecon.errors import user_error


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
