"""From OpenTelemetry data to PostHog events, as pure functions (no I/O, no threads).

- ``spans``: the tagging convention, spans and span events to events
- ``exceptions``: traceback text to ``$exception_list``
- ``captured``: events made in code (``capture()`` without a span, flag exposures)
"""
