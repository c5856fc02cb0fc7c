"""write_results to file:// and s3:// (a real S3 API: moto in server mode on loopback, through
Airflow's amazon provider and s3fs): manifest recomputed from the files, reruns, replaced
half-written prefixes."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from writer_cases import assert_manifest_matches_files, results_requests

from airflow_provider_batches.hooks.batch import MessageBatchHook
from airflow_provider_batches.results import ResultsNotReadyError
from airflow_provider_batches.results.writer import write_results
from airflow_provider_batches.testing import FakeBatchesServer, Fault

OUTCOMES = {"succeeded": 380, "errored": 130, "canceled": 40, "expired": 50}
S3_CONN = "aws_results_test"
BUCKET = "batch-results"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[str]:
    """A moto S3 server on a free loopback port, with an Airflow AWS connection to it."""
    # requirements-lock.txt pins s3fs, moto and the amazon provider: a missing one is an error,
    # never a silent skip.
    import boto3
    import moto.server as server_module
    import s3fs  # noqa: F401  (ObjectStoragePath needs it for s3://)

    port = _free_port()
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    os.environ[f"AIRFLOW_CONN_{S3_CONN.upper()}"] = json.dumps(
        {
            "conn_type": "aws",
            "login": "testing",
            "password": "testing-secret",
            "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"},
        }
    )
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing-secret",
        region_name="us-east-1",
    ).create_bucket(Bucket=BUCKET)
    try:
        yield endpoint
    finally:
        server.stop()
        os.environ.pop(f"AIRFLOW_CONN_{S3_CONN.upper()}", None)


@pytest.fixture(params=["file", "s3"])
def base(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    from airflow.sdk import ObjectStoragePath

    if request.param == "file":
        return ObjectStoragePath(f"file://{tmp_path}/results")
    request.getfixturevalue("moto_s3")
    return ObjectStoragePath(f"s3://{S3_CONN}@{BUCKET}/{tmp_path.name}/results")


@pytest.fixture
def hook(fake_conn: str) -> MessageBatchHook:
    return MessageBatchHook(fake_conn)


def _batch(fake: FakeBatchesServer, **kwargs: Any) -> dict[str, Any]:
    return fake.create_batch(
        num_requests=600,
        ends_after=0.0,
        outcomes=OUTCOMES,
        error_types=["invalid_request_error", "overloaded_error", "api_error"],
        response_chars=300,
        **kwargs,
    )


@pytest.mark.parametrize("split_by_type", [False, True])
def test_manifest_matches_the_written_files(
    fake: FakeBatchesServer, hook: MessageBatchHook, base: Any, split_by_type: bool
) -> None:
    batch = _batch(fake)
    manifest = write_results(hook, batch["id"], base, split_by_type=split_by_type)
    prefix = base / batch["id"]
    assert_manifest_matches_files(manifest, prefix, batch, split_by_type)
    assert manifest["line_counts"]["total"] == 600
    assert len(manifest["errored_custom_ids"]) == 100
    assert json.loads(json.dumps(manifest)) == manifest  # XCom-safe


def test_rerun_trusts_a_verified_manifest_and_overwrite_downloads_again(
    fake: FakeBatchesServer, hook: MessageBatchHook, base: Any
) -> None:
    batch = _batch(fake)
    first = write_results(hook, batch["id"], base)
    requests_before = len(fake.requests)
    assert write_results(hook, batch["id"], base) == first
    assert len(fake.requests) == requests_before  # not even a retrieve
    again = write_results(hook, batch["id"], base, overwrite=True)
    assert results_requests(fake, batch["id"]) == 2
    assert again["written_at"] != first["written_at"]
    assert again["files"] == first["files"]


def test_rerun_asking_for_split_files_downloads_again(
    fake: FakeBatchesServer, hook: MessageBatchHook, base: Any
) -> None:
    batch = _batch(fake)
    write_results(hook, batch["id"], base)
    manifest = write_results(hook, batch["id"], base, split_by_type=True)
    assert results_requests(fake, batch["id"]) == 2
    assert_manifest_matches_files(manifest, base / batch["id"], batch, split_by_type=True)


@pytest.mark.parametrize("damage", ["edit", "truncate", "remove"])
def test_a_manifest_whose_files_changed_is_not_trusted(
    fake: FakeBatchesServer, hook: MessageBatchHook, base: Any, damage: str
) -> None:
    batch = _batch(fake)
    write_results(hook, batch["id"], base)
    stored = base / batch["id"] / "results.jsonl"
    data = stored.read_bytes()
    if damage == "edit":  # same size, other bytes: only the SHA-256 tells
        stored.write_bytes(data.replace(b"succeeded", b"succeedeD", 1))
    elif damage == "truncate":
        stored.write_bytes(data[:-10])
    else:
        stored.unlink()
    manifest = write_results(hook, batch["id"], base)
    assert results_requests(fake, batch["id"]) == 2
    assert_manifest_matches_files(manifest, base / batch["id"], batch, split_by_type=False)


def test_a_half_written_prefix_is_replaced(
    fake: FakeBatchesServer, hook: MessageBatchHook, base: Any
) -> None:
    batch = _batch(fake)
    prefix = base / batch["id"]
    prefix.mkdir(parents=True, exist_ok=True)
    (prefix / "results.jsonl").write_bytes(b'{"custom_id": "stale"}\n' * 3)
    (prefix / "errored.jsonl").write_bytes(b"stale\n")
    manifest = write_results(hook, batch["id"], base)
    assert_manifest_matches_files(manifest, prefix, batch, split_by_type=False)
    assert not (prefix / "errored.jsonl").exists()


def test_a_manifest_of_another_batch_is_not_trusted(
    fake: FakeBatchesServer, hook: MessageBatchHook, base: Any
) -> None:
    first, second = _batch(fake), _batch(fake)
    write_results(hook, first["id"], base)
    for name in ("results.jsonl", "manifest.json"):
        data = (base / first["id"] / name).read_bytes()
        (base / second["id"]).mkdir(parents=True, exist_ok=True)
        (base / second["id"] / name).write_bytes(data)
    manifest = write_results(hook, second["id"], base)
    assert manifest["batch_id"] == second["id"]
    assert_manifest_matches_files(manifest, base / second["id"], second, split_by_type=False)


def test_a_failed_download_leaves_no_manifest_and_the_rerun_completes(
    fake: FakeBatchesServer, hook: MessageBatchHook, base: Any
) -> None:
    batch = _batch(fake)
    write_results(hook, batch["id"], base)
    fake.inject_fault(Fault("reset", endpoint="results", after_bytes=40_000, times=-1))
    with pytest.raises(Exception, match="RemoteProtocolError"):
        write_results(hook, batch["id"], base, overwrite=True)
    assert not (base / batch["id"] / "manifest.json").exists()
    if base.protocol == "s3":  # the upload was aborted, not committed half-way
        assert not (base / batch["id"] / "results.jsonl").exists()
    fake.clear_faults()
    manifest = write_results(hook, batch["id"], base)
    assert_manifest_matches_files(manifest, base / batch["id"], batch, split_by_type=False)


def test_a_batch_not_ended_writes_nothing(
    fake: FakeBatchesServer, hook: MessageBatchHook, base: Any
) -> None:
    batch = fake.create_batch(num_requests=3, ends_after=None)
    with pytest.raises(ResultsNotReadyError):
        write_results(hook, batch["id"], base)
    assert not (base / batch["id"] / "results.jsonl").exists()


@pytest.mark.parametrize("bad", ["", "   ", 5])
def test_results_path_must_be_a_url(hook: MessageBatchHook, bad: Any) -> None:
    with pytest.raises(ValueError, match="results_path must be a URL"):
        write_results(hook, "msgbatch_x", bad)
