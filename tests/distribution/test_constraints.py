"""The runtime constraints users install with, against the development locks the tests ran on.

``constraints/airflow-<minor>.txt`` must pin what the tests ran with (its lock's versions) and
nothing only the tests need; each lock must have its runtime file, and the reverse.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from install_docs import REPO_ROOT, development_locks, is_test_only, normalize, pins, pyproject
from packaging.requirements import Requirement

LOCKS = development_locks()


def runtime_file(minor: str) -> Path:
    return REPO_ROOT / "constraints" / f"airflow-{minor}.txt"


def test_every_development_lock_has_its_runtime_constraints_and_the_reverse() -> None:
    runtime_minors = {
        path.stem.removeprefix("airflow-") for path in REPO_ROOT.glob("constraints/*")
    }
    assert runtime_minors == set(LOCKS)
    assert {"3.0", "3.1", "3.2", "3.3"} <= set(LOCKS)


@pytest.mark.parametrize("minor", sorted(LOCKS))
def test_runtime_constraints_hold_no_test_tooling(minor: str) -> None:
    tooling = sorted(name for name in pins(runtime_file(minor)) if is_test_only(name))
    assert tooling == [], f"constraints/airflow-{minor}.txt pins test tooling: {tooling}"


@pytest.mark.parametrize("minor", sorted(LOCKS))
def test_runtime_constraints_pin_the_versions_the_tests_ran_with(minor: str) -> None:
    lock = pins(LOCKS[minor])
    runtime = pins(runtime_file(minor))
    differ = {name: (version, lock.get(name)) for name, version in runtime.items()}
    differ = {name: both for name, both in differ.items() if both[0] != both[1]}
    assert differ == {}, (
        f"constraints/airflow-{minor}.txt and {LOCKS[minor].name} disagree (runtime, lock): "
        f"{differ}; regenerate with `make constraints`"
    )


@pytest.mark.parametrize("minor", sorted(LOCKS))
def test_runtime_constraints_pin_airflow_and_every_provider_dependency(minor: str) -> None:
    runtime = pins(runtime_file(minor))
    assert runtime["apache-airflow"] == pins(LOCKS[minor])["apache-airflow"]
    assert runtime["apache-airflow"].startswith(f"{minor}.")
    project = pyproject()["project"]
    assert isinstance(project, dict)
    for dependency in map(Requirement, project["dependencies"]):
        name = normalize(dependency.name)
        assert name in runtime, f"constraints/airflow-{minor}.txt does not pin {name}"
        assert dependency.specifier.contains(runtime[name]), (name, runtime[name])
