# `make train` and `make test` install into .venv first; `make install` alone is idempotent.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# GTX 10xx (Pascal) owners: PyPI's torch 2.11 is built for CUDA 13, which dropped Pascal.
# Install PyTorch's CUDA 12.6 build instead:
#   make install TORCH_INDEX=https://download.pytorch.org/whl/cu126
TORCH_INDEX ?=

.PHONY: install train test bench perf tensorboard clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(if $(TORCH_INDEX),$(PY) -m pip install --quiet "torch==2.11.*" "torchaudio==2.11.*" --index-url $(TORCH_INDEX))
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

# The demo sweep: both thesis architectures (small) and their linear floors, then the report
# (report.md, report.csv, val_loss.png) in the sweep folder.
train: install
	$(PY) -m aerecon.train --multirun experiment=demo model=lowpass,fourier_topk,fc,conv
	$(PY) -m aerecon.report "$$(ls -d logs/train/multiruns/*/ | tail -n 1)"

test: install
	$(PY) -m pytest

# Real music (Debian's nexuiz-music, installed with apt-get if missing): every model family for
# the same CPU time each, scored on validation and unseen test songs (38 min on 2 cores).
bench: install
	$(PY) experiments/benchmark_realmusic.py

# Input pipeline and framework overhead (experiments/results/bench_data.md, bench_overhead.md; about 16 min on 2 cores).
perf: install
	$(PY) experiments/bench_data.py
	$(PY) experiments/bench_overhead.py

tensorboard: install
	$(VENV)/bin/tensorboard --logdir logs

clean:
	rm -rf logs .pytest_cache
