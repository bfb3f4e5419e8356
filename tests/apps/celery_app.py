"""A Celery app as users write one: no code for delivery at exit. The worker runs under
``opentelemetry-instrument``: with ``OTEL_TRACES_EXPORTER=posthog`` and no telemetry code
at all, or, with ``APP_FLUSH_INTERVAL`` set, the app adds a ``PostHogSpanProcessor``
with that flush interval to the SDK's provider (a long one: what arrives was not sent by
the timer, but by the children's exits).

Task ``emit(run, n, seconds)`` tags a span ``task_done`` (``run``, ``n``), sleeps
``seconds`` inside it, and, once the span has ended, appends ``n`` to the Redis list
``ran:<run>``, so a test knows which tasks really ran (a warm shutdown leaves the rest
queued). The broker is ``CELERY_BROKER_URL``.
"""

from __future__ import annotations

import os
import time

import redis
from celery import Celery
from opentelemetry import trace

from posthog_otel import PostHogSpanProcessor

BROKER = os.environ["CELERY_BROKER_URL"]

app = Celery("celery_app", broker=BROKER)
# One task at a time per child, so a warm shutdown finds tasks in hand and more queued.
app.conf.update(worker_prefetch_multiplier=1, broker_connection_retry_on_startup=True)

if os.environ.get("APP_FLUSH_INTERVAL"):
    interval = float(os.environ["APP_FLUSH_INTERVAL"])
    trace.get_tracer_provider().add_span_processor(  # type: ignore[attr-defined]
        PostHogSpanProcessor(flush_interval=interval)
    )

_ran: redis.Redis | None = None


@app.task(name="emit")
def emit(run: str, n: int, seconds: float = 0.0) -> None:
    global _ran
    with trace.get_tracer("celery-app").start_as_current_span(
        "emit", attributes={"posthog.event": "task_done", "run": run, "n": n}
    ):
        time.sleep(seconds)
    if _ran is None:
        _ran = redis.Redis.from_url(BROKER)
    _ran.rpush(f"ran:{run}", n)
