"""Structured results: each succeeded answer checked against an ``output_type``.

The answer of a succeeded result is the ``input`` of its one ``tool_use`` block, or else its
text parsed as JSON (a text that is exactly one fenced code block, ```` ```json ... ``` ````,
is read as the block's content; any other prose around the JSON makes it invalid). It is
validated against the ``output_type``:

- a class pydantic can validate (a ``BaseModel`` subclass, a dataclass, a ``TypedDict``):
  the row holds the validated value dumped in JSON mode (defaults filled in, values coerced);
- a JSON schema (a ``dict``), checked with ``jsonschema`` (the schema's ``$schema`` draft, by
  default 2020-12; ``format`` is an annotation, not asserted): the row holds the answer as is.
  ``jsonschema-rs`` (compiled, about a hundred times faster) decides first whether an answer is
  valid, for the same draft, offline; ``jsonschema`` then explains each invalid answer, so the
  errors read the same. A schema ``jsonschema-rs`` cannot build (a remote ``$ref``, a draft it
  does not know) is checked by ``jsonschema`` alone;
- an import path string, ``"mypkg.models:Review"`` or ``"mypkg.models.Review"``, naming
  either of the above: resolved when the task runs, never at DAG parse.

Nothing here does I/O: :class:`AnswerSorter` turns each result into the line it adds to
``parsed.jsonl`` or ``invalid.jsonl``, and sums what the manifest reports.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_batches.exceptions import InvalidAnswersError, OutputTypeError
from airflow_provider_batches.utils.structured_options import (
    OutputType,
    TooManyInvalidAction,
    check_structured_options,
    split_import_path,
)

if TYPE_CHECKING:
    from airflow_provider_batches.results.models import BatchResult, Message

#: Longest validation error kept in an ``invalid.jsonl`` row (the answer itself never is).
MAX_ERROR_CHARS = 1000
#: ``custom_id``s of invalid answers listed in the manifest (all are in ``invalid.jsonl``).
MAX_INVALID_IDS = 100
#: Validation errors of one answer named in its row (the row says how many there were).
_ERRORS_SHOWN = 3
_FENCE = "```"
#: jsonschema messages longer than this quote too much of the answer to be kept.
_SHORT_MESSAGE = 200


class _Invalid(Exception):
    """One answer is not valid: ``reason`` is its category in the manifest."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class OutputValidator:
    """A resolved ``output_type``: ``validate`` returns the row's JSON for a valid answer."""

    name: str
    schema_sha256: str
    validate: Callable[[Any], bytes]


def resolve_output_type(output_type: OutputType) -> OutputValidator:
    """The validator for ``output_type``; :class:`OutputTypeError` if it cannot be one."""
    check_structured_options(output_type, None)
    shown = output_type if isinstance(output_type, str) else None
    if isinstance(output_type, str):
        output_type = _import(output_type)
    if isinstance(output_type, Mapping):
        return _schema_validator(output_type, shown or "JSON schema")
    if isinstance(output_type, type):
        return _class_validator(output_type, shown)
    raise OutputTypeError(
        f"output_type {shown!r} names a {type(output_type).__name__}, not a class or a JSON "
        "schema (dict)."
    )


def _import(path: str) -> Any:
    split = split_import_path(path)
    assert split is not None  # checked by check_structured_options
    module_name, name = split
    try:
        target: Any = importlib.import_module(module_name)
        for part in name.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as error:
        raise OutputTypeError(
            f"output_type {path!r} does not import ({type(error).__name__}: {error}); the "
            "module must be importable where the task runs (the DAG folder or an installed "
            "package)."
        ) from None
    return target


