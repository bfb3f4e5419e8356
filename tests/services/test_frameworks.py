"""Real Flask and FastAPI services under OpenTelemetry's own instrumentation, run as
subprocesses (tests/services.py) and exporting to the devserver: the web properties
PostHog shows, in both semantic-convention modes, with credentials redacted."""

from __future__ import annotations

import pytest
import requests

SECRET = "s3cret-xyz"  # no hex string (a trace id) can contain it
QUERY = f"token={SECRET}&page=2"


@pytest.mark.parametrize(
    ("semconv", "flask_telemetry", "attribute"),
    [
        pytest.param("", "exporter", "http.target", id="default-names-flask-exporter"),
        pytest.param("http", "processor", "url.query", id="stable-names-flask-processor"),
    ],
)
def test_web_properties_and_redaction_from_flask_calling_fastapi(
    server, services, semconv, flask_telemetry, attribute
):
    """One request to Flask, which calls FastAPI with the same query: two tagged server
    spans in one trace, each with its own URL rebuilt and the token redacted everywhere."""
    env = {"OTEL_SEMCONV_STABILITY_OPT_IN": semconv}
    fastapi = services.fastapi(env=env)
    flask = services.flask(
        telemetry=flask_telemetry,
        env={**env, "DOWNSTREAM_URL": fastapi.url, "OTEL_BSP_SCHEDULE_DELAY": "100"},
    )

    response = requests.get(f"{flask.url}/items/3?{QUERY}", timeout=30)
    assert response.json() == {"item": 3}

    events = server.wait_for_events(2, event="item_viewed", timeout=30)
    by_service = {e["properties"]["service.name"]: e["properties"] for e in events}
    assert by_service.keys() == {"flask-app", "fastapi-app"}
    for name, service in (("flask-app", flask), ("fastapi-app", fastapi)):
        props = by_service[name]
        assert props["$current_url"] == f"{service.url}/items/3?token=REDACTED&page=2"
        assert props["$host"] == service.url.removeprefix("http://")
        assert props["$pathname"] == "/items/3"
        assert attribute in props  # the instrumentation used the names this mode asks for
        leaked = {k: v for k, v in props.items() if SECRET in str(v)}
        assert not leaked, f"{name} sent the token in {leaked}"
    assert by_service["flask-app"]["$trace_id"] == by_service["fastapi-app"]["$trace_id"]
