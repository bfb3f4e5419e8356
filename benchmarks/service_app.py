"""The service under test: a small checkout handler in Flask, under gunicorn, traced by
OpenTelemetry's own Flask instrumentation. ``benchmarks/service.py`` starts it once per
scenario and drives it from another process.

    BENCH_SCENARIO=ours BENCH_HOST=http://127.0.0.1:PORT \\
        gunicorn --chdir benchmarks --worker-class gthread --threads 8 service_app:app

Each ``GET /checkout?user=<id>`` reads one flag, prices a cart (about 1.5 ms of Python,
``cpu_work``), waits 3 ms as a database call would (the GIL released), and sends two
events: its server span tagged ``posthog.event`` and one ``capture()`` (with PostHog's
SDK: two ``capture()`` calls). Everything goes to ``BENCH_HOST``, the counting sink,
which passes the flag routes on to the devserver.

``BENCH_SCENARIO``:
    none  no OpenTelemetry SDK, no instrumentation: the same handler, whose API calls
          are then no-ops (the floor)
    noop  a TracerProvider, the Flask instrumentation, and a processor that does nothing
    ours  the same with PostHogSpanProcessor
    otlp  the same with BatchSpanProcessor and the OTLP/HTTP exporter (to /v1/traces)
    sdk   no tracing: posthog.Client, capture() twice and get_feature_flag

Flags are evaluated locally in every scenario (``PostHogFlagProvider`` with a secret
key; the SDK with ``secret_key`` and ``only_evaluate_locally=True``): definitions are
polled in the background, and a lookup makes no request. Both send
``$feature_flag_called`` once per user, flag and value, as they do by default.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections import defaultdict
from pathlib import Path

from flask import Flask, request

SCENARIO = os.environ.get("BENCH_SCENARIO", "ours")
HOST = os.environ.get("BENCH_HOST", "http://127.0.0.1:8000")
IO_WAIT = float(os.environ.get("BENCH_IO_WAIT", "0.003"))
SCENARIOS = ("none", "noop", "ours", "otlp", "sdk")
if SCENARIO not in SCENARIOS:
    raise SystemExit(f"BENCH_SCENARIO must be one of {SCENARIOS}, not {SCENARIO!r}")
FLAG = "new-checkout"
API_KEY, SECRET_KEY = "phc_bench", "phs_bench"
CATALOGUE = [(f"sku-{i}", 3.5 + i % 17, 1 + i % 4) for i in range(40)]

app = Flask(__name__)


def cpu_work(user: str) -> dict[str, object]:
    """Price a cart of 40 lines with a few discount rules and render it: 1-1.5 ms of Python."""
    lines = []
    total = 0.0
    for _ in range(12):
        lines.clear()
        total = 0.0
        for sku, price, quantity in CATALOGUE:
            unit = price * (0.9 if quantity >= 3 else 1.0)
            if sku.endswith(("3", "7")):
                unit -= 0.25
            line = round(unit * quantity, 2)
            total += line
            lines.append({"sku": sku, "unit": round(unit, 2), "quantity": quantity, "line": line})
        body = json.dumps({"user": user, "lines": lines, "total": round(total, 2)})
    return {"items": len(lines), "total": round(total, 2), "bytes": len(body)}


def work_ms(runs: int = 50) -> float:
    """The best time of ``cpu_work`` in this process, in ms: the handler's own CPU cost."""
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        cpu_work("user-0")
        best = min(best, time.perf_counter() - start)
    return best * 1e3


WORK_MS = work_ms()


@app.get("/health")
def health() -> dict[str, object]:
    """Readiness, the worker's pid (whose CPU time the benchmark reads) and the handler's
    CPU work in ms; not traced."""
    return {"pid": os.getpid(), "scenario": SCENARIO, "work_ms": WORK_MS}


@app.get("/threads")
def threads() -> dict[str, float]:
    """CPU seconds of this worker's live threads, by name with digits as N (gunicorn's
    request threads, its main loop, each pipeline's workers): where the time goes."""
    names = {thread.native_id: thread.name for thread in threading.enumerate()}
    names[os.getpid()] = "MainThread"  # after gunicorn's fork, threading keeps the old id
    cpu: defaultdict[str, float] = defaultdict(float)
    for task in Path("/proc/self/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:  # ended meanwhile
            continue
        fields = stat.rsplit(")", 1)[1].split()
        name = re.sub(r"\d+", "N", names.get(int(task.name), "(not a Python thread)"))
        cpu[name] += int(fields[11]) + int(fields[12])
    return {name: ticks / os.sysconf("SC_CLK_TCK") for name, ticks in cpu.items()}


if SCENARIO == "sdk":
    import posthog

    logging.getLogger("posthog").setLevel(logging.ERROR)
    sdk = posthog.Client(API_KEY, host=HOST, secret_key=SECRET_KEY)
    sdk.load_feature_flags()

    @app.get("/checkout")
    def checkout() -> dict[str, object]:
        user = request.args.get("user", "anonymous")
        sdk.capture(
            "checkout_viewed",
            distinct_id=user,
            properties={"$current_url": request.url, "$pathname": request.path},
        )
        variant = sdk.get_feature_flag(FLAG, user, only_evaluate_locally=True)
        cart = cpu_work(user)
        time.sleep(IO_WAIT)  # the database call
        sdk.capture("cart_priced", distinct_id=user, properties={**cart, "variant": variant})
        return {"variant": variant, **cart}

else:
    from opentelemetry import trace

    from posthog_otel import (
        PostHogClient,
        PostHogFlagProvider,
        PostHogSpanProcessor,
        capture,
        identify,
    )

    client = PostHogClient(API_KEY, HOST, secret_key=SECRET_KEY)
    processor = None
    if SCENARIO != "none":
        from opentelemetry.instrumentation.flask import FlaskInstrumentor
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

        class NoOpProcessor(SpanProcessor):
            """Takes every span and does nothing: what tracing costs before export."""

        provider = TracerProvider(resource=Resource.create({"service.name": "checkout"}))
        if SCENARIO == "ours":
            processor = PostHogSpanProcessor(client)
            provider.add_span_processor(processor)
        elif SCENARIO == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

            exporter = OTLPSpanExporter(endpoint=HOST + "/v1/traces")
            provider.add_span_processor(BatchSpanProcessor(exporter))
        else:
            provider.add_span_processor(NoOpProcessor())
        trace.set_tracer_provider(provider)
        FlaskInstrumentor().instrument_app(app, excluded_urls="health,threads")
    flags = PostHogFlagProvider(client, processor=processor)
    if not flags.load_definitions(10):
        raise SystemExit("flag definitions did not load from " + HOST)

    @app.get("/checkout")
    def checkout() -> dict[str, object]:
        user = request.args.get("user", "anonymous")
        with identify(user):
            trace.get_current_span().set_attribute("posthog.event", "checkout_viewed")
            flag = flags.get_flag(FLAG)
            variant = flag.enabled if flag is not None else None
            cart = cpu_work(user)
            time.sleep(IO_WAIT)  # the database call
            capture("cart_priced", {**cart, "variant": variant})
        return {"variant": variant, **cart}
