# `make train` and `make test` install into .venv first; `make install` alone is idempotent.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
# Every package, transitive ones included, at the version that was tested (`make lock` re-resolves).
LOCK := requirements.lock
# Packages that come with a CUDA build of torch; TORCH_INDEX replaces them with that index's own.
CUDA_BUILD := ^(torch|torchaudio|triton|nvidia-[a-z0-9-]+|cuda-[a-z0-9-]+)==
# GTX 10xx (Pascal) owners: PyPI's torch is built for CUDA 13, which dropped Pascal. Install the
# same torch release from PyTorch's CUDA 12.6 index, everything else from the lock:
#   make install TORCH_INDEX=https://download.pytorch.org/whl/cu126
TORCH_INDEX ?=
# Extra overrides for the demo sweep, e.g. `make train TRAIN_ARGS="trainer.max_epochs=2"`.
TRAIN_ARGS ?=

.PHONY: install lock train test lint format bench perf tensorboard notebook doctor clean

install: $(VENV)/.installed

# The stamp is written only after the smoke check passes, so a failed install is retried by the next make.
$(VENV)/.installed: $(LOCK) pyproject.toml
	@rm -f $@
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
ifeq ($(TORCH_INDEX),)
	$(PIP) install --quiet --no-deps -r $(LOCK)
else
	grep -vE '$(CUDA_BUILD)' $(LOCK) > $(VENV)/lock-without-torch.txt
	$(PIP) install --quiet --no-deps -r $(VENV)/lock-without-torch.txt
	$(PIP) install --quiet --index-url $(TORCH_INDEX) \
		$$(grep -E '^(torch|torchaudio)==' $(LOCK) | cut -d' ' -f1)
endif
	$(PIP) install --quiet --no-deps --no-build-isolation -e .
	$(PIP) check
	$(PY) -m aerecon.doctor
	touch $@

# Re-resolve the lock after editing pyproject.toml's dependencies, keeping every pin that still
# fits (`make lock LOCK_FLAGS=--upgrade` moves every package to its newest release instead);
# `make install` then applies it.
LOCK_FLAGS ?=
lock:
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	test -x $(VENV)/bin/uv || $(PIP) install --quiet $$(grep -E '^uv==' $(LOCK) | cut -d' ' -f1)
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev --extra notebook --universal \
		--python-version 3.10 $(LOCK_FLAGS) -o $(LOCK)

# The demo sweep: both thesis architectures (small) and their linear floors, then the report
# (report.md, report.csv, val_loss.png) in the sweep folder.
train: install
	$(PY) -m aerecon.train --multirun experiment=demo model=lowpass,fourier_topk,fc,conv $(TRAIN_ARGS)
	$(PY) -m aerecon.report "$$(ls -d logs/train/multiruns/*/ | tail -n 1)"

test: install
	$(PY) -m pytest

# ruff (settings in pyproject.toml): `make lint` checks, `make format` rewrites in place.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Real music (Debian's nexuiz-music, installed with apt-get if missing): every model family for
# the same CPU time each, scored on validation and unseen test songs.
bench: install
	$(PY) experiments/benchmark_realmusic.py

# Input pipeline and framework overhead (experiments/results/bench_data.md, bench_overhead.md).
perf: install
	$(PY) experiments/bench_data.py
	$(PY) experiments/bench_overhead.py

tensorboard: install
	$(VENV)/bin/tensorboard --logdir logs

# JupyterLab with the project's environment, on the notebook that explores the newest run
# (as root too, e.g. in a container, where Jupyter refuses to start without --allow-root).
notebook: install
	$(VENV)/bin/jupyter lab notebooks/explore_run.ipynb$(if $(filter 0,$(shell id -u)), --allow-root)

# What the environment has: torch, torchaudio, the GPU and whether this torch supports it.
doctor: install
	$(PY) -m aerecon.doctor

clean:
	rm -rf logs .pytest_cache
