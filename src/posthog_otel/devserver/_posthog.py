"""The PostHog routes: capture (both wire forms), flags, a flag's remote config payload,
and OpenTelemetry data (OTLP). Each takes the server and a ``Request`` and returns an
``Answer`` or raises ``RejectError``; nothing is stored unless all of it is valid."""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote

from posthog_otel.devserver._capture import legacy_events, v1_answer, v1_events
from posthog_otel.devserver._definitions import flags_response, remote_config_payload
from posthog_otel.devserver._otlp import decode, logs, metrics, spans
from posthog_otel.devserver._wire import Answer, RejectError, Request, not_found, parse_json

if TYPE_CHECKING:
    from posthog_otel.devserver import DevServer

EVENT_LIMIT = 1024 * 1024  # PostHog discards events over 1 MB
AI_EVENT_LIMIT = 8 * 1024 * 1024  # the AI lane's larger events (posthog-python, posthog-node)


def capture(app: DevServer, request: Request) -> Answer:
    return _capture(app, request, EVENT_LIMIT)


def capture_ai(app: DevServer, request: Request) -> Answer:
    return _capture(app, request, AI_EVENT_LIMIT)


def _capture(app: DevServer, request: Request, event_limit: int) -> Answer:
    key, events = legacy_events(_capture_body(request), event_limit=event_limit)
    check_key(app, key)
    app.store.add(events)
    if request.arg("beacon") == "1":
        return Answer(204, b"")
    return Answer(200, {"status": 1})


def capture_v1(app: DevServer, request: Request) -> Answer:
    token = request.bearer()
    if not token:
        raise RejectError(401, "missing_api_key", "Authorization: Bearer <project key> is required")
    check_key(app, token)
    payload = parse_json(request.body)
    events = v1_events(payload, request.header("PostHog-Sdk-Info"), event_limit=EVENT_LIMIT)
    app.store.add(events)
    return Answer(200, v1_answer(events))


def flags(app: DevServer, request: Request) -> Answer:
    body = parse_json(request.body)
    if not isinstance(body, dict):
        raise RejectError(400, "invalid_payload", "expected a JSON object")
    key = body.get("api_key") or body.get("token")
    if not isinstance(key, str) or not key:
        raise RejectError(401, "missing_api_key", "API key is required")
    check_key(app, key)
    distinct_id = body.get("distinct_id")
    if (
        isinstance(distinct_id, bool)
        or not isinstance(distinct_id, (str, int))
        or distinct_id == ""
    ):
        raise RejectError(400, "missing_distinct_id", "distinct_id is required", attr="distinct_id")
    keys = body.get("flag_keys_to_evaluate")
    keys = [str(k) for k in keys] if isinstance(keys, list) else None
    try:
        version = int(request.arg("v") or 0)
    except ValueError:
        version = 0
    decide = request.path.rstrip("/").endswith("/decide")
    answer = flags_response(
        app.flags,
        body,
        keys,
        detailed=version >= (4 if decide else 2),
        typed=not decide and version >= 4,
    )
    if request.arg("config") == "true":
        answer["supportedCompression"] = ["gzip", "gzip-js"]
    return Answer(200, answer)


def remote_config(app: DevServer, request: Request) -> Answer:
    """A remote config flag's payload, JSON-encoded as PostHog stores it (so the body is
    a JSON string); needs a secret or personal key, as PostHog does."""
    if not request.bearer():
        raise RejectError(401, "not_authenticated", "Authentication credentials were not provided.")
    token = request.arg("token")
    if token is not None:
        check_key(app, token)
    key = unquote(request.params[1])
    try:
        return Answer(200, remote_config_payload(app.flags, key))
    except KeyError:
        raise not_found(f"no flag {key[:200]!r}") from None


def otlp(app: DevServer, request: Request) -> Answer:
    """OpenTelemetry traces, logs or metrics over OTLP/HTTP (protobuf or JSON), stored
    whole or refused whole; answered with an empty ``Export*ServiceResponse``. LLM spans
    (``/i/v0/ai/otel``), which PostHog turns into events, are checked only."""
    token = request.bearer() or request.arg("token")
    if not token:
        raise RejectError(401, "missing_api_key", "a Bearer token or ?token= is required")
    check_key(app, token)
    kind = request.header("Content-Type").partition(";")[0].strip().lower()
    signal = request.params[0] if request.params else "traces"
    tree = decode(signal, request.body, kind)
    if request.params:
        if signal == "traces":
            app.store.add_spans(spans(tree))
        elif signal == "logs":
            app.store.add_logs(logs(tree))
        else:
            app.store.add_metrics(metrics(tree))
    if kind == "application/x-protobuf":
        return Answer(200, b"", content_type="application/x-protobuf")
    return Answer(200, {})


def check_key(app: DevServer, key: str) -> None:
    """``RejectError`` (401) unless ``key`` is the project key the server was given."""
    if app.api_key is not None and key != app.api_key:
        raise RejectError(401, "invalid_api_key", "API key is not valid for this project")


def _capture_body(request: Request) -> Any:
    """The JSON of a capture body; also posthog-js's form bodies (``data=``, plain or
    base64 JSON)."""
    kind = request.header("Content-Type").partition(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        return parse_json(request.body)
    try:
        form = parse_qs(request.body.decode("ascii"), strict_parsing=True)
        data = form["data"][0]
    except (UnicodeDecodeError, ValueError, KeyError):
        raise RejectError(400, "invalid_payload", "a form body needs a data= field") from None
    if data.lstrip()[:1] in ("{", "["):
        return parse_json(data.encode())
    try:
        return parse_json(base64.b64decode(data, validate=True))
    except binascii.Error:
        raise RejectError(400, "invalid_payload", "data= is neither JSON nor base64") from None
