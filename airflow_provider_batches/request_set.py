"""A batch's request set: read (a list, a JSON array string or a JSONL file, streamed),
checked, fingerprinted.

Everything the API would reject is caught here, before any request is sent, and each error
names the first bad request by its index and ``custom_id``. A string is a JSON array when it
starts with ``[`` (a list an upstream task pushed, rendered by a template as text), otherwise
a path: a local file, or a URL such as ``s3://...`` read through ``ObjectStoragePath``. A path
that names no file, or a string that is neither, is an :class:`InvalidRequestSetError` naming
what was given; an error reading remote storage (a connection error, a timeout) is raised as
it is, for Airflow to retry.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from airflow_provider_batches.exceptions import InvalidRequestSetError
from airflow_provider_batches.operators._request_defaults import RequestOptions, complete_request

CUSTOM_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_REQUESTS = 100_000
MAX_BODY_BYTES = 256 * 1024 * 1024
#: Longest JSONL line read: the Messages API takes request bodies up to 32 MB.
MAX_LINE_BYTES = 32 * 1024 * 1024
#: Errors opening a path that say it names no readable file: retrying cannot help.
_NO_SUCH_FILE = frozenset(
    {errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG, errno.ELOOP, errno.EINVAL}
)
_SHOWN_CHARS = 120
REQUIRED_PARAMS = ("model", "max_tokens", "messages")
_BODY_OVERHEAD = len(b'{"requests":[]}')


@dataclass(frozen=True)
class RequestSet:
    """Checked requests, their fingerprint (sha256 of the canonical JSON) and body size."""

    requests: list[dict[str, Any]]
    fingerprint: str
    body_bytes: int

    @property
    def count(self) -> int:
        return len(self.requests)


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, UTF-8 as is, no NaN: one text per value, whatever its key order."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def build_request_set(
    source: Iterable[Any] | str | os.PathLike[str], options: RequestOptions | None = None
) -> RequestSet:
    """Read and check ``source``: a list of requests, or a path to a JSONL file of them.

    ``options``: a task's defaults and record mapping, applied to each item as it is read
    (see :mod:`airflow_provider_batches.operators._request_defaults`), before the checks and
    the fingerprint.
    """
    if isinstance(source, Mapping):
        raise InvalidRequestSetError(
            "requests must be a list of {'custom_id': ..., 'params': {...}} dicts or a path to "
            "a JSONL file of them, got a single dict."
        )
    items: Iterable[Any]
    if isinstance(source, str) and source.lstrip().startswith("["):
        items = _completed(_json_array(source), options)
    elif _is_path(source):
        items = _read_path(source, options)
    else:
        items = _completed(cast("Iterable[Any]", source), options)
    digest = hashlib.sha256(b"[")
    body_bytes = _BODY_OVERHEAD
    seen: dict[str, int] = {}
    requests: list[dict[str, Any]] = []
    for index, request in enumerate(items):
        custom_id = request.get("custom_id") if isinstance(request, dict) else None
        if index >= MAX_REQUESTS:
            raise InvalidRequestSetError(
                f"Request {index} (custom_id {custom_id!r}) is past the limit of {MAX_REQUESTS:,} "
                "requests per batch: split the requests over several batches (several tasks).",
                index=index,
                custom_id=custom_id,
            )
        _check_request(index, request, seen)
        try:
            encoded = canonical_json(request).encode()
        except (TypeError, ValueError) as exc:
            raise InvalidRequestSetError(
                f"Request {index} (custom_id {custom_id!r}) is not JSON: {exc}.",
                index=index,
                custom_id=custom_id,
            ) from None
        body_bytes += len(encoded) + (1 if index else 0)
        if body_bytes > MAX_BODY_BYTES:
            raise InvalidRequestSetError(
                f"Request {index} (custom_id {custom_id!r}) takes the encoded batch past the "
                f"API's limit of {MAX_BODY_BYTES // 2**20} MB: split the requests over several "
                "batches.",
                index=index,
                custom_id=custom_id,
            )
        if index:
            digest.update(b",")
        digest.update(encoded)
        requests.append(request)
    if not requests:
        raise InvalidRequestSetError("There are no requests: a batch needs at least one.")
    digest.update(b"]")
    return RequestSet(requests, digest.hexdigest(), body_bytes)


def _check_request(index: int, request: Any, seen: dict[str, int]) -> None:
    def fail(problem: str, custom_id: Any = None) -> InvalidRequestSetError:
        return InvalidRequestSetError(
            f"Request {index} (custom_id {custom_id!r}) {problem}",
            index=index,
            custom_id=custom_id,
        )

    if not isinstance(request, dict):
        raise fail(f"is a {type(request).__name__}, not a {{'custom_id', 'params'}} dict.")
    custom_id = request.get("custom_id")
    if not isinstance(custom_id, str) or not CUSTOM_ID_PATTERN.fullmatch(custom_id):
        raise fail(
            "has an invalid custom_id: it must be 1 to 64 characters of letters, digits, "
            "'_' and '-'.",
            custom_id,
        )
    if custom_id in seen:
        raise fail(
            f"repeats the custom_id of request {seen[custom_id]}: custom_ids must be unique "
            "within a batch (results are matched by them).",
            custom_id,
        )
    seen[custom_id] = index
    params = request.get("params")
    if not isinstance(params, dict):
        raise fail("has no 'params' dict (the Messages API request body).", custom_id)
    missing = [name for name in REQUIRED_PARAMS if name not in params]
    if missing:
        raise fail(
            f"has params without {missing}: every request needs {list(REQUIRED_PARAMS)}.", custom_id
        )
    if not isinstance(params["model"], str) or not params["model"]:
        raise fail("has params.model that is not a model name.", custom_id)
    max_tokens = params["max_tokens"]
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise fail(
            f"has params.max_tokens {max_tokens!r}; it must be a positive integer.", custom_id
        )
    if not isinstance(params["messages"], list) or not params["messages"]:
        raise fail("has params.messages that is not a non-empty list of messages.", custom_id)
    if "stream" in params:
        raise fail("sets params.stream, which batches do not allow: remove it.", custom_id)


def _is_path(source: Any) -> bool:
    return isinstance(source, str | os.PathLike) or type(source).__name__ == "ObjectStoragePath"


def _shown(source: Any) -> str:
    text = str(source)
    return repr(text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "...")


_STRING_FORMS = (
    "requests takes a list of {'custom_id': ..., 'params': {...}} dicts, a JSON array of them "
    "as a string, or the path of a JSONL file of them"
)
_RENDERED_LIST_HINT = (
    "A templated list renders as Python text unless the DAG sets "
    "render_template_as_native_obj=True: pass the upstream task's output itself "
    "(requests=upstream.output), set that option, or render JSON with '| tojson'."
)


def _json_array(source: str) -> list[Any]:
    """A JSON array given as text (what ``'{{ ... | tojson }}'`` renders)."""
    try:
        parsed = json.loads(source)
    except (ValueError, RecursionError) as exc:
        raise InvalidRequestSetError(
            f"requests is a string starting with '[' that is not a JSON array "
            f"({str(exc)[:200]}): {_shown(source)}. {_RENDERED_LIST_HINT}"
        ) from None
    return cast("list[Any]", parsed)  # JSON text starting with '[' is an array


def _check_path_string(source: str) -> None:
    """A string that cannot be a path: say what it looks like instead."""
    stripped = source.strip()
    if not stripped:
        raise InvalidRequestSetError(f"requests is an empty string: {_STRING_FORMS}.")
    if stripped.startswith("{"):
        raise InvalidRequestSetError(
            f"requests is a string holding a JSON object or JSONL text, not a path: "
            f"{_shown(source)}. {_STRING_FORMS}; a single request still goes in a list."
        )
    if "\n" in stripped or "\x00" in stripped:
        raise InvalidRequestSetError(
            f"requests is a string that is not a path (it holds a line break or a NUL): "
            f"{_shown(source)}. {_STRING_FORMS}."
        )


def _open_stream(source: Any) -> Any:
    """The file opened for reading; a path that names no readable file is invalid input."""
    if isinstance(source, str):
        _check_path_string(source)
    try:
        path = _open_target(source)
    except ValueError as exc:  # e.g. a URL scheme no filesystem is installed for
        raise InvalidRequestSetError(
            f"requests names a location that cannot be read ({exc}): {_shown(source)}."
        ) from None
    try:
        return path.open("rb")
    except FileNotFoundError:
        problem = "no such file"
    except OSError as exc:
        if exc.errno not in _NO_SUCH_FILE or _is_remote(source):
            raise  # a fault of the storage (or of remote storage): Airflow retries the task
        problem = exc.strerror or type(exc).__name__
    hint = f" {_RENDERED_LIST_HINT}" if isinstance(source, str) else ""
    raise InvalidRequestSetError(
        f"requests names no readable file ({problem}): {_shown(source)}. {_STRING_FORMS}.{hint}"
    )


def _is_remote(source: Any) -> bool:
    text = str(source)
    return "://" in text and not text.startswith("file://")


def _read_path(source: Any, options: RequestOptions | None = None) -> Iterator[Any]:
    """The JSONL file's requests, one line at a time; no line longer than MAX_LINE_BYTES."""
    with _open_stream(source) as stream:
        index = 0
        for line_number in range(1, 2**63):
            line = stream.readline(MAX_LINE_BYTES + 1)
            if not line:
                return
            if len(line) > MAX_LINE_BYTES:
                raise InvalidRequestSetError(
                    f"{source}: line {line_number} (request {index}) is longer than "
                    f"{MAX_LINE_BYTES // 2**20} MB, the most one request can take.",
                    index=index,
                )
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except (ValueError, RecursionError) as exc:
                raise InvalidRequestSetError(
                    f"{source}: line {line_number} (request {index}) is not valid JSON "
                    f"({str(exc)[:200]}).",
                    index=index,
                ) from None
            yield _complete(item, line_number, index, options)
            index += 1


