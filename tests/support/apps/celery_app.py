"""A Celery app as users write one: no code for delivery at exit. The worker runs under
``opentelemetry-instrument``: with ``OTEL_TRACES_EXPORTER=posthog`` and no telemetry code
at all, or, with ``APP_FLUSH_INTERVAL`` set, the app adds a ``PostHogSpanProcessor``
with that flush interval (a long one: what arrives was not sent by the timer, but by the
children's exits) to the SDK's provider as it loads, or, with
``APP_SETUP=worker_process_init``, in each pool child as it starts, as OpenTelemetry's
documentation suggests for Celery.

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
from celery.signals import worker_process_init
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from posthog_otel import PostHogSpanProcessor

BROKER = os.environ["CELERY_BROKER_URL"]

app = Celery("celery_app", broker=BROKER)
# One task at a time per child, so a warm shutdown finds tasks in hand and more queued.
app.conf.update(worker_prefetch_multiplier=1, broker_connection_retry_on_startup=True)


def set_up(**_: object) -> None:
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    interval = float(os.environ["APP_FLUSH_INTERVAL"])
    provider.add_span_processor(PostHogSpanProcessor(flush_interval=interval))


if os.environ.get("APP_SETUP") == "worker_process_init":
    worker_process_init.connect(set_up, weak=False)
elif os.environ.get("APP_FLUSH_INTERVAL"):
    set_up()

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
