"""Forked children deliver: ``multiprocessing`` children and Celery's prefork pool end by
``os._exit``, skipping ``atexit``; what they queued still arrives, with no code for it in
the app. Real subprocesses against the devserver, counted by uuid."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid

import pytest

from tests.support.services import APPS, service_env, start_redis


def tagged(server, event: str, run: str) -> list[dict]:
    return [e for e in server.events(event) if e["properties"].get("run") == run]


@pytest.mark.parametrize(
    ("mode", "start_method", "children"),
    [
        pytest.param("process", "fork", 4, id="Process-target-returns"),
        pytest.param("pool", "fork", 10, id="Pool-maxtasksperchild-1"),
        pytest.param("initializer", "fork", 10, id="Pool-initializer-sets-telemetry-up"),
        # Python 3.14's default on Linux: the child, forked from a server, imports anew.
        pytest.param("initializer", "forkserver", 10, id="forkserver-Pool-initializer"),
        pytest.param("with-pool", "fork", None, id="with-Pool-terminates"),  # 1 or 2 do it
    ],
)
def test_multiprocessing_children_deliver(server, mode, start_method, children):
    # The processor's flush interval is a minute: nothing leaves on the timer, so every
    # event that arrives was delivered as its child ended.
    run = uuid.uuid4().hex
    env = service_env(server.url, "forked-children", RUN_TAG=run, START_METHOD=start_method)
    result = subprocess.run(
        [sys.executable, str(APPS / "forked_children.py"), mode],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "children: " in result.stdout, result.stdout + result.stderr
    if children is not None:
        assert f"children: {children}" in result.stdout, result.stdout
    server.wait_for_events(20, event="child_job", timeout=10)
    assert len({e["uuid"] for e in tagged(server, "child_job", run)}) == 20


def test_a_child_waits_at_most_sigterm_timeout_for_a_silent_posthog(server):
    # A PostHog that accepts connections and never answers: each child gives up on its
    # events at the bound (1 s here) and ends; the run takes seconds, not export_timeout.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        env = service_env(url, "forked-children", POSTHOG_SIGTERM_TIMEOUT="1")
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, str(APPS / "forked_children.py"), "process"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert "children: 4" in result.stdout, result.stdout + result.stderr
    assert elapsed < 10, f"took {elapsed:.1f} s"


IMPORTS = """
import os, sys
from posthog_otel import PostHogSpanProcessor
processor = PostHogSpanProcessor(api_key="phc_x", host="http://127.0.0.1:9")
pid = os.fork()
if pid == 0:
    os._exit(0)
os.waitpid(pid, 0)
print(sorted(m for m in sys.modules if m.split(".")[0] in {"multiprocessing", "celery", "billiard"}))
processor.shutdown()
"""


def test_the_hooks_import_neither_multiprocessing_nor_celery():
    # An app that uses neither pays nothing: they are found in sys.modules, never imported.
    result = subprocess.run(
        [sys.executable, "-c", IMPORTS], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.fixture(scope="module")
def redis_url():
    """Debian's redis-server on a free loopback port, with no persistence."""
    if shutil.which("redis-server") is None:
        pytest.skip("needs redis-server (apt-get install redis-server; .ci/run installs it)")
    pytest.importorskip("celery", reason="needs the dev extra (celery[redis])")
    redis = start_redis()
    yield f"redis://127.0.0.1:{redis.port}/0"
    redis.stop()


@pytest.fixture
def broker(redis_url):
    """The Redis broker, emptied: no task a warm shutdown left queued runs in the next test."""
    import redis

    with redis.Redis.from_url(redis_url) as client:
        client.flushall()
    return redis_url


def send(broker: str, run: str, count: int, seconds: float) -> None:
    from celery import Celery

    app = Celery("producer", broker=broker)
    with app.producer_or_acquire() as producer:
        for n in range(count):
            app.send_task("emit", args=[run, n, seconds], producer=producer)
    app.close()


def ran(broker: str, run: str) -> list[int]:
    """The tasks that ran to their end, as the app recorded them in Redis."""
    import redis

    with redis.Redis.from_url(broker) as client:
        return sorted(int(n) for n in client.lrange(f"ran:{run}", 0, -1))


def wait_ran(broker: str, run: str, count: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while len(ran(broker, run)) < count:
        assert time.monotonic() < deadline, f"{len(ran(broker, run))}/{count} tasks ran"
        time.sleep(0.05)


def test_celery_children_recycled_by_max_tasks_per_child_deliver(server, services, broker):
    # No telemetry code in the app: opentelemetry-instrument, OTEL_TRACES_EXPORTER=posthog.
    # Each pool child runs 5 tasks, then billiard ends it by os._exit.
    worker = services.celery(broker, "--max-tasks-per-child", "5")
    run = uuid.uuid4().hex
    send(broker, run, 20, 0.0)
    wait_ran(broker, run, 20)
    server.wait_for_events(20, event="task_done", timeout=15)  # before the worker stops
    stopped = worker.stop(signal.SIGTERM)
    assert stopped.returncode == 0, stopped.output
    assert sorted(e["properties"]["n"] for e in tagged(server, "task_done", run)) == list(range(20))


@pytest.mark.parametrize(
    "setup", [pytest.param("", id="set-up-as-app-loads"), "worker_process_init"]
)
def test_celery_warm_shutdown_mid_queue_delivers_the_tasks_in_hand(server, services, broker, setup):
    # A flush interval of a minute (the app adds the processor, as it loads or in each
    # pool child): what arrives was delivered by the pool children as the warm shutdown
    # ended them.
    env = {"OTEL_TRACES_EXPORTER": "none", "APP_FLUSH_INTERVAL": "60", "APP_SETUP": setup}
    worker = services.celery(broker, env=env)
    run = uuid.uuid4().hex
    send(broker, run, 30, 0.2)
    wait_ran(broker, run, 4)
    stopped = worker.stop(signal.SIGTERM)  # warm: tasks in hand finish, the rest stay queued
    assert stopped.returncode == 0, stopped.output
    finished = ran(broker, run)
    assert 4 <= len(finished) < 30, finished
    server.wait_for_events(len(finished), event="task_done", timeout=15)
    events = tagged(server, "task_done", run)
    assert sorted(e["properties"]["n"] for e in events) == finished
    assert len({e["uuid"] for e in events}) == len(finished)
