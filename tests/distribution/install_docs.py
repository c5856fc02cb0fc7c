"""What the docs tell a user to run to install the provider, and the pin files those lines name.

Read from the files themselves, so the tests check the lines a user copies, not a copy of them.
"""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # hatchling, in the development lock, brings tomli on 3.10
    import tomli as tomllib

REPO_ROOT = Path(__file__).resolve().parents[2]
README = REPO_ROOT / "README.md"
QUICKSTART = REPO_ROOT / "docs" / "quickstart.md"
COMPATIBILITY = REPO_ROOT / "docs" / "compatibility.md"

#: Distributions only the project's development needs: never a runtime pin or requirement.
TEST_ONLY = frozenset(
    {
        "anthropic",
        "apache-airflow-providers-amazon",
        "build",
        "editables",
        "flask-cors",
        "hatchling",
        "hypothesis",
        "moto",
        "mypy",
        "ruff",
        "s3fs",
        "twine",
        "uv",
    }
)
#: Top-level modules of those tools: importing the provider must load none of them.
TEST_ONLY_MODULES = frozenset(
    {"anthropic", "build", "hypothesis", "moto", "mypy", "pytest", "_pytest", "s3fs", "twine"}
)

_BLOCK = re.compile(r"^```bash\n(.*?)^```", re.DOTALL | re.MULTILINE)


def normalize(name: str) -> str:
    """A distribution name as package indexes compare them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def is_test_only(name: str) -> bool:
    name = normalize(name)
    return name in TEST_ONLY or name.startswith("pytest")


def bash_commands(markdown: Path) -> list[str]:
    """Every command of the file's bash blocks: continuation lines joined, no blank lines."""
    commands: list[str] = []
    for block in _BLOCK.findall(markdown.read_text()):
        for command in block.replace("\\\n", " ").splitlines():
            if command.strip():
                commands.append(command.strip())
    return commands


def pip_install_argv(command: str) -> list[str] | None:
    """The arguments after ``pip install`` of a line pinned by a constraints file kept here."""
    if not command.startswith("pip install "):
        return None
    words = shlex.split(command, comments=True)
    if "--constraint" not in words:
        return None
    constraint = words[words.index("--constraint") + 1]
    if not constraint.startswith("constraints/"):
        return None  # e.g. Airflow's own file on GitHub: documented as not run here
    # No variables, globs or substitutions: splitting as above is what a shell would run.
    assert not set("$*?`~") & set(command.split("#")[0]), command
    return words[2:]


def install_lines(markdown: Path) -> list[list[str]]:
    """The documented install lines of one file, each as the arguments after ``pip install``."""
    lines = [pip_install_argv(command) for command in bash_commands(markdown)]
    return [line for line in lines if line is not None]


def airflow_release(argv: list[str]) -> str:
    releases = [word.split("==", 1)[1] for word in argv if word.startswith("apache-airflow==")]
    assert len(releases) == 1, argv
    return releases[0]


def constraint_file(argv: list[str]) -> Path:
    return REPO_ROOT / argv[argv.index("--constraint") + 1]


def pins(path: Path) -> dict[str, str]:
    """``name: version`` of a pin file, following its ``-r`` includes."""
    found: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("-r "):
            found.update(pins(path.parent / line[3:].strip()))
            continue
        name, sep, version = line.partition("==")
        assert sep, f"{path.name}: not an exact pin: {raw!r}"
        assert version, f"{path.name}: not an exact pin: {raw!r}"
        found[normalize(name)] = version.strip()
    return found


def development_locks() -> dict[str, Path]:
    """``Airflow minor: lock`` for every development lock (``make venv``, ``make test-matrix``)."""
    locks: dict[str, Path] = {}
    for lock in [REPO_ROOT / "requirements-lock.txt", *sorted(REPO_ROOT.glob("dev-locks/*.txt"))]:
        release = pins(lock)["apache-airflow"]
        locks[release.rsplit(".", 1)[0]] = lock
    return locks


def pyproject() -> dict[str, object]:
    with (REPO_ROOT / "pyproject.toml").open("rb") as file:
        return tomllib.load(file)


def repository_url() -> str:
    project = pyproject()["project"]
    assert isinstance(project, dict)
    url = project["urls"]["Source"]
    assert isinstance(url, str)
    return url
