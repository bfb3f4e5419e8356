"""The span pipeline: hooks on the application's threads, a queue, and two workers.

- ``processor``, ``exporter``: the OpenTelemetry faces (``SpanProcessor``, ``SpanExporter``)
- ``context``: ``capture()`` and ``identify()``
- ``worker``: the bounded queue and the encoder and sender threads
- ``delivery``: an item to its events, ``before_send``, encoding, sending, counting
- ``stats``: counters and one log line per drop reason
- ``spanflags``: flags known on live spans, handed to their children
"""
