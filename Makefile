# Two commands for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv demo test lint typecheck unit e2e mutants bench bench-full lock clean

venv: $(STAMP)

$(STAMP): pyproject.toml requirements-lock.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-lock.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: venv
	$(PY) scripts/demo.py

test: venv lint typecheck
	$(PY) -m pytest -q -p no:cacheprovider

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: venv
	$(VENV)/bin/mypy

unit: venv
	$(PY) -m pytest -q -p no:cacheprovider -m "not e2e"

e2e: venv
	$(PY) -m pytest -q -p no:cacheprovider -m e2e

# One-line mutants of the package, each of which some test must kill (scripts/mutants.py).
mutants: venv
	$(PY) scripts/mutants.py

bench: venv
	$(PY) benchmarks/run_all.py --quick

bench-full: venv
	$(PY) benchmarks/run_all.py --full

lock: venv
	$(PY) -m pip freeze --exclude-editable | { echo "# Exact versions for the dev/test environment (make venv installs these, then the package --no-deps)."; echo "# Regenerate: make lock (after changing pyproject.toml dependencies)."; cat; } > requirements-lock.txt

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
