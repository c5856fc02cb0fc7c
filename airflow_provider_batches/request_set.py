"""A batch's request set: read (a list, a JSON array string or a JSONL file, streamed),
checked, fingerprinted, and spooled as the create body that is sent.

One pass over the source keeps only what the checks need (the custom_ids seen, the running
size, the fingerprint's digest) and writes each checked request, as compact canonical JSON, to
an unnamed temporary file (the spool) holding the create body ``{"requests":[...]}``. That
spool is what is sent (:attr:`RequestSet.body`), never the source read again: a file changed
after the check cannot slip through, and a create retried after 429 or 529 sends the same
bytes. A JSONL file of any size is checked and sent in bounded memory.

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
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import IO, Any, cast

from airflow_provider_batches.exceptions import InvalidRequestSetError
from airflow_provider_batches.utils.request_options import RequestOptions, complete_request

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
_BODY_HEAD = b'{"requests":['
_BODY_TAIL = b"]}"
_BODY_OVERHEAD = len(_BODY_HEAD + _BODY_TAIL)
#: Bytes of the spooled body sent per piece.
_SEND_PIECE_BYTES = 256 * 1024
#: Floats that orjson and ``json.dumps`` write alike: ``repr`` uses an exponent outside this
#: range. An integer past 64 bits, which orjson reads as a float, is outside it too.
_PLAIN_FLOATS = (1e-4, 1e16)


class SpooledBody:
    """The create body ``{"requests":[...]}`` of a checked set, in a temporary file.

    ``chunks()`` reads it again from its first byte each time (each attempt of a create).
    """

    content_type = "application/json"

    def __init__(self, spool: IO[bytes], length: int) -> None:
        self._spool = spool
        self.length = length

    def chunks(self) -> Iterator[bytes]:
        self._spool.seek(0)
        left = self.length
        while left:
            piece = self._spool.read(min(_SEND_PIECE_BYTES, left))
            if not piece:
                raise OSError(f"the spooled request body ended {left} bytes short")
            left -= len(piece)
            yield piece

    def read(self) -> bytes:
        """The whole body (for small sets and tests: the sender streams :meth:`chunks`)."""
        return b"".join(self.chunks())

    def close(self) -> None:
        self._spool.close()


class ModelTally:
    """What the spend guard needs of one model's requests: how many, their ``max_tokens``
    summed, and the bytes of their ``system``, ``messages`` and ``tools`` as compact JSON,
    summed apart for requests that use ``cache_control``."""

    __slots__ = ("cached_input_bytes", "input_bytes", "max_tokens", "requests")

    def __init__(self) -> None:
        self.requests = 0
        self.max_tokens = 0
        self.input_bytes = 0
        self.cached_input_bytes = 0


#: The request fields whose bytes estimate a request's input tokens.
INPUT_PARTS = ("system", "messages", "tools")


class RequestTally:
    """Per model, what the spend guard needs (:class:`ModelTally`), kept during the one pass
    over the requests instead of the requests themselves."""

    def __init__(self) -> None:
        self.models: dict[str, ModelTally] = {}

    @classmethod
    def merged(cls, tallies: Iterable[RequestTally]) -> RequestTally:
        """One tally for several (the shards of one split set)."""
        total = cls()
        for tally in tallies:
            for model, counts in tally.models.items():
                into = total.models.setdefault(model, ModelTally())
                into.requests += counts.requests
                into.max_tokens += counts.max_tokens
                into.input_bytes += counts.input_bytes
                into.cached_input_bytes += counts.cached_input_bytes
        return total

    def add(self, params: Mapping[str, Any]) -> None:
        import orjson  # not at module level: this module is imported at DAG parse

        model = params["model"]
        tally = self.models.get(model)
        if tally is None:
            tally = self.models[model] = ModelTally()
        tally.requests += 1
        tally.max_tokens += params["max_tokens"]
        parts = {part: params[part] for part in INPUT_PARTS if part in params}
        try:
            encoded = orjson.dumps(parts)
        except (TypeError, ValueError):  # what orjson cannot write (integers past 64 bits)
            encoded = json.dumps(parts, separators=(",", ":"), ensure_ascii=False).encode()
        if b'"cache_control"' in encoded:
            tally.cached_input_bytes += len(encoded)
        else:
            tally.input_bytes += len(encoded)


class RequestSet:
    """Checked requests: their count, fingerprint (sha256 of the canonical JSON array), the size
    of the create body and that body, spooled (:attr:`body`)."""

    def __init__(
        self,
        requests: list[dict[str, Any]] | None,
        fingerprint: str,
        body_bytes: int,
        *,
        count: int | None = None,
        body: SpooledBody | None = None,
        tally: RequestTally | None = None,
    ) -> None:
        if requests is None and (count is None or body is None):
            raise ValueError("a RequestSet without its requests needs their count and body")
        self._requests = requests
        self.fingerprint = fingerprint
        self.body_bytes = body_bytes
        self.count = count if count is not None else len(requests or ())
        self._body = body
        self._tally = tally

    def __repr__(self) -> str:
        return f"RequestSet(count={self.count}, fingerprint={self.fingerprint[:12]}...)"

    @property
    def tally(self) -> RequestTally:
        """Per model: requests, ``max_tokens`` and input bytes (for the spend guard)."""
        if self._tally is None:
            self._tally = RequestTally()
            for request in self.requests:
                self._tally.add(request["params"])
        return self._tally

    @property
    def body(self) -> SpooledBody:
        """The create body to send: exactly the requests that were checked."""
        if self._body is None:
            assert self._requests is not None
            self._body = _spool_body(canonical_json(r).encode() for r in self._requests)
        return self._body

    @property
    def requests(self) -> list[dict[str, Any]]:
        """The requests as dicts. A set read from a file holds none in memory: they are parsed
        back from the spool here, which costs the memory streaming saves."""
        if self._requests is not None:
            return self._requests
        return cast("list[dict[str, Any]]", json.loads(self.body.read())["requests"])

    def close(self) -> None:
        """Drop the spooled body (a temporary file)."""
        if self._body is not None:
            self._body.close()

    def __enter__(self) -> RequestSet:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, UTF-8 as is, no NaN: one text per value, whatever its key order."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def build_request_set(
    source: Iterable[Any] | str | os.PathLike[str], options: RequestOptions | None = None
) -> RequestSet:
    """Read and check ``source``: a list of requests, or a path to a JSONL file of them.

    A file's requests are checked and spooled one line at a time, never all held at once.
    ``options``: a task's defaults and record mapping, applied to each item as it is read
    (see :mod:`airflow_provider_batches.utils.request_options`), before the checks and
    the fingerprint.
    """
    if isinstance(source, Mapping):
        raise InvalidRequestSetError(
            "requests must be a list of {'custom_id': ..., 'params': {...}} dicts or a path to "
            "a JSONL file of them, got a single dict."
        )
    items, keep, encode = _items(source, options)
    checked = _Checked(encode, CustomIdSet(lambda: _items(source, options)[0]))
    kept: list[dict[str, Any]] = []
    try:
        for index, request in enumerate(items):
            checked.add(index, request)  # each request, as parsed: checked, encoded, spooled
            if keep:
                kept.append(request)
        return checked.finish(kept if keep else None)
    except BaseException:
        checked.discard()
        raise


def build_request_shards(
    source: Iterable[Any] | str | os.PathLike[str], options: RequestOptions | None = None
) -> list[RequestSet]:
    """Read and check ``source`` as :func:`build_request_set` does, cut in order into request
    sets (shards) that each fit the API's limits (:data:`MAX_REQUESTS` requests,
    :data:`MAX_BODY_BYTES` of create body).

    A shard is closed at the first request that would take it past a limit, so the same input
    always gives the same shards (and fingerprints). custom_ids are unique across all shards
    (one results file holds them all). A request that alone takes a body past the byte limit
    is an :class:`InvalidRequestSetError` naming it: no cut can send it.
    """
    if isinstance(source, Mapping):
        build_request_set(source)  # raises: one dict is not a request set
    items, keep, encode = _items(source, options)
    seen = CustomIdSet(lambda: _items(source, options)[0])
    shards: list[RequestSet] = []
    current = _Checked(encode, seen)
    kept: list[dict[str, Any]] = []
    try:
        for index, request in enumerate(items):
            encoded = current.check(index, request)
            if current.count and not current.fits(encoded):
                shards.append(current.finish(kept if keep else None))
                current, kept = _Checked(encode, seen), []
            if not current.fits(encoded):
                raise _alone_too_big(index, request, len(encoded))
            current.append(encoded, request["params"])
            if keep:
                kept.append(request)
        shards.append(current.finish(kept if keep else None))
        return shards
    except BaseException:
        current.discard()
        for shard in shards:
            shard.close()
        raise


def _items(
    source: Any, options: RequestOptions | None
) -> tuple[Iterable[Any], bool, Callable[[Any], bytes]]:
    """The source's items as read, whether to keep them (a list is kept; a file is not), and
    how each is encoded."""
    if isinstance(source, str) and source.lstrip().startswith("["):
        return _completed(_json_array(source), options), True, _encode
    if _is_path(source):
        return _read_path(source, options), False, _parsed_encoder()
    return _completed(cast("Iterable[Any]", source), options), True, _encode


def _alone_too_big(index: int, request: Any, size: int) -> InvalidRequestSetError:
    custom_id = request.get("custom_id") if isinstance(request, dict) else None
    return InvalidRequestSetError(
        f"Request {index} (custom_id {custom_id!r}) alone takes {size:,} bytes: a batch of it "
        f"alone is past the API's limit of {MAX_BODY_BYTES:,} bytes, so no split can send it. "
        "Shorten it or leave it out.",
        index=index,
        custom_id=custom_id,
    )


#: What the refusal of an oversized set tells the user to do.
SPLIT_HINT = (
    "split the requests over several batches: MessageBatchOperator(split_oversized=True) "
    "cuts them into batches that fit and waits for them all"
)


class CustomIdSet:
    """The custom_ids of the requests checked so far, kept as their hashes: about 70 bytes a
    request whatever the ids' length (a million 64-character ids held as a dict of strings
    took about 180 MB). A hash seen before is told apart from a repeat by reading the requests
    again from the start (``reread``), which only happens when a set repeats a custom_id.
    ``key`` is the hash (tests pass a coarser one to make hashes meet)."""

    def __init__(
        self, reread: Callable[[], Iterable[Any]], key: Callable[[str], int] = hash
    ) -> None:
        self._hashes: set[int] = set()
        self._reread = reread
        self._key = key

    def earlier(self, index: int, custom_id: str) -> int | None:
        """Record ``custom_id`` of request ``index``: the index of the earlier request with the
        same custom_id, -1 when the requests can no longer be read back to tell which, or
        None when there is none."""
        key = self._key(custom_id)
        if key not in self._hashes:
            self._hashes.add(key)
            return None
        requests: Iterator[Any] | None = None
        try:
            requests = iter(self._reread())
            for earlier, request in enumerate(requests):
                if earlier >= index:
                    return None  # another custom_id with the same hash: no repeat
                if isinstance(request, dict) and request.get("custom_id") == custom_id:
                    return earlier
        except (OSError, ValueError, InvalidRequestSetError):
            pass  # the source changed since it was read: the repeat stands, where is unknown
        finally:
            close = getattr(requests, "close", None)
            if close is not None:
                close()
        return -1


class _Checked:
    """The one pass: checks each request, adds it to the fingerprint and the spooled body.

    ``seen`` may be shared by the shards of one set."""

    def __init__(self, encode: Callable[[Any], bytes], seen: CustomIdSet) -> None:
        self._encode = encode
        self._digest = hashlib.sha256(b"[")
        self._body_bytes = _BODY_OVERHEAD
        self._seen = seen
        self._tally = RequestTally()
        self.count = 0
        self._spool: IO[bytes] = _new_spool()
        self._spool.write(_BODY_HEAD)

    def add(self, index: int, request: Any) -> None:
        custom_id = request.get("custom_id") if isinstance(request, dict) else None
        if self.count >= MAX_REQUESTS:
            raise InvalidRequestSetError(
                f"Request {index} (custom_id {custom_id!r}) is past the limit of {MAX_REQUESTS:,} "
                f"requests per batch: {SPLIT_HINT}.",
                index=index,
                custom_id=custom_id,
            )
        encoded = self.check(index, request)
        if not self.fits(encoded):
            raise InvalidRequestSetError(
                f"Request {index} (custom_id {custom_id!r}) takes the encoded batch past the "
                f"API's limit of {MAX_BODY_BYTES:,} bytes: {SPLIT_HINT}.",
                index=index,
                custom_id=custom_id,
            )
        self.append(encoded, request["params"])

    def check(self, index: int, request: Any) -> bytes:
        """Check one request (``index`` in the whole set); its canonical JSON."""
        _check_request(index, request, self._seen)
        try:
            return self._encode(request)
        except (TypeError, ValueError) as exc:
            custom_id = request.get("custom_id")
            raise InvalidRequestSetError(
                f"Request {index} (custom_id {custom_id!r}) is not JSON: {exc}.",
                index=index,
                custom_id=custom_id,
            ) from None

    def fits(self, encoded: bytes) -> bool:
        """Whether one more request, encoded, keeps this set within the API's limits."""
        grown = self._body_bytes + len(encoded) + (1 if self.count else 0)
        return self.count < MAX_REQUESTS and grown <= MAX_BODY_BYTES

    def append(self, encoded: bytes, params: Mapping[str, Any]) -> None:
        """Add a checked request (its canonical JSON, and its params for the tally)."""
        if self.count:
            encoded = b"," + encoded
        self._body_bytes += len(encoded)
        self._digest.update(encoded)
        self._spool.write(encoded)
        self._tally.add(params)
        self.count += 1

    def finish(self, requests: list[dict[str, Any]] | None) -> RequestSet:
        if not self.count:
            raise InvalidRequestSetError("There are no requests: a batch needs at least one.")
        self._digest.update(b"]")
        self._spool.write(_BODY_TAIL)
        self._spool.flush()
        body = SpooledBody(self._spool, self._body_bytes)
        fingerprint = self._digest.hexdigest()
        return RequestSet(
            requests,
            fingerprint,
            self._body_bytes,
            count=self.count,
            body=body,
            tally=self._tally,
        )

    def discard(self) -> None:
        self._spool.close()


