"""A forked worker never shares the parent's pooled sockets.

LocalExecutor and Celery fork workers; with one inherited keep-alive socket, parent and child
read each other's answers. Here both processes create, retrieve and cancel batches at once
against the fake API: each must get its own answers over its own connections.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import signal
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_batches._http import clients
from airflow_provider_batches.hooks.batch import MessageBatchHook
from airflow_provider_batches.testing import FakeBatchesServer

ROUNDS = 8
PARENT_REQUESTS = 3
CHILD_REQUESTS = 5  # a batch's request count tells whose create answer a process got


def _requests(n: int, owner: str) -> list[dict[str, Any]]:
    return [
        {
            "custom_id": f"{owner}-{i}",
            "params": {
                "model": "claude-sonnet-4-5",
                "max_tokens": 16,
                "messages": [{"role": "user", "content": "hi"}],
            },
        }
        for i in range(n)
    ]


def _exercise(hook: MessageBatchHook, size: int, owner: str) -> dict[str, Any]:
    """Create, retrieve and cancel ``ROUNDS`` batches; record what came back (or failed)."""
    seen: list[dict[str, Any]] = []
    errors: list[str] = []
    for _ in range(ROUNDS):
        try:
            created = hook.create_batch(_requests(size, owner))
            retrieved = hook.retrieve_batch(created.id)
            canceled = hook.cancel_batch(created.id)
        except Exception as error:  # reported to the parent, asserted there
            errors.append(f"{type(error).__name__}: {error}")
            continue
        seen.append(
            {
                "created": created.id,
                "size": created.request_counts.processing,
                "retrieved": retrieved.id,
                "canceled": canceled.id,
                "cancel_status": canceled.processing_status,
            }
        )
    return {"seen": seen, "errors": errors, "async_registry": len(clients._loop_clients)}


def _run_child(hook: MessageBatchHook, write_fd: int) -> None:
    """The forked side: never returns into pytest."""
    code = 0
    try:
        report = _exercise(hook, CHILD_REQUESTS, "child")
        os.write(write_fd, json.dumps(report).encode())
    except BaseException:
        code = 1
    finally:
        os._exit(code)


def _read_report(read_fd: int, pid: int) -> dict[str, Any]:
    chunks = []
    while True:
        ready, _, _ = select.select([read_fd], [], [], 60.0)  # hang guard only
        if not ready:
            os.kill(pid, signal.SIGKILL)
            raise AssertionError("the forked child did not report")
        chunk = os.read(read_fd, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return dict(json.loads(b"".join(chunks)))


@pytest.fixture
def hook(fake: FakeBatchesServer, set_connection: Callable[..., None]) -> MessageBatchHook:
    set_connection("fork_safety", fake.base_url, max_retries=0, timeout=10)
    return MessageBatchHook("fork_safety")


def _ports_for(fake: FakeBatchesServer, batch_ids: set[str]) -> set[int]:
    return {r.client[1] for r in fake.requests if r.batch_id in batch_ids}


def test_parent_and_forked_child_each_get_their_own_answers(
    fake: FakeBatchesServer, hook: MessageBatchHook
) -> None:
    warm = fake.create_batch(num_requests=1)["id"]
    hook.retrieve_batch(warm)  # the parent now has a pooled keep-alive socket
    (inherited_port,) = _ports_for(fake, {warm})
    fake.set_latency(0.01)  # keeps requests of the two processes in flight together

    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        _run_child(hook, write_fd)
    os.close(write_fd)
    try:
        parent = _exercise(hook, PARENT_REQUESTS, "parent")
    finally:
        child = _read_report(read_fd, pid)
        os.close(read_fd)

    assert parent["errors"] == []
    assert child["errors"] == []
    for report, size in ((parent, PARENT_REQUESTS), (child, CHILD_REQUESTS)):
        assert len(report["seen"]) == ROUNDS
        for round_ in report["seen"]:
            assert round_["size"] == size  # its own create answer, not the other's
            assert round_["retrieved"] == round_["created"] == round_["canceled"]
            assert round_["cancel_status"] == "canceling"
    parent_ids = {r["created"] for r in parent["seen"]}
    child_ids = {r["created"] for r in child["seen"]}
    assert len(parent_ids) == len(child_ids) == ROUNDS
    assert not parent_ids & child_ids
    # The fake saw separate connections: the child never used the parent's socket.
    parent_ports, child_ports = _ports_for(fake, parent_ids), _ports_for(fake, child_ids)
    assert inherited_port in parent_ports
    assert inherited_port not in child_ports
    assert not parent_ports & child_ports
    assert child["async_registry"] == 0


def test_a_forked_child_forgets_the_async_clients_without_closing_them(
    fake: FakeBatchesServer, hook: MessageBatchHook
) -> None:
    """The parent's loop and its pooled async socket keep working after a child was forked
    (the child closes nothing, sends nothing); the child starts with an empty registry."""
    batch_id = fake.create_batch(num_requests=1)["id"]

    async def poll_fork_poll() -> dict[str, Any]:
        await hook.aretrieve_batch(batch_id)
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_fd)
            try:
                os.write(write_fd, json.dumps({"registry": len(clients._loop_clients)}).encode())
            finally:
                os._exit(0)
        os.close(write_fd)
        report = _read_report(read_fd, pid)
        os.close(read_fd)
        await hook.aretrieve_batch(batch_id)
        return report

    opened_before = fake.connections_opened
    report = asyncio.run(poll_fork_poll())
    assert report == {"registry": 0}
    assert fake.request_count(batch_id) == 2
    assert fake.connections_opened - opened_before == 1  # the second poll reused the socket
