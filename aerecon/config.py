"""conf/train.yaml composed outside a Hydra app (scripts, notebooks, tests)."""

from collections.abc import Iterable

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from aerecon import CONF_DIR


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