def _class_validator(cls: type, shown: str | None) -> OutputValidator:
    from pydantic import PydanticSchemaGenerationError, TypeAdapter, ValidationError

    name = shown or f"{cls.__module__}:{cls.__qualname__}"
    try:
        adapter: TypeAdapter[Any] = TypeAdapter(cls)
    except (PydanticSchemaGenerationError, TypeError) as error:
        raise OutputTypeError(
            f"output_type {name} is not a class pydantic can validate (a BaseModel subclass, a "
            f"dataclass, a TypedDict): {str(error)[:300]}"
        ) from None
    try:
        fingerprint: Any = adapter.json_schema()
    except Exception:  # a type with no JSON schema still validates; its name identifies it
        fingerprint = name

    def validate(answer: Any) -> bytes:
        try:
            return adapter.dump_json(adapter.validate_python(answer))
        except ValidationError as error:
            problems = [
                f"{_location(item['loc'])}: {item['msg']}"
                for item in error.errors(include_input=False, include_url=False)[:_ERRORS_SHOWN]
            ]
            raise _Invalid("validation", _problems(problems, error.error_count())) from None

    return OutputValidator(name, _sha256_of(fingerprint), validate)


def _schema_validator(schema: Mapping[str, Any], name: str) -> OutputValidator:
    import jsonschema
    from jsonschema.exceptions import SchemaError
    from referencing import Registry
    from referencing.exceptions import Unresolvable

    schema = dict(schema)
    validator_class = jsonschema.validators.validator_for(
        schema, default=jsonschema.Draft202012Validator
    )
    try:
        validator_class.check_schema(schema)
    except SchemaError as error:
        raise OutputTypeError(
            f"output_type ({name}) is not a valid JSON schema: {str(error.message)[:300]} "
            f"at {error.json_path}."
        ) from None
    # jsonschema would fetch a remote $ref (an http request per answer): refuse it instead.
    # mypy does not see the alias attrs gives Registry's private field.
    registry = Registry(retrieve=_refuse_remote)  # type: ignore[call-arg]
    validator = validator_class(schema, registry=registry)
    is_valid = _compiled_check(schema, validator_class.__name__)

    def validate(answer: Any) -> bytes:
        if is_valid is not None and is_valid(answer):
            return _ENCODER.encode(answer).encode()
        errors = validator.iter_errors(answer)
        problems = []
        count = 0
        try:
            for error in errors:  # a few are enough: an answer may hold millions of bad items
                count += 1
                problems.append(f"{error.json_path}: {_schema_message(error)}")
                if count > _ERRORS_SHOWN:
                    break
        except Unresolvable as error:
            raise OutputTypeError(
                f"output_type ({name}) has a $ref this task cannot resolve: {str(error)[:300]}. "
                "Remote $refs are not fetched: put what they name under the schema's $defs."
            ) from None
        if problems:
            more = count > _ERRORS_SHOWN
            raise _Invalid("validation", _problems(problems[:_ERRORS_SHOWN], count, more))
        return _ENCODER.encode(answer).encode()

    return OutputValidator(name, _sha256_of(schema), validate)


#: The drafts both libraries know, by the class name they share.
_COMPILED_DRAFTS = frozenset(
    {
        "Draft4Validator",
        "Draft6Validator",
        "Draft7Validator",
        "Draft201909Validator",
        "Draft202012Validator",
    }
)


def _has_fractional_multiple_of(schema: Any) -> bool:
    """Whether a ``multipleOf`` anywhere in ``schema`` is not a whole number: jsonschema decides
    those with float arithmetic of its own (a quotient that overflows fails), which jsonschema-rs
    does not follow."""
    if isinstance(schema, dict):
        factor = schema.get("multipleOf")
        if isinstance(factor, float) and not factor.is_integer():
            return True
        return any(_has_fractional_multiple_of(value) for value in schema.values())
    if isinstance(schema, list):
        return any(_has_fractional_multiple_of(value) for value in schema)
    return False


def _refuse_remote(uri: str) -> Any:
    raise ValueError(f"remote $ref {uri[:200]!r} is not fetched")


