"""An embedded fake of the Anthropic Message Batches API, for tests and benchmarks.

A real HTTP/1.1 server on loopback (asyncio + h11) that follows the wire contract, with
fault injection. In-process::

    with FakeBatchesServer(api_key="sk-ant-test-key") as fake:
        batch = fake.create_batch(num_requests=3, ends_after=0.5)
        ...  # point a client at fake.base_url

Out of process: ``python -m airflow_provider_batches.testing serve --port 8765`` and
:class:`FakeAdminClient`. Importing this package pulls in only the stdlib and h11.
"""

from __future__ import annotations

from ._types import AnswerHook, FakeApiError, Fault, FaultKind, ListHook, RecordedRequest
from .admin import FakeAdminClient, FakeAdminError
from .server import FakeBatchesServer

__all__ = [
    "AnswerHook",
    "FakeAdminClient",
    "FakeAdminError",
    "FakeApiError",
    "FakeBatchesServer",
    "Fault",
    "FaultKind",
    "ListHook",
    "RecordedRequest",
]
