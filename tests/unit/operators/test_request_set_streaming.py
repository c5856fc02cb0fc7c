"""Streamed submission: a request set is checked once into a spooled create body, and that
spool (never the source read again) is what every attempt of the create sends; the fast
reader gives the fingerprint the json module's canonical form always gave."""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from fake_process import fake_api_process
from helpers import API_KEY
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from operator_dag_runs import requests_for
from test_submission import ME, MemoryStore, variables  # noqa: F401 (a fixture)

from airflow_provider_batches.hooks.batch import MessageBatchHook
from airflow_provider_batches.operators._submission import Submitter
from airflow_provider_batches.request_set import build_request_set
from airflow_provider_batches.testing import FakeBatchesServer, Fault

REPO = Path(__file__).resolve().parents[3]


def fingerprint_before_streaming(requests: list[dict[str, Any]]) -> str:
    """The fingerprint as the code before streaming computed it (and task records hold):
    sha256 of ``json.dumps`` with sorted keys, compact, UTF-8 as is, of the list."""
    canonical = json.dumps(
        requests, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def write_jsonl(path: Path, requests: list[Any], **dumps: Any) -> Path:
    path.write_text("".join(json.dumps(r, **dumps) + "\n" for r in requests), encoding="utf-8")
    return path


def creates(fake: FakeBatchesServer) -> list[Any]:
    return [r for r in fake.requests if r.method == "POST" and r.batch_id is None]


@pytest.mark.usefixtures("variables")
def test_a_file_changed_after_the_check_is_not_what_is_sent(
    fake: FakeBatchesServer, fake_conn: str, tmp_path: Path
) -> None:
    """The file is rewritten (other requests, one of them invalid) between the check and the
    create: the batch gets exactly the checked requests, as the checked spool holds them."""
    checked = requests_for(3)
    path = write_jsonl(tmp_path / "requests.jsonl", checked)
    request_set = build_request_set(path)
    changed = requests_for(5)
    changed[4]["params"]["max_tokens"] = 0
    write_jsonl(path, changed)

    submission = Submitter(MessageBatchHook(fake_conn), MemoryStore(), ME).submit(request_set)

    assert submission.how == "created"
    assert submission.batch.total_requests == 3
    [sent] = creates(fake)
    expected = build_request_set(checked).body.read()
    assert sent.body_sha256 == hashlib.sha256(expected).hexdigest()
    assert sent.body_bytes == len(expected) == request_set.body_bytes
    assert sent.headers["content-length"] == str(request_set.body_bytes)
    assert json.loads(expected) == {"requests": checked}


def test_a_create_retried_after_429_and_529_sends_the_same_bytes(
    fake: FakeBatchesServer, set_connection: Any, tmp_path: Path
) -> None:
    """Each attempt reads the spooled body again from its first byte: three identical bodies,
    each with its length, none chunked."""
    set_connection("anthropic_default", fake.base_url, max_retries=3)
    request_set = build_request_set(write_jsonl(tmp_path / "r.jsonl", requests_for(40)))
    for status in (429, 529):
        fake.inject_fault(
            Fault("status", status=status, method="POST", times=1, headers={"retry-after": "0"})
        )

    batch = MessageBatchHook().create_batch(request_set)

    assert batch.total_requests == 40
    sent = creates(fake)
    assert len(sent) == 3
    spool = hashlib.sha256(request_set.body.read()).hexdigest()
    assert {(r.body_sha256, r.body_bytes) for r in sent} == {(spool, request_set.body_bytes)}
    assert all("transfer-encoding" not in r.headers for r in sent)


async def test_the_async_create_streams_the_spool_too(
    fake: FakeBatchesServer, fake_conn: str, tmp_path: Path
) -> None:
    """``acreate_batch`` sends a checked set from its spool, with its length."""
    request_set = build_request_set(write_jsonl(tmp_path / "r.jsonl", requests_for(5)))

    batch = await MessageBatchHook(fake_conn).acreate_batch(request_set)

    assert batch.total_requests == 5
    [sent] = creates(fake)
    assert sent.body_sha256 == hashlib.sha256(request_set.body.read()).hexdigest()
    assert sent.headers["content-length"] == str(request_set.body_bytes)


@pytest.mark.usefixtures("variables")
def test_a_task_record_written_before_streaming_reattaches(
    fake: FakeBatchesServer, fake_conn: str, tmp_path: Path
) -> None:
    """A record holding the fingerprint the earlier code computed (floats in both number
    forms, non-ASCII text, keys in any order) still re-attaches: no second create."""
    requests = requests_for(3)
    requests[0]["params"].update(temperature=0.7, top_p=1e-05, metadata={"z": 1, "ä": 2e21})
    requests[1]["params"]["messages"][0]["content"] = "héllo \u2028 \U0001f600 \x01"
    requests[2]["params"]["stop_sequences"] = ["12345678901234567890123"]
    requests[2]["params"]["top_k"] = 123456789012345678901234567890
    path = write_jsonl(tmp_path / "requests.jsonl", requests)
    batch_id = fake.create_batch(num_requests=3, ends_after=None)["id"]
    store = MemoryStore()
    store.set(
        {
            "fingerprint": fingerprint_before_streaming(requests),
            "request_count": 3,
            "started_at": time.time(),
            "batch_id": batch_id,
        }
    )

    submission = Submitter(MessageBatchHook(fake_conn), store, ME).submit(build_request_set(path))

    assert (submission.how, submission.batch.id) == ("reattached", batch_id)
    assert creates(fake) == []


# Any JSON value a request's params may hold: floats of every size and form, integers past
# 64 bits, text of any code point (surrogates aside: JSON text cannot carry them alone).
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=["Cs"]), max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.text(st.characters(exclude_categories=["Cs"]), max_size=6), inner, max_size=4
        )
    ),
    max_leaves=12,
)
REQUEST_SETS = st.lists(
    st.builds(
        lambda custom_id, extra, text: {
            "custom_id": custom_id,
            "params": {
                **extra,
                "model": "claude-test",
                "max_tokens": 16,
                "messages": [{"role": "user", "content": text}],
            },
        },
        st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True),
        st.dictionaries(st.sampled_from(["temperature", "metadata", "tools", "x"]), JSON_VALUES),
        st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=30),
    ),
    min_size=1,
    max_size=4,
    unique_by=lambda request: request["custom_id"],
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(REQUEST_SETS, st.booleans(), st.sampled_from([(",", ":"), (", ", ": ")]))
def test_a_file_read_fast_gives_the_lists_body_and_the_fingerprint_before_streaming(
    tmp_path_factory: pytest.TempPathFactory,
    requests: list[dict[str, Any]],
    ascii_only: bool,
    separators: tuple[str, str],
) -> None:
    """Whatever the file holds and however it was written: its body is byte for byte the one
    the same list makes, parses back to the requests, and the fingerprint is the one the code
    before streaming computed."""
    path = tmp_path_factory.mktemp("sets") / "r.jsonl"
    write_jsonl(path, requests, ensure_ascii=ascii_only, separators=separators)
    with build_request_set(path) as from_file, build_request_set(requests) as from_list:
        body = from_file.body.read()
        assert body == from_list.body.read()
        assert json.loads(body) == {"requests": requests}
        assert from_file.fingerprint == fingerprint_before_streaming(requests)
        assert from_file.fingerprint == from_list.fingerprint
        assert (from_file.count, from_file.body_bytes) == (len(requests), len(body))


