"""The ``posthog-otel`` command: a local PostHog-compatible server, and a live event tail."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any

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
        "feature flags as PostHog does, keeps what it received, and shows it at its URL.",
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
    dev.add_argument(
        "--flags",
        default=None,
        help="JSON file of feature flag rules, or PostHog's flag definitions JSON",
    )
    dev.add_argument(
        "--api-key", default=None, help="accept only this project API key (default: any)"
    )
    dev.add_argument(
        "--secret-key",
        default=None,
        help="serve flag definitions only for this secret key (default: any phs_ or phx_ key)",
    )
    dev.add_argument("-v", "--verbose", action="store_true", help="log every request")

    tail = commands.add_parser(
        "tail",
        help="print events from a running devserver as they arrive",
        description="Print the events a devserver stores, as they arrive (Ctrl-C to stop).",
    )
    tail.add_argument(
        "--url",
        default="http://127.0.0.1:8010",
        help="the devserver's URL (default: %(default)s)",
    )
    tail.add_argument("--event", default=None, help="only events with this name")
    tail.add_argument("--distinct-id", default=None, help="only events from this distinct_id")
    tail.add_argument("--trace", default=None, help="only events of this trace id")
    tail.add_argument(
        "--history",
        type=int,
        default=10,
        help="how many earlier events to print first (default: %(default)s)",
    )
    tail.add_argument(
        "--interval",
        type=float,
        default=0.5,
        help="seconds between checks for new events (default: %(default)s)",
    )
    tail.add_argument("--json", action="store_true", help="print each event as one line of JSON")

    args = parser.parse_args(argv)
    if args.command == "devserver":
        return _devserver(args)
    return _tail(args)


def _devserver(args: argparse.Namespace) -> int:
    from posthog_otel.devserver import DevServer

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    try:
        server = DevServer(
            args.host,
            args.port,
            flags=args.flags,
            db=args.db,
            api_key=args.api_key,
            secret_key=args.secret_key,
        )
        server.start()
    except (OSError, ValueError) as exc:
        print(f"posthog-otel devserver: {exc}", file=sys.stderr)
        return 1
    print(f"posthog-otel devserver listening on {server.url}  (open it to see events)")
    print(
        f"  export POSTHOG_HOST={server.url} POSTHOG_API_KEY=phc_dev POSTHOG_SECRET_KEY=phs_dev",
        flush=True,
    )
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


def _tail(args: argparse.Namespace) -> int:
    if urllib.parse.urlsplit(args.url).scheme not in ("http", "https"):
        print(f"posthog-otel tail: --url must be an http(s) URL, got {args.url!r}", file=sys.stderr)
        return 2
    base = args.url.rstrip("/") + "/api/events"
    wanted = (("event", args.event), ("distinct_id", args.distinct_id), ("trace_id", args.trace))
    filters = {k: v for k, v in wanted if v}
    filters["order"] = "arrival"  # "after" counts in arrival order
    last: str | None = None
    first = True
    waiting = False
    with contextlib.suppress(KeyboardInterrupt):
        while True:
            query = dict(filters, limit=str(max(args.history, 0) if first else 1000))
            if last is not None:
                query["after"] = last
            try:
                url = f"{base}?{urllib.parse.urlencode(query)}"
                with urllib.request.urlopen(url, timeout=10) as r:  # noqa: S310 - http(s) checked
                    events: list[dict[str, Any]] = json.loads(r.read())
            except (OSError, ValueError) as exc:
                if not waiting:
                    print(f"waiting for a devserver at {args.url} ({exc})", file=sys.stderr)
                    waiting = True
                time.sleep(max(args.interval, 0.1))
                continue
            waiting = False
            if first and args.history == 0:
                events = []
                last = _newest(base, filters) or last
            for event in reversed(events):  # the API answers newest first
                print(json.dumps(event) if args.json else _line(event), flush=True)
            if events:
                last = events[0]["uuid"]
            first = False
            time.sleep(args.interval)
    return 0


def _newest(base: str, filters: dict[str, str]) -> str | None:
    query = urllib.parse.urlencode(dict(filters, limit="1"))
    with urllib.request.urlopen(f"{base}?{query}", timeout=10) as response:  # noqa: S310
        newest = json.loads(response.read())
    return str(newest[0]["uuid"]) if newest else None


def _line(event: dict[str, Any]) -> str:
    props = event.get("properties", {})
    flags = [f"{k[9:]}={v}" for k, v in props.items() if k.startswith("$feature/")]
    when = str(event.get("timestamp", ""))[11:23]
    person = str(event.get("distinct_id"))
    if props.get("$process_person_profile") is False:
        person = f"(anonymous) {person}"
    suffix = f"  [{', '.join(flags)}]" if flags else ""
    return f"{when}  {event.get('event')}  {person}  {_preview(event)}{suffix}"


# Namespaces of OpenTelemetry's semantic conventions: context, printed after the rest.
_CONVENTION_WORDS = (
    "client cloud code container db deployment enduser error exception gen_ai host http "
    "k8s messaging net network os otel peer process rpc server service session telemetry "
    "thread url user_agent"
)
_CONVENTIONS = frozenset(_CONVENTION_WORDS.split())


def _preview(event: dict[str, Any]) -> str:
    """What matters about an event, as the devserver's viewer shows it."""
    props = event.get("properties", {})
    name = str(event.get("event"))
    parts: list[str] = []
    if name == "$feature_flag_called":
        parts = [
            f"flag={props.get('$feature_flag')}",
            f"response={props.get('$feature_flag_response')}",
        ]
    elif name == "$exception":
        errors = props.get("$exception_list") or [{}]
        first = errors[0] if isinstance(errors[0], dict) else {}
        parts = [f"{first.get('type', 'Error')}: {first.get('value', '')}"]
    elif name.startswith("$ai_"):
        if "$ai_model" in props:
            parts.append(f"model={props['$ai_model']}")
        if "$ai_input_tokens" in props or "$ai_output_tokens" in props:
            tokens_in, tokens_out = (
                props.get("$ai_input_tokens", "?"),
                props.get("$ai_output_tokens", "?"),
            )
            parts.append(f"tokens={tokens_in} in, {tokens_out} out")
        if isinstance(props.get("$ai_latency"), (int, float)):
            parts.append(f"latency={props['$ai_latency']:.2f} s")
    plain = [k for k in props if not k.startswith("$")]
    ordered = sorted(plain, key=lambda k: k.partition(".")[0] in _CONVENTIONS and "." in k)
    parts += [f"{k}={json.dumps(props[k])}" for k in ordered]
    return "  ".join(parts)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
