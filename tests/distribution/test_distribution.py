"""The wheel and sdist users install: their contents and metadata, and the documented install
lines run as written in a fresh virtual environment with nothing but Airflow and the provider.

Built once per module exactly as ``make dist`` builds them. The fresh-venv test is the slowest
of the suite (Airflow installs from the package registry, through pip's cache); every step has
its own time bound.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import Message
from email.parser import Parser
from pathlib import Path

import pytest
from install_docs import (
    COMPATIBILITY,
    README,
    REPO_ROOT,
    TEST_ONLY_MODULES,
    airflow_release,
    install_lines,
    is_test_only,
    repository_url,
)

import airflow_provider_batches
from airflow_provider_batches import get_provider_info

pytestmark = pytest.mark.packaging

VERSION = airflow_provider_batches.__version__
DIST_INFO = f"airflow_provider_batches-{VERSION}.dist-info"
SDIST_ROOT = f"airflow_provider_batches-{VERSION}"
PYTHONS = ("3.10", "3.11", "3.12", "3.13")
#: The classes the provider's triggers serialize, rebuilt from their classpaths as a triggerer
#: does, with the arguments a DAG would give them.
TRIGGER_KWARGS = {
    "airflow_provider_batches.triggers.batch.MessageBatchTrigger": {"batch_id": "msgbatch_01"},
    "airflow_provider_batches.triggers.events.MessageBatchEventTrigger": {},
}


@dataclass(frozen=True)
class Dists:
    wheel: Path
    sdist: Path


def run(argv: list[str], timeout: float, **kwargs: object) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, check=False, **kwargs
    )
    assert done.returncode == 0, f"{argv}:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Dists:
    out = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "build", "--outdir", str(out), str(REPO_ROOT)], timeout=300)
    (wheel,) = out.glob("*.whl")
    (sdist,) = out.glob("*.tar.gz")
    return Dists(wheel, sdist)


def wheel_metadata(wheel: Path) -> Message:
    with zipfile.ZipFile(wheel) as archive:
        return Parser().parsestr(archive.read(f"{DIST_INFO}/METADATA").decode())


def package_sources() -> set[str]:
    package = REPO_ROOT / "airflow_provider_batches"
    return {
        path.relative_to(REPO_ROOT).as_posix()
        for path in package.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


def test_the_wheel_holds_the_package_its_licence_and_notice_and_nothing_else(dists: Dists) -> None:
    with zipfile.ZipFile(dists.wheel) as archive:
        names = set(archive.namelist())
        licence = archive.read(f"{DIST_INFO}/licenses/LICENSE").decode()
        notice = archive.read(f"{DIST_INFO}/licenses/NOTICE").decode()
    package = {name for name in names if not name.startswith(DIST_INFO + "/")}
    assert package == package_sources()
    assert "airflow_provider_batches/py.typed" in package
    assert "airflow_provider_batches/cost/prices.json" in package  # the shipped price table
    assert licence == (REPO_ROOT / "LICENSE").read_text()
    assert "Apache License\n                           Version 2.0, January 2004" in licence
    assert "END OF TERMS AND CONDITIONS" in licence  # the whole text, not a pointer to it
    assert notice == (REPO_ROOT / "NOTICE").read_text()


def test_the_sdist_holds_what_the_readme_install_needs_and_no_development_files(
    dists: Dists,
) -> None:
    with tarfile.open(dists.sdist) as archive:
        names = {name.removeprefix(SDIST_ROOT + "/") for name in archive.getnames()}
        licence = archive.extractfile(f"{SDIST_ROOT}/LICENSE")
        assert licence is not None
        assert licence.read().decode() == (REPO_ROOT / "LICENSE").read_text()
    required = {"LICENSE", "NOTICE", "README.md", "CHANGELOG.md", "pyproject.toml", "PKG-INFO"}
    required |= {f"constraints/{path.name}" for path in REPO_ROOT.glob("constraints/*.txt")}
    assert required <= names
    assert package_sources() <= names
    assert not {name for name in names if name.split("/")[0] in {"tests", "dev-locks", ".ci"}}


def test_the_metadata_a_package_index_shows(dists: Dists) -> None:
    metadata = wheel_metadata(dists.wheel)
    classifiers = set(metadata.get_all("Classifier") or [])
    assert {"Framework :: Apache Airflow", "Framework :: Apache Airflow :: Provider"} <= classifiers
    assert {f"Programming Language :: Python :: {python}" for python in PYTHONS} <= classifiers
    assert metadata["Requires-Python"] == f">={PYTHONS[0]}"
    assert any(c.startswith("Development Status :: ") for c in classifiers)
    assert "Typing :: Typed" in classifiers
    assert metadata["License-Expression"] == "Apache-2.0"
    assert set(metadata.get_all("License-File") or []) == {"LICENSE", "NOTICE"}
    urls = dict(url.split(", ", 1) for url in metadata.get_all("Project-URL") or [])
    assert set(urls) == {"Homepage", "Documentation", "Changelog", "Source", "Issues"}
    assert all(url.startswith(repository_url()) for url in urls.values())
    assert metadata["Summary"] == get_provider_info()["description"]
    assert metadata["Description-Content-Type"] == "text/markdown"
    with zipfile.ZipFile(dists.wheel) as archive:
        entry_points = archive.read(f"{DIST_INFO}/entry_points.txt").decode()
    assert "[apache_airflow_provider]" in entry_points
    assert "provider_info = airflow_provider_batches:get_provider_info" in entry_points


def test_nothing_test_only_is_a_requirement_or_an_extra(dists: Dists) -> None:
    metadata = wheel_metadata(dists.wheel)
    requires = metadata.get_all("Requires-Dist") or []
    names = {
        requirement.split(";")[0].split("[")[0].split(">")[0].split("=")[0].strip()
        for requirement in requires
    }
    assert names == {
        "apache-airflow",
        "httpx",
        "pydantic",
        "h11",
        "orjson",
        "jsonschema",
        "jsonschema-rs",
    }
    assert not [name for name in names if is_test_only(name)]
    assert metadata.get_all("Provides-Extra") is None


def test_twine_check_passes(dists: Dists) -> None:
    run(
        [sys.executable, "-m", "twine", "check", "--strict", str(dists.wheel), str(dists.sdist)],
        timeout=120,
    )


# ----------------------------------------------------------------------------------------------
# The documented install, run as written in a fresh virtual environment

PROBE = """
import importlib, json, pkgutil, sys
import airflow_provider_batches as package
from airflow.triggers.base import BaseTrigger


