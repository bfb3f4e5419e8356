"""A script that dies of an uncaught exception, with exception autocapture on
(``POSTHOG_EXCEPTION_AUTOCAPTURE=true`` in its environment).

    python crashing.py startup    # raises at start-up, in the main thread (chained)
    python crashing.py thread     # a thread with a user in its baggage raises; main ends
    python crashing.py asyncio    # a task that asyncio.run's main awaits raises
    python crashing.py loop N     # N threads raise the same error one after another
    python crashing.py variables  # raises with credentials among its locals
    opentelemetry-instrument python crashing.py instrumented  # no code of ours: start-up fails

Hooks installed before the processor print ``previous sys hook`` / ``previous thread
hook`` when called. The processor's flush interval is a minute: what arrives before
the process ends, the hook (or the shutdown at the end) delivered.
"""

from __future__ import annotations

import asyncio
import sys
import threading

from opentelemetry import baggage, context
from opentelemetry.sdk.trace import TracerProvider

from posthog_otel import PostHogSpanProcessor


def previous_sys_hook(*args: object) -> None:
    print("previous sys hook", flush=True)


def previous_thread_hook(args: object) -> None:
    print("previous thread hook", flush=True)


def parse_config(text: str) -> int:
    return int(text)  # the innermost frame: a ValueError


def start() -> None:
    try:
        parse_config("not a number")
    except ValueError as exc:
        raise RuntimeError("start-up failed") from exc


def worker() -> None:
    context.attach(baggage.set_baggage("posthog.distinct_id", "thread-user"))
    raise LookupError("worker failed")


async def failing_task() -> None:
    await asyncio.sleep(0)
    raise ConnectionError("task failed")


async def main() -> None:
    await asyncio.create_task(failing_task())


def with_secrets() -> None:
    password = "hunter2"
    url = "https://admin:s3cret@db.internal/app"
    settings = {"api_key": "phc_live", "region": "eu"}
    count = 3
    raise KeyError(f"missing {count} {len(password + url + str(settings))}")


if __name__ == "__main__" and sys.argv[1] == "instrumented":
    start()  # OTEL_TRACES_EXPORTER=posthog attached the processor, and its hooks, before us
elif __name__ == "__main__":
    sys.excepthook = previous_sys_hook
    threading.excepthook = previous_thread_hook
    mode = sys.argv[1]
    processor = PostHogSpanProcessor(
        flush_interval=60.0, capture_code_variables=mode == "variables"
    )
    TracerProvider().add_span_processor(processor)
    if mode == "startup":
        start()
    elif mode == "thread":
        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()
        processor.shutdown()
        print("dropped:", dict(processor.stats().dropped), flush=True)
    elif mode == "asyncio":
        asyncio.run(main())
    elif mode == "loop":
        for _ in range(int(sys.argv[2])):
            thread = threading.Thread(target=worker)
            thread.start()
            thread.join()
        processor.shutdown()
        print("dropped:", dict(processor.stats().dropped), flush=True)
    elif mode == "variables":
        with_secrets()
