"""aerecon: train and compare neural audio autoencoders."""

import os
from datetime import datetime
from pathlib import Path

from omegaconf import OmegaConf

__version__ = "0.1.0"
# Absolute, so the console scripts find conf/ too (Hydra would read a relative path as a Python
# package when called from one). The editable install keeps conf/ beside aerecon/.
CONF_DIR = str(Path(__file__).resolve().parents[1] / "conf")


def segment_samples(sample_rate: float, seconds: float) -> int:
    """Samples in a segment: the one rule for the data's segments and the models' input length."""
    return int(round(float(sample_rate) * float(seconds)))


def is_url(root: str) -> bool:
    """A data root in an object store (s3://, gs://, ... or LitData's local: stand-in), not a path."""
    return "://" in str(root) or str(root).startswith("local:")


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
    "resume_folder", lambda ckpt_path, fresh: str(run_folder_of(ckpt_path) or fresh), replace=True)
# `${pid:}`: in run and sweep folder names, so two runs started in the same second never share one.
# Cached, so a sweep's jobs (which Hydra gives a copy of the cache) resolve it to the launching process's.
OmegaConf.register_new_resolver("pid", os.getpid, replace=True, use_cache=True)


def load(ckpt_path, device=None):
    """A trained model from its checkpoint, to encode, decode and reconstruct waveforms without a
    Trainer: see aerecon.inference.Autoencoder."""
    from aerecon.inference import load as load_checkpoint  # here, so `import aerecon` stays light

    return load_checkpoint(ckpt_path, device)
# `${run_record:${hydra.runtime.output_dir}}`: Hydra's output_subdir (see run_record).
OmegaConf.register_new_resolver("run_record", run_record, replace=True)
