"""Two WSGI services instrumented with OpenTelemetry; identity crosses them in baggage.

A shop frontend reads the signed-in user from a request header, calls an
inventory service over instrumented HTTP, reads a flag and records events. The
inventory service never sees the header: the user reaches it in the W3C
``baggage`` header that instrumented clients send and servers extract.

    pip install opentelemetry-instrumentation-wsgi opentelemetry-instrumentation-urllib3
    python examples/web_app.py
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import urllib3
from opentelemetry import trace
from opentelemetry.instrumentation.urllib3 import URLLib3Instrumentor
from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from posthog_otel import PostHogClient, PostHogFlagProvider, PostHogSpanProcessor, capture, identify
from posthog_otel.devserver import DevServer

StartResponse = Callable[..., object]


def inventory_app(environ: dict, start_response: StartResponse) -> Iterable[bytes]:
    """POST /reserve: tags its own server span; the user arrives in baggage."""
    span = trace.get_current_span()
    span.set_attribute("posthog.event", "stock_reserved")
    span.set_attribute("sku", "TEE-1")
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps({"reserved": True}).encode()]


def make_shop_app(inventory_url: str, flags: PostHogFlagProvider) -> Callable:
    http = urllib3.PoolManager()

    def shop_app(environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        """GET /checkout: the auth layer put the user in X-User-Id."""
        with identify(environ["HTTP_X_USER_ID"]):
            one_click = flags.get_flag("one-click-checkout")
            http.request("POST", inventory_url + "/reserve")  # carries traceparent and baggage
            steps = 1 if one_click and one_click.enabled == "one-click" else 3
            capture("checkout_started", {"steps": steps, "cart": {"items": 2}})
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps({"steps": steps}).encode()]

    return shop_app


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def serve(app: Callable, provider: TracerProvider) -> tuple[WSGIServer, str]:
    server = make_server(
        "127.0.0.1", 0, OpenTelemetryMiddleware(app, tracer_provider=provider), handler_class=_Quiet
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}"


def main() -> None:
    flag_rules = {"one-click-checkout": {"variants": {"classic": 50, "one-click": 50}}}
    with DevServer(flags=flag_rules) as posthog:
        client = PostHogClient("phc_example", posthog.url)
        provider = TracerProvider(resource=Resource.create({"service.name": "shop"}))
        processor = PostHogSpanProcessor(client)
        provider.add_span_processor(processor)
        trace.set_tracer_provider(provider)
        URLLib3Instrumentor().instrument(tracer_provider=provider)
        flags = PostHogFlagProvider(client, processor=processor, send_feature_flag_events=False)

        inventory, inventory_url = serve(inventory_app, provider)
        shop, shop_url = serve(make_shop_app(inventory_url, flags), provider)
        browser = urllib3.PoolManager()
        for user in ("alice", "bob"):
            answer = browser.request("GET", shop_url + "/checkout", headers={"X-User-Id": user})
            print(f"GET /checkout as {user}: {answer.json()}")

        URLLib3Instrumentor().uninstrument()
        provider.shutdown()
        shop.shutdown()
        inventory.shutdown()
        for event in reversed(posthog.events()):
            props = event["properties"]
            variant = props.get("$feature/one-click-checkout", "-")
            print(
                f"{event['event']:<17} {event['distinct_id']:<6} trace {props['$trace_id'][:8]}  "
                f"one-click-checkout={variant}  {props.get('$pathname', '')}"
            )


if __name__ == "__main__":
    main()