def _new_spool() -> IO[bytes]:
    """An unnamed temporary file: on disk (or the page cache), not in the worker's memory."""
    import tempfile  # not at module level: this module is imported at DAG parse

    return tempfile.TemporaryFile(mode="w+b", buffering=_SEND_PIECE_BYTES)


def _spool_body(encoded: Iterable[bytes]) -> SpooledBody:
    spool = _new_spool()
    length = _BODY_OVERHEAD
    spool.write(_BODY_HEAD)
    for index, piece in enumerate(encoded):
        if index:
            spool.write(b",")
            length += 1
        spool.write(piece)
        length += len(piece)
    spool.write(_BODY_TAIL)
    return SpooledBody(spool, length)


def _encode(request: Any) -> bytes:
    """The canonical JSON of a request given as Python objects (a list from XCom)."""
    return canonical_json(request).encode()


def _parsed_encoder() -> Callable[[Any], bytes]:
    """The canonical JSON of a request :func:`_parse_line` read: the bytes
    :func:`canonical_json` makes, written by orjson (sorted keys, compact, UTF-8 as is: the
    same for the values it parsed), by ``json.dumps`` for a line the ``json`` module read."""
    import orjson

    dumps = orjson.dumps
    options = (
        orjson.OPT_SORT_KEYS
        | orjson.OPT_PASSTHROUGH_SUBCLASS
        | orjson.OPT_PASSTHROUGH_DATETIME
        | orjson.OPT_PASSTHROUGH_DATACLASS
    )

    def encode(request: Any) -> bytes:
        try:
            return dumps(request, option=options, default=_not_native)
        except TypeError:  # a _ReadByJson request, or a value orjson leaves to json.dumps
            return _encode(request)

    return encode


