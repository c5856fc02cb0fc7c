"""Build the API base URL from a connection's Host, Schema and Port fields, or explain why not."""

from __future__ import annotations

import ipaddress
import re
import unicodedata
import warnings
from typing import Any, NoReturn
from urllib.parse import SplitResult, urlsplit

from airflow_provider_batches.exceptions import ConnectionConfigError, InsecureEndpointWarning

DEFAULT_BASE_URL = "https://api.anthropic.com"

_USERINFO_RE = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)?(?P<userinfo>[^/?#]*)@")


def without_userinfo(url: str) -> str:
    """``url`` with any ``user:password@`` part replaced by ``***@``, for messages."""
    return _USERINFO_RE.sub(lambda m: f"{m.group('scheme') or ''}***@", url, count=1)


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def base_url(conn_id: str, host: str | None, schema: str | None, port: Any) -> str:
    """The base URL without a trailing slash; :data:`DEFAULT_BASE_URL` when Host is empty."""
    url = (host or "").strip()
    if not url:
        if port is not None:
            _fail(conn_id, "Port is set but Host is empty: put the base URL and port in Host.")
        return DEFAULT_BASE_URL
    if "://" not in url:
        url = f"{schema if schema in ('http', 'https') else 'https'}://{url}"
    shown = without_userinfo(url)
    parts = _split(conn_id, url, shown)
    if "@" in parts.netloc:
        _fail(
            conn_id,
            f"Host {shown!r} carries a user name or password ('user:password@'). Remove it and "
            "put the API key in the Password field.",
        )
    _check_characters(conn_id, url, shown)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        _fail(
            conn_id,
            f"Host {shown!r} is not an http(s) URL. Use a base URL such as {DEFAULT_BASE_URL!r}, "
            "or leave Host empty for that default.",
        )
    if parts.query or parts.fragment:
        _fail(conn_id, "the base URL in Host must not carry a query or fragment.")
    url = _with_port_field(conn_id, parts, shown, port)
    _check_hostname(conn_id, url, shown)
    hostname = urlsplit(url).hostname or ""
    if parts.scheme == "http" and not is_loopback_host(hostname):
        warnings.warn(
            f"Connection {conn_id!r} sends the API key over plain HTTP to {hostname}; use "
            "https:// for anything but a local test server.",
            InsecureEndpointWarning,
            stacklevel=5,
        )
    return url.rstrip("/")


def _fail(conn_id: str, problem: str) -> NoReturn:
    raise ConnectionConfigError(f"Connection {conn_id!r}: {problem}")


def _split(conn_id: str, url: str, shown: str) -> SplitResult:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - urlsplit checks the port only when it is read
    except ValueError:
        _fail(
            conn_id,
            f"Host {shown!r} is not a valid URL, or its port is not a number between 0 and "
            "65535. Use a base URL such as 'https://gateway.example.com:8443/prefix'.",
        )
    return parts


def _check_characters(conn_id: str, url: str, shown: str) -> None:
    for char in url:
        if char.isspace() or unicodedata.category(char).startswith("C"):
            _fail(
                conn_id,
                f"Host {shown!r} contains the whitespace or control character "
                f"U+{ord(char):04X}. Remove it: a base URL is one word such as "
                f"{DEFAULT_BASE_URL!r}.",
            )


def _with_port_field(conn_id: str, parts: SplitResult, shown: str, port: Any) -> str:
    """Host with the Port field applied: added if Host has none, an error if they disagree."""
    if port is None or port == "":
        return parts.geturl()
    number = _as_port(port)
    if not 1 <= number <= 65535:
        _fail(conn_id, f"Port must be a number between 1 and 65535, got {port!r}.")
    if parts.port is None:
        return parts._replace(netloc=f"{parts.netloc}:{number}").geturl()
    if parts.port != number:
        _fail(
            conn_id,
            f"Host {shown!r} names port {parts.port} but the Port field says {number}. Keep "
            "one: clear the Port field, or remove the port from Host.",
        )
    return parts.geturl()


def _as_port(value: Any) -> int:
    """The Port field as an int, or -1 if it is not a whole number."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return -1
    try:
        return int(value)
    except ValueError:
        return -1


def _check_hostname(conn_id: str, url: str, shown: str) -> None:
    """The host must be one httpx can connect to (a valid IDNA name, IP literal or ASCII name)."""
    import httpx

    try:
        parsed = httpx.URL(url)
        parsed.raw_host  # noqa: B018 - IDNA encoding and decoding happen on access
        parsed.host  # noqa: B018
    except (httpx.InvalidURL, UnicodeError, ValueError) as exc:
        _fail(
            conn_id,
            f"Host {shown!r} is not a valid host name ({type(exc).__name__}). Use the host's "
            "ASCII form (for international names, the 'xn--' form your DNS provider shows).",
        )
