"""Traces, logs and metrics from a Flask app under ``opentelemetry-instrument`` with no
code of ours: ``OTEL_TRACES_EXPORTER``/``OTEL_LOGS_EXPORTER``/``OTEL_METRICS_EXPORTER=posthog``
with ``POSTHOG_SEND_TRACES``/``POSTHOG_SEND_LOGS``, every span and record at the
devserver's ``/i/v1/*`` linked to the person and session, none lost, the requests counted
in Flask's own metrics with no person on them, and a SIGTERM mid-burst delivering what ran."""

from __future__ import annotations

import signal
import threading

import requests

from tests.support.server import wait_until

SIGNALS_ENV = {
    "OTEL_LOGS_EXPORTER": "posthog",
    "OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED": "true",
    "OTEL_PROPAGATORS": "tracecontext,baggage,posthog",
    "POSTHOG_SEND_TRACES": "true",
    "POSTHOG_SEND_LOGS": "true",
}


def browser_headers(n: int) -> dict[str, str]:
    """What posthog-js sends with a fetch when tracing headers are on."""
    return {"X-POSTHOG-DISTINCT-ID": f"visitor-{n}", "X-POSTHOG-SESSION-ID": f"session-{n}"}


def shop_records(server) -> list[dict]:
    """The handler's records (logger ``shop``), one per request."""
    return [r for r in server.logs() if r["scope"] == "shop"]


def request_count(server) -> int:
    """Requests counted by the Flask instrumentation's duration histogram, over every
    delta export so far."""
    return sum(
        point["count"]
        for metric in server.metrics()
        if metric["name"].startswith("http.server") and metric["type"] == "histogram"
        for point in metric["data_points"]
    )


def test_every_span_and_record_carries_person_and_session(server, services):
    metrics_env = {"OTEL_METRICS_EXPORTER": "posthog", "OTEL_METRIC_EXPORT_INTERVAL": "200"}
    flask = services.flask(env={**SIGNALS_ENV, **metrics_env})
    expected = {}  # item -> (person, session)
    for n in range(20):
        if n % 2:  # the browser's headers name both
            response = requests.get(
                f"{flask.url}/items/{n}?log=item_logged", headers=browser_headers(n), timeout=30
            )
            expected[n] = (f"visitor-{n}", f"session-{n}")
        else:  # the handler identifies the user; the session comes from the header
            headers = {"X-POSTHOG-SESSION-ID": f"session-{n}"}
            response = requests.get(
                f"{flask.url}/items/{n}?user=user-{n}&log=item_logged", headers=headers, timeout=30
            )
            expected[n] = (f"user-{n}", f"session-{n}")
        assert response.json() == {"item": n}

    spans = server.wait_for_spans(20, timeout=30)
    wait_until(lambda: len(shop_records(server)) >= 20, 30)
    wait_until(lambda: request_count(server) >= 20, 30)
    stopped = flask.stop(signal.SIGTERM)
    records = shop_records(server)
    assert len(server.spans()) == 20 and len(records) == 20, stopped.output  # none twice
    # the others (werkzeug's access lines, the instrumentation's own) ran outside a request
    for span in spans:
        attrs = span["attributes"]
        person, session = expected[int(attrs["item"])]
        assert (attrs["posthogDistinctId"], attrs["sessionId"]) == (person, session), span
    by_trace = {span["trace_id"]: int(span["attributes"]["item"]) for span in spans}
    for record in records:
        attrs = record["attributes"]
        person, session = expected[by_trace[record["trace_id"]]]  # logged in its request
        assert (attrs["posthogDistinctId"], attrs["sessionId"]) == (person, session), record
        assert record["span_id"] in {s["span_id"] for s in spans}
    # metrics: delta temporality, every request counted once, no person or session on them
    durations = [m for m in server.metrics() if m["name"].startswith("http.server")]
    assert {m["temporality"] for m in durations} == {"delta"}
    assert request_count(server) == 20
    for metric in server.metrics():
        for point in metric["data_points"]:
            assert not {"posthogDistinctId", "sessionId"} & set(point["attributes"]), metric
    # the tagged spans and records are still events
    assert len(server.wait_for_events(20, event="item_viewed", timeout=30)) == 20
    assert len(server.wait_for_events(20, event="item_logged", timeout=30)) == 20


def test_sigterm_mid_burst_delivers_every_request_that_ran(server, services):
    # a long flush interval: what is delivered, SIGTERM delivered
    env = {**SIGNALS_ENV, "POSTHOG_SIGTERM_TIMEOUT": "10", "OTEL_BSP_SCHEDULE_DELAY": "60000"}
    flask = services.flask(env=env)
    answered: list[int] = []
    stop = threading.Event()

    def burst() -> None:
        session = requests.Session()
        for n in range(10_000):
            if stop.is_set():
                return
            try:
                response = session.get(
                    f"{flask.url}/items/{n}?log=item_logged", headers=browser_headers(n), timeout=5
                )
            except requests.RequestException:
                return  # the server went away
            if response.ok:
                answered.append(n)

    client = threading.Thread(target=burst)
    client.start()
    wait_until(lambda: len(answered) >= 100, 60)
    # Answered before the signal: each one's span has ended, but for the last, whose span
    # the server may still be ending as its answer arrives (one request at a time).
    ran = answered[:-1]
    stopped = flask.stop(signal.SIGTERM)
    stop.set()
    client.join(30)
    assert stopped.returncode in (0, -signal.SIGTERM, 128 + signal.SIGTERM), stopped.output

    spans = server.spans()
    items = {int(s["attributes"]["item"]) for s in spans}
    missing = set(ran) - items
    assert not missing, f"{len(missing)} answered requests have no span\n{stopped.output[-3000:]}"
    assert len(spans) == len(items)  # none twice
    assert all(s["attributes"]["posthogDistinctId"].startswith("visitor-") for s in spans)
    logged = {r["trace_id"] for r in shop_records(server)}
    assert {s["trace_id"] for s in spans if int(s["attributes"]["item"]) in ran} <= logged
