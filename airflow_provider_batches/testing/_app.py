"""Wires state, routes and the HTTP server together; shared by the thread and the CLI."""

from __future__ import annotations

import dataclasses
import ipaddress
from email.utils import formatdate

from ._admin_routes import AdminRoutes
from ._http import HttpRequest, HttpResponse, HttpServer
from ._routes import ApiRoutes
from ._state import FakeState
from ._target import parse_target

ADMIN_PREFIX = "_fake"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def format_base_url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


class FakeApp:
    """One fake API instance: call :meth:`start` then :meth:`close` on the same event loop."""

    def __init__(
        self,
        state: FakeState,
        api_key: str,
        *,
        backlog: int = 4096,
        allow_non_loopback: bool = False,
    ) -> None:
        self.state = state
        self._api = ApiRoutes(state, api_key)
        self._admin = AdminRoutes(state)
        self._server = HttpServer(
            self._handle, on_connection=state.note_connection, backlog=backlog
        )
        self._allow_non_loopback = allow_non_loopback
        self.base_url = ""

    async def _handle(self, request: HttpRequest) -> HttpResponse:
        target = parse_target(request.target)
        if target.segments and target.segments[0] == ADMIN_PREFIX:
            return await self._admin.handle(request, target)
        response = await self._api.handle(request, target)
        # Like the API's: what clients measure their clock against (one-second resolution).
        date = formatdate(self.state.now(), usegmt=True)
        return dataclasses.replace(response, headers=(*response.headers, ("date", date)))

    @property
    def open_connections(self) -> int:
        return self._server.open_connections

    async def start(self, host: str, port: int) -> str:
        """Listen on ``host:port`` (0 = any free port); returns the base URL."""
        if not self._allow_non_loopback and not is_loopback(host):
            raise ValueError(
                f"refusing to listen on non-loopback host {host!r}; "
                "pass allow_non_loopback=True (--allow-non-loopback) to override"
            )
        bind_host = "127.0.0.1" if host == "localhost" else host
        bound_host, bound_port = await self._server.start(bind_host, port)
        self.base_url = format_base_url(bound_host, bound_port)
        self.state.base_url = self.base_url
        return self.base_url

    async def close(self) -> None:
        await self._server.close()
