# Two entry points for a fresh clone (see README.md, Quick start):
#   make demo   set everything up, publish a sample result in both modes and get it back
#   make test   set everything up, run lint, type checks and the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PACKAGES := publisher_core/pyproject.toml publisher_local/pyproject.toml publisher_s3/pyproject.toml

.PHONY: setup demo test testbed lint typecheck unit docs bench bench-smoke bench-ceph load-ceph clean

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

# pytest's exit codes: 0 passed, 1 tests failed, 2 interrupted, 3 internal error,
# 4 usage error, 5 no tests collected (a failure here: the suite must never be empty).
unit: setup
	@$(BIN)/python -m pytest $(PYTEST_ARGS); code=$$?; \
	case $$code in \
	  0) ;; \
	  1) echo "pytest: some tests failed" >&2 ;; \
	  2) echo "pytest: run interrupted" >&2 ;; \
	  3) echo "pytest: internal error" >&2 ;; \
	  4) echo "pytest: usage error (bad options or configuration)" >&2 ;; \
	  5) echo "pytest: no tests were collected" >&2 ;; \
	  *) echo "pytest: exited with $$code" >&2 ;; \
	esac; exit $$code

# The real S3 server of the integration tests (Debian's radosgw; needs root or sudo).
# Where it cannot be installed its tests are skipped with the reason, except in CI,
# which sets PUBLISHER_TEST_CEPH=required.
testbed:
	@bash scripts/ceph-rgw.sh install || echo "note: Ceph RGW not installed; its tests will be skipped" >&2

test: testbed lint typecheck unit

docs: setup
	$(BIN)/mkdocs build --strict --quiet

# The benchmark suite against aws s3 cp, tar | aws and Bacalhau's algorithms (bench/run.py);
# regenerates bench/RESULTS.md. bench-smoke: the same at small sizes, about a minute.
bench: setup
	$(BIN)/python bench/run.py

bench-smoke: setup
	$(BIN)/python bench/run.py --quick

# A and B against the real Ceph RGW (the server shares the two cores); bench/RESULTS-ceph.md.
bench-ceph: setup testbed
	$(BIN)/python bench/run.py --only F --out bench/RESULTS-ceph.md

# A load test against the real Ceph RGW: 16 publishers at once and Overwrite: false races,
# every result read back and compared byte for byte (bench/s3_load.py; --quick: a smoke run).
load-ceph: setup testbed
	$(BIN)/python bench/s3_load.py

clean:
	rm -rf $(VENV) site .pytest_cache .mypy_cache .ruff_cache .hypothesis