def _compiled_check(schema: dict[str, Any], validator_name: str) -> Callable[[Any], bool] | None:
    """``jsonschema-rs``'s validity check for the draft ``jsonschema`` chose, formats not
    asserted and nothing fetched; None where it cannot build one (``jsonschema`` decides)."""
    import jsonschema_rs

    if validator_name not in _COMPILED_DRAFTS or _has_fractional_multiple_of(schema):
        return None
    compiled_class = getattr(jsonschema_rs, validator_name)
    try:
        compiled = compiled_class(schema, validate_formats=False, retriever=_refuse_remote)
    except Exception:  # any schema it cannot build is left to jsonschema
        return None

    def is_valid(answer: Any) -> bool:
        try:
            return bool(compiled.is_valid(answer))
        except (ValueError, OverflowError, TypeError):  # a value it cannot take: ask jsonschema
            return False

    return is_valid


def _schema_message(error: Any) -> str:
    """jsonschema's message when short; else one naming the rule, since jsonschema's own
    quotes the failing value, which may be most of a huge answer."""
    if len(error.message) <= _SHORT_MESSAGE:
        return str(error.message)
    rule = json.dumps(error.validator_value, default=str)
    if len(rule) > _SHORT_MESSAGE:
        rule = rule[:_SHORT_MESSAGE] + "…"
    return f"the value fails {error.validator!r} ({rule})"


def _location(loc: tuple[int | str, ...]) -> str:
    return "$" + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc)


def _problems(problems: list[str], count: int, more: bool = False) -> str:
    total = f"{count}+" if more else str(count)
    return f"{total} validation error(s): " + "; ".join(problems)


def _sha256_of(value: Any) -> str:
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def answer_of(message: Message) -> tuple[str, Any]:
    """``("tool_use", input)`` of the message's one ``tool_use`` block, else
    ``("text", value)`` of its text parsed as JSON; :class:`_Invalid` when there is neither."""
    tool_calls = [
        block
        for block in message.content
        if isinstance(block, dict) and block.get("type") == "tool_use"
    ]
    if len(tool_calls) > 1:
        raise _Invalid(
            "several_tool_calls",
            f"{len(tool_calls)} tool_use blocks; a structured answer is one tool call (ask for "
            "one with tool_choice and disable_parallel_tool_use).",
        )
    if tool_calls:
        if "input" not in tool_calls[0]:
            raise _Invalid("no_answer", "the tool_use block has no input.")
        return "tool_use", tool_calls[0]["input"]
    text = message.text
    if not text.strip():
        raise _Invalid(
            "no_answer", f"no text and no tool_use block (stop_reason={message.stop_reason!r})."
        )
    try:
        return "text", _DECODER.decode(_unfenced(text))
    except (ValueError, RecursionError) as error:
        cut = " (stop_reason=max_tokens: the answer was cut short)"
        raise _Invalid(
            "not_json",
            f"the text ({len(text)} characters) is not JSON: {str(error)[:200]}"
            f"{cut if message.stop_reason == 'max_tokens' else ''}.",
        ) from None


def _unfenced(text: str) -> str:
    """The content of a text that is exactly one fenced code block, else the text."""
    stripped = text.strip()
    if not (stripped.startswith(_FENCE) and stripped.endswith(_FENCE) and len(stripped) > 6):
        return text
    first_line, newline, rest = stripped[3:-3].partition("\n")
    if not newline or first_line.strip().lower() not in ("", "json"):
        return text
    return rest


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# One of each, made once: json.loads and json.dumps with options build a new one per call.
_DECODER = json.JSONDecoder(parse_constant=_no_constant)
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


