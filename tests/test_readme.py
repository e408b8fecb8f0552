"""Every command in the README's ```bash blocks runs as written, from a user's point of view.

Commands run in a fresh project folder with `$HOME/music` holding a few songs. Training commands
get tiny overrides appended (sizes and epochs, never their meaning); `make` targets run the recipe
`make -n` prints; servers (TensorBoard, JupyterLab) must come up and print their address.
"""

import os
import re
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import REPO
from test_environment import outside_make

BIN = Path(sys.executable).parent
# the default split: a folder of a few songs gets a validation and a test song too
TINY_TRAIN = [
    "data.sample_rate=2000",
    "data.segment_seconds=0.5",
    "data.batch_size=8",
    "data.num_workers=0",
    "model.net.latent=8",
    "trainer.max_epochs=1",
    "+trainer.limit_train_batches=2",
    "trainer.enable_progress_bar=false",
    "callbacks.model_summary=null",
    "callbacks.reconstruction_preview=null",
]
TINY_STREAM = TINY_TRAIN
TINY_PREPARE = ["data.sample_rate=2000", "data.segment_seconds=0.5"]
TINY_DEMO = [
    "data.num_songs=12",
    "data.song_seconds=4.0",
    "data.render_rate=8000",
    "data.split={train:2,val:1,test:1}",
    "trainer.max_epochs=1",
    "+trainer.limit_train_batches=2",
    "trainer.enable_progress_bar=false",
    "callbacks.model_summary=null",
    "callbacks.reconstruction_preview=null",
]


def readme_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    lines = [line.split("  #")[0].strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def make_recipe(target: str, *variables: str) -> list[str]:
    """The commands `make <target>` runs once installed, with the venv's own programs."""
    dry = subprocess.run(
        ["make", "--no-print-directory", "-s", "-n", target, *variables],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env=outside_make(),
    ).stdout
    installing = ("-m pip", "aerecon.doctor") if target != "doctor" else ("-m pip",)  # steps of an outdated install
    return [
        shlex.quote(str(BIN)) + "/" + line.removeprefix(".venv/bin/")
        for line in dry.splitlines()
        if line.startswith(".venv/bin/") and not any(s in line for s in installing)
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serves(command: str, cwd: Path, env: dict) -> str:
    """Starts a server command, waits for it to print its http:// address, stops it; returns its output."""
    server = subprocess.Popen(
        command,
        shell=True,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output, deadline = "", time.monotonic() + 120
    try:
        while "http://" not in output and time.monotonic() < deadline and server.poll() is None:
            output += server.stdout.readline()
    finally:
        if server.poll() is None:
            os.killpg(server.pid, 15)
        output += server.communicate(timeout=30)[0]
    assert "http://" in output, output[-2000:]
    return output


@pytest.fixture(scope="module")
def user(tmp_path_factory):
    """A user's home with music, and an empty project folder to run from."""
    root = tmp_path_factory.mktemp("user")
    music = root / "home/music"
    music.mkdir(parents=True)
    rng = np.random.default_rng(0)
    t = np.arange(3 * 8000) / 8000
    for i in range(9):
        tone = 0.3 * np.sin(2 * np.pi * (110 + 30 * i) * t) + 0.05 * rng.standard_normal(len(t))
        sf.write(music / f"song {i}.wav", tone.astype(np.float32), 8000)
    (root / "project").mkdir()
    env = {
        **os.environ,
        "HOME": str(root / "home"),
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("HYDRA_FULL_ERROR", None)
    return root / "project", env


def newest(folder: Path) -> Path:
    return max(folder.iterdir(), key=lambda p: p.stat().st_mtime)


@pytest.mark.slow
def test_every_readme_command_runs_as_written(user):
    project, env = user
    commands = readme_commands()
    assert "python -m aerecon.train data=folder data.root=$HOME/music" in commands  # the first-contact command
    ran = []
    for command in commands:
        if command == "make test":
            continue  # the suite this test belongs to
        runs, sweeps = project / "logs/train/runs", project / "logs/train/multiruns"
        line = command
        if "<run>" in line:
            line = line.replace("<run>", str(newest(runs)))
        if "<sweep>" in line:
            line = line.replace("<sweep>", str(newest(sweeps)))
        if "<song>" in line:
            line = line.replace("<song>", shlex.quote(str(Path(env["HOME"]) / "music" / "song 0.wav")))
        if line.startswith("make install TORCH_INDEX="):
            check_torch_index_route(line.split("=", 1)[1])
            ran.append(command)
            continue
        if line.startswith("make "):
            target, *variables = shlex.split(line)[1:]
            if target == "train":
                variables.append("TRAIN_ARGS=" + " ".join(TINY_DEMO))
            recipe = make_recipe(target, *variables)
            assert recipe, f"`{command}` runs nothing"
        else:
            if line.startswith("python -m aerecon.train"):
                tiny = TINY_STREAM if "data=stream" in line else TINY_TRAIN
                line += " " + " ".join(shlex.quote(o) for o in tiny)
            if line.startswith("python -m aerecon.prepare"):
                line += " " + " ".join(shlex.quote(o) for o in TINY_PREPARE)
            recipe = [line]
        for step in recipe:
            if "tensorboard " in step or "jupyter lab" in step:
                extra = (
                    f" --port {free_port()}"
                    if "tensorboard" in step
                    else f" --no-browser --port={free_port()} --IdentityProvider.token=readme-test"
                )
                serves(step + extra, REPO if "jupyter" in step else project, env)
                continue
            done = subprocess.run(step, shell=True, cwd=project, env=env, capture_output=True, text=True, timeout=900)
            assert done.returncode == 0, f"`{command}` failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            assert "Traceback" not in done.stderr, done.stderr[-3000:]
            if "ckpt_path=" in line and "aerecon.train" in line:
                assert "Nothing to resume" in done.stdout + done.stderr  # the run already trained its epochs
        ran.append(command)
    assert len(ran) == len(commands) - ("make test" in commands)
    assert list((project / "logs/train/multiruns").glob("*/report.md"))  # make train's report, in the project


def check_torch_index_route(index: str) -> None:
    """Offline, the CUDA 12.6 route is checked as a recipe: the locked torch pair from that index, the
    rest from the lock without torch's CUDA packages (the real install needs PyTorch's server)."""
    recipe = subprocess.run(
        ["make", "--no-print-directory", "-s", "-n", "-B", "install", f"TORCH_INDEX={index}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env=outside_make(),
    ).stdout
    lock = (REPO / "requirements.lock").read_text()
    torch_pin = re.search(r"^torch==(\S+)", lock, re.M).group(1)
    assert f"--index-url {index}" in recipe and "$(grep -E '^(torch|torchaudio)=='" in recipe
    grep = re.search(r"^grep -vE '(.+?)' requirements.lock", recipe, re.M)
    kept = subprocess.run(
        ["grep", "-vE", grep.group(1), "requirements.lock"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    assert not re.search(r"^(torch|torchaudio|triton|nvidia-\S+)==", kept, re.M)
    assert re.search(r"^lightning==", kept, re.M) and torch_pin
    pairs = subprocess.run(
        "grep -E '^(torch|torchaudio)==' requirements.lock | cut -d' ' -f1",
        shell=True,
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert pairs == [f"torch=={torch_pin}", re.search(r"^(torchaudio==\S+)", lock, re.M).group(1)]
