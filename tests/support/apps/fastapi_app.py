"""A FastAPI service for tests, run as ``uvicorn fastapi_app:app --app-dir tests/apps``
on ``127.0.0.1:$PORT`` by tests/services.py."""

from __future__ import annotations

import telemetry
from fastapi import FastAPI, Request
from opentelemetry import trace
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

telemetry.set_up()
app = FastAPI()
FastAPIInstrumentor.instrument_app(app)  # skipped when opentelemetry-instrument did it


@app.get("/items/{item}")
def view_item(item: int, request: Request) -> dict[str, int]:
    """Tags the instrumented server span: one ``item_viewed`` event per request."""
    with telemetry.as_user(request.query_params.get("user")):
        span = trace.get_current_span()
        span.set_attribute("posthog.event", "item_viewed")
        span.set_attribute("item", item)
        telemetry.also_capture(request.query_params.get("capture"), item)
        telemetry.downstream(request.url.path, request.url.query)
    return {"item": item}
