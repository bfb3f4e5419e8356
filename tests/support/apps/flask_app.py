"""A Flask service for tests, run by tests/services.py as ``opentelemetry-instrument
python flask_app.py`` on ``127.0.0.1:$PORT``: auto-instrumentation, nothing in code."""

from __future__ import annotations

import os

import telemetry
from flask import Flask, request
from opentelemetry import trace

telemetry.set_up()
app = Flask(__name__)


@app.get("/items/<int:item>")
def view_item(item: int) -> dict[str, int]:
    """Tags the instrumented server span: one ``item_viewed`` event per request."""
    with telemetry.as_user(request.args.get("user")):
        span = trace.get_current_span()
        span.set_attribute("posthog.event", "item_viewed")
        span.set_attribute("item", item)
        telemetry.also_capture(request.args.get("capture"), item)
        telemetry.also_log(request.args.get("log"), item)
        telemetry.downstream(request.path, request.query_string.decode())
    return {"item": item}


@app.get("/fail")
def fail() -> dict[str, int]:
    """Raises inside the handler: Flask answers 500 and its instrumentation records the
    exception on the server span, which ``POSTHOG_CAPTURE_EXCEPTIONS`` sends."""
    with telemetry.as_user(request.args.get("user")):
        raise RuntimeError("payment service refused the card")


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ["PORT"]))
