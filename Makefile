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
# The DAG-level, trigger and end-to-end suites (everything runs on the newest in `make test`).
MATRIX_TESTS := tests/test_compat.py tests/test_provider_info.py tests/test_trigger.py \
	tests/test_hook_async.py tests/test_sensor_dag.py tests/test_example_dags.py \
	tests/operator tests/watcher tests/events/test_event_window.py \
	tests/events/test_event_trigger.py tests/results/test_results_reader.py \
	tests/results/test_result_models.py tests/e2e/test_scheduler_triggerer.py
# Left out on 3.0 only, with the reason each fails there (test harness, not provider code; see
# docs/compatibility.md): they read log text that 3.0 routes elsewhere, or patch 3.1+ names.
MATRIX_DESELECT_30 := \
	--deselect "tests/operator/test_operator_dag.py::test_giving_up_cancels_only_when_asked" \
	--deselect tests/operator/test_operator_dag.py::test_too_many_failed_polls_give_up_and_cancel \
	--deselect tests/watcher/test_watcher_waits.py::test_one_connection_lookup_for_a_hundred_triggers \
	--deselect tests/watcher/test_watcher_waits.py::test_a_missing_connection_fails_the_trigger_as_before \
	--deselect tests/events/test_event_trigger.py::test_permanent_errors_are_logged_and_the_watcher_keeps_running \
	--deselect tests/events/test_event_trigger.py::test_a_missing_connection_is_logged_and_retried_not_raised

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
		deselect=""; [ "$$m" != 3.0 ] || deselect='$(MATRIX_DESELECT_30)'; \
		echo "== Airflow $$m: $(MATRIX_TESTS) $$deselect"; \
		eval $(MATRIX_VENVS)/airflow-$$m/bin/python -m pytest -q -p no:cacheprovider \
			$(MATRIX_TESTS) $$deselect; \
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
