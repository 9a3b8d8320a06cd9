# Two commands on a fresh machine: `make run` serves the CPU profile on :8081, `make test` runs every check.
PYTHON ?= python3
VENV ?= .venv
HOST ?= 127.0.0.1
PORT ?= 8081
BIN := $(VENV)/bin

.PHONY: run test lint bench install install-dev browser clean

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

# The browser tests (tests/browser) use Debian's Chromium and its driver: installed here when missing and root;
# otherwise those tests skip with one line saying how to get them.
BROWSER_PACKAGES := chromium chromium-driver
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then \
		:; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing $(BROWSER_PACKAGES) for the browser tests"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -qq --no-install-recommends $(BROWSER_PACKAGES) >/dev/null 2>&1 \
			|| { apt-get update -qq && apt-get install -y -qq --no-install-recommends $(BROWSER_PACKAGES) >/dev/null; } \
			|| echo "could not install $(BROWSER_PACKAGES): the browser tests will skip"; \
	else \
		echo "chromium/chromedriver missing and not root: the browser tests will skip (apt-get install $(BROWSER_PACKAGES))"; \
	fi

test: install-dev lint browser
	$(BIN)/python -m pytest

bench: install-dev
	$(BIN)/python -m bench.all

clean:
	rm -rf $(VENV) .pytest_cache output
