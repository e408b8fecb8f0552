"""Sweeps on Hydra's own engines: local parallel jobs (joblib), SLURM (submitit), Optuna search."""

import yaml
from conftest import CONF, TINY, run_cli
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate

import aerecon  # noqa: F401  (registers the ${cwd:} and ${pid:} resolvers the paths use)


def sweep_folder(tmp_path):
    (sweep,) = (tmp_path / "logs/train/multiruns").iterdir()  # one folder for the whole sweep
    return sweep


def test_parallel_launcher_runs_a_two_job_sweep_in_one_folder(tmp_path, shared_dirs):
    result = run_cli("--multirun", *TINY, "hydra/launcher=parallel", "model=fc,conv", cwd=tmp_path, shared=shared_dirs)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Joblib.Parallel(n_jobs=2" in result.stdout + result.stderr
    sweep = sweep_folder(tmp_path)
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0_fc", "1_conv"]
    for run in ("0_fc", "1_conv"):
        assert (sweep / run / "results.json").is_file() and (sweep / run / "checkpoints/last.ckpt").is_file()
    assert "Sweep summary (2 runs)" in result.stdout


def test_optuna_search_minimises_the_val_loss_train_returns(tmp_path, shared_dirs):
    result = run_cli("--multirun", *TINY, "hparams_search=tiny", cwd=tmp_path, shared=shared_dirs)
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = sweep_folder(tmp_path)
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    trials = [yaml.safe_load((run / "results.json").read_text()) for run in sorted(sweep.glob("*_fc"))]
    assert len(trials) == 2
    assert best["best_value"] == min(t["best"]["val/loss"] for t in trials)
    assert set(best["best_params"]) == {"optimizer.lr", "model.net.latent"} and best["best_params"][
        "model.net.latent"
    ] in (4, 8)
    assert 1e-5 <= best["best_params"]["optimizer.lr"] <= 1e-2


def test_slurm_launcher_config_composes_and_builds(tmp_path):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                "hydra/launcher=slurm",
                "hydra.launcher.partition=gpu",
                "trainer=ddp",
                "hydra.launcher.tasks_per_node=2",
                "hydra.launcher.gpus_per_node=2",
            ],
            return_hydra_config=True,
        )
    GlobalHydra.instance().clear()
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert (launcher.partition, launcher.timeout_min, launcher.tasks_per_node, launcher.gpus_per_node) == (
        "gpu",
        720,
        2,
        2,
    )
    assert cfg.trainer.strategy == "ddp" and cfg.trainer.use_distributed_sampler is False
    assert launcher.submitit_folder.startswith(cfg.hydra.sweep.dir)
    built = instantiate(launcher, submitit_folder=str(tmp_path))  # builds the launcher; submits nothing
    assert type(built).__name__ == "SlurmLauncher" and built.params["partition"] == "gpu"
