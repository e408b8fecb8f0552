"""Compose the real `train` config once and shrink it (tests/conf/experiment/tiny.yaml).

The tiny demo corpus is rendered and cached once per session and shared by all tests; each
test gets its own run folder.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
TEST_CONF = Path(__file__).resolve().parent / "conf"
TINY = [f"hydra.searchpath=[file://{TEST_CONF}]", "experiment=tiny"]


@pytest.fixture(scope="session")
def shared_dirs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("shared")
    return {"data_dir": root / "data", "cache_dir": root / "cache"}


def compose_cfg(root: Path, shared: dict[str, Path], *overrides: str) -> DictConfig:
    """The train config as `python -m aerecon.train experiment=tiny ...` in `root` would see it."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="train", return_hydra_config=True, overrides=[*TINY, *overrides])
    with open_dict(cfg):
        cfg.paths.root_dir = str(root)
        cfg.paths.run_dir = str(root / "run")
        cfg.paths.data_dir = str(shared["data_dir"])
        cfg.paths.cache_dir = str(shared["cache_dir"])
        cfg.hydra.runtime.output_dir = str(root / "run")
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]  # as in a real run: the app's config has no hydra node
    return cfg


@pytest.fixture
def make_cfg(tmp_path, shared_dirs):
    """make_cfg(*overrides) -> the composed, shrunk train config, with HydraConfig set."""
    yield lambda *overrides: compose_cfg(tmp_path, shared_dirs, *overrides)
    GlobalHydra.instance().clear()


@pytest.fixture
def cfg(make_cfg) -> DictConfig:
    return make_cfg()


def run_cli(
    *args: str, cwd: Path, shared: dict[str, Path] | None = None, app: str = "aerecon.train"
) -> subprocess.CompletedProcess:
    """`python -m aerecon.train` (or another app) in a subprocess, as a user would run it."""
    paths = [f"paths.{k}={v}" for k, v in (shared or {}).items()]
    return subprocess.run(
        [sys.executable, "-m", app, *args, *paths],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HYDRA_FULL_ERROR": "1"},
    )