def import_string(classpath):  # what the triggerer does with a serialized classpath
    module, _, name = classpath.rpartition(".")
    return getattr(importlib.import_module(module), name)


for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
    if not module.name.endswith(".__main__"):
        importlib.import_module(module.name)
loaded = sorted({name.split(".")[0] for name in sys.modules})

triggers = package.get_provider_info()["triggers"]
trigger_modules = [module for entry in triggers for module in entry["python-modules"]]
classpaths = sorted(
    f"{cls.__module__}.{cls.__qualname__}"
    for module in map(importlib.import_module, trigger_modules)
    for cls in vars(module).values()
    if isinstance(cls, type) and issubclass(cls, BaseTrigger) and cls.__module__ == module.__name__
)
kwargs = json.loads(sys.argv[1])
round_trips = {}
for classpath in classpaths:
    trigger = import_string(classpath)(**kwargs[classpath])
    serialized_path, serialized_kwargs = trigger.serialize()
    again = import_string(serialized_path)(**serialized_kwargs)
    round_trips[classpath] = [serialized_path, again.serialize() == trigger.serialize()]
print(json.dumps({"loaded": loaded, "round_trips": round_trips}))
"""


def fresh_environment(venv: Path, airflow_home: Path) -> dict[str, str]:
    """The user's shell: the venv first on PATH, none of this test run's Airflow settings.

    pip keeps its cache (PIP_CACHE_DIR or the default), so Airflow's wheels come from it when
    ``make venv`` fetched them before.
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AIRFLOW", "PYTHON", "VIRTUAL_ENV", "PIP_NO_CACHE"))
    }
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["AIRFLOW_HOME"] = str(airflow_home)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def pip(venv: Path, argv: list[str], cwd: Path, env: Mapping[str, str], timeout: float) -> str:
    return run([str(venv / "bin" / "pip"), *argv], timeout=timeout, cwd=cwd, env=env).stdout


