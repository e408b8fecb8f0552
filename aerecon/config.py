"""conf/train.yaml composed outside a Hydra app (scripts, notebooks, tests), and objects built from it."""

from collections.abc import Iterable

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