# ---- a task's defaults and record mapping, applied where each item is read ----------------


def _completed(items: Iterable[Any], options: RequestOptions | None) -> Iterator[Any]:
    for index, item in enumerate(items):
        yield _complete(item, None, index, options)


def _complete(
    item: Any, line_number: int | None, index: int, options: RequestOptions | None
) -> Any:
    if options is None:
        return item
    return complete_request(item, line_number, options, index=index)


# ------------------------------------------------------------------------------------------


def _open_target(source: Any) -> Any:
    """A local ``pathlib.Path``, or an ``ObjectStoragePath`` for a URL such as ``s3://...``."""
    from pathlib import Path

    if isinstance(source, str) and "://" in source:
        from airflow.sdk import ObjectStoragePath

        return ObjectStoragePath(source)
    return source if not isinstance(source, str | os.PathLike) else Path(source)


def requests_from_prompts(
    prompts: Sequence[str] | Mapping[str, str],
    *,
    model: str | None = None,
    max_tokens: int | None = None,
    system: str | None = None,
    custom_id_prefix: str = "prompt-",
    **params: Any,
) -> list[dict[str, Any]]:
    """One request per prompt, sharing ``model``, ``max_tokens``, ``system`` and ``params``
    (those left ``None`` are left out, for a task's defaults to fill).

    A list gets custom_ids ``<custom_id_prefix><index>``; a mapping uses its keys as custom_ids.
    """
    if isinstance(prompts, str):
        raise InvalidRequestSetError("prompts must be a list (or a mapping), not one string.")
    pairs = (
        list(prompts.items())
        if isinstance(prompts, Mapping)
        else [(f"{custom_id_prefix}{index}", prompt) for index, prompt in enumerate(prompts)]
    )
    shared: dict[str, Any] = dict(params)
    if model is not None:
        shared["model"] = model
    if max_tokens is not None:
        shared["max_tokens"] = max_tokens
    if system is not None:
        shared["system"] = system
    requests = []
    for index, (custom_id, prompt) in enumerate(pairs):
        if not isinstance(prompt, str):
            raise InvalidRequestSetError(
                f"Prompt {index} (custom_id {custom_id!r}) is a {type(prompt).__name__}, "
                "not a string.",
                index=index,
                custom_id=custom_id,
            )
        message = {"role": "user", "content": prompt}
        requests.append({"custom_id": custom_id, "params": {**shared, "messages": [message]}})
    return requests