class AnswerSorter:
    """Sorts succeeded results into ``parsed.jsonl`` and ``invalid.jsonl`` lines, counting.

    Rows: ``{"custom_id": ..., "output": <value>}`` for a valid answer;
    ``{"custom_id": ..., "reason": ..., "error": ..., "source": ..., "stop_reason": ...}`` for
    an invalid one (the error bounded, never the answer).
    """

    def __init__(self, validator: OutputValidator) -> None:
        from airflow_provider_batches.results.models import SucceededResult

        self._succeeded = SucceededResult
        self.validator = validator
        self.parsed = 0
        self.invalid = 0
        self.sources: Counter[str] = Counter()
        self.reasons: Counter[str] = Counter()
        self.invalid_ids: list[str] = []

    def sort(self, result: BatchResult) -> tuple[str, bytes] | None:
        """``("parsed" | "invalid", line)`` for a succeeded result, ``None`` for the others."""
        if not isinstance(result.result, self._succeeded):
            return None
        message = result.result.message
        source: str | None = None
        try:
            source, answer = answer_of(message)
            output = self.validator.validate(answer)
        except _Invalid as problem:
            return "invalid", self._invalid(result.custom_id, problem, source, message)
        except RecursionError:
            deep = _Invalid("validation", "the answer is nested too deeply to validate.")
            return "invalid", self._invalid(result.custom_id, deep, source, message)
        self.parsed += 1
        self.sources[source] += 1
        custom_id = _ENCODER.encode(result.custom_id).encode()
        return "parsed", b'{"custom_id":' + custom_id + b',"output":' + output + b"}"

    def _invalid(
        self, custom_id: str, invalid: _Invalid, source: str | None, message: Message
    ) -> bytes:
        self.invalid += 1
        self.reasons[invalid.reason] += 1
        if len(self.invalid_ids) < MAX_INVALID_IDS:
            self.invalid_ids.append(custom_id)
        error = invalid.message
        if len(error) > MAX_ERROR_CHARS:
            error = error[: MAX_ERROR_CHARS - 1] + "…"
        row = {
            "custom_id": custom_id,
            "reason": invalid.reason,
            "error": error,
            "source": source,
            "stop_reason": message.stop_reason,
        }
        return _ENCODER.encode(row).encode()

    def summary(self) -> dict[str, Any]:
        """The manifest's ``structured`` section."""
        validated = self.parsed + self.invalid
        return {
            "output_type": self.validator.name,
            "schema_sha256": self.validator.schema_sha256,
            "parsed": self.parsed,
            "invalid": self.invalid,
            "invalid_ratio": self.invalid / validated if validated else 0.0,
            "parsed_by_source": dict(sorted(self.sources.items())),
            "invalid_by_reason": dict(sorted(self.reasons.items())),
            "invalid_custom_ids": list(self.invalid_ids),
        }


def check_invalid_answers(
    manifest: dict[str, Any],
    max_invalid_ratio: float | None,
    on_too_many_invalid: TooManyInvalidAction = "fail",
) -> None:
    """Past ``max_invalid_ratio`` invalid answers (of the succeeded results): raise
    :class:`InvalidAnswersError`, or with ``on_too_many_invalid="skip"`` Airflow's skip
    exception with the same message; ``None`` never ends the task."""
    structured = manifest.get("structured")
    if max_invalid_ratio is None or not isinstance(structured, dict):
        return
    parsed, invalid = int(structured["parsed"]), int(structured["invalid"])
    validated = parsed + invalid
    ratio = invalid / validated if validated else 0.0
    if ratio <= max_invalid_ratio:
        return
    reasons = ", ".join(f"{n} {why}" for why, n in structured["invalid_by_reason"].items())
    message = (
        f"{invalid} of {validated} succeeded answers of batch {manifest['batch_id']} do not "
        f"match output_type {structured['output_type']} ({ratio:.2%}, over max_invalid_ratio="
        f"{max_invalid_ratio:g}): {reasons}. The rows and their errors are in "
        f"{manifest['files']['invalid']['path']}; the valid ones in "
        f"{manifest['files']['parsed']['path']}."
    )
    if on_too_many_invalid == "skip":
        from airflow_provider_batches._compat import AirflowSkipException

        raise AirflowSkipException(f"Skipping (on_too_many_invalid='skip'): {message}")
    raise InvalidAnswersError(message, manifest=manifest)
