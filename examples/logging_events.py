"""Python logging to PostHog: tagged records become events, logger.exception() becomes
error tracking, everything else stays a log line. Sent to the local devserver.

python examples/logging_events.py
"""

from __future__ import annotations

import logging

from opentelemetry._logs import set_logger_provider
from opentelemetry.instrumentation.logging import LoggingInstrumentor
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from posthog_otel import PostHogClient, PostHogLogProcessor, PostHogSpanProcessor, identify
from posthog_otel.devserver import DevServer

log = logging.getLogger("shop.orders")


class PaymentDeclinedError(Exception):
    pass


def charge(total: float) -> None:
    if total > 100:
        raise PaymentDeclinedError(f"card limit is 100, asked for {total}")


def place_order(tracer, user_id: str, total: float) -> None:
    """A request handler that logs as services do."""
    with identify(user_id), tracer.start_as_current_span("POST /orders"):
        log.info("stock reserved for %d items", 3)  # untagged: a log line, not an event
        try:
            charge(total)
        except PaymentDeclinedError:
            log.exception("payment failed", extra={"order.total": total})
            return
        log.info("order placed", extra={"posthog.event": "order_placed", "order.total": total})


def main() -> None:
    with DevServer() as server:
        resource = Resource.create({"service.name": "shop"})
        spans = PostHogSpanProcessor(PostHogClient("phc_example", server.url))
        tracer_provider = TracerProvider(resource=resource)
        tracer_provider.add_span_processor(spans)
        logger_provider = LoggerProvider(resource=resource)
        # Shares the span processor's queue and connection pool.
        logs = PostHogLogProcessor(processor=spans, capture_exceptions=True)
        logger_provider.add_log_record_processor(logs)
        set_logger_provider(logger_provider)
        LoggingInstrumentor().instrument()  # OpenTelemetry's logging handler on the root logger
        log.setLevel(logging.INFO)

        tracer = tracer_provider.get_tracer("shop")
        place_order(tracer, "user-42", 30.0)
        place_order(tracer, "user-43", 250.0)
        logger_provider.shutdown()
        tracer_provider.shutdown()  # delivers everything queued

        for event in reversed(server.events()):
            props = event["properties"]
            line = f"{event['event']:<14} {event['distinct_id']:<8} {props['$log_message']!r}"
            if event["event"] == "$exception":
                first = props["$exception_list"][0]
                frame = first["stacktrace"]["frames"][-1]
                line += f" {first['type']}: {first['value']} (in {frame['function']})"
            else:
                line += f" total={props['order.total']}"
            print(line)
        stats = spans.stats()
        print(f"records logged: {stats.logs_seen}, events sent: {stats.events_sent}")


if __name__ == "__main__":
    main()
