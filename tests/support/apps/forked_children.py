"""Forked ``multiprocessing`` children that emit tagged spans and end as multiprocessing
ends them: by ``os._exit``, which skips ``atexit``. Nothing here helps them deliver.

    python forked_children.py process   # 4 Process children, 5 spans each, targets return
    python forked_children.py pool      # Pool(2, maxtasksperchild=1): 10 tasks, 2 spans each
    python forked_children.py with-pool # `with Pool(2)`: 10 tasks; leaving it terminates them
    python forked_children.py initializer  # as pool, each child sets telemetry up itself

``START_METHOD`` picks multiprocessing's start method (``fork`` unless set). Each span
is a ``child_job`` event with ``run`` = ``$RUN_TAG``. The processor's flush interval is a
minute, so nothing leaves on the timer: what arrives, the children's exits delivered.
Prints how many distinct children did the work.
"""

from __future__ import annotations

import multiprocessing
import os
import sys

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from posthog_otel import PostHogSpanProcessor

RUN = os.environ.get("RUN_TAG", "")


def emit(job: int, spans: int) -> int:
    tracer = trace.get_tracer("forked-children")
    for i in range(spans):
        tags = {"posthog.event": "child_job", "run": RUN, "job": job, "i": i}
        with tracer.start_as_current_span("job", attributes=tags):
            pass
    return os.getpid()


def set_up() -> None:
    provider = TracerProvider()
    provider.add_span_processor(PostHogSpanProcessor(flush_interval=60))
    trace.set_tracer_provider(provider)


def main(mode: str) -> None:
    fork = multiprocessing.get_context(os.environ.get("START_METHOD", "fork"))
    if mode != "initializer":
        set_up()
    if mode == "process":
        children = [fork.Process(target=emit, args=(job, 5)) for job in range(4)]
        for child in children:
            child.start()
        for child in children:
            child.join()
        assert all(child.exitcode == 0 for child in children), [c.exitcode for c in children]
        pids = [child.pid for child in children]
    elif mode == "pool":
        pool = fork.Pool(2, maxtasksperchild=1)
        pids = pool.starmap(emit, [(job, 2) for job in range(10)], chunksize=1)
        pool.close()
        pool.join()
    elif mode == "initializer":
        pool = fork.Pool(2, initializer=set_up, maxtasksperchild=1)
        pids = pool.starmap(emit, [(job, 2) for job in range(10)], chunksize=1)
        pool.close()
        pool.join()
    elif mode == "with-pool":
        with fork.Pool(2) as pool:
            pids = pool.starmap(emit, [(job, 2) for job in range(10)])
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    print("children:", len(set(pids)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
