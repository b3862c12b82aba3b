# Two entry points for a fresh clone (see README.md, Quick start):
#   make demo   set everything up, publish a sample result in both modes and get it back
#   make test   set everything up, run lint, type checks and the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PACKAGES := publisher_core/pyproject.toml publisher_local/pyproject.toml publisher_s3/pyproject.toml

.PHONY: setup demo test lint typecheck unit clean

$(STAMP): pyproject.toml $(PACKAGES)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade "pip>=25.1"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check \
		-e ./publisher_core -e ./publisher_local -e ./publisher_s3 --group dev
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	PATH="$(abspath $(BIN)):$$PATH" bash examples/demo.sh

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

unit: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test: lint typecheck unit

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
