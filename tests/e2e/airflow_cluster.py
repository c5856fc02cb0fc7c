"""A real Airflow 3 deployment for end-to-end tests: API server, scheduler, DAG processor and
triggerer as separate processes on loopback, with SQLite and a throwaway ``AIRFLOW_HOME``.

The components are started the way ``airflow standalone`` starts them (one ``airflow <component>``
process each, after ``airflow db migrate``), but by this module, so that every component writes
its own log file, runs from this interpreter (no ``airflow`` on ``PATH`` needed) and can be told
apart when the test asks which process did what. They share one process group, which
:meth:`AirflowCluster.stop` signals as a whole.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psutil

T = TypeVar("T")

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
HEALTH_KEYS = ("metadatabase", "scheduler", "triggerer", "dag_processor")
#: Environment variables of the test process that must not reach the cluster.
_DROPPED_ENV_PREFIXES = ("AIRFLOW_", "_AIRFLOW", "PYTEST_")


def free_port() -> int:
    """A TCP port nobody listens on right now (loopback)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def is_listening(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"
    return "\n".join(text.splitlines()[-lines:])


class ClusterError(AssertionError):
    """The cluster did not do what the test waited for; the message carries log tails."""


class AirflowCluster:
    """Start, drive (through the public REST API ``/api/v2``) and stop a local Airflow.

    :param home: An empty directory to use as ``AIRFLOW_HOME``.
    :param dags_folder: The DAGs folder the DAG processor parses.
    :param extra_env: More environment for every component (e.g. ``AIRFLOW_CONN_*``).
    """

    def __init__(
        self, home: Path, dags_folder: Path, extra_env: Mapping[str, str] | None = None
    ) -> None:
        self.home = home
        self.dags_folder = dags_folder
        self.log_dir = home / "component-logs"
        self.ports = {
            "api": free_port(),
            "worker_log_server": free_port(),
            "trigger_log_server": free_port(),
            "scheduler_health": free_port(),
        }
        self.base_url = f"http://127.0.0.1:{self.ports['api']}"
        self.fernet_key = base64.urlsafe_b64encode(os.urandom(32)).decode()
        self.env = self._environment(dict(extra_env or {}))
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._pgid: int | None = None
        self._client: httpx.Client | None = None
        self.timings: dict[str, float] = {}
        self._started = time.monotonic()

    # ---- lifecycle ---------------------------------------------------------------------------

    def _environment(self, extra_env: dict[str, str]) -> dict[str, str]:
        env = {
            k: v for k, v in os.environ.items() if not k.upper().startswith(_DROPPED_ENV_PREFIXES)
        }
        venv_bin = str(Path(sys.executable).parent)
        env["PATH"] = os.pathsep.join([venv_bin, env.get("PATH", "")])
        no_proxy = ",".join(filter(None, [env.get("NO_PROXY", ""), "127.0.0.1", "localhost"]))
        env["NO_PROXY"] = env["no_proxy"] = no_proxy
        env["PYTHONDONTWRITEBYTECODE"] = "1"  # keep __pycache__ out of the repo's DAGs folder
        env["PYTHONUNBUFFERED"] = "1"
        env["NO_COLOR"] = "1"
        # Temporary files inside the home too, so the secrets audit sees them.
        env["TMPDIR"] = str(self.home / "tmp")
        api = self.ports["api"]
        settings = {
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__FERNET_KEY": self.fernet_key,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api}/execution/",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home / 'airflow.db'}",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(api),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api}",
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(64),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self.ports["worker_log_server"]),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(self.ports["trigger_log_server"]),
            "AIRFLOW__LOGGING__COLORED_CONSOLE_LOG": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(
                self.ports["scheduler_health"]
            ),
            "AIRFLOW__SCHEDULER__JOB_HEARTBEAT_SEC": "2",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
            "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_STORAGE_PATH": str(self.home / "dag_bundles"),
            "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "2",
            # On a loaded 2-core machine the API server can take more than the default 5 s.
            "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "30",
        }
        env.update(settings)
        env.update(extra_env)
        return env

    def start(self, timeout: float = 150.0) -> AirflowCluster:
        """Migrate the DB, start every component, wait until healthy and log in."""
        started = self._started = time.monotonic()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        (self.home / "tmp").mkdir(exist_ok=True)
        self._migrate(timeout=min(timeout, 120.0))
        self.timings["migrate"] = time.monotonic() - started
        # A sentinel leads the process group, so the group exists however the components fare.
        sentinel = subprocess.Popen(
            [sys.executable, "-c", "import signal; signal.pause()"],
            env=self.env,
            preexec_fn=os.setpgrp,
        )
        self.processes["group-leader"] = sentinel
        self._pgid = sentinel.pid
        for component in COMPONENTS:
            self._spawn(component)
        self.wait_for(self._healthy, timeout - (time.monotonic() - started), "components healthy")
        self.timings["healthy"] = time.monotonic() - started
        self._login()
        return self

    def _migrate(self, timeout: float) -> None:
        log = self.log_dir / "db-migrate.log"
        with log.open("wb") as out:
            try:
                result = subprocess.run(
                    [sys.executable, "-m", "airflow", "db", "migrate"],
                    env=self.env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    timeout=timeout,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                raise ClusterError(f"airflow db migrate timed out:\n{tail(log)}") from None
        if result.returncode != 0:
            raise ClusterError(f"airflow db migrate failed ({result.returncode}):\n{tail(log)}")

    def _spawn(self, component: str) -> None:
        pgid = self._pgid
        assert pgid is not None
        out = (self.log_dir / f"{component}.log").open("wb")
        try:
            self.processes[component] = subprocess.Popen(
                [sys.executable, "-m", "airflow", component],
                env=self.env,
                cwd=self.home,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=lambda: os.setpgid(0, pgid),
            )
        finally:
            out.close()  # the child holds its own descriptor

    def _healthy(self) -> bool:
        self._check_alive()
        try:
            response = httpx.get(f"{self.base_url}/api/v2/monitor/health", timeout=5)
        except httpx.HTTPError:
            return False
        if response.status_code != 200:
            return False
        health = response.json()
        healthy = [key for key in HEALTH_KEYS if (health.get(key) or {}).get("status") == "healthy"]
        for key in healthy:
            self.timings.setdefault(f"healthy: {key}", time.monotonic() - self._started)
        if len(healthy) < len(HEALTH_KEYS):
            return False
        # Workers talk to the execution API: make sure it answers too (its first call is slow).
        try:
            execution = httpx.get(f"{self.base_url}/execution/health", timeout=30)
        except httpx.HTTPError:
            return False
        return execution.status_code == 200

    def _login(self) -> None:
        password_file = self.home / "simple_auth_manager_passwords.json.generated"
        self.wait_for(password_file.exists, 30, f"{password_file.name} written")
        passwords = json.loads(password_file.read_text())
        username, password = next(iter(passwords.items()))
        response = httpx.post(
            f"{self.base_url}/auth/token",
            json={"username": username, "password": password},
            timeout=30,
        )
        if response.status_code not in (200, 201):
            raise ClusterError(f"login failed: {response.status_code} {response.text}")
        token = response.json()["access_token"]
        self._client = httpx.Client(
            base_url=f"{self.base_url}/api/v2",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
            trust_env=False,
        )

    def _check_alive(self) -> None:
        dead = {
            name: proc.returncode
            for name, proc in self.processes.items()
            if proc.poll() is not None
        }
        if dead:
            raise ClusterError(f"Airflow component(s) exited early: {dead}\n{self.log_tails()}")

    def stop(self, grace: float = 30.0) -> list[str]:
        """SIGTERM the process group, SIGKILL what remains; returns what had to be killed."""
        if self._client is not None:
            self._client.close()
            self._client = None
        forced: list[str] = []
        if self._pgid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._pgid, signal.SIGTERM)
            signalled = time.monotonic()
            running = dict(self.processes)
            while running and time.monotonic() - signalled < grace:
                for name, proc in list(running.items()):
                    if proc.poll() is not None:
                        self.timings[f"exit after SIGTERM: {name}"] = time.monotonic() - signalled
                        del running[name]
                time.sleep(0.1)
            forced.extend(running)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._pgid, signal.SIGKILL)
            for proc in self.processes.values():
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=10)
            self._pgid = None
        # Task processes run in process groups of their own: catch anything still running here.
        for proc in self.stray_processes():
            forced.append(f"stray pid {proc.pid} {' '.join(proc.cmdline()[:4])}")
            with contextlib.suppress(psutil.Error):
                proc.kill()
        return forced

    def stray_processes(self) -> list[psutil.Process]:
        """Live processes (other than this one) whose environment has this ``AIRFLOW_HOME``."""
        found = []
        for proc in psutil.process_iter():
            if proc.pid == os.getpid():
                continue
            with contextlib.suppress(psutil.Error):
                if (
                    proc.environ().get("AIRFLOW_HOME") == str(self.home)
                    and proc.is_running()
                    and proc.status() != psutil.STATUS_ZOMBIE
                ):
                    found.append(proc)
        return found

    def listening_ports(self) -> dict[str, int]:
        """Which of the cluster's ports something still listens on."""
        return {name: port for name, port in self.ports.items() if is_listening(port)}

    # ---- diagnostics -------------------------------------------------------------------------

    def log_tails(self, lines: int = 40) -> str:
        parts = []
        for path in sorted(self.log_dir.glob("*.log")):
            parts.append(f"----- {path.name} (last {lines} lines) -----\n{tail(path, lines)}")
        task_logs = sorted((self.home / "logs").glob("dag_id=*/**/*.log"))
        for path in task_logs[-4:]:
            rel = path.relative_to(self.home)
            parts.append(f"----- {rel} (last {lines} lines) -----\n{tail(path, lines)}")
        return "\n".join(parts)

    def wait_for(
        self,
        probe: Callable[[], T | None],
        timeout: float,
        what: str,
        interval: float = 0.5,
        describe: Callable[[], str] | None = None,
    ) -> T:
        """Call ``probe`` until it returns something truthy; fail with log tails on timeout.

        A probe that cannot reach the API server (busy, or not up yet) counts as not yet.
        """
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while True:
            try:
                value = probe()
            except httpx.TransportError as exc:
                value, last_error = None, exc
            if value:
                return value
            if time.monotonic() > deadline:
                detail = describe() if describe is not None else ""
                raise ClusterError(
                    f"timed out after {timeout:.0f}s waiting for: {what}\n{detail}\n"
                    f"last connection error: {last_error!r}\n{self.log_tails()}"
                )
            time.sleep(interval)
            if self.processes:
                self._check_alive()

    # ---- REST API ----------------------------------------------------------------------------

    def api(self, method: str, path: str, *, expect: Iterable[int] = (200,), **kwargs: Any) -> Any:
        """Call ``/api/v2{path}``; the decoded JSON body, or a ClusterError with the response."""
        assert self._client is not None, "cluster not started"
        response = self._client.request(method, path, **kwargs)
        if response.status_code not in set(expect):
            raise ClusterError(f"{method} {path} -> {response.status_code}: {response.text[:2000]}")
        return response.json() if response.content else None

    def wait_for_dag(self, dag_id: str, timeout: float = 60.0) -> dict[str, Any]:
        """Wait until the DAG processor has parsed and serialized ``dag_id``."""

        def probe() -> dict[str, Any] | None:
            errors = self.api("GET", "/importErrors")["import_errors"]
            if errors:
                raise ClusterError(f"DAG import errors: {json.dumps(errors, indent=2)}")
            response = self._client.get(f"/dags/{dag_id}")  # type: ignore[union-attr]
            return response.json() if response.status_code == 200 else None

        dag: dict[str, Any] = self.wait_for(probe, timeout, f"DAG {dag_id} parsed", interval=1)
        return dag

    def unpause(self, dag_id: str) -> None:
        dag = self.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
        assert dag["is_paused"] is False, dag

    def trigger(self, dag_id: str, conf: dict[str, Any]) -> str:
        run = self.api("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf})
        return str(run["dag_run_id"])

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        run: dict[str, Any] = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")
        return run

    def task_instances(self, dag_id: str, run_id: str) -> dict[str, dict[str, Any]]:
        body = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        return {ti["task_id"]: ti for ti in body["task_instances"]}

    def task_instance(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
        ti: dict[str, Any] = self.api(
            "GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"
        )
        return ti

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        entry = self.api(
            "GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}"
        )
        return entry["value"]

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> str:
        """The task's log as Airflow serves it (worker and triggerer parts), one event a line."""
        body = self.api(
            "GET",
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
            params={"full_content": "true"},
            headers={"Accept": "application/json"},
        )
        content = body.get("content", [])
        if isinstance(content, str):
            return content
        return "\n".join(
            json.dumps(line) if isinstance(line, dict) else str(line) for line in content
        )

    def describe_run(self, dag_id: str, run_id: str) -> str:
        """One-line-per-task summary for failure messages."""
        with contextlib.suppress(Exception):
            run = self.dag_run(dag_id, run_id)
            tis = self.task_instances(dag_id, run_id)
            states = ", ".join(f"{tid}={ti['state']}" for tid, ti in sorted(tis.items()))
            return f"run {run_id}: {run['state']}; tasks: {states}"
        return f"run {run_id}: <unavailable>"

    # ---- processes ---------------------------------------------------------------------------

    def component_tree(self, component: str) -> set[int]:
        """PIDs of a component's process and all its descendants (e.g. the trigger runner)."""
        proc = self.processes[component]
        try:
            root = psutil.Process(proc.pid)
            return {root.pid, *(child.pid for child in root.children(recursive=True))}
        except psutil.NoSuchProcess:
            return set()

    def process_environ(self, component: str) -> dict[str, str]:
        """The environment a running component actually has."""
        return dict(psutil.Process(self.processes[component].pid).environ())

    @staticmethod
    def pid_of_local_port(port: int, remote_port: int) -> int | None:
        """The process holding the loopback TCP connection from ``port`` to ``remote_port``."""
        for conn in psutil.net_connections(kind="tcp"):
            if (
                conn.laddr
                and conn.raddr
                and conn.laddr.port == port
                and conn.raddr.port == remote_port
                and conn.pid
            ):
                return int(conn.pid)
        return None
