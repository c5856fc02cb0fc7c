"""Command line: ``python -m airflow_provider_batches.testing serve [options]``.

Prints ``FAKE_API_READY <base_url>`` on stdout once listening; runs until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import signal
import sys
from collections.abc import Sequence

from ._app import FakeApp, is_loopback
from ._state import FakeState

API_KEY_ENV = "FAKE_ANTHROPIC_API_KEY"
DEFAULT_API_KEY = "sk-ant-test-key"
READY_PREFIX = "FAKE_API_READY"


def raise_fd_limit() -> int:
    """Raise the open-files soft limit as far as the hard limit allows; returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 1_048_576 if hard == resource.RLIM_INFINITY else hard
    for target in (wanted, 65_536, 16_384):
        if target <= soft:
            break
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            break
        except (ValueError, OSError):
            continue
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_batches.testing",
        description="Embedded fake of the Anthropic Message Batches API.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the fake API until SIGTERM/SIGINT")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    serve.add_argument(
        "--api-key",
        default=None,
        help=f"accepted API key (default: ${API_KEY_ENV}, else {DEFAULT_API_KEY!r})",
    )
    serve.add_argument("--latency", type=float, default=0.0, help="seconds per API response")
    serve.add_argument(
        "--processing-seconds",
        type=float,
        default=2.0,
        help="how long batches created through the API stay in progress",
    )
    serve.add_argument("--backlog", type=int, default=4096)
    serve.add_argument(
        "--max-recorded-requests",
        type=int,
        default=100_000,
        help="request log size (counters stay exact beyond it)",
    )
    serve.add_argument(
        "--rate-limit-rpm",
        type=float,
        default=None,
        help="enforce this many requests per minute per API key (429 + retry-after beyond)",
    )
    serve.add_argument(
        "--rate-limit-burst",
        type=float,
        default=None,
        help="token bucket size (default: rpm; rpm/60 enforces the rate over one second)",
    )
    serve.add_argument(
        "--rate-limit-no-headers",
        action="store_true",
        help="answer without the anthropic-ratelimit-requests-* headers",
    )
    serve.add_argument("--allow-non-loopback", action="store_true")
    return parser


async def _serve(args: argparse.Namespace, api_key: str) -> None:
    state = FakeState(
        processing_seconds=args.processing_seconds,
        latency=args.latency,
        max_recorded_requests=args.max_recorded_requests,
    )
    state.rate_limit.configure(
        args.rate_limit_rpm, args.rate_limit_burst, not args.rate_limit_no_headers
    )
    app = FakeApp(state, api_key, backlog=args.backlog, allow_non_loopback=args.allow_non_loopback)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    base_url = await app.start(args.host, args.port)
    print(f"{READY_PREFIX} {base_url}", flush=True)
    try:
        await stop.wait()
    finally:
        await app.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.allow_non_loopback and not is_loopback(args.host):
        print(
            f"refusing to listen on non-loopback host {args.host!r}; "
            "pass --allow-non-loopback to override",
            file=sys.stderr,
        )
        return 2
    api_key = args.api_key or os.environ.get(API_KEY_ENV) or DEFAULT_API_KEY
    limit = raise_fd_limit()
    print(f"fake batches API: open-files limit {limit}", file=sys.stderr, flush=True)
    try:
        asyncio.run(_serve(args, api_key))
    except OSError as exc:
        print(f"fake batches API failed to start: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
