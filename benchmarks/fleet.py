"""A fleet's definition requests: 16 processes polling the devserver for flag
definitions over 10 intervals, with no shared cache, with ``FileFlagDefinitionCache``
and with ``RedisFlagDefinitionCache`` (Debian's ``redis-server`` on a free port).

Each scenario starts its 16 processes together, as a deploy does, and counts the
requests the devserver saw: while they start (until every process has definitions),
then over the next 10 poll intervals; then the time from a flag change at the
devserver (in this process) until every process evaluates it. Targets: at most one
request per interval for the fleet, plus one per leader change; a change seen by all
within one interval plus a second.

    python benchmarks/fleet.py [--processes 16] [--intervals 10] [--interval 1.0]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _common import record, table

from posthog_otel.devserver import DevServer

SECRET = "phs_bench"
DEFINITIONS = {
    "flags": [
        {
            "id": 1,
            "key": "beta",
            "version": 1,
            "active": True,
            "filters": {"groups": [{"properties": [], "rollout_percentage": 100}]},
        }
    ],
    "group_type_mapping": {},
    "cohorts": {},
}
BETA_OFF = {**DEFINITIONS, "flags": [{**DEFINITIONS["flags"][0], "active": False}]}  # type: ignore[index]


def worker(where: str, interval: float) -> None:
    """One process of the fleet: prints ``ready``, and its stats on SIGTERM."""
    from posthog_otel import (
        FileFlagDefinitionCache,
        PostHogFlagProvider,
        RedisFlagDefinitionCache,
    )

    cache: object | None = None
    if where.startswith("redis://"):
        cache = RedisFlagDefinitionCache(where, poll_interval=interval)
    elif where != "none":
        cache = FileFlagDefinitionCache(where, poll_interval=interval)
    flags = PostHogFlagProvider(
        secret_key=SECRET,
        poll_interval=interval,
        send_feature_flag_events=False,
        flag_definition_cache_provider=cache,
    )
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    flags.load_definitions(30)
    print("ready", flush=True)
    while not done.wait(0.01):  # a lookup every 10 ms; say when beta turns off
        if not flags.is_enabled("beta", "u1"):
            print("changed", flush=True)
            break
    done.wait()
    stats = flags.stats()
    flags.shutdown(5)
    print(json.dumps({"polls": stats.definition_polls, "from_cache": stats.definitions_from_cache}))


def definition_requests(server: DevServer) -> int:
    return sum(1 for r in server.requests.matching("/") if "definitions" in r.path)


def scenario(
    server: DevServer, where: str, processes: int, intervals: int, interval: float
) -> list[float]:
    server.set_flags(DEFINITIONS)
    url = server.url
    env = {**os.environ, "POSTHOG_API_KEY": "phc_bench", "POSTHOG_HOST": url}
    before = definition_requests(server)
    argv = [sys.executable, __file__, "--worker", where, "--interval", str(interval)]
    fleet = [
        subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True) for _ in range(processes)
    ]
    for process in fleet:
        assert process.stdout is not None
        if process.stdout.readline().strip() != "ready":
            raise RuntimeError("a worker did not load its definitions")
    started = definition_requests(server)
    time.sleep(intervals * interval)  # the window measured, not a wait for a condition
    steady = definition_requests(server)
    changed_at = time.monotonic()
    server.set_flags(BETA_OFF)
    for process in fleet:  # each prints "changed" when it sees the change
        assert process.stdout is not None
        if process.stdout.readline().strip() != "changed":
            raise RuntimeError("a worker did not see the change")
    seen_by_all = time.monotonic() - changed_at
    leaders = 0
    for process in fleet:
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=30)
        stats = json.loads(out.strip().splitlines()[-1])
        leaders += stats["polls"] > 0
    return [started - before, steady - started, leaders, seen_by_all]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=16)
    parser.add_argument("--intervals", type=int, default=10)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.interval)
        return
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    redis = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    rows = []
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        with DevServer(flags=DEFINITIONS) as server, tempfile.TemporaryDirectory() as folder:
            for name, where in [
                ("no cache", "none"),
                ("FileFlagDefinitionCache", str(Path(folder) / "definitions.json")),
                ("RedisFlagDefinitionCache", f"redis://127.0.0.1:{port}/0"),
            ]:
                start, steady, leaders, seen = scenario(
                    server, where, args.processes, args.intervals, args.interval
                )
                rows.append(
                    [name, f"{start:.0f}", f"{steady:.0f}", f"{leaders:.0f}", f"{seen:.2f} s"]
                )
                key = name.split("Flag")[0].replace(" ", "_").lower()
                # Beyond one per interval: at most one per leader change.
                extra = max(0, steady - args.intervals - max(0, leaders - 1))
                record(**{f"fleet_{key}_per_interval": steady / args.intervals,
                          f"fleet_{key}_extra": extra,
                          f"fleet_{key}_seen_s": seen})  # fmt: skip
    finally:
        redis.terminate()
        redis.wait(10)
    print(
        f"{args.processes} processes, poll_interval {args.interval} s, "
        f"{args.intervals} intervals measured after all had definitions.\n"
    )
    print(
        table(
            [
                "cache",
                "requests at start",
                f"requests in {args.intervals} intervals",
                "processes that polled",
                "a change seen by all",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
