"""The pipeline: hooks on the application's threads, a queue, and two workers.

- ``processor``, ``exporter``: the span faces (``SpanProcessor``, ``SpanExporter``)
- ``logs``: the log-record faces (``LogRecordProcessor``, ``LogRecordExporter``)
- ``context``: ``capture()`` and ``identify()``
- ``propagator``: PostHog's tracing headers (posthog-js) to baggage and back
- ``pipeline``: what processors share (worker, counters, live-span flags and roots)
- ``worker``: the bounded queue and the encoder and sender threads
- ``delivery``: an item to its events, ``before_send``, encoding, sending, counting
- ``stats``: counters and one log line per drop reason
- ``signals``: SIGTERM delivers what is queued
- ``spanflags``, ``roots``: flags known on live spans; live local roots for ``identify()``
"""
