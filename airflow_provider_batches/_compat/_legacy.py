"""Before Airflow 3.3: a trigger's secret masking, and (3.0) its connection lookup, non-blocking.

3.0 has no ``BaseHook.aget_connection``, and its connection classes call the sync
``mask_secret``, which in the triggerer's runner reaches the supervisor through
``async_to_sync``: called from the event loop's own thread it raises ``RuntimeError``. So the
lookup here returns a :class:`ConnectionView` (parsing ``extra`` masks nothing) and masks the
password and extras itself, over the runner's async channel.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, repr=False)
class ConnectionView:
    """The fields of an Airflow connection, as the hook reads them."""

    conn_id: str
    conn_type: str | None = None
    host: str | None = None
    login: str | None = None
    password: str | None = None
    schema: str | None = None
    port: int | None = None
    extra: str | None = None

    def __repr__(self) -> str:
        return f"ConnectionView(conn_id={self.conn_id!r}, conn_type={self.conn_type!r})"

    @property
    def extra_dejson(self) -> dict[str, Any]:
        if not self.extra:
            return {}
        try:
            value = json.loads(self.extra)
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}


_FIELDS = ("conn_id", "conn_type", "host", "login", "password", "schema", "port", "extra")


def _from_json(conn_id: str, value: str) -> ConnectionView:
    """``AIRFLOW_CONN_<ID>`` in Airflow's JSON form."""
    fields = json.loads(value)
    extra = fields.get("extra")
    return ConnectionView(
        conn_id=conn_id,
        conn_type=fields.get("conn_type"),
        host=fields.get("host"),
        login=fields.get("login"),
        password=fields.get("password"),
        schema=fields.get("schema"),
        port=fields.get("port"),
        extra=extra if extra is None or isinstance(extra, str) else json.dumps(extra),
    )


def _view_of(conn: Any) -> ConnectionView:
    return ConnectionView(
        conn_id=conn.conn_id,
        conn_type=conn.conn_type,
        host=conn.host,
        login=conn.login,
        password=conn.password,
        schema=conn.schema,
        port=conn.port,
        extra=conn.extra,
    )


async def aget_connection(conn_id: str) -> ConnectionView:
    """3.0's lookup order (secrets backends, then the supervisor), made async."""
    from airflow.sdk.exceptions import AirflowRuntimeError
    from airflow.sdk.execution_time import task_runner
    from airflow.sdk.execution_time.comms import ErrorResponse, GetConnection
    from airflow.sdk.execution_time.supervisor import ensure_secrets_backend_loaded
    from airflow.secrets.environment_variables import EnvironmentVariablesBackend
    from asgiref.sync import sync_to_async

    view: ConnectionView | None = None
    for backend in ensure_secrets_backend_loaded():
        if isinstance(backend, EnvironmentVariablesBackend):
            value = backend.get_conn_value(conn_id)  # os.environ, nothing else
            if value is None:
                continue
            if value.lstrip().startswith("{"):
                view = _from_json(conn_id, value)
                break
        # The URI form (only Airflow's model parses it) and custom backends (Vault, AWS, ...):
        # Airflow's sync code in a worker thread, which waits while the loop sends its masks.
        conn = await sync_to_async(backend.get_connection, thread_sensitive=False)(conn_id)
        if conn:
            view = await sync_to_async(_view_of, thread_sensitive=False)(conn)
            break
    if view is None:
        comms = task_runner.SUPERVISOR_COMMS
        request = GetConnection(conn_id=conn_id)
        answer: Any
        if hasattr(comms, "asend"):  # the triggerer's runner: socket I/O on the loop
            answer = await comms.asend(request)
        else:  # dag.test(): an in-process supervisor answers from a queue, no I/O to wait for
            answer = comms.send(request)
        if isinstance(answer, ErrorResponse):
            raise AirflowRuntimeError(answer)
        fields: dict[str, Any] = answer.model_dump(exclude={"type"}, by_alias=True)
        values: dict[str, Any] = {name: fields.get(name) for name in _FIELDS}
        view = ConnectionView(**values)
    await amask_secret(view.password)
    await amask_secret(view.extra_dejson)
    return view


async def amask_secret(secret: Any) -> None:
    """Mask locally and tell the supervisor, over the async channel where there is one (3.3 has
    ``amask_secret``; the sync ``mask_secret`` cannot reach the supervisor from the loop)."""
    if not secret:
        return
    from airflow.sdk.execution_time import task_runner
    from airflow.sdk.execution_time.comms import MaskSecret
    from airflow.sdk.log import mask_secret

    try:
        from airflow.sdk._shared.secrets_masker import _secrets_masker
    except ImportError:  # Airflow 3.0
        from airflow.sdk.execution_time.secrets_masker import (  # type: ignore[no-redef,unused-ignore]
            _secrets_masker,
        )

    comms = getattr(task_runner, "SUPERVISOR_COMMS", None)
    if comms is None or not hasattr(comms, "asend"):
        mask_secret(secret)  # a worker or dag.test(): the sync channel is the right one
        return
    _secrets_masker().add_mask(secret, None)
    await comms.asend(MaskSecret(value=secret, name=None))
