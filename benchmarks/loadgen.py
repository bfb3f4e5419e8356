"""Load generator for the service benchmark, in its own process so it never shares the
service's GIL. HTTP/1.1 keep-alive over asyncio, one JSON line of results on stdout.

    python benchmarks/loadgen.py closed --port P [--concurrency 16] [--seconds 5]
    python benchmarks/loadgen.py open --port P --rate 300 [--seconds 10]

closed: ``concurrency`` connections, each sending its next request as soon as the last
    is answered: the service's maximum requests per second.
open: requests sent on a fixed schedule (Poisson arrivals at ``rate``, the same seeded
    schedule every run) whatever the answers, on as many connections as that takes.
    Latency counts from the scheduled send time, so a stall delays every request
    scheduled during it and cannot hide (no coordinated omission).

Both report their own CPU time, so the report can show the generator was not the
bottleneck, and (open) how late requests left against their schedule.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from collections import deque

USERS = 500
DRAIN_SECONDS = 30.0  # how long to wait for answers after the last send: a hang guard


class Client:
    """Keep-alive connections to one port, used in turn (first idle, first used, so none
    sits idle long enough for the server to close it), and what they have seen."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.idle: deque[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = deque()
        self.opened = 0
        self.sent = 0
        self.ok = 0
        self.errors = 0

    async def get(self) -> bool:
        """One request; ``True`` for a 200. A kept-alive connection the server has
        closed meanwhile is retried once on a new one, as HTTP client pools do."""
        user = self.sent % USERS
        self.sent += 1
        request = b"GET /checkout?user=user-%d HTTP/1.1\r\nHost: bench\r\n\r\n" % user
        status = None
        if self.idle:
            status = await self._exchange(self.idle.popleft(), request)
        if status is None:
            self.opened += 1
            try:
                connection = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                connection = None
            status = await self._exchange(connection, request) if connection else None
        good = status == b"200"
        self.ok += good
        self.errors += not good
        return good

    async def _exchange(
        self, connection: tuple[asyncio.StreamReader, asyncio.StreamWriter], request: bytes
    ) -> bytes | None:
        """The response's status code, or ``None`` if the connection failed."""
        reader, writer = connection
        try:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length, close = 0, False
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection":
                    close = value.strip().lower() == b"close"
            if length:
                await reader.readexactly(length)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            writer.close()
            return None
        if close:
            writer.close()
        else:
            self.idle.append(connection)
        return head[9:12]

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()


def percentiles(latencies: list[float]) -> dict[str, float]:
    """p50, p99, p99.9 and max, in milliseconds (nearest rank)."""
    if not latencies:
        return {}
    ordered = sorted(latencies)

    def rank(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3

    return {"p50": rank(0.50), "p99": rank(0.99), "p999": rank(0.999), "max": ordered[-1] * 1e3}


async def closed(port: int, concurrency: int, seconds: float) -> dict[str, object]:
    client = Client(port)
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    counted = 0
    start = loop.time()
    end = start + seconds

    async def worker() -> None:
        nonlocal counted
        while loop.time() < end:
            sent = loop.time()
            good = await client.get()
            done = loop.time()
            if good and done <= end:
                counted += 1
                latencies.append(done - sent)
            elif not good:
                await asyncio.sleep(0.01)  # a failing service: no busy loop

    await asyncio.wait_for(
        asyncio.gather(*(worker() for _ in range(concurrency))), seconds + DRAIN_SECONDS
    )
    client.close()
    return {"rps": counted / seconds, "latency_ms": percentiles(latencies), **totals(client)}


async def open_loop(port: int, rate: float, seconds: float, seed: int) -> dict[str, object]:
    client = Client(port)
    loop = asyncio.get_running_loop()
    schedule: list[float] = []
    rng, at = random.Random(seed), 0.0
    while True:
        at += rng.expovariate(rate)
        if at >= seconds:
            break
        schedule.append(at)
    # No connections opened ahead: gunicorn gives a new connection a thread until its
    # first request arrives, so idle ones would hold threads. They open as needed.
    latencies: list[float] = []
    lags: list[float] = []

    async def one(due: float) -> None:
        lags.append(loop.time() - due)
        if await client.get():
            latencies.append(loop.time() - due)

    start = loop.time() + 0.05
    pending: set[asyncio.Task[None]] = set()
    for offset in schedule:
        due = start + offset
        wait = due - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        task = asyncio.ensure_future(one(due))
        pending.add(task)
        task.add_done_callback(pending.discard)
    unanswered = 0
    if pending:
        _, late = await asyncio.wait(pending, timeout=DRAIN_SECONDS)
        unanswered = len(late)
        for task in late:
            task.cancel()
    client.close()
    lags.sort()
    return {
        "rate": rate,
        "achieved_rate": len(schedule) / seconds,
        "latency_ms": percentiles(latencies),
        "send_lag_ms_p99": lags[int(0.99 * len(lags))] * 1e3 if lags else 0.0,
        "unanswered": unanswered,
        **totals(client),
    }


def totals(client: Client) -> dict[str, object]:
    return {
        "sent": client.sent,
        "ok": client.ok,
        "errors": client.errors,
        "connections": client.opened,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=["closed", "open"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seed", type=int, default=15)
    args = parser.parse_args()
    cpu, wall = time.process_time(), time.perf_counter()
    if args.mode == "closed":
        result = asyncio.run(closed(args.port, args.concurrency, args.seconds))
    else:
        result = asyncio.run(open_loop(args.port, args.rate, args.seconds, args.seed))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print(json.dumps({**result, "cpu_s": cpu, "cpu_share": cpu / wall}))


if __name__ == "__main__":
    main()
