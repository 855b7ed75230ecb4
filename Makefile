# Two commands do everything on a fresh machine: `make run` and `make test`.
#
# Set-up never writes into the system Python: it makes .venv/ with `python3 -m venv`, brings
# the pinned uv into it, and installs the hashed locks there. `make run` installs the runtime
# lock only (requirements.lock); `make test` adds the development lock (requirements-dev.lock,
# compiled with the runtime lock as a constraint, so the two never disagree).
#
# An install reads the locks and nothing else: every install step runs with --no-config (no
# [tool.uv] nor uv.toml is read) and without UV_OVERRIDE / UV_CONSTRAINT, and the project's own
# editable install builds with the locked setuptools (--no-build-isolation). A lock is installed
# with --no-deps: it is already the whole resolved set, so nothing is resolved again at install.
# What resolving needs besides pyproject.toml (lock-build.txt) is read by `make lock` alone.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3 2>/dev/null || echo python3)
UV_VERSION := 0.13.8
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
HOST ?= 127.0.0.1
PORT ?= 8000
RUNTIME_STAMP := $(VENV)/.runtime-installed
DEV_STAMP := $(VENV)/.dev-installed
LOCK_FLAGS := --no-config --generate-hashes --no-header --python-version 3.11
INSTALL := env -u UV_OVERRIDE -u UV_CONSTRAINT -u UV_BUILD_CONSTRAINT $(UV) pip install \
	--no-config --python $(PY)

.PHONY: setup setup-dev browser run test lint typecheck docs pytest lock models bench clean

# The venv and the pinned uv inside it, with a clear message when Python is not fit.
$(UV):
	@command -v "$(PYTHON)" >/dev/null 2>&1 || { \
	  echo "make: no python3 found. Install Python 3.11 (Debian/Ubuntu: apt-get install python3.11 python3.11-venv)." >&2; exit 1; }
	@"$(PYTHON)" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || { \
	  echo "make: Rationale needs Python 3.11; $(PYTHON) is $$("$(PYTHON)" -c 'import platform; print(platform.python_version())'). Install python3.11 or run: make PYTHON=/path/to/python3.11 ..." >&2; exit 1; }
	@"$(PYTHON)" -c 'import venv, ensurepip' 2>/dev/null || { \
	  echo "make: $(PYTHON) has no working venv module. Install it (Debian/Ubuntu: apt-get install python3.11-venv)." >&2; exit 1; }
	@test -x $(PY) || "$(PYTHON)" -m venv $(VENV)
	@$(PY) -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

# --compile-bytecode: uv writes no .pyc by default, and where PYTHONDONTWRITEBYTECODE is set
# (as on our CI machines) every start then compiled shap, scikit-learn and scipy again:
# 7.2 s of import instead of 2.7 s, the most of a worker's start.
$(RUNTIME_STAMP): requirements.lock pyproject.toml | $(UV)
	$(INSTALL) --no-deps --require-hashes --compile-bytecode -r requirements.lock
	$(INSTALL) --no-deps --no-build-isolation -e .
	@rm -f $(DEV_STAMP)
	@touch $@

$(DEV_STAMP): requirements-dev.lock $(RUNTIME_STAMP)
	$(INSTALL) --no-deps --require-hashes --compile-bytecode -r requirements-dev.lock
	@touch $@

setup: $(RUNTIME_STAMP)

setup-dev: $(DEV_STAMP)

run: setup
	@$(VENV)/bin/rationale local-secrets
	@RATIONALE_SECRET_KEY="$${RATIONALE_SECRET_KEY:-$$(cat var/secret_key)}" \
	RATIONALE_API_KEYS="$${RATIONALE_API_KEYS:-$$(cat var/api_keys)}" \
	exec $(VENV)/bin/rationale serve --host $(HOST) --port $(PORT)

lint: setup-dev
	$(VENV)/bin/ruff check app tests bench models
	$(VENV)/bin/ruff format --check app tests bench models

typecheck: setup-dev
	$(VENV)/bin/mypy app

# Browser tests drive Debian's chromium (never a browser download): installed here when missing.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "make: the browser tests need Debian's chromium (sudo apt-get install chromium)" >&2; \
	  fi; }

pytest: setup-dev browser
	$(VENV)/bin/pytest -q

# The documentation site (mkdocs.yml, docs/), built strictly: a broken link or anchor, or a page
# missing from the nav, fails the build. The configuration page is written from app/config.py.
docs: setup-dev
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet --site-dir site

test: lint typecheck docs pytest

# Refresh both locks (versions and hashes only: no index or download address is recorded).
lock: $(UV)
	$(UV) pip compile pyproject.toml lock-build.txt $(LOCK_FLAGS) -o requirements.lock
	$(UV) pip compile pyproject.toml lock-build.txt --extra dev -c requirements.lock $(LOCK_FLAGS) \
	  -o requirements-dev.lock

models: setup
	$(PY) models/train.py

bench: setup-dev
	$(PY) -m bench

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
