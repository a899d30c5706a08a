# Parley: `make run` starts the platform on this machine, `make test` runs every test.
# Both install what they need first: Python packages into .venv, and headless Chromium with its driver
# (Debian's packages) for the browser tests.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: install browser run test proto lint bench clean

install: $(STAMP) browser

# The relay's browser tests drive /usr/bin/chromium through /usr/bin/chromedriver; they fail without them.
# The package lists are refreshed only when an install from the current ones fails.
APT := $(if $(filter 0,$(shell id -u)),,sudo) env DEBIAN_FRONTEND=noninteractive apt-get
browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
	  $(APT) install -y --no-install-recommends chromium chromium-driver \
	  || { $(APT) update && $(APT) install -y --no-install-recommends chromium chromium-driver; }; \
	fi

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Parley needs Python 3.11 or newer; set PYTHON=python3.11")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

run: install
	$(BIN)/parley up

test: install
	$(BIN)/python -m pytest

proto: install
	$(BIN)/python proto/generate.py

lint: install
	$(BIN)/ruff check services tests bench sdk proto/generate.py
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache --no-logo

bench: install
	$(BIN)/python bench/authorisation_push.py
	$(BIN)/python bench/room_join.py
	$(BIN)/python bench/relay_vs_janus.py

clean:
	rm -rf $(VENV) .parley .pytest_cache .mypy_cache .ruff_cache
