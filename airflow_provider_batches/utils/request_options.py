"""What a MessageBatchOperator's own options make of each item it reads: a request's missing
``model``, ``max_tokens`` and ``system`` filled in, or a record (``{"id": 7, "review": ...}``)
turned into a request through ``prompt_template`` or ``prompt_field`` and ``custom_id_field``.

:func:`complete_request` is pure: one item in, one request out (or an error naming the item's
line and the option that fixes it). The request set calls it where it reads each item, before
its checks and its fingerprint, so the fingerprint covers the filled-in values.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airflow_provider_batches.exceptions import InvalidRequestSetError, InvalidTaskOptionError

#: The API's custom_id rule (the same as the request set's own check).
_CUSTOM_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_RECORD_OPTIONS = ("prompt_template", "prompt_field", "custom_id_field")
_SHOWN_CHARS = 80


@dataclass(frozen=True)
class RequestOptions:
    """The values a task fills in or maps records with; ``None`` means not set.

    ``model`` and ``max_tokens`` are the operator's, else the connection's ``default_model``
    and ``default_max_tokens``. ``task`` and ``conn_id`` name the task and its connection in
    errors.
    """

    task: str
    conn_id: str = ""
    model: str | None = None
    max_tokens: int | None = None
    system: str | list[Any] | None = None
    prompt_template: str | None = None
    prompt_field: str | None = None
    custom_id_field: str | None = None

    @property
    def maps_records(self) -> bool:
        """Whether every item is a record to map, rather than a request."""
        return self.prompt_template is not None or self.prompt_field is not None


def check_request_options(options: Mapping[str, Any], task: str) -> None:
    """Check the input options given (constructor, ``.partial()``, or rendered values) and
    raise :class:`InvalidTaskOptionError` naming the task, the option and the fix.

    Only the options present are checked. A template string (``{{ ... }}``) for ``model``,
    ``max_tokens`` or ``system`` passes here and is checked once rendered.
    """
    model = options.get("model")
    if model is not None and (not isinstance(model, str) or not model.strip()):
        raise InvalidTaskOptionError(
            f"{task}: model must be a model name such as 'claude-sonnet-4-5', got {_shown(model)}."
        )
    max_tokens = options.get("max_tokens")
    if (
        max_tokens is not None
        and not _is_template(max_tokens)
        and _positive_int(max_tokens) is None
    ):
        raise InvalidTaskOptionError(
            f"{task}: max_tokens must be a whole number of at least 1, got {_shown(max_tokens)}."
        )
    system = options.get("system")
    if system is not None and not isinstance(system, str | list):
        raise InvalidTaskOptionError(
            f"{task}: system must be a string or a list of content blocks, got "
            f"{type(system).__name__}."
        )
    for name in ("prompt_field", "custom_id_field"):
        value = options.get(name)
        if value is not None and (not isinstance(value, str) or not value):
            raise InvalidTaskOptionError(
                f"{task}: {name} must be the name of a field of the records, got {_shown(value)}."
            )
    template = options.get("prompt_template")
    if template is not None:
        _check_template(template, task)
    if template is not None and options.get("prompt_field") is not None:
        raise InvalidTaskOptionError(
            f"{task}: pass prompt_template or prompt_field, not both: prompt_field='review' is "
            "prompt_template='{review}'."
        )
    maps_records = template is not None or options.get("prompt_field") is not None
    if options.get("custom_id_field") is not None and not maps_records:
        raise InvalidTaskOptionError(
            f"{task}: custom_id_field maps records to requests, which also needs "
            "prompt_template (e.g. 'Classify: {review}') or prompt_field (e.g. 'review')."
        )
    if options.get("prompts") is not None:
        given = [name for name in _RECORD_OPTIONS if options.get(name) is not None]
        if given:
            raise InvalidTaskOptionError(
                f"{task}: {given} apply to records read through requests=, not to prompts=: "
                "pass the records as requests, or drop those options."
            )


def rendered_max_tokens(value: Any, task: str) -> int | None:
    """``max_tokens`` as rendered (a template renders text such as ``"1024"``)."""
    if value is None:
        return None
    number = _positive_int(value)
    if number is None:
        raise InvalidTaskOptionError(
            f"{task}: max_tokens rendered to {_shown(value)}; it must be a whole number of at "
            "least 1."
        )
    return number


def complete_request(
    item: Any, line_number: int | None, options: RequestOptions, *, index: int
) -> Any:
    """The request ``item`` stands for: a record mapped, a request's gaps filled from
    ``options``; the request's own values win. ``line_number`` (1-based) is the item's line in
    a JSONL file, ``None`` for a list; ``index`` is its position among the requests.

    Anything else than a dict in request form is returned as it is, for the request set's own
    checks to name.
    """
    where = f"Request {index}" if line_number is None else f"line {line_number} (request {index})"
    record_where = f"{index}" if line_number is None else f"on line {line_number}"
    if options.maps_records:
        return _from_record(item, record_where, options, index)
    if not isinstance(item, dict):
        return item
    if "custom_id" not in item and "params" not in item:
        raise InvalidRequestSetError(
            f"{options.task}: {where} is a record (fields {_fields(item)}), "
            "not a request ({'custom_id': ..., 'params': {...}}): to map records to requests "
            "set prompt_template (e.g. 'Classify: {review}') or prompt_field (e.g. 'review'), "
            "and custom_id_field (e.g. 'id').",
            index=index,
        )
    params = item.get("params")
    if not isinstance(params, dict):
        return item
    return {**item, "params": _filled(params, where, options, item.get("custom_id"), index)}


def _from_record(record: Any, where: str, options: RequestOptions, index: int) -> dict[str, Any]:
    def fail(problem: str) -> InvalidRequestSetError:
        return InvalidRequestSetError(f"{options.task}: record {where} {problem}", index=index)

    if not isinstance(record, dict):
        raise fail(
            f"is a {type(record).__name__}, not a record object such as "
            '{"id": 7, "review": "..."}: prompt_template and prompt_field map JSON objects.'
        )
    if options.custom_id_field is None:
        custom_id = f"record-{index}"
    else:
        field = options.custom_id_field
        if field not in record:
            raise fail(f"has no field {field!r} (custom_id_field): fields {_fields(record)}.")
        value = record[field]
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise fail(
                f"has {field!r} (custom_id_field) {_shown(value)}, a {type(value).__name__}: "
                "custom_ids come from strings or integers."
            )
        custom_id = str(value)
        if not _CUSTOM_ID.fullmatch(custom_id):
            raise fail(
                f"has {field!r} (custom_id_field) {_shown(custom_id)}, which is no valid "
                "custom_id: 1 to 64 characters of letters, digits, '_' and '-'."
            )
    prompt = _prompt(record, options, fail)
    params = {"messages": [{"role": "user", "content": prompt}]}
    return {
        "custom_id": custom_id,
        "params": _filled(params, f"record {where}", options, custom_id, index),
    }


def _prompt(record: dict[str, Any], options: RequestOptions, fail: Any) -> str:
    if options.prompt_field is not None:
        field = options.prompt_field
        if field not in record:
            raise fail(f"has no field {field!r} (prompt_field): fields {_fields(record)}.")
        prompt = record[field]
        if not isinstance(prompt, str):
            raise fail(
                f"has {field!r} (prompt_field) of type {type(prompt).__name__}; a prompt is a "
                "string (use prompt_template to build one from other values)."
            )
    else:
        try:
            prompt = str(options.prompt_template).format_map(record)
        except KeyError as exc:
            raise fail(
                f"has no field {exc.args[0]!r}, which prompt_template uses: fields "
                f"{_fields(record)}."
            ) from None
        except (ValueError, TypeError, IndexError, AttributeError) as exc:
            raise fail(f"cannot fill prompt_template: {exc}.") from None
    if not prompt.strip():
        raise fail("makes an empty prompt; the API refuses a message without text.")
    return prompt


def _filled(
    params: dict[str, Any], where: str, options: RequestOptions, custom_id: Any, index: int
) -> dict[str, Any]:
    filled = dict(params)
    for name in ("model", "max_tokens", "system"):
        value = getattr(options, name)
        if name not in filled and value is not None:
            filled[name] = value
    for name, extra, example in (
        ("model", "default_model", "'claude-sonnet-4-5'"),
        ("max_tokens", "default_max_tokens", "1024"),
    ):
        if name not in filled:
            raise InvalidRequestSetError(
                f"{options.task}: {where} (custom_id {custom_id!r}) has no {name}, and none is "
                f"set for the task: pass {name}={example} to the operator (or its .partial()), "
                f"or set the extra {extra!r} on connection {options.conn_id!r}, or put "
                f"params.{name} in each request.",
                index=index,
                custom_id=custom_id,
            )
    return filled


def _check_template(template: Any, task: str) -> None:
    if not isinstance(template, str):
        raise InvalidTaskOptionError(
            f"{task}: prompt_template must be a string such as 'Classify: {{review}}', got "
            f"{type(template).__name__}."
        )
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise InvalidTaskOptionError(
            f"{task}: prompt_template {_shown(template)} is not a format string ({exc}); write "
            "fields as {name} and a literal brace as {{ or }}."
        ) from None
    for _text, field, _spec, _conversion in parsed:
        if field is not None and (not field or field.isdigit() or re.search(r"[.\[]", field)):
            raise InvalidTaskOptionError(
                f"{task}: prompt_template field {{{field}}} is not a record field's name: write "
                "fields as {name} (no positions, attributes or indexes)."
            )


def _positive_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and re.fullmatch(r"[0-9]+", value.strip()):
        value = int(value.strip())
    return value if isinstance(value, int) and value >= 1 else None


def _is_template(value: Any) -> bool:
    return isinstance(value, str) and "{{" in value


def _fields(record: dict[str, Any]) -> str:
    names = [str(name) for name in list(record)[:10]]
    more = ", ..." if len(record) > 10 else ""
    return "[" + ", ".join(repr(name[:40]) for name in names) + more + "]"


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "..."
