# Dockyard's build and test entry points. Run as root on Debian 12.
#
#   make test    install system packages + venv, build test images, run all tests
#   make unit    unit tests only (no root needed once deps are installed)
#   make run     start dockyardd in the foreground with the default config
#                (crictl --config deploy/crictl.yaml talks to it)
#   make run-runtime  run a busybox container with dockyard-runc and show its output
#   make bench   time dockyard-runc against runc and crun (bench/runtime.py)
#   make clean   remove build/ and the stamps (the venv stays; `make distclean`)

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := test

PYTHON  ?= /usr/bin/python3
VENV    := .venv
STAMPS  := .stamp
RUNTIME ?= $(CURDIR)/$(VENV)/bin/dockyard-runc
BENCH_ARGS ?=
DOCKYARDD_ARGS ?=

.PHONY: deps images tools typecheck test unit integration run run-runtime bench clean distclean

deps: $(STAMPS)/venv

$(STAMPS)/apt: hack/apt-packages.txt hack/install-deps.sh
	hack/install-deps.sh
	@mkdir -p $(STAMPS) && touch $@

# Re-installs when pyproject.toml changes; otherwise a no-op.
$(STAMPS)/venv: pyproject.toml | $(STAMPS)/apt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -e '.[test]'
	hack/install-launcher.sh $(CURDIR)/$(VENV)
	@mkdir -p $(STAMPS) && touch $@

# hack/build-images.sh keeps its own cache key (package versions + its hash).
images: $(STAMPS)/apt
	hack/build-images.sh

# Go tools built from the Go module proxy into build/bin (cached).
tools: $(STAMPS)/apt
	hack/install-crictl.sh

typecheck: deps
	hack/typecheck.sh

# pytest exits 5 when it collected nothing; that is a failure here too
# (make fails on any non-zero status, so nothing may swallow it).
test: deps images tools typecheck
	$(VENV)/bin/pytest -q tests/unit tests/integration

unit: deps
	$(VENV)/bin/pytest -q tests/unit

integration: deps images tools
	$(VENV)/bin/pytest -q tests/integration

run: deps
	$(VENV)/bin/dockyardd $(DOCKYARDD_ARGS)

run-runtime: deps images
	hack/run-busybox.sh $(RUNTIME)

bench: deps images
	$(VENV)/bin/python bench/runtime.py $(BENCH_ARGS)

clean:
	rm -rf build $(STAMPS) .pytest_cache .mypy_cache

distclean: clean
	rm -rf $(VENV)
