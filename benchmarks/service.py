"""Service under load: the same instrumented web service with each way of sending its
events, side by side, alternating, over several rounds.

The service (``service_app.py``) is a Flask app under gunicorn, one worker with 8
threads, started afresh for every run of a scenario; the load generator
(``loadgen.py``) is another process. One run: warm up, a closed loop (the maximum
requests per second at 16 connections), an open loop at a fixed arrival rate (70% of
the no-op scenario's maximum, measured once before the rounds), then SIGTERM, as a
deployment stops a service, and the sink counts what arrived, by uuid.

    python benchmarks/service.py [--rounds 5] [--closed-seconds 5] [--open-seconds 12]
    python benchmarks/service.py --quick      # 2 rounds of short phases
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from _common import devserver, median_spread, record, reset_sink, sink, sink_stats, table

HERE = Path(__file__).resolve().parent
SCENARIOS = {
    "none": "no tracing",
    "noop": "tracing, no-op processor",
    "ours": "tracing, PostHogSpanProcessor (ours)",
    "otlp": "tracing, BatchSpanProcessor + OTLP/HTTP",
    "sdk": "PostHog's Python SDK (capture() x2), no tracing",
}
# Events each answered request should deliver: ours and the SDK send two PostHog events;
# the OTLP exporter one span carrying both (the tag, and capture()'s span event).
EVENTS_PER_REQUEST = {"none": 0, "noop": 0, "ours": 2, "otlp": 1, "sdk": 2}
EXPOSURE = "$feature_flag_called"
Results = dict[str, list[dict[str, Any]]]  # scenario: one dict of figures per round
FLAGS = {"new-checkout": {"variants": {"control": 50, "test": 50}}}
THREADS, CONCURRENCY, LOAD = 8, 16, 0.7
IO_WAIT_MS = 3  # the handler's simulated database call (BENCH_IO_WAIT in service_app)
READY_TIMEOUT = 60.0  # a hang guard: imports take seconds on a loaded 2-core machine


class Service:
    """gunicorn serving ``service_app`` for one scenario, on a socket we bound for it."""

    def __init__(self, scenario: str, host: str) -> None:
        listener = socket.create_server(("127.0.0.1", 0), backlog=2048)
        self.port = listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")  # noqa: SIM115 - closed in stop()
        command = [
            str(Path(sys.executable).parent / "gunicorn"),
            "--bind",
            f"fd://{listener.fileno()}",
            "--workers",
            "1",
            "--worker-class",
            "gthread",
            "--threads",
            str(THREADS),
            "--chdir",
            str(HERE),
            "--log-level",
            "warning",
            "service_app:app",
        ]
        env = {
            **os.environ,
            "BENCH_SCENARIO": scenario,
            "BENCH_HOST": host,
            "BENCH_IO_WAIT": str(IO_WAIT_MS / 1000),
        }
        self.process = subprocess.Popen(
            command,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            pass_fds=[listener.fileno()],
            start_new_session=True,
        )
        listener.close()  # gunicorn holds its own copy
        self.pid, self.work_ms = self._wait_ready()

    def _wait_ready(self) -> tuple[int, float]:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=5) as response:
                    health = json.loads(response.read())
                return int(health["pid"]), float(health["work_ms"])
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the service did not start:\n{self.output()}")

    def cpu_seconds(self) -> float:
        """The worker's user + system CPU time so far (``/proc/<pid>/stat``)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def peak_rss_mb(self) -> float:
        """The worker's peak resident memory so far (``VmHWM``)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def threads(self) -> dict[str, float]:
        """CPU seconds of the worker's live threads, by name (``/threads``)."""
        with urllib.request.urlopen(self.url + "/threads", timeout=10) as response:
            return dict(json.loads(response.read()))

    def stop(self) -> int:
        """SIGTERM, as a deployment stops it; its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(10)

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()


def load(mode: str, port: int, seconds: float, **options: float) -> dict[str, Any]:
    """One run of the load generator, in its own process."""
    command = [
        sys.executable,
        str(HERE / "loadgen.py"),
        mode,
        "--port",
        str(port),
        "--seconds",
        str(seconds),
    ]
    for key, value in options.items():
        command += [f"--{key}", str(value)]
    out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=seconds + 90)
    return json.loads(out.stdout.strip().splitlines()[-1])


def settled(url: str, quiet: float = 0.5, timeout: float = 15.0) -> dict[str, Any]:
    """The sink's counts once they stop changing (after the service has exited)."""
    last = sink_stats(url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = sink_stats(url)
        if now == last:
            break
        last = now
    return last


def run_once(scenario: str, sink_url: str, rate: float, plan: argparse.Namespace) -> dict[str, Any]:
    reset_sink(sink_url)
    service = Service(scenario, sink_url)
    try:
        warm = load("closed", service.port, plan.warmup_seconds, concurrency=CONCURRENCY)
        cpu0 = service.cpu_seconds()
        closed = load("closed", service.port, plan.closed_seconds, concurrency=CONCURRENCY)
        cpu1, threads1 = service.cpu_seconds(), service.threads()
        opened = load("open", service.port, plan.open_seconds, rate=rate)
        cpu2, threads2 = service.cpu_seconds(), service.threads()
        rss = service.peak_rss_mb()
    finally:
        status = service.stop()
    if status != 0:
        print(f"{scenario}: gunicorn exited {status}\n{service.output()}", file=sys.stderr)
    service.log.close()
    stats = settled(sink_url)
    answered = warm["ok"] + closed["ok"] + opened["ok"]
    names = dict(stats["names"])
    exposures = names.pop(EXPOSURE, 0)
    return {
        "rps": closed["rps"],
        "open": opened["latency_ms"],
        "cpu_closed": (cpu1 - cpu0) / max(closed["ok"], 1) * 1e3,
        "cpu_open": (cpu2 - cpu1) / max(opened["ok"], 1) * 1e3,
        "errors": warm["errors"] + closed["errors"] + opened["errors"] + opened["unanswered"],
        "expected": answered * EVENTS_PER_REQUEST[scenario],
        "delivered": sum(names.values()),
        "duplicates": stats["events"] - stats["unique"],
        "exposures": exposures,
        "threads": {
            name: (cpu - threads1.get(name, 0.0)) / max(opened["ok"], 1) * 1e6
            for name, cpu in threads2.items()
        },
        "rss_mb": rss,
        "requests": answered,
        "work_ms": service.work_ms,
        "loadgen": [closed["cpu_share"], opened["cpu_share"]],
        "send_lag_ms": opened["send_lag_ms_p99"],
        "achieved_rate": opened["achieved_rate"],
    }


def calibrate(sink_url: str, seconds: float) -> float:
    """The no-op scenario's maximum requests per second, for the open loop's rate: the
    median of three closed loops after a warm-up, so one noisy moment does not set it."""
    reset_sink(sink_url)
    service = Service("noop", sink_url)
    try:
        load("closed", service.port, 1.0, concurrency=CONCURRENCY)
        runs = [load("closed", service.port, seconds, concurrency=CONCURRENCY) for _ in range(3)]
        return float(statistics.median(run["rps"] for run in runs))
    finally:
        service.stop()
        service.log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup-seconds", type=float, default=2.0)
    parser.add_argument("--closed-seconds", type=float, default=5.0)
    parser.add_argument("--open-seconds", type=float, default=12.0)
    parser.add_argument("--rate", type=float, help="open-loop requests/s (default: measured)")
    parser.add_argument("--quick", action="store_true", help="2 rounds of short phases")
    plan = parser.parse_args()
    if plan.quick:
        plan.rounds, plan.warmup_seconds, plan.closed_seconds, plan.open_seconds = 2, 1, 3, 5
    results: Results = {name: [] for name in SCENARIOS}
    names = list(SCENARIOS)
    with devserver(FLAGS) as flags_url, sink(flags_url) as url:
        noop_max = calibrate(url, max(plan.closed_seconds / 2, 2)) if plan.rate is None else None
        rate = plan.rate or LOAD * (noop_max or 0.0)
        print(f"open-loop rate {rate:.0f}/s (calibration: {noop_max})", file=sys.stderr)
        for round_ in range(plan.rounds):
            for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
                results[name].append(run_once(name, url, rate, plan))
                print(
                    f"round {round_ + 1}: {name} {results[name][-1]['rps']:.0f} rps",
                    file=sys.stderr,
                )
    report(results, rate, noop_max, plan)


def thread_groups(threads: dict[str, float]) -> tuple[float, float, dict[str, float]]:
    """µs per request of gunicorn's request threads, its main loop, and every other
    thread by name (the pipelines' workers)."""
    request = sum(v for k, v in threads.items() if k.startswith("ThreadPoolExecutor"))
    main = threads.get("MainThread", 0.0)
    others = {
        k: v
        for k, v in threads.items()
        if k != "MainThread" and not k.startswith("ThreadPoolExecutor")
    }
    return request, main, others


def med(runs: list[dict[str, Any]], key: str, sub: str | None = None) -> float:
    return statistics.median(r[key][sub] if sub else r[key] for r in runs)


def paired(results: Results, name: str, key: str, sub: str | None = None) -> float:
    """The median over rounds of this scenario's figure divided by the no-op's, same round."""
    pairs = zip(results[name], results["noop"], strict=True)
    return statistics.median(
        (a[key][sub] / b[key][sub]) if sub else a[key] / b[key] for a, b in pairs
    )


def report(results: Results, rate: float, noop_max: float | None, plan: argparse.Namespace) -> None:
    """One table per question, then the load generator's own figures."""
    work = statistics.median(r["work_ms"] for runs in results.values() for r in runs)
    print(
        f"Flask under gunicorn (1 worker, gthread, {THREADS} threads); per request "
        f"{work:.2f} ms of the handler's own CPU work (best time, measured in the worker), "
        f"a {IO_WAIT_MS} ms wait, one flag read, two events. {plan.rounds} alternating rounds: "
        "medians; spread = (max - min) / median; x no-op = the ratio of medians, and paired "
        "= the median of the ratios within each round.\n"
    )
    print(throughput(results, plan))
    print(latency(results, rate, noop_max, plan))
    print(events(results))
    print(cpu(results, rate))
    print(threads(results, rate))
    print(generator(results))
    ours, otlp, sdk = (results[n] for n in ("ours", "otlp", "sdk"))
    record(
        service_rps_x_noop=paired(results, "ours", "rps"),
        service_p99_x_noop=paired(results, "ours", "open", "p99"),
        service_rps_ours=med(ours, "rps"),
        service_rps_otlp=med(otlp, "rps"),
        service_rps_sdk=med(sdk, "rps"),
        service_p99_ours=med(ours, "open", "p99"),
        service_p99_otlp=med(otlp, "open", "p99"),
        service_p99_sdk=med(sdk, "open", "p99"),
        service_lost_ours=sum(r["expected"] - r["delivered"] for r in ours),
        service_duplicates_ours=sum(r["duplicates"] for r in ours),
    )


def throughput(results: Results, plan: argparse.Namespace) -> str:
    noop = med(results["noop"], "rps")
    rows = []
    for name, runs in results.items():
        mid, spread = median_spread([r["rps"] for r in runs])
        rows.append([SCENARIOS[name], f"{mid:,.0f}", f"{spread:.0%}", f"{mid / noop:.3f}",
                     f"{paired(results, name, 'rps'):.3f}"])  # fmt: skip
    title = (f"Maximum requests per second (closed loop, {CONCURRENCY} connections, "
             f"{plan.closed_seconds:g} s a round)")  # fmt: skip
    header = ["scenario", "requests/s", "spread", "x no-op", "x no-op, paired"]
    return f"{title}\n\n{table(header, rows)}\n"


def latency(results: Results, rate: float, noop_max: float | None, plan: argparse.Namespace) -> str:
    noop = med(results["noop"], "open", "p99")
    rows = []
    for name, runs in results.items():
        p99, spread = median_spread([r["open"]["p99"] for r in runs])
        rows.append([SCENARIOS[name], f"{med(runs, 'open', 'p50'):.1f}", f"{p99:.1f}",
                     f"{med(runs, 'open', 'p999'):.1f}", f"{spread:.0%}", f"{p99 / noop:.3f}",
                     f"{paired(results, name, 'open', 'p99'):.3f}"])  # fmt: skip
    measured = f"{LOAD:.0%} of {noop_max:,.0f}/s measured before the rounds, " if noop_max else ""
    share = rate / med(results["noop"], "rps")
    title = (f"Latency at {rate:,.0f} requests/s (open loop, Poisson arrivals; {measured}"
             f"{share:.0%} of the no-op median above), from each request's scheduled send "
             f"time, {plan.open_seconds:g} s a round")  # fmt: skip
    header = ["scenario", "p50 ms", "p99 ms", "p99.9 ms", "p99 spread", "p99 x no-op",
              "p99 x no-op, paired"]  # fmt: skip
    return f"{title}\n\n{table(header, rows)}\n"


def events(results: Results) -> str:
    rows = []
    for name, runs in results.items():
        expected = sum(r["expected"] for r in runs)
        delivered = sum(r["delivered"] for r in runs)
        rows.append([SCENARIOS[name], f"{expected:,}", f"{delivered:,}",
                     f"{expected - delivered:,}", f"{sum(r['duplicates'] for r in runs):,}",
                     f"{sum(r['exposures'] for r in runs):,}",
                     f"{sum(r['errors'] for r in runs):,}"])  # fmt: skip
    title = ("Events over all rounds, counted by uuid at the sink once each service had "
             "exited on SIGTERM (OTLP: spans, each carrying both events)")  # fmt: skip
    header = ["scenario", "expected", "delivered", "lost", "duplicates",
              "$feature_flag_called", "failed requests"]  # fmt: skip
    return f"{title}\n\n{table(header, rows)}\n"


def cpu(results: Results, rate: float) -> str:
    noop_open, noop_closed = med(results["noop"], "cpu_open"), med(results["noop"], "cpu_closed")
    rows = [[SCENARIOS[name], f"{med(runs, 'cpu_open'):.2f}",
             f"{med(runs, 'cpu_open') / noop_open:.3f}", f"{med(runs, 'cpu_closed'):.2f}",
             f"{med(runs, 'cpu_closed') / noop_closed:.3f}", f"{med(runs, 'rss_mb'):.0f}"]
            for name, runs in results.items()]  # fmt: skip
    requests = statistics.median(r["requests"] for runs in results.values() for r in runs)
    title = ("CPU seconds per 1,000 requests of the service's worker process (/proc), and "
             f"its peak RSS after a run (about {requests:,.0f} requests)")  # fmt: skip
    header = ["scenario", f"at {rate:,.0f}/s", "x no-op", "at saturation", "x no-op",
              "peak RSS MB"]  # fmt: skip
    return f"{title}\n\n{table(header, rows)}\n"


def threads(results: Results, rate: float) -> str:
    rows = []
    for name, runs in results.items():
        groups = [thread_groups(r["threads"]) for r in runs]
        request = statistics.median(g[0] for g in groups)
        main = statistics.median(g[1] for g in groups)
        other = statistics.median(sum(g[2].values()) for g in groups)
        keys = sorted({key for g in groups for key in g[2]})
        by_name = {key: [g[2].get(key, 0.0) for g in groups] for key in keys}
        named = ", ".join(f"{key} {statistics.median(v):.0f}" for key, v in by_name.items())
        rows.append([SCENARIOS[name], f"{request:.0f}", f"{main:.0f}", f"{other:.0f}", named])
    title = f"Where the worker's CPU goes at {rate:,.0f}/s, µs per request (/proc, per thread)"
    header = ["scenario", "request threads", "gunicorn's main loop", "other threads",
              "of which, by thread name"]  # fmt: skip
    note = ("Idle threads (flag definitions, the watchdog) show 0; posthog-python's "
            "consumer is `Thread-N`.")  # fmt: skip
    return f"{title}\n\n{table(header, rows)}\n\n{note}\n"


def generator(results: Results) -> str:
    every = [r for runs in results.values() for r in runs]
    closed_cpu = max(r["loadgen"][0] for r in every)
    open_cpu = max(r["loadgen"][1] for r in every)
    lag = max(r["send_lag_ms"] for r in every)
    verdict = "not the bottleneck" if max(closed_cpu, open_cpu) < 0.6 else "**may be a bottleneck**"
    return (f"The load generator (its own process) used at most {closed_cpu:.0%} of one core "
            f"in the closed loop and {open_cpu:.0%} in the open loop: {verdict}. 99% of its "
            f"open-loop requests left within {lag:.1f} ms of their schedule in the worst "
            "round (lateness there is the machine's: it counts in the latency).")  # fmt: skip


if __name__ == "__main__":
    main()
