# revleak — the two set-up commands are `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Never let the repository root shadow the installed package layout (see pyproject.toml).
export PYTHONSAFEPATH := 1

SOURCES := pyproject.toml $(shell find revleak connectors dataflows loadtest remediation api slos data -type f -not -path '*/__pycache__/*' 2>/dev/null)

.PHONY: demo test check lint typecheck unit bench data clean services soak

demo: $(VENV)/.installed
	$(BIN)/revleak demo

test: $(VENV)/.installed-dev services check
	$(BIN)/pytest

check: lint typecheck

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

# Integration tests start these Debian packages' servers on free loopback ports, and drive
# the war room in Chromium.
DEBIAN_SERVICES := prometheus:prometheus prometheus-alertmanager:prometheus-alertmanager \
	redis-server:redis-server chromium:chromium chromedriver:chromium-driver git:git
services:
	@missing=$$(for pair in $(DEBIAN_SERVICES); do command -v $${pair%%:*} >/dev/null || \
		echo $${pair#*:}; done); \
	if [ -n "$$missing" ]; then \
		echo "installing $$missing"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# Benchmarks write docs/BENCHMARKS.md (machine, date, numbers).
bench: $(VENV)/.installed-dev
	$(BIN)/python -m revleak.loadtest.bench

# Crash recovery: 20 trials of 3 SIGKILLs of the live flow against an uninterrupted run
# (own Tansu and Alertmanager on free ports; about 5 min on 2 cores; exit 1 on any difference).
soak: $(VENV)/.installed-dev services
	$(BIN)/python -m revleak.loadtest.soak --trials 20 --kills 3

# Regenerate the bundled demo data (a test checks the committed files match).
data: $(VENV)/.installed
	$(BIN)/python -m revleak.loadtest.nakatomi data

$(VENV)/bin/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "revleak needs Python 3.11 or newer"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The install is "strict" editable: a tree of links that static tools (mypy) can follow;
# it is rebuilt whenever a source file is added or changed.
$(VENV)/.installed: $(VENV)/bin/python $(SOURCES)
	$(BIN)/pip install --quiet -e . --config-settings editable_mode=strict
	@touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[dev]' --config-settings editable_mode=strict
	@touch $@

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache .hypothesis
