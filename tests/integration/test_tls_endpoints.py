"""TLS and endpoints: certificate checks on by default, plain-HTTP warnings, proxies.

No HTTPS fake exists, so TLS is checked on the clients the provider builds (their SSL
context) and against plain-HTTP or silent loopback ports; proxies are checked with the fake
acting as the proxy (it records the absolute-form or CONNECT request it receives).
"""

from __future__ import annotations

import datetime
import json
import socket
import ssl
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from reliability_fixtures import closed_loopback_port, run_trigger

from airflow_provider_batches._connection.settings import ClientSettings, InsecureEndpointWarning
from airflow_provider_batches._http.clients import (
    aclose_shared_clients,
    close_shared_sync_clients,
)
from airflow_provider_batches.exceptions import (
    APIConnectionError,
    APITimeoutError,
    ConnectionConfigError,
)
from airflow_provider_batches.hooks.batch import MessageBatchHook
from airflow_provider_batches.testing import FakeBatchesServer
from airflow_provider_batches.triggers.batch import MessageBatchTrigger

PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@dataclass
class Conn:
    """The connection fields the settings read (any connection type has them)."""

    host: str | None
    conn_id: str = "rel_tls"
    schema: str | None = None
    port: int | None = None
    password: str | None = "sk-ant-api03-tls-test"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def extra_dejson(self) -> dict[str, Any]:
        return self.extra


