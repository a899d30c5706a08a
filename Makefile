# Parley: `make run` starts the platform on this machine, `make test` runs every test but the long kill
# loops, which `make test-system` runs with the container image.
# Both install what they need first: Python packages into .venv, headless Chromium with its driver
# (Debian's packages) for the browser tests, and Debian's ffmpeg/ffprobe that the recording tests read
# files with.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The lock files pin every package with its hashes: requirements.lock what production installs (the
# image), requirements-dev.lock what `make install` installs. `make lock` rewrites both from
# pyproject.toml; tests/unit/test_lock.py fails when they no longer match it.
LOCK     := requirements.lock
DEV_LOCK := requirements-dev.lock
UV_COMPILE = $(BIN)/uv pip compile pyproject.toml --universal --python-version 3.11 --generate-hashes --quiet
# The relay's compiled send loop (services/relay/_fastsend.c) is built by the project's install: a changed
# source installs again.
EXTENSIONS := services/relay/_fastsend.c
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml $(DEV_LOCK) $(EXTENSIONS) | cksum | cut -d' ' -f1)

.PHONY: install browser ffmpeg run test test-system proto lint lock docs bench image podman-tools clean

install: $(STAMP) browser ffmpeg

# The relay's browser tests drive /usr/bin/chromium through /usr/bin/chromedriver; they fail without them.
# The package lists are refreshed only when an install from the current ones fails.
APT := $(if $(filter 0,$(shell id -u)),,sudo) env DEBIAN_FRONTEND=noninteractive apt-get
browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
	  $(APT) install -y --no-install-recommends chromium chromium-driver \
	  || { $(APT) update && $(APT) install -y --no-install-recommends chromium chromium-driver; }; \
	fi

# The recording tests check every file the recorder writes with ffprobe, and the recording bench runs
# ffmpeg next to the recorder.
ffmpeg:
	@if [ ! -x /usr/bin/ffprobe ] || [ ! -x /usr/bin/ffmpeg ]; then \
	  $(APT) install -y --no-install-recommends ffmpeg \
	  || { $(APT) update && $(APT) install -y --no-install-recommends ffmpeg; }; \
	fi

# The lock first (exact versions, hashes checked), then the project itself; a dependency added to
# pyproject.toml but not yet locked is still installed by the second step (the lock test says so). The
# second step compiles the relay's send loop with the machine's C compiler; without one it warns and the
# relay sends from Python (docs/decisions.md).
$(STAMP): pyproject.toml $(DEV_LOCK) $(EXTENSIONS)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Parley needs Python 3.11 or newer; set PYTHON=python3.11")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r $(DEV_LOCK)
	$(BIN)/python -m pip install --quiet -e '.[dev,local]'
	@rm -f $(VENV)/.installed-* && touch $@

lock:
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@test -x $(BIN)/uv || $(BIN)/python -m pip install --quiet 'uv==0.13.8'
	$(UV_COMPILE) -o $(LOCK)
	$(UV_COMPILE) --extra dev --extra local -o $(DEV_LOCK)

# The container image, built with podman (docs/operations.md, "Container image"). No registry is reachable
# from the project's machines, so the base is Debian bookworm made with debootstrap and imported
# (BASE_IMAGE); elsewhere `podman build .` or `docker build .` uses python:3.11-slim-bookworm.
IMAGE      ?= localhost/parley:dev
BASE_IMAGE ?= localhost/parley-base:bookworm
IMAGE_WORK := build/image
DEBIAN_MIRROR ?= http://deb.debian.org/debian
PODMAN     := CONTAINERS_CONF=$(CURDIR)/podman/containers.conf podman

podman-tools:
	@if ! command -v podman >/dev/null || ! command -v runc >/dev/null || ! command -v debootstrap >/dev/null \
	    || ! command -v catatonit >/dev/null; then \
	  $(APT) install -y --no-install-recommends podman runc catatonit debootstrap \
	  || { $(APT) update && $(APT) install -y --no-install-recommends podman runc catatonit debootstrap; }; \
	fi

$(IMAGE_WORK)/base.tar:
	rm -rf $(IMAGE_WORK)/rootfs && mkdir -p $(IMAGE_WORK)
	$(if $(filter 0,$(shell id -u)),,sudo) debootstrap --variant=minbase \
	  --include=python3,python3-venv,python3-pip,ca-certificates bookworm $(IMAGE_WORK)/rootfs $(DEBIAN_MIRROR)
	$(if $(filter 0,$(shell id -u)),,sudo) tar -C $(IMAGE_WORK)/rootfs -cf $@ .
	$(if $(filter 0,$(shell id -u)),,sudo) rm -rf $(IMAGE_WORK)/rootfs

# The host's CA bundle and PIP_CERT reach pip inside the build, so it reaches the package index as the
# host does (behind a TLS-inspecting proxy too); --network host: the build's network is the host's.
image: podman-tools $(IMAGE_WORK)/base.tar
	$(PODMAN) image exists $(BASE_IMAGE) || $(PODMAN) import $(IMAGE_WORK)/base.tar $(BASE_IMAGE)
	$(PODMAN) build --network host --build-arg BASE_IMAGE=$(BASE_IMAGE) \
	  $(if $(PIP_CERT),--volume /etc/ssl/certs:/etc/ssl/certs:ro --build-arg PIP_CERT=$(PIP_CERT)) \
	  -t $(IMAGE) .

# The long kill loops (marked `system`: billing killed 50 times, the webhook dispatcher 20 times), then
# the chart run for real: the image's pods with podman kube play on this machine (tests/podman/).
test-system: install image
	$(BIN)/python -m pytest -m system
	PARLEY_IMAGE=$(IMAGE) CONTAINERS_CONF=$(CURDIR)/podman/containers.conf \
	  $(BIN)/python -m pytest tests/podman -p no:cacheprovider

run: install
	$(BIN)/parley up

test: install
	$(BIN)/python -m pytest -m "not system"

proto: install
	$(BIN)/python proto/generate.py

# The settings table of docs/operations.md, from the settings classes (tests/unit/core/test_settings_doc.py).
docs: install
	$(BIN)/python -m services.core.settings_doc --write docs/operations.md

lint: install
	$(BIN)/ruff check services tests bench sdk proto/generate.py
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache --no-logo

bench: install
	$(BIN)/python bench/authorisation_push.py
	$(BIN)/python bench/room_join.py
	$(BIN)/python bench/relay_vs_janus.py
	$(BIN)/python bench/billing_ingest.py
	$(BIN)/python bench/recording.py
	$(BIN)/python bench/webhooks.py

clean:
	rm -rf $(VENV) .parley .pytest_cache .mypy_cache .ruff_cache
