"""A Flask backend whose events join the browser session that called it, with no code.

posthog-js (with ``tracing_headers``) sends X-POSTHOG-DISTINCT-ID and
X-POSTHOG-SESSION-ID on the requests a page makes to its backend. Under
``opentelemetry-instrument`` with our propagator named in OTEL_PROPAGATORS, every
event of such a request carries the browser's person and ``$session_id``:

    OTEL_PROPAGATORS=tracecontext,baggage,posthog OTEL_TRACES_EXPORTER=posthog \\
        OTEL_METRICS_EXPORTER=none OTEL_LOGS_EXPORTER=none \\
        POSTHOG_API_KEY=phc_... POSTHOG_HOST=... \\
        .venv/bin/opentelemetry-instrument .venv/bin/python examples/session_replay_app.py

``python3 dev.py quickstart`` installs what it needs into .venv (Flask,
opentelemetry-distro, opentelemetry-instrumentation-flask: the ``examples`` dependency
group). It serves one request, sent here as posthog-js would send it, and exits: 2 when
POSTHOG_API_KEY or POSTHOG_HOST is missing, 1 when events were not sent.
"""

from __future__ import annotations

import http.client
import json
import threading

from check_sent import exit_unless_sent, require_posthog_settings
from flask import Flask, request
from opentelemetry import trace
from werkzeug.serving import make_server

from posthog_otel import capture

app = Flask(__name__)


@app.post("/api/cart")
def add_to_cart() -> dict[str, int]:
    """Tags the server span Flask's instrumentation made; the person and session come
    from the request's PostHog headers."""
    item = request.get_json()
    trace.get_current_span().set_attribute("posthog.event", "cart_updated")
    capture("item_added", {"sku": item["sku"], "quantity": item["quantity"]})
    return {"items": item["quantity"]}


def call_as_the_browser(port: int, distinct_id: str, session_id: str) -> int:
    """What posthog-js adds to a page's fetch() to a listed hostname."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {
        "Content-Type": "application/json",
        "X-POSTHOG-DISTINCT-ID": distinct_id,
        "X-POSTHOG-SESSION-ID": session_id,
    }
    connection.request("POST", "/api/cart", json.dumps({"sku": "mug-01", "quantity": 2}), headers)
    status = connection.getresponse().status
    connection.close()
    return status


if __name__ == "__main__":
    require_posthog_settings()
    server = make_server("127.0.0.1", 0, app)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    session = "01932c5e-6f2b-7c41-9d8a-4e1f0b2c3d4e"  # posthog-js session ids are UUIDv7
    status = call_as_the_browser(server.port, "anon-01932c5e", session)
    server.shutdown()
    exit_unless_sent()
    print(f"POST /api/cart -> {status}: cart_updated and item_added belong to session {session}")