@pytest.mark.timeout(1500)
def test_the_documented_install_works_in_a_fresh_venv(dists: Dists, tmp_path: Path) -> None:
    # A clone as a user has it (the sdist, which the README's lines need no more than), with
    # the wheel built in it.
    with tarfile.open(dists.sdist) as archive:
        archive.extractall(tmp_path, filter="data")
    clone = tmp_path / SDIST_ROOT
    (clone / "dist").mkdir()
    (clone / "dist" / dists.wheel.name).write_bytes(dists.wheel.read_bytes())
    venv, empty = tmp_path / "venv", tmp_path / "empty-venv"
    for path in (venv, empty):
        run([sys.executable, "-m", "venv", str(path)], timeout=120)
    env = fresh_environment(venv, tmp_path / "airflow-home")
    from_clone, from_wheel = install_lines(README)

    # Every other release's line resolves as written (--dry-run: nothing installed), in a venv
    # that stays empty, all at once and while the newest release's line installs: most of
    # their time is spent waiting on the package registry.
    dry_runs = [
        subprocess.Popen(
            [str(empty / "bin" / "pip"), "install", *line, "--dry-run", "--quiet"],
            cwd=clone,
            env=fresh_environment(empty, tmp_path / "airflow-home"),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for line in install_lines(COMPATIBILITY)
        if line != from_clone
    ]
    assert len(dry_runs) == len(install_lines(COMPATIBILITY)) - 1
    try:
        pip(venv, ["install", *from_wheel], clone, env, timeout=900)  # meanwhile, for real
        outputs = [dry_run.communicate(timeout=600)[0] for dry_run in dry_runs]
    finally:
        for dry_run in dry_runs:
            if dry_run.poll() is None:
                dry_run.kill()
                dry_run.wait()
    for dry_run, output in zip(dry_runs, outputs, strict=True):
        assert dry_run.returncode == 0, f"{dry_run.args}:\n{output[-4000:]}"
    pip(venv, ["check"], clone, env, timeout=120)
    installed = json.loads(pip(venv, ["list", "--format", "json"], clone, env, timeout=120))
    versions = {package["name"].lower(): package["version"] for package in installed}
    assert versions["airflow-provider-batches"] == VERSION
    assert versions["apache-airflow"] == airflow_release(from_wheel)
    assert not [name for name in versions if is_test_only(name)]

    airflow = str(venv / "bin" / "airflow")
    providers = json.loads(run([airflow, "providers", "list", "-o", "json"], 300, env=env).stdout)
    assert {"package_name": "airflow-provider-batches", "version": VERSION}.items() <= next(
        p for p in providers if p["package_name"] == "airflow-provider-batches"
    ).items()
    hooks = json.loads(run([airflow, "providers", "hooks", "-o", "json"], 300, env=env).stdout)
    assert {
        "connection_type": "anthropic_batches",
        "class": "airflow_provider_batches.hooks.batch.MessageBatchHook",
        "package_name": "airflow-provider-batches",
    }.items() <= next(h for h in hooks if h["connection_type"] == "anthropic_batches").items()

    probe = run(
        [str(venv / "bin" / "python"), "-c", PROBE, json.dumps(TRIGGER_KWARGS)],
        timeout=300,
        cwd=tmp_path,  # not the clone: the installed package must be the one imported
        env=env,
    )
    report = json.loads(probe.stdout.strip().splitlines()[-1])
    assert set(report["loaded"]) & TEST_ONLY_MODULES == set()
    assert report["round_trips"] == {path: [path, True] for path in TRIGGER_KWARGS}

    # The clone line builds the provider from the source tree itself.
    pip(venv, ["uninstall", "--yes", "airflow-provider-batches"], clone, env, timeout=120)
    pip(venv, ["install", *from_clone], clone, env, timeout=600)
    pip(venv, ["check"], clone, env, timeout=120)
    shown = pip(venv, ["show", "airflow-provider-batches"], clone, env, timeout=120)
    assert f"Version: {VERSION}" in shown.splitlines()
