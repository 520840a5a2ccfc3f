# The README's two commands are `make run` and `make test`; both create .venv on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

# glibc's default allocator returns freed activations to the OS and page-faults on every
# large tensor; keeping them mapped was measured to matter for CPU training speed.
export MALLOC_MMAP_THRESHOLD_ ?= 1000000000000
export MALLOC_TRIM_THRESHOLD_ ?= 1000000000000

SEEDS ?= 10
STUDY ?= default

.PHONY: run test check lint bench bench-compare bench-train clean-venv

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[dev,dask,mlflow]' -c constraints.txt
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m experiments.grid --study $(STUDY) --seeds $(SEEDS)
	$(PY) -m analysis.report --study $(STUDY)

test: $(STAMP)
	$(PY) -m pytest -q

LINTED := downscalexr experiments analysis tests

# what CI runs: the test suite, the linter and the formatter check (.ci/run)
check: lint test

lint: $(STAMP)
	$(PY) -m ruff check $(LINTED)
	$(PY) -m ruff format --check $(LINTED)

bench: $(STAMP)
	$(PY) -m pytest tests/benchmarks --benchmark-only --benchmark-autosave

bench-compare: $(STAMP)
	$(PY) -m pytest tests/benchmarks --benchmark-only --benchmark-compare --benchmark-compare-fail=median:15%

bench-train: $(STAMP)
	$(PY) tests/benchmarks/bench_train.py

clean-venv:
	rm -rf $(VENV)