@pytest.fixture(autouse=True)
def _isolated_clients(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No proxy variables from outside, and no cached sync client across tests."""
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    close_shared_sync_clients()
    yield
    close_shared_sync_clients()


# ---- a small TLS server on loopback, with certificates made for the test -----------------


@dataclass(frozen=True)
class Pki:
    ca: Path
    cert: Path
    key: Path
    wrong_host_cert: Path
    wrong_host_key: Path


def _name(common_name: str) -> Any:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _issue(
    subject: str, issuer: str, public_key: Any, signing_key: Any, *, ca: bool, sans: list[Any]
) -> Any:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(signing_key, hashes.SHA256())


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A private CA, a server certificate for 127.0.0.1/localhost, one for another host."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    folder = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _issue(
        "Reliability Test CA", "Reliability Test CA", ca_key.public_key(), ca_key, ca=True, sans=[]
    )
    paths = {"ca": folder / "ca.pem"}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    loopback = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
    for prefix, sans in (("", loopback), ("wrong_host_", [x509.DNSName("other.example")])):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _issue(
            "server", "Reliability Test CA", key.public_key(), ca_key, ca=False, sans=sans
        )
        paths[f"{prefix}cert"] = folder / f"{prefix}server.pem"
        paths[f"{prefix}cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        paths[f"{prefix}key"] = folder / f"{prefix}server.key"
        paths[f"{prefix}key"].write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return Pki(**paths)


class _BatchHandler(BaseHTTPRequestHandler):
    """Answers every GET with an ended batch named after the path's last segment."""

    def do_GET(self) -> None:
        batch_id = unquote(self.path.rsplit("/", 1)[-1])
        body = json.dumps(
            {
                "id": batch_id,
                "type": "message_batch",
                "processing_status": "ended",
                "request_counts": {
                    "processing": 0,
                    "succeeded": 1,
                    "errored": 0,
                    "canceled": 0,
                    "expired": 0,
                },
                "created_at": "2024-08-20T18:37:24.100435Z",
                "expires_at": "2024-08-21T18:37:24.100435Z",
                "ended_at": "2024-08-20T18:47:24.100435Z",
                "cancel_initiated_at": None,
                "archived_at": None,
                "results_url": None,
            }
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def tls_server(cert: Path, key: Path) -> Iterator[str]:
    """An HTTPS server on a free loopback port; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _BatchHandler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


# ---- certificate verification --------------------------------------------------------------


def test_certificate_verification_is_on_by_default() -> None:
    assert ClientSettings.from_connection(Conn("https://api.anthropic.com")).verify is True
    # No Host at all means https://api.anthropic.com, verified.
    settings = ClientSettings.from_connection(Conn(None))
    assert (settings.base_url, settings.verify) == ("https://api.anthropic.com", True)


def test_an_untrusted_certificate_is_refused_by_default(
    pki: Pki, set_connection: Callable[..., None]
) -> None:
    with tls_server(pki.cert, pki.key) as url:
        set_connection("rel_tls_default", url, max_retries=0)
        with pytest.raises(APIConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
            MessageBatchHook("rel_tls_default").retrieve_batch("msgbatch_tls")


async def test_an_untrusted_certificate_is_refused_by_default_in_triggers(
    pki: Pki, set_connection: Callable[..., None]
) -> None:
    with tls_server(pki.cert, pki.key) as url:
        set_connection("rel_tls_default_t", url, max_retries=0)
        try:
            events = await run_trigger(
                MessageBatchTrigger(
                    "msgbatch_tls",
                    conn_id="rel_tls_default_t",
                    poll_interval=0.05,
                    max_consecutive_errors=1,
                ),
                timeout=10,
            )
        finally:
            await aclose_shared_clients()
    assert [e["status"] for e in events] == ["error"]
    assert events[0]["error"]["error_class"] == "APIConnectionError"
    assert "CERTIFICATE_VERIFY_FAILED" in events[0]["message"]


@pytest.mark.parametrize("verify", ["ca", False, "false"])
def test_a_ca_bundle_or_verify_false_lets_the_connection_through(
    pki: Pki, set_connection: Callable[..., None], verify: object
) -> None:
    with tls_server(pki.cert, pki.key) as url:
        set_connection(
            "rel_tls_ok", url, max_retries=0, verify=str(pki.ca) if verify == "ca" else verify
        )
        assert MessageBatchHook("rel_tls_ok").retrieve_batch("msgbatch_tls").id == "msgbatch_tls"


@pytest.mark.parametrize("verify", ["ca", False])
async def test_a_ca_bundle_or_verify_false_lets_triggers_through(
    pki: Pki, set_connection: Callable[..., None], verify: object
) -> None:
    with tls_server(pki.cert, pki.key) as url:
        set_connection("rel_tls_ok_t", url, verify=str(pki.ca) if verify == "ca" else verify)
        try:
            events = await run_trigger(
                MessageBatchTrigger("msgbatch_tls", conn_id="rel_tls_ok_t", poll_interval=0.05),
                timeout=10,
            )
        finally:
            await aclose_shared_clients()
    assert [(e["status"], e["batch_id"]) for e in events] == [("success", "msgbatch_tls")]


def test_a_trusted_certificate_for_another_host_is_refused(
    pki: Pki, set_connection: Callable[..., None]
) -> None:
    """A CA bundle adds trust, it does not turn hostname checking off."""
    with tls_server(pki.wrong_host_cert, pki.wrong_host_key) as url:
        set_connection("rel_tls_host", url, max_retries=0, verify=str(pki.ca))
        with pytest.raises(APIConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
            MessageBatchHook("rel_tls_host").retrieve_batch("msgbatch_tls")


@pytest.mark.parametrize("value", ["", 0, 1, [], {"path": "x"}])
def test_verify_values_that_mean_nothing_are_rejected(value: object) -> None:
    with pytest.raises(ConnectionConfigError, match="'verify'"):
        ClientSettings.from_connection(Conn("https://gateway.internal", extra={"verify": value}))


@pytest.mark.parametrize("problem", ["missing", "not-pem"])
def test_unusable_ca_bundle_is_a_connection_config_error(
    tmp_path: Path, set_connection: Callable[..., None], problem: str
) -> None:
    """A CA bundle path that cannot be loaded must fail as a configuration error naming the
    connection and the extra, like every other bad extra: not a bare OSError/SSLError."""
    bundle = tmp_path / "ca.pem"
    if problem == "not-pem":
        bundle.write_text("this is not a certificate\n")
    set_connection("rel_bad_ca", "https://gateway.internal", verify=str(bundle), max_retries=0)
    with pytest.raises(ConnectionConfigError, match="verify"):
        MessageBatchHook("rel_bad_ca").retrieve_batch("msgbatch_x")


async def test_unusable_ca_bundle_ends_the_trigger_with_an_error_event(
    tmp_path: Path, set_connection: Callable[..., None]
) -> None:
    """In the triggerer the same mistake must end the wait with an ``error`` event (permanent),
    not crash the trigger with ``FileNotFoundError``."""
    set_connection(
        "rel_bad_ca_trigger", "https://gateway.internal", verify=str(tmp_path / "missing.pem")
    )
    try:
        events = await run_trigger(
            MessageBatchTrigger("msgbatch_x", conn_id="rel_bad_ca_trigger", poll_interval=0.05),
            timeout=10,
        )
    finally:
        await aclose_shared_clients()
    assert [e["status"] for e in events] == ["error"]
    assert events[0]["error"]["error_class"] == "ConnectionConfigError"


# ---- wrong or silent TLS peers: a clear error, no hang -------------------------------------


def test_https_to_a_plain_http_port_fails_fast_with_a_connection_error(
    fake: FakeBatchesServer, set_connection: Callable[..., None]
) -> None:
    # A 600 s timeout: only the handshake failing at once (not a timeout) ends this call.
    set_connection(
        "rel_https_on_http",
        fake.base_url.replace("http://", "https://"),
        max_retries=0,
        timeout=600,
    )
    with pytest.raises(APIConnectionError) as raised:
        MessageBatchHook("rel_https_on_http").retrieve_batch("msgbatch_x")
    assert type(raised.value) is APIConnectionError  # not APITimeoutError
    assert raised.value.attempts == 1
    assert "SSL" in raised.value.message
    assert raised.value.url.startswith("https://")
    assert fake.request_count() == 0  # the handshake never became an HTTP request


async def test_https_to_a_plain_http_port_ends_the_trigger_with_an_error_event(
    fake: FakeBatchesServer, set_connection: Callable[..., None]
) -> None:
    set_connection(
        "rel_https_on_http_t", fake.base_url.replace("http://", "https://"), max_retries=0
    )
    try:
        events = await run_trigger(
            MessageBatchTrigger(
                "msgbatch_x",
                conn_id="rel_https_on_http_t",
                poll_interval=0.05,
                max_consecutive_errors=2,
            ),
            timeout=10,
        )
    finally:
        await aclose_shared_clients()
    assert [e["status"] for e in events] == ["error"]
    assert events[0]["error"]["error_class"] == "APIConnectionError"
    assert "SSL" in events[0]["message"]


def test_a_peer_that_never_answers_the_tls_handshake_times_out(
    set_connection: Callable[..., None],
) -> None:
    """The TCP connection is accepted (kernel backlog) but no byte ever comes back."""
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        set_connection("rel_silent_tls", f"https://127.0.0.1:{port}", timeout=0.5, max_retries=1)
        started = time.monotonic()
        with pytest.raises(APITimeoutError) as raised:
            MessageBatchHook("rel_silent_tls").retrieve_batch("msgbatch_x")
        assert raised.value.attempts == 2  # each attempt ended by its own timeout
        # Hang guard only (two attempts of 0.5 s): a handshake without a timeout never ends.
        assert time.monotonic() - started < 30


# ---- plain HTTP to anything but loopback warns ---------------------------------------------


@pytest.mark.parametrize(
    ("host", "schema"),
    [
        ("http://api.anthropic.com", None),
        ("http://10.0.0.5:8080", None),
        ("http://[2001:db8::1]:8080", None),
        ("http://gateway.internal/anthropic", None),
        ("gateway.internal", "http"),
    ],
    ids=["public-host", "private-ip", "ipv6", "path-prefix", "schema-field"],
)
def test_plain_http_to_a_non_loopback_host_warns(host: str, schema: str | None) -> None:
    with pytest.warns(InsecureEndpointWarning, match="plain HTTP"):
        ClientSettings.from_connection(Conn(host, schema=schema))


@pytest.mark.parametrize(
    "host",
    [
        "http://127.0.0.1:8765",
        "http://127.8.9.10:8765",
        "http://localhost:8765",
        "http://LOCALHOST:8765",
        "http://[::1]:8765",
        "https://api.anthropic.com",
        "https://10.0.0.5",
    ],
)
def test_https_or_loopback_does_not_warn(host: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", InsecureEndpointWarning)
        ClientSettings.from_connection(Conn(host))


def test_the_hook_warns_when_it_loads_a_plain_http_connection(
    set_connection: Callable[..., None],
) -> None:
    set_connection("rel_plain_http", "http://gateway.internal:8080")
    with pytest.warns(InsecureEndpointWarning, match="gateway.internal"):
        MessageBatchHook("rel_plain_http").settings  # noqa: B018


# ---- proxies follow the standard environment variables -------------------------------------


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "http_proxy", "ALL_PROXY"])
def test_http_proxy_variable_routes_requests_through_the_proxy(
    fake: FakeBatchesServer,
    set_connection: Callable[..., None],
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
) -> None:
    """``batches.invalid`` does not resolve: only the proxy (the fake) can answer."""
    batch_id = fake.create_batch(num_requests=1, ends_after=0)["id"]
    monkeypatch.setenv(variable, fake.base_url)
    set_connection("rel_via_proxy", "http://batches.invalid", max_retries=0)
    with pytest.warns(InsecureEndpointWarning):
        batch = MessageBatchHook("rel_via_proxy").retrieve_batch(batch_id)
    assert batch.id == batch_id
    (request,) = [r for r in fake.requests if r.batch_id == batch_id]
    assert request.raw_target == f"http://batches.invalid/v1/messages/batches/{batch_id}"
    assert request.headers["host"] == "batches.invalid"


async def test_triggers_use_the_proxy_too(
    fake: FakeBatchesServer, set_connection: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    batch_id = fake.create_batch(num_requests=1, ends_after=0)["id"]
    monkeypatch.setenv("HTTP_PROXY", fake.base_url)
    set_connection("rel_via_proxy_t", "http://batches.invalid", max_retries=0)
    try:
        with pytest.warns(InsecureEndpointWarning):
            events = await run_trigger(
                MessageBatchTrigger(batch_id, conn_id="rel_via_proxy_t", poll_interval=0.05)
            )
    finally:
        await aclose_shared_clients()
    assert [e["status"] for e in events] == ["success"]
    assert all(r.raw_target.startswith("http://batches.invalid/") for r in fake.requests)


@pytest.mark.parametrize("variable", ["HTTPS_PROXY", "https_proxy"])
def test_https_proxy_variable_tunnels_and_keeps_the_key_inside_the_tunnel(
    fake: FakeBatchesServer,
    set_connection: Callable[..., None],
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
) -> None:
    """With HTTPS_PROXY set, an https endpoint is reached through CONNECT. The fake is no
    real proxy and refuses, so the call fails: but the request went to the proxy (the host,
    ``batches.invalid``, does not even resolve) and the proxy saw no API key."""
    monkeypatch.setenv(variable, fake.base_url)
    set_connection("rel_via_https_proxy", "https://batches.invalid", max_retries=0)
    with pytest.raises(APIConnectionError, match="ProxyError"):
        MessageBatchHook("rel_via_https_proxy").retrieve_batch("msgbatch_x")
    _assert_tunnel_request(fake)


def _assert_tunnel_request(fake: FakeBatchesServer) -> None:
    (request,) = fake.requests
    assert (request.method, request.raw_target) == ("CONNECT", "batches.invalid:443")
    assert "x-api-key" not in request.headers
    assert "authorization" not in request.headers


async def test_triggers_use_the_https_proxy_too(
    fake: FakeBatchesServer, set_connection: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", fake.base_url)
    set_connection("rel_via_https_proxy_t", "https://batches.invalid", max_retries=0)
    try:
        events = await run_trigger(
            MessageBatchTrigger(
                "msgbatch_x",
                conn_id="rel_via_https_proxy_t",
                poll_interval=0.05,
                max_consecutive_errors=1,
            )
        )
    finally:
        await aclose_shared_clients()
    assert [e["status"] for e in events] == ["error"]
    assert "ProxyError" in events[0]["message"]
    _assert_tunnel_request(fake)


@pytest.mark.parametrize("no_proxy", ["127.0.0.1", "localhost,127.0.0.1", "*"])
def test_no_proxy_bypasses_the_proxy(
    fake: FakeBatchesServer,
    set_connection: Callable[..., None],
    monkeypatch: pytest.MonkeyPatch,
    no_proxy: str,
) -> None:
    batch_id = fake.create_batch(num_requests=1, ends_after=0)["id"]
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{closed_loopback_port()}")
    set_connection("rel_no_proxy", fake.base_url, max_retries=0)
    # Without NO_PROXY the dead proxy is used, even for loopback.
    with pytest.raises(APIConnectionError):
        MessageBatchHook("rel_no_proxy").retrieve_batch(batch_id)
    assert fake.request_count(batch_id) == 0
    close_shared_sync_clients()
    monkeypatch.setenv("NO_PROXY", no_proxy)
    assert MessageBatchHook("rel_no_proxy").retrieve_batch(batch_id).id == batch_id
    (request,) = [r for r in fake.requests if r.batch_id == batch_id]
    assert request.raw_target == f"/v1/messages/batches/{batch_id}"  # origin form: direct
