"""From OpenTelemetry data to PostHog events, as pure functions (no I/O, no threads).

- ``convention``: the reserved ``posthog.*`` keys, the denylist, uuids, timestamps
- ``tags``: tags to an event, shared by spans and log records
- ``spans``: a span and its span events to events
- ``logs``: a log record to its event (and ``$exception``)
- ``web``: web properties from server spans, credentials redacted in URLs
- ``exceptions``: traceback text to ``$exception_list``
- ``genai``, ``genai_content``: GenAI spans to LLM analytics events; their messages
- ``captured``: events made in code (``capture()`` without a span, flag exposures),
  and captures held aside for a span whose event list is full
- ``bounds``: values from outside within the bounds of ``_limits``, counted when cut
"""
