"""Check connection values that travel as HTTP header values, before any request is built.

h11 refuses control characters in a header value and httpx refuses non-ASCII ones; both fail
late, inside the request, with the value in the message. Checking at load turns that into a
:class:`ConnectionConfigError` that names the field and never shows the value.
"""

from __future__ import annotations

import unicodedata
import warnings

from airflow_provider_batches.exceptions import ApiKeyWhitespaceWarning, ConnectionConfigError

_API_KEY_FIELD = "Password (API key)"


def header_value_problem(value: str, *, allow_inner_spaces: bool) -> str | None:
    """Why ``value`` cannot be sent as an HTTP header value, or ``None`` if it can.

    Describes the offending character by class and code point only, never by the text around it.
    """
    for char in value:
        if char == " " and allow_inner_spaces:
            continue
        if "\x21" <= char <= "\x7e":
            continue
        if char.isspace():
            kind = "whitespace"
        elif unicodedata.category(char).startswith("C"):
            kind = "control"
        else:
            kind = "non-ASCII"
        return f"it contains a {kind} character (U+{ord(char):04X})"
    return None


def check_header_value(conn_id: str, field: str, value: str, fix: str) -> str:
    """``value`` if it is a legal header value; else an error naming ``field`` and ``fix``."""
    problem = header_value_problem(value, allow_inner_spaces=False)
    if problem:
        raise ConnectionConfigError(
            f"Connection {conn_id!r}: {field} cannot be sent in an HTTP header: {problem}. {fix}"
        )
    return value


def api_key_from_password(conn_id: str, password: str | None) -> str:
    """The key from the Password field: surrounding whitespace removed, the rest checked.

    A key is a token of visible ASCII characters. A newline or space pasted around it is removed
    with one warning; anything else that cannot travel in the ``x-api-key`` header is an error.
    Neither message shows the key or any part of it.
    """
    key = (password or "").strip()
    if not key:
        raise ConnectionConfigError(
            f"Connection {conn_id!r} has no API key: put the Anthropic API key in its "
            "Password field."
        )
    if key != password:
        warnings.warn(
            f"Connection {conn_id!r}: the API key in the Password field has whitespace before or "
            "after it (a pasted newline or space); it was removed. Save the key without it.",
            ApiKeyWhitespaceWarning,
            stacklevel=4,
        )
    return check_header_value(
        conn_id,
        f"the API key in the {_API_KEY_FIELD} field",
        key,
        "Paste the key again exactly as the Anthropic console shows it "
        "(letters, digits, '-' and '_').",
    )
