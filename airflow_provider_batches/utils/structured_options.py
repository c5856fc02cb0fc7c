"""The options of structured results, checked at DAG parse: cheap, nothing imported or resolved.

The validation itself is :mod:`airflow_provider_batches.results.structured`, loaded when the
task runs (the ``results`` package costs DAG parsing tens of milliseconds).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from airflow_provider_batches.exceptions import OutputTypeError

#: What ``output_type`` accepts: a class, a JSON schema, or an import path to either.
OutputType = type | Mapping[str, Any] | str
#: What a task does when more answers are invalid than ``max_invalid_ratio`` allows.
TooManyInvalidAction = Literal["fail", "skip"]


def check_structured_options(
    output_type: object,
    max_invalid_ratio: object,
    *,
    task: str = "write_results",
    on_too_many_invalid: object = "fail",
) -> None:
    """Cheap checks for DAG parse time: nothing is imported or resolved here."""
    if on_too_many_invalid not in ("fail", "skip"):
        raise ValueError(
            f"{task}: on_too_many_invalid must be 'fail' or 'skip', got {on_too_many_invalid!r}."
        )
    if on_too_many_invalid == "skip" and max_invalid_ratio is None:
        raise ValueError(
            f"{task}: on_too_many_invalid='skip' needs max_invalid_ratio: the share of invalid "
            "answers past which the task is skipped."
        )
    if output_type is not None and not isinstance(output_type, type | Mapping | str):
        raise OutputTypeError(
            f"{task}: output_type must be a pydantic model class, a JSON schema (dict) or an "
            f"import path such as 'mypkg.models:Review'; got {type(output_type).__name__}."
        )
    if isinstance(output_type, str) and not split_import_path(output_type):
        raise OutputTypeError(
            f"{task}: output_type {output_type[:200]!r} is not an import path: write "
            "'package.module:Name' (or 'package.module.Name')."
        )
    if max_invalid_ratio is None:
        return
    if (
        isinstance(max_invalid_ratio, bool)
        or not isinstance(max_invalid_ratio, int | float)
        or not 0 <= max_invalid_ratio <= 1
    ):
        raise ValueError(
            f"{task}: max_invalid_ratio must be a number from 0 to 1 (0: any invalid answer "
            f"fails the task), got {max_invalid_ratio!r}."
        )
    if output_type is None:
        raise ValueError(f"{task}: max_invalid_ratio needs an output_type to validate against.")


def split_import_path(path: str) -> tuple[str, str] | None:
    module, sep, name = path.strip().partition(":")
    if not sep:
        module, _, name = path.strip().rpartition(".")
    parts = [*module.split("."), *name.split(".")]
    if not module or not name or not all(part.isidentifier() for part in parts):
        return None
    return module, name