def test_floats_written_in_every_form_keep_their_canonical_form(tmp_path: Path) -> None:
    """Number forms a fast JSON library writes otherwise than ``json.dumps`` (exponents, tiny
    and huge floats, integers past 64 bits) keep the earlier fingerprint."""
    values = [1e-05, 1e-4, 5e-324, 1e16, 1.5e300, -0.0, 0.1, 2**64, -(2**63) - 1, 10**30]
    requests = requests_for(len(values))
    for request, value in zip(requests, values, strict=True):
        request["params"]["temperature"] = value
    path = tmp_path / "r.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in requests) + "\n")
    assert build_request_set(path).fingerprint == fingerprint_before_streaming(requests)
    assert all(not isinstance(v, float) or math.isfinite(v) for v in values)


# ---- memory, in a process of its own ---------------------------------------------------------

MEMORY_CHILD = r"""
import json, os, sys
from pathlib import Path
os.environ["AIRFLOW_CONN_ANTHROPIC_DEFAULT"] = json.dumps(
    {"conn_type": "anthropic_batches", "host": sys.argv[2], "password": sys.argv[3]}
)
from airflow_provider_batches.hooks.batch import MessageBatchHook
from airflow_provider_batches.request_set import build_request_set

def status_kb(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])

hook = MessageBatchHook()
with build_request_set(Path(sys.argv[4])) as warm:  # imports, the connection, a first create
    hook.create_batch(warm)
with open("/proc/self/clear_refs", "w") as refs:
    refs.write("5")  # the peak (VmHWM) starts again from the current RSS
baseline = status_kb("VmRSS")
with build_request_set(Path(sys.argv[1])) as request_set:
    batch = hook.create_batch(request_set)
print(json.dumps({"growth_kb": status_kb("VmHWM") - baseline, "created": batch.total_requests}))
"""
#: Measured: about 1 MB for 8,000 requests (20 MB) on the streamed path (the custom_ids seen,
#: the reader's and the sender's buffers); holding the parsed requests grows it by 30 MB or more.
MEMORY_CAP_KB = 6 * 1024


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
def test_submitting_a_20_mb_file_grows_memory_by_a_few_mb(tmp_path: Path) -> None:
    """Check and create of a 20 MB set in a fresh process (the fake in another one): the peak
    RSS stays within a few MB of the process's RSS before."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from submit_memory import generate

    big = tmp_path / "big.jsonl"
    generate(big, 8_000, 2_560)
    warm = write_jsonl(tmp_path / "warm.jsonl", requests_for(1))
    with fake_api_process() as base_url:
        child = subprocess.run(
            [sys.executable, "-c", MEMORY_CHILD, str(big), base_url, API_KEY, str(warm)],
            capture_output=True,
            text=True,
            timeout=180,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
    assert child.returncode == 0, child.stderr[-3000:]
    measured = json.loads(child.stdout.strip().splitlines()[-1])
    assert measured["created"] == 8_000
    assert measured["growth_kb"] <= MEMORY_CAP_KB, measured
