"""The ``posthog-otel`` command: a local PostHog-compatible server, and more."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Sequence

from posthog_otel._version import __version__


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="posthog-otel",
        description="Tools for developing with posthog-otel, no PostHog account needed.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    dev = commands.add_parser(
        "devserver",
        help="run a local PostHog-compatible server",
        description="Run a local PostHog-compatible server: it accepts events and answers "
        "feature flags as PostHog does, and keeps what it received for you to inspect.",
    )
    dev.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    dev.add_argument(
        "--port",
        type=int,
        default=8010,
        help="port to listen on; 0 picks a free one (default: %(default)s)",
    )
    dev.add_argument(
        "--db", default=None, help="SQLite file to keep events in (default: in memory)"
    )
    dev.add_argument("--flags", default=None, help="JSON file of feature flag rules")
    dev.add_argument(
        "--api-key", default=None, help="accept only this project API key (default: any)"
    )
    dev.add_argument("-v", "--verbose", action="store_true", help="log every request")

    args = parser.parse_args(argv)
    if args.command == "devserver":
        return _devserver(args)
    return 2  # pragma: no cover - argparse rejects unknown commands


def _devserver(args: argparse.Namespace) -> int:
    from posthog_otel.devserver import DevServer

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    try:
        server = DevServer(args.host, args.port, flags=args.flags, db=args.db, api_key=args.api_key)
        server.start()
    except (OSError, ValueError) as exc:
        print(f"posthog-otel devserver: {exc}", file=sys.stderr)
        return 1
    print(f"posthog-otel devserver listening on {server.url}  (events: {server.url}/api/events)")
    print(f"  POSTHOG_HOST={server.url} POSTHOG_API_KEY=phc_dev", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
