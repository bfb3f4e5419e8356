"""Counters: exact from many threads, and bounded however many threads come and go."""

from __future__ import annotations

import threading

from posthog_otel._pipeline.stats import Counter, ThreadCounter


def test_counters_are_exact_from_many_threads():
    for counter in (Counter(), ThreadCounter()):
        threads = [
            threading.Thread(target=lambda c=counter: [c.add() for _ in range(10_000)])
            for _ in range(8)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert counter.value == 80_000


def test_a_thread_per_request_leaves_few_cells_and_no_count_behind():
    counter = ThreadCounter()
    for _ in range(200):  # as a server that starts a thread per request
        thread = threading.Thread(target=counter.add, args=(3,))
        thread.start()
        thread.join()
    assert counter.value == 600
    assert len(counter._cells) <= 2  # finished threads' cells are folded into the total