def _not_native(value: Any) -> Any:
    raise TypeError(f"{type(value).__name__} is left to json.dumps")


class _ReadByJson(dict[str, Any]):
    """A request the ``json`` module read: encoded by ``json.dumps`` too."""


def _check_request(index: int, request: Any, seen: CustomIdSet) -> None:
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
    earlier = seen.earlier(index, custom_id)
    if earlier is not None:
        which = f"request {earlier}" if earlier >= 0 else "an earlier request"
        raise fail(
            f"repeats the custom_id of {which}: custom_ids must be unique within a batch "
            "(results are matched by them).",
            custom_id,
        )
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
        return _open_target(source).open("rb")
    except ValueError as exc:  # a URL scheme no filesystem is installed for (Airflow 3.0 finds
        # that out only when opening, later releases when the path is made)
        raise InvalidRequestSetError(
            f"requests names a location that cannot be read ({exc}): {_shown(source)}."
        ) from None
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
    import orjson

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
                item = _parse_line(line, orjson.loads)
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


def _parse_line(line: bytes, fast_loads: Callable[[bytes], Any]) -> Any:
    """One JSONL line as ``json.loads`` reads it: by orjson where that gives the same value and
    the same canonical bytes, by ``json.loads`` for a line orjson refuses (its errors;
    ``NaN``, which the check then names) or that holds a float outside :data:`_PLAIN_FLOATS`."""
    try:
        value = fast_loads(line)
    except ValueError:  # orjson.JSONDecodeError
        pass
    else:
        if not _has_other_floats(value):
            return value
    value = json.loads(line)
    return _ReadByJson(value) if type(value) is dict else value


def _has_other_floats(value: Any) -> bool:
    """Whether ``value`` (as orjson parsed it) holds a float outside :data:`_PLAIN_FLOATS`."""
    low, high = _PLAIN_FLOATS
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is dict:
            stack.extend(item.values())
        elif kind is list:
            stack.extend(item)
        elif kind is float and item and not low <= abs(item) < high:
            return True
    return False


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
