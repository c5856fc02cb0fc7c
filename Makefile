# Two commands for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv demo test test-matrix test-packaging dist constraints compat-docs lint typecheck unit e2e \
	mutants bench bench-full lock clean

venv: $(STAMP)

$(STAMP): pyproject.toml requirements-lock.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-lock.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

# Older Airflow minors: one venv each, built only from its development lock (dev-locks/: Airflow,
# the provider's dependencies and the test tooling; users install with constraints/ instead).
MATRIX_MINORS ?= 3.0 3.1 3.2
MATRIX_VENVS := .venvs
$(MATRIX_VENVS)/airflow-%/.installed: dev-locks/airflow-%.txt pyproject.toml
	rm -rf $(MATRIX_VENVS)/airflow-$*
	$(PYTHON) -m venv $(MATRIX_VENVS)/airflow-$*
	$(MATRIX_VENVS)/airflow-$*/bin/python -m pip install --quiet --disable-pip-version-check \
		--no-deps -r dev-locks/airflow-$*.txt
	$(MATRIX_VENVS)/airflow-$*/bin/python -m pip install --quiet --disable-pip-version-check \
		--no-deps --no-build-isolation -e .
	$(MATRIX_VENVS)/airflow-$*/bin/python -m pip check --disable-pip-version-check
	touch $@

test-matrix: $(foreach m,$(MATRIX_MINORS),$(MATRIX_VENVS)/airflow-$(m)/.installed)
	set -e; for m in $(MATRIX_MINORS); do \
		echo "== Airflow $$m: the suites marked matrix"; \
		$(MATRIX_VENVS)/airflow-$$m/bin/python -m pytest -q -p no:cacheprovider -m matrix; \
	done

# The wheel and sdist users install (dist/), their metadata checked as a package index would.
dist: venv
	rm -rf dist
	$(PY) -m build --outdir dist .
	$(VENV)/bin/twine check --strict dist/*

# Only the packaging tests (make test runs them too): build, then install the wheel as the README
# says into a fresh venv with Airflow from constraints/airflow-3.3.txt.
test-packaging: venv
	$(PY) -m pytest -q -p no:cacheprovider -m packaging

# Runtime constraints users install with (constraints/), derived from the development locks.
constraints: venv
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" PYTHON=$(PY) scripts/runtime_constraints.sh

compat-docs: venv
	$(PY) scripts/render_compat_docs.py

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

# After changing pyproject.toml's dependencies (install them into .venv first): the development
# lock, then the runtime constraints derived from it.
lock: venv
	$(PY) -m pip freeze --exclude-editable | { echo "# Development lock (Airflow 3.3, Python 3.11): make venv installs these, then the package --no-deps."; echo "# Not for production: users install with constraints/airflow-3.3.txt. Regenerate: make lock."; cat; } > requirements-lock.txt
	$(MAKE) constraints

clean:
	rm -rf $(VENV) $(MATRIX_VENVS) dist .mypy_cache .ruff_cache .pytest_cache
