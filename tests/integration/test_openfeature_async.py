"""The OpenFeature provider's asynchronous reads never block the event loop: a held
request to PostHog runs off the loop, identical reads share it, and reads that need no
request answer on the loop itself."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading

import pytest
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.flag_evaluation import Reason

from posthog_otel import PostHogClient, PostHogFlagProvider
from posthog_otel.openfeature import PostHogProvider
from tests.support.server import API_KEY

SECRET = "phs_async_0123456789"
FLAGS = {"beta": True, "checkout": {"variants": {"control": 50, "test": 50}}}


@pytest.fixture
def made(server):
    made = []

    def make(*, local=False):
        server.set_flags(FLAGS)
        client = PostHogClient(
            API_KEY, server.url, flags_timeout=5.0, secret_key=SECRET if local else None
        )
        flags = PostHogFlagProvider(client, send_feature_flag_events=False)
        api.set_provider_and_wait(PostHogProvider(flags))
        made.append((client, flags))
        return api.get_client()

    yield make
    api.clear_providers()
    for client, flags in made:
        flags.shutdown()
        client.close()


class CountingExecutor(concurrent.futures.ThreadPoolExecutor):
    """The loop's default executor, counting the work handed to it."""

    def __init__(self) -> None:
        super().__init__(max_workers=32)
        self.submitted = 0
        self._count_lock = threading.Lock()

    def submit(self, fn, /, *args, **kwargs):
        with self._count_lock:
            self.submitted += 1
        return super().submit(fn, *args, **kwargs)


def run(main, executor=None):
    """``main()`` on a fresh loop, with ``executor`` as its default executor."""

    async def wrapped():
        if executor is not None:
            asyncio.get_running_loop().set_default_executor(executor)
        return await main()

    return asyncio.run(wrapped())


def ctx(key="u1", **attributes):
    return EvaluationContext(targeting_key=key, attributes=attributes)


def test_a_held_request_does_not_stop_the_loop(made, server):
    client = made()
    server.faults.delay(seconds=0.3, times=1, paths="/decide")

    async def main():
        ticks = 0
        done = asyncio.Event()

        async def ticker():
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                await asyncio.sleep(0.01)

        task = asyncio.create_task(ticker())
        details = await client.get_boolean_details_async("beta", False, ctx())
        done.set()
        await task
        return details, ticks

    details, ticks = run(main)
    assert (details.value, details.reason) == (True, Reason.TARGETING_MATCH)
    # A 10 ms ticker across a 0.3 s request: it ran many times (0 when the loop is blocked).
    assert ticks >= 10
    asked = [r for r in server.requests.matching("/decide") if r.json()["distinct_id"] == "u1"]
    assert len(asked) == 1


def test_identical_concurrent_reads_share_one_request(made, server):
    client = made()
    server.faults.delay(seconds=0.3, times=1, paths="/decide")

    async def main():
        reads = [client.get_string_value_async("checkout", "x", ctx("u2")) for _ in range(20)]
        return await asyncio.gather(*reads)

    values = run(main)
    assert len(set(values)) == 1 and values[0] in ("control", "test")
    asked = [r for r in server.requests.matching("/decide") if r.json()["distinct_id"] == "u2"]
    assert len(asked) == 1


def test_reads_that_need_no_request_answer_on_the_loop(made, server):
    local = made(local=True)
    executor = CountingExecutor()

    async def main():
        first = await local.get_boolean_details_async("beta", False, ctx("u3"))
        variant = await local.get_string_value_async("checkout", "x", ctx("u3"))
        return first, variant

    first, variant = run(main, executor)
    assert (first.value, first.reason) == (True, Reason.STATIC)
    assert variant in ("control", "test")
    assert executor.submitted == 0  # decided locally, on the loop
    executor.shutdown()


def test_a_cached_answer_is_read_on_the_loop_and_a_miss_off_it(made, server):
    client = made()
    executor = CountingExecutor()

    async def main():
        fresh = await client.get_boolean_details_async("beta", False, ctx("u4"))
        misses = executor.submitted
        cached = await client.get_boolean_details_async("beta", False, ctx("u4"))
        return fresh, misses, cached

    fresh, misses, cached = run(main, executor)
    assert (fresh.reason, cached.reason) == (Reason.TARGETING_MATCH, Reason.CACHED)
    assert misses == 1  # the request went to a worker thread
    assert executor.submitted == 1  # the cached read did not
    executor.shutdown()


def test_a_read_off_the_loop_is_still_recorded_on_the_current_span(made, make_pipeline):
    client = made()
    tracer, _ = make_pipeline()

    async def main():
        with tracer.start_as_current_span("request") as span:
            await client.get_boolean_value_async("beta", False, ctx("u5"))
        return span

    span = run(main)
    (event,) = [e for e in span.events if e.name == "feature_flag.evaluation"]
    assert event.attributes["feature_flag.key"] == "beta"
    assert event.attributes["feature_flag.context.id"] == "u5"
