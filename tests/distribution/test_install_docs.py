"""The install the docs describe: lines that name what exists, agree across files, and links
that still work where the README is shown away from the repository (a package index page).

tests/distribution/test_distribution.py runs these lines; here they are read and compared.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from install_docs import (
    COMPATIBILITY,
    QUICKSTART,
    README,
    REPO_ROOT,
    TEST_ONLY_MODULES,
    airflow_release,
    bash_commands,
    constraint_file,
    development_locks,
    install_lines,
    pins,
    pyproject,
    repository_url,
)

import airflow_provider_batches
from airflow_provider_batches import get_provider_info

LOCKS = development_locks()
NEWEST = max(LOCKS, key=lambda minor: tuple(map(int, minor.split("."))))
WHEEL = f"dist/airflow_provider_batches-{airflow_provider_batches.__version__}-py3-none-any.whl"
DOCS = [README, *sorted((REPO_ROOT / "docs").glob("*.md"))]


def test_the_readme_installs_from_a_clone_and_from_the_built_wheel() -> None:
    lines = install_lines(README)
    release = pins(LOCKS[NEWEST])["apache-airflow"]
    constraint = ["--constraint", f"constraints/airflow-{NEWEST}.txt"]
    assert lines == [
        [f"apache-airflow=={release}", ".", *constraint],
        [f"apache-airflow=={release}", WHEEL, *constraint],
    ]


def test_the_quickstart_shows_the_readme_lines() -> None:
    assert install_lines(QUICKSTART) == install_lines(README)


def test_compatibility_has_one_line_per_tested_release_with_its_constraints() -> None:
    lines = install_lines(COMPATIBILITY)
    by_release = {airflow_release(line): line for line in lines}
    assert len(by_release) == len(lines)
    assert sorted(by_release) == sorted(pins(lock)["apache-airflow"] for lock in LOCKS.values())
    for release, line in by_release.items():
        minor = release.rsplit(".", 1)[0]
        assert constraint_file(line) == REPO_ROOT / "constraints" / f"airflow-{minor}.txt"
        # Airflow < 3.2 shows the connection form's extra fields only with flask-appbuilder.
        assert ("flask-appbuilder" in line) == (minor in {"3.0", "3.1"}), line
    assert install_lines(README)[0] in lines


@pytest.mark.parametrize("doc", DOCS, ids=lambda path: path.name)
def test_no_doc_installs_the_provider_from_a_package_index(doc: Path) -> None:
    for command in bash_commands(doc):
        if command.startswith("pip install"):
            assert not re.search(r"(^|\s)airflow-provider-batches(\s|\[|$|=|>|<)", command), (
                f"{doc.name}: no package index has the provider yet: {command}"
            )


def test_readme_links_are_absolute_and_name_files_of_the_repository() -> None:
    repository = repository_url()
    targets = re.findall(r"\]\(([^)\s]+)\)", README.read_text())
    targets += re.findall(r"<(?:img|a)\s[^>]*(?:src|href)=\"([^\"]+)\"", README.read_text())
    assert targets
    for target in targets:
        assert target.startswith("https://"), f"relative link in README.md: {target}"
        if target.startswith(repository + "/"):
            match = re.fullmatch(
                rf"{re.escape(repository)}/(?:blob|tree)/main/([^#]+)(#.*)?", target
            )
            assert match, f"README.md: repository link outside main: {target}"
            assert (REPO_ROOT / match.group(1)).exists(), f"README.md: no such file: {target}"


def test_project_urls_point_at_one_repository() -> None:
    project = pyproject()["project"]
    assert isinstance(project, dict)
    urls = project["urls"]
    assert set(urls) == {"Homepage", "Documentation", "Changelog", "Source", "Issues"}
    assert all(url.startswith(repository_url()) for url in urls.values())
    assert repository_url() in README.read_text()


def test_the_provider_description_names_the_operators_sensor_triggers_and_hook() -> None:
    project = pyproject()["project"]
    assert isinstance(project, dict)
    description = get_provider_info()["description"]
    assert description == project["description"]
    for kind in ("operators", "sensor", "triggers", "hook"):
        assert kind in description


def test_importing_every_provider_module_loads_no_test_tooling() -> None:
    # Here every test tool is installed, so a stray import of one would succeed: look for it.
    code = (
        "import importlib, json, pkgutil, sys\n"
        "import airflow_provider_batches as package\n"
        "for module in pkgutil.walk_packages(package.__path__, package.__name__ + '.'):\n"
        "    if not module.name.endswith('.__main__'):\n"
        "        importlib.import_module(module.name)\n"
        "print(json.dumps(sorted({name.split('.')[0] for name in sys.modules})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = set(json.loads(result.stdout.strip().splitlines()[-1]))
    assert loaded & TEST_ONLY_MODULES == set()
