# Two commands do everything on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.8
VENV := .venv
PY := $(VENV)/bin/python
UV := $(shell command -v uv 2>/dev/null)
STAMP := $(VENV)/.installed

.PHONY: setup run test lint typecheck pytest lock models bench clean

$(STAMP): requirements.lock pyproject.toml
	@if ! command -v uv >/dev/null 2>&1; then $(PYTHON) -m pip install --quiet "uv==$(UV_VERSION)"; fi
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	uv pip install --python $(PY) --require-hashes -r requirements.lock
	uv pip install --python $(PY) --no-deps -e .
	@touch $(STAMP)

setup: $(STAMP)

run: setup
	@$(VENV)/bin/rationale local-secrets
	@RATIONALE_SECRET_KEY="$${RATIONALE_SECRET_KEY:-$$(cat var/secret_key)}" \
	RATIONALE_API_KEYS="$${RATIONALE_API_KEYS:-$$(cat var/api_keys)}" \
	$(VENV)/bin/rationale serve --host 127.0.0.1 --port 8000

lint: setup
	$(VENV)/bin/ruff check app tests bench models
	$(VENV)/bin/ruff format --check app tests bench models

typecheck: setup
	$(VENV)/bin/mypy app

pytest: setup
	$(VENV)/bin/pytest -q

test: lint typecheck pytest

lock:
	@command -v uv >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet "uv==$(UV_VERSION)"
	uv pip compile pyproject.toml --extra dev --generate-hashes --no-header --python-version 3.11 -o requirements.lock

models: setup
	$(PY) models/train.py

bench: setup
	$(PY) -m bench

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
