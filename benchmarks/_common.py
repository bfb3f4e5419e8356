"""Shared benchmark plumbing: the sink process, repetitions, and Markdown tables."""

from __future__ import annotations

import gc
import json
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


@contextmanager
def sink(upstream: str | None = None) -> Iterator[str]:
    """The counting sink in its own process (forwarding flag routes to ``upstream``, if
    given); yields its URL."""
    command = [sys.executable, str(HERE / "sink.py")]
    if upstream:
        command += ["0", upstream]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        port = int(process.stdout.readline())
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


def sink_stats(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url + "/stats", timeout=10) as response:
        return json.loads(response.read())


def reset_sink(url: str) -> None:
    urllib.request.urlopen(
        urllib.request.Request(url + "/reset", data=b"", method="POST"), timeout=10
    ).close()


def wait_for_sink(url: str, count: int, timeout: float) -> float | None:
    """Seconds until the sink has counted ``count`` events, or ``None`` at the timeout."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if sink_stats(url)["events"] >= count:
            return time.perf_counter() - start
        time.sleep(0.01)
    return None


def alternate(
    scenarios: dict[str, Callable[[], float]], repetitions: int
) -> dict[str, list[float]]:
    """Run every scenario once per round, rotating the order each round."""
    results: dict[str, list[float]] = {name: [] for name in scenarios}
    names = list(scenarios)
    for round_ in range(repetitions):
        order = names[round_ % len(names) :] + names[: round_ % len(names)]
        for name in order:
            gc.collect()
            results[name].append(scenarios[name]())
    return results


def median_spread(values: list[float]) -> tuple[float, float]:
    """Median, and the spread as (max - min) / median."""
    mid = statistics.median(values)
    return mid, (max(values) - min(values)) / mid if mid else 0.0


def per_call(fn: Callable[[int], object], calls: int, rounds: int = 7) -> tuple[float, float]:
    """Median and best µs per call of ``fn(i)`` over ``rounds`` rounds of ``calls`` calls."""
    results = []
    for _ in range(rounds):
        start = time.perf_counter()
        for i in range(calls):
            fn(i)
        results.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(results), min(results)


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def paired_ratios(
    baseline: Callable[[], float], candidate: Callable[[], float], rounds: int
) -> tuple[float, float, float]:
    """Median, 25th and 75th percentile of candidate/baseline over back-to-back pairs.

    Pairing cancels the slow drifts (CPU frequency, the sink, other load) that make
    separate medians too wide to resolve a few percent.
    """
    ratios = []
    for round_ in range(rounds):
        gc.collect()
        if round_ % 2:
            b = baseline()
            c = candidate()
        else:
            c = candidate()
            b = baseline()
        ratios.append(c / b)
    q = statistics.quantiles(ratios, n=4)
    return statistics.median(ratios), q[0], q[2]


@contextmanager
def devserver(flags: dict[str, object]) -> Iterator[str]:
    """The bundled devserver in its own process, answering flags; yields its URL."""
    import re
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "flags.json"
        path.write_text(json.dumps(flags))
        command = shutil.which("posthog-otel", path=str(Path(sys.executable).parent))
        process = subprocess.Popen(
            [command, "devserver", "--port", "0", "--flags", str(path)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            line = process.stdout.readline()
            match = re.search(r"http://127\.0\.0\.1:\d+", line)
            if match is None:
                raise RuntimeError(f"devserver did not start: {line!r}")
            yield match.group(0)
        finally:
            process.terminate()
            process.wait(10)


def request_counts(url: str) -> dict[str, int]:
    with urllib.request.urlopen(url + "/api/requests", timeout=10) as response:
        return json.loads(response.read())["by_path"]


def record(**figures: float) -> None:
    """Hand figures to ``run.py`` for its targets table (a JSON line to the file named by
    ``BENCH_RECORD``); nothing when a script runs on its own."""
    import os

    path = os.environ.get("BENCH_RECORD")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(figures) + "\n")
