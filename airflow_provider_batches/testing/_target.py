"""Splitting an HTTP request target into path segments and query parameters."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote


@dataclass(frozen=True)
class Target:
    raw: str
    """The request target exactly as received (latin-1 decoded)."""
    path: str
    """The path without the query, percent-decoded once."""
    segments: tuple[str, ...]
    """Path segments after the leading "/", each percent-decoded once."""
    query: dict[str, str]


def parse_target(raw_target: bytes) -> Target:
    raw = raw_target.decode("latin-1")
    raw_path, _, raw_query = raw.partition("?")
    if "://" in raw_path:  # absolute-form target: keep only the path
        after_scheme = raw_path.split("://", 1)[1]
        slash = after_scheme.find("/")
        raw_path = after_scheme[slash:] if slash >= 0 else "/"
    raw_path = raw_path.split("#", 1)[0]
    pieces = raw_path.split("/")
    segments = tuple(unquote(piece, errors="replace") for piece in pieces[1:])
    query = dict(parse_qsl(raw_query, keep_blank_values=True))
    return Target(raw=raw, path=unquote(raw_path, errors="replace"), segments=segments, query=query)
