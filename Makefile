# ovsnet: `make demo` and `make test` work on a fresh clone (each creates .venv when missing).
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# torch/torchvision come from this machine's disk through pip (see README "Installation").
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1

.PHONY: install test test-fast demo davis16 bench ablation lint format clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel
	$(BIN)/pip install -q $(TORCH_PINS)
	$(BIN)/pip install -q -e '.[dev]'
	@touch $(STAMP)

test: install
	$(BIN)/python -m pytest -q --durations=15

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

demo: install
	$(BIN)/python -m ovsnet.demo

# the paper's DAVIS 2016 protocol on a CPU (three stages, 60 min), scored on held-out training videos:
#   make davis16 [DAVIS=<DAVIS 2016 train root>] [ADAPT_TO=<DAVIS-layout folder whose val split to adapt to>]
DAVIS ?= ../shared/data/davis2016-train
davis16: install
	$(BIN)/python -m ovsnet.cli.davis16 --davis "$(DAVIS)" $(if $(ADAPT_TO),--adapt-to "$(ADAPT_TO)")

bench: install
	$(BIN)/python bench/run_all.py

# the paper's Tables 3-6 on synthetic videos -> docs/ablations.md + docs/ablations.png (resumable)
ablation: install
	$(BIN)/python bench/ablation.py

lint: install
	$(BIN)/ruff check src tests bench train.py evaluate.py
	$(BIN)/ruff format --check src tests bench train.py evaluate.py

format: install
	$(BIN)/ruff format src tests bench train.py evaluate.py
	$(BIN)/ruff check --fix src tests bench train.py evaluate.py

clean:
	rm -rf $(VENV) outputs multirun .pytest_cache
