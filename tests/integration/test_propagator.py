"""PostHog's tracing headers as an OpenTelemetry propagator: reading and writing them,
every event of a request carrying their person and session, identify() over them, and
real services (Flask under opentelemetry-instrument, FastAPI set up in code)."""

from __future__ import annotations

import http.client
import importlib.metadata
import logging
from urllib.parse import urlsplit

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry import baggage, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import attach, detach
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from posthog_otel import (
    PostHogClient,
    PostHogFlagProvider,
    PostHogLogProcessor,
    PostHogPropagator,
    capture,
    identify,
)
from posthog_otel._context import clean_header_value
from tests.support.server import API_KEY

BROWSER = {"X-POSTHOG-DISTINCT-ID": "anon-0190f3", "X-POSTHOG-SESSION-ID": "0190f3-session"}
W3C_AND_POSTHOG = CompositePropagator(
    [TraceContextTextMapPropagator(), W3CBaggagePropagator(), PostHogPropagator()]
)


def carried(ctx) -> dict[str, object]:
    return dict(baggage.get_all(ctx))


# -- reading and writing the headers ---------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "kept"),
    [
        ("anon-1", "anon-1"),
        ("  anon-1\t", "anon-1"),  # trimmed
        ("an\x00on\x1b-\x7f1\x85\x9f", "anon-1"),  # C0, DEL and C1 control characters go
        ("line\r\nbreak", "linebreak"),  # so no header can put a line break into an event
        ("usér-1", "usér-1"),  # other text stays as it is
        ("x" * 1500, "x" * 1000),  # at most 1,000 characters
        ("", None),
        ("  \x00 \t", None),  # nothing left: absent
        (None, None),
        (b"anon-1", None),  # not text
    ],
)
def test_values_are_cleaned_as_posthogs_sdks_clean_them(raw, kept):
    assert clean_header_value(raw) == kept


@given(st.text(alphabet=st.characters(max_codepoint=0x3000), max_size=1200))
def test_cleaning_matches_posthog_python_for_any_text(value):
    """PostHog's Python SDK is the oracle: the same value from the same header."""
    oracle = pytest.importorskip("posthog.integrations._tracing_headers")
    assert clean_header_value(value) == oracle._sanitize_tracing_header_value(value)


def test_extract_puts_both_headers_in_baggage_whatever_their_spelling():
    for headers in (
        BROWSER,
        {k.lower(): v for k, v in BROWSER.items()},
        {k: [v] for k, v in BROWSER.items()},  # getters hand back lists
    ):
        ctx = PostHogPropagator().extract(headers)
        assert carried(ctx) == {
            "posthog.distinct_id": "anon-0190f3",
            "posthog.session_id": "0190f3-session",
        }


def test_the_first_usable_value_counts_and_empty_means_absent():
    propagator = PostHogPropagator()
    ctx = propagator.extract({"x-posthog-distinct-id": ["", " \x00 ", "first", "second"]})
    assert carried(ctx) == {"posthog.distinct_id": "first"}
    start = baggage.set_baggage("posthog.distinct_id", "from-upstream")
    for headers in ({}, {"X-POSTHOG-DISTINCT-ID": "   "}, {"X-POSTHOG-SESSION-ID": ["\t"]}):
        assert propagator.extract(headers, start) is start  # nothing to say: unchanged


def test_a_header_wins_over_baggage_extracted_before_it():
    headers = {**BROWSER, "baggage": "posthog.distinct_id=from-baggage,plan=pro"}
    ctx = W3C_AND_POSTHOG.extract(headers)
    assert carried(ctx) == {
        "posthog.distinct_id": "anon-0190f3",
        "posthog.session_id": "0190f3-session",
        "plan": "pro",  # the rest of the baggage is untouched
    }
    baggage_last = CompositePropagator([PostHogPropagator(), W3CBaggagePropagator()])
    assert carried(baggage_last.extract(headers))["posthog.distinct_id"] == "from-baggage"


def test_a_broken_getter_or_setter_never_fails_the_request():
    class Broken:
        def get(self, carrier, key):
            raise RuntimeError("boom")

        def keys(self, carrier):
            raise RuntimeError("boom")

        def set(self, carrier, key, value):
            raise RuntimeError("boom")

    start = baggage.set_baggage("posthog.distinct_id", "u1")
    assert PostHogPropagator().extract({}, start, getter=Broken()) is start
    PostHogPropagator().inject({}, start, setter=Broken())


def test_inject_writes_the_headers_from_baggage_and_they_read_back_the_same():
    ctx = baggage.set_baggage(
        "posthog.session_id", "s-1", baggage.set_baggage("posthog.distinct_id", "u-1")
    )
    ctx = baggage.set_baggage("posthog.window_id", "w-1", ctx)
    headers: dict[str, str] = {}
    PostHogPropagator().inject(headers, ctx)
    assert headers == {
        "X-POSTHOG-DISTINCT-ID": "u-1",
        "X-POSTHOG-SESSION-ID": "s-1",
        "X-POSTHOG-WINDOW-ID": "w-1",
    }
    assert carried(PostHogPropagator().extract(headers)) == carried(ctx)
    assert PostHogPropagator().fields == set(headers)
    untouched: dict[str, str] = {}
    PostHogPropagator().inject(untouched, baggage.set_baggage("plan", "pro"))
    assert untouched == {}


@pytest.mark.parametrize("value", ["usér-1", "line\nbreak", "tab\there", "x" * 1001])
def test_a_value_the_receiver_would_change_goes_only_in_baggage(value):
    """Sending it cleaned would name someone else downstream; the W3C baggage header
    carries the exact value, percent-encoded, and wins when our header is absent."""
    ctx = baggage.set_baggage("posthog.distinct_id", value)
    headers: dict[str, str] = {}
    W3C_AND_POSTHOG.inject(headers, ctx)
    assert "X-POSTHOG-DISTINCT-ID" not in headers
    assert headers["baggage"].isascii()
    assert carried(W3C_AND_POSTHOG.extract(headers))["posthog.distinct_id"] == value


def test_registered_as_the_posthog_propagator():
    (entry,) = importlib.metadata.entry_points(group="opentelemetry_propagator", name="posthog")
    assert entry.load() is PostHogPropagator


# -- every event of the request ----------------------------------------------------------


def _charge():
    raise TimeoutError("payment provider timed out")


@pytest.mark.parametrize("headers", [BROWSER, {}], ids=["headers", "no-headers"])
def test_every_event_of_the_request_carries_the_browsers_person_and_session(
    server, make_pipeline, headers
):
    """Spans, their children, span events, capture() with and without a span, log
    records, $exception and $feature_flag_called: all from one extracted request."""
    server.set_flags({"beta": True})
    tracer, processor = make_pipeline(capture_exceptions=True)
    client = PostHogClient(API_KEY, server.url, retry_delay=0.01)
    flags = PostHogFlagProvider(client, processor=processor)
    logger_provider = LoggerProvider(shutdown_on_exit=False)
    logger_provider.add_log_record_processor(PostHogLogProcessor(processor=processor))
    log = logging.getLogger("shop.propagator")
    log.setLevel(logging.INFO)
    log.propagate = False
    handler = LoggingHandler(logger_provider=logger_provider)
    log.addHandler(handler)
    token = attach(W3C_AND_POSTHOG.extract(headers))  # what an instrumented server does
    try:
        with tracer.start_as_current_span(
            "GET /cart", kind=SpanKind.SERVER, attributes={"posthog.event": "cart_viewed"}
        ):
            capture("coupon_tried", {"code": "SPRING"})
            flags.is_enabled("beta", distinct_id=headers.get("X-POSTHOG-DISTINCT-ID", "nobody"))
            log.info("cart logged", extra={"posthog.event": "cart_logged"})
            with tracer.start_as_current_span("load", attributes={"posthog.event": "cart_loaded"}):
                pass
            with pytest.raises(TimeoutError), tracer.start_as_current_span("charge"):
                _charge()
        capture("left_after_the_span")  # no recording span: straight to the queue
        log.info("no span", extra={"posthog.event": "logged_after_the_span"})  # baggage only
    finally:
        detach(token)
        log.removeHandler(handler)
    assert processor.force_flush(10_000)
    expected = {
        "cart_viewed",
        "coupon_tried",
        "$feature_flag_called",
        "cart_logged",
        "cart_loaded",
        "$exception",
        "left_after_the_span",
        "logged_after_the_span",
    }
    events = server.wait_for_events(len(expected))
    assert {e["event"] for e in events} == expected
    for event in events:
        props = event["properties"]
        if event["event"] == "$feature_flag_called":
            continue  # its user is the one the flag was asked for
        if headers:
            assert event["distinct_id"] == "anon-0190f3", event["event"]
            assert "$process_person_profile" not in props, event["event"]
        else:
            assert props["$process_person_profile"] is False, event["event"]
    sessions = {e["event"]: e["properties"].get("$session_id") for e in events}
    assert sessions == dict.fromkeys(expected, headers.get("X-POSTHOG-SESSION-ID"))
    flags.shutdown()
    logger_provider.shutdown()
    client.close()


def test_a_session_named_in_capture_properties_is_kept(server, make_pipeline):
    tracer, processor = make_pipeline()
    token = attach(W3C_AND_POSTHOG.extract(BROWSER))
    try:
        with tracer.start_as_current_span("GET /cart"):
            capture("on_the_span", {"$session_id": "mine"})
        capture("without_a_span", {"$session_id": "mine"})
        capture("from_the_header")
    finally:
        detach(token)
    assert processor.force_flush(10_000)
    sessions = {e["event"]: e["properties"]["$session_id"] for e in server.wait_for_events(3)}
    assert sessions == {
        "on_the_span": "mine",
        "without_a_span": "mine",
        "from_the_header": "0190f3-session",
    }


# -- identify() and the headers ----------------------------------------------------------


def test_identify_in_the_handler_wins_over_the_headers(server, make_pipeline):
    """The header names the request until code says who it is: identify() replaces the
    header's id on the server span and what follows, keeps its session unless given
    one, and never replaces an id code set on a span."""
    tracer, processor = make_pipeline()
    for user, session in (("user-42", None), ("user-43", "server-session")):
        token = attach(W3C_AND_POSTHOG.extract(BROWSER))
        try:
            with tracer.start_as_current_span(
                "GET /account", kind=SpanKind.SERVER, attributes={"posthog.event": "request"}
            ):
                with tracer.start_as_current_span("handler"), identify(user, session):
                    trace.get_current_span().set_attribute("posthog.event", "handled")
                    capture("account_viewed")
                    with tracer.start_as_current_span(
                        "render", attributes={"posthog.event": "rendered"}
                    ):
                        pass
                    with tracer.start_as_current_span(
                        "audit",
                        attributes={"posthog.event": "audited", "posthog.distinct_id": "auditor"},
                    ):
                        pass
        finally:
            detach(token)
    assert processor.force_flush(10_000)
    events = server.wait_for_events(10)
    seen = {(e["event"], e["distinct_id"], e["properties"]["$session_id"]) for e in events}
    assert seen == {
        *(
            (name, "user-42", "0190f3-session")
            for name in ("request", "handled", "account_viewed", "rendered")
        ),
        ("audited", "auditor", "0190f3-session"),
        *(
            (name, "user-43", "server-session")
            for name in ("request", "handled", "account_viewed", "rendered")
        ),
        ("audited", "auditor", "server-session"),
    }


@pytest.mark.parametrize(
    ("session", "error"), [(42, TypeError), ("", ValueError), (" ", ValueError)]
)
def test_identify_refuses_a_session_id_that_is_not_a_string(session, error):
    with pytest.raises(error, match="session_id"):
        with identify("user-1", session):
            pass


# -- real services -------------------------------------------------------------------------


def _get(url: str, headers: list[tuple[str, str]]) -> int:
    """A GET with headers exactly as given (http.client sends what requests refuses:
    leading spaces, control characters, a folded line)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.putrequest("GET", f"{parts.path}?{parts.query}")
        for name, value in headers:
            connection.putheader(name, value)
        connection.endheaders()
        return connection.getresponse().status
    finally:
        connection.close()


def test_flask_under_opentelemetry_instrument_links_the_browser_across_services(server, services):
    """Flask with OTEL_PROPAGATORS=tracecontext,baggage,posthog and no code, calling
    FastAPI through instrumented requests. FastAPI sets tracecontext and posthog in
    code, without baggage: what it knows of the browser came in our headers."""
    fastapi = services.fastapi(env={"APP_PROPAGATORS": "tracecontext,posthog"})
    flask = services.flask(
        env={
            "OTEL_PROPAGATORS": "tracecontext,baggage,posthog",
            "DOWNSTREAM_URL": fastapi.url,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        }
    )
    hostile_id = "  \x01anon\x7f-\x1b7 \r\n\tX-Injected: 1  "
    cases = {
        1: (
            [("X-PostHog-Distinct-Id", "anon-0190f3"), ("x-posthog-session-id", "0190f3-s")],
            ("anon-0190f3", "0190f3-s"),
        ),
        2: ([], (None, None)),
        3: (
            [("X-POSTHOG-DISTINCT-ID", hostile_id), ("X-POSTHOG-SESSION-ID", "s" * 1500)],
            ("anon-7 X-Injected: 1", "s" * 1000),
        ),
        4: ([("X-POSTHOG-DISTINCT-ID", " \x00 "), ("X-POSTHOG-SESSION-ID", "\t")], (None, None)),
    }
    for item, (headers, _) in cases.items():
        assert _get(f"{flask.url}/items/{item}?capture=item_details_viewed", headers) == 200

    events = server.wait_for_events(4 * len(cases), timeout=30)
    got: dict[tuple[int, str, str], tuple[str | None, str | None]] = {}
    for event in events:
        props = event["properties"]
        person = None if props.get("$process_person_profile") is False else event["distinct_id"]
        got[(props["item"], props["service.name"], event["event"])] = (
            person,
            props.get("$session_id"),
        )
    assert got == {
        (item, service, name): expected
        for item, (_, expected) in cases.items()
        for service in ("flask-app", "fastapi-app")
        for name in ("item_viewed", "item_details_viewed")
    }


def test_fastapi_set_up_in_code_identify_wins_over_the_header(server, services):
    app = services.fastapi(env={"APP_PROPAGATORS": "tracecontext,baggage,posthog"})
    response = requests.get(f"{app.url}/items/5?user=user-42", headers=BROWSER, timeout=30)
    assert response.json() == {"item": 5}
    response = requests.get(f"{app.url}/items/6", headers=BROWSER, timeout=30)
    assert response.json() == {"item": 6}
    events = server.wait_for_events(2, event="item_viewed", timeout=30)
    by_item = {e["properties"]["item"]: e for e in events}
    assert by_item[5]["distinct_id"] == "user-42"  # the server's word over the browser's
    assert by_item[6]["distinct_id"] == "anon-0190f3"
    assert {e["properties"]["$session_id"] for e in events} == {"0190f3-session"}


# -- the session link, complete: the window and the anonymous visitor ------------------------

ANON = "0190f3a1-8f2c-7d40-8db0-9496a2eef37b"  # an id posthog-js made (uuidv7)
ANON_BROWSER = {
    "X-POSTHOG-DISTINCT-ID": ANON,
    "X-POSTHOG-SESSION-ID": "0190f3a1-9000-7000-8000-000000000001",
    "X-POSTHOG-WINDOW-ID": "0190f3a1-9000-7000-8000-000000000002",
}


def test_extract_reads_the_window_and_marks_posthog_js_anonymous_ids():
    ctx = PostHogPropagator().extract({k.lower(): [v] for k, v in ANON_BROWSER.items()})
    assert carried(ctx) == {
        "posthog.distinct_id": ANON,
        "posthog.anonymous_id": ANON,
        "posthog.session_id": ANON_BROWSER["X-POSTHOG-SESSION-ID"],
        "posthog.window_id": ANON_BROWSER["X-POSTHOG-WINDOW-ID"],
    }
    identified = PostHogPropagator().extract({**ANON_BROWSER, "X-POSTHOG-DISTINCT-ID": "user-42"})
    assert "posthog.anonymous_id" not in carried(identified)
    # A header naming a person replaces an anonymous visitor that came in baggage.
    upstream = baggage.set_baggage("posthog.anonymous_id", ANON)
    again = PostHogPropagator().extract({"X-POSTHOG-DISTINCT-ID": "user-42"}, upstream)
    assert carried(again) == {"posthog.distinct_id": "user-42"}
    window = PostHogPropagator().extract({"X-POSTHOG-WINDOW-ID": "w" * 9000})
    assert carried(window) == {"posthog.window_id": "w" * 1000}  # bounded as the others


def _request(tracer, headers, body):
    token = attach(W3C_AND_POSTHOG.extract(headers))
    try:
        with tracer.start_as_current_span(
            "GET /cart", kind=SpanKind.SERVER, attributes={"posthog.event": "request"}
        ):
            body()
    finally:
        detach(token)


def test_an_anonymous_visitors_events_are_personless_until_the_app_names_them(
    server, make_pipeline
):
    tracer, processor = make_pipeline()

    def anonymous():
        capture("anon_captured")
        with tracer.start_as_current_span("child", attributes={"posthog.event": "anon_child"}):
            pass

    def identified():
        with identify("user-42"):
            capture("named_captured")
            with tracer.start_as_current_span("child", attributes={"posthog.event": "named_child"}):
                pass

    def explicit():
        capture("explicit_captured", distinct_id=ANON)

    def same_id():
        with identify(ANON):
            capture("same_id_captured")

    for body in (anonymous, identified, explicit, same_id):
        _request(tracer, ANON_BROWSER, body)
    capture("no_span_anon")  # outside: nothing carried, personless by the trace
    _request(tracer, ANON_BROWSER, lambda: None)
    token = attach(W3C_AND_POSTHOG.extract(ANON_BROWSER))
    try:
        capture("no_span_in_request")  # no recording span: straight to the queue
    finally:
        detach(token)
    assert processor.force_flush(10_000)
    events = server.wait_for_events(13)
    personless = {}
    for event in events:
        props = event["properties"]
        if event["event"] != "no_span_anon":
            assert props["$window_id"] == ANON_BROWSER["X-POSTHOG-WINDOW-ID"], event["event"]
            assert props["$session_id"] == ANON_BROWSER["X-POSTHOG-SESSION-ID"], event["event"]
        personless.setdefault(event["event"], set()).add(
            (event["distinct_id"], props.get("$process_person_profile", True))
        )
    assert personless.pop("request") == {(ANON, False), ("user-42", True), (ANON, True)}
    assert personless.pop("no_span_anon") != {(ANON, False)}
    assert personless == {
        "anon_captured": {(ANON, False)},
        "anon_child": {(ANON, False)},
        "named_captured": {("user-42", True)},
        "named_child": {("user-42", True)},
        "explicit_captured": {(ANON, True)},
        "same_id_captured": {(ANON, True)},
        "no_span_in_request": {(ANON, False)},
    }


def test_inject_sends_the_window_on_and_the_next_service_reads_the_same():
    ctx = W3C_AND_POSTHOG.extract(ANON_BROWSER)
    headers: dict[str, str] = {}
    PostHogPropagator().inject(headers, ctx)
    assert headers == ANON_BROWSER
    assert carried(PostHogPropagator().extract(headers)) == carried(ctx)


def test_flask_under_opentelemetry_instrument_links_the_window_and_the_anonymous_visitor(
    server, services
):
    """A real request with posthog-js's three headers into Flask with no code: the
    window on every event; the anonymous visitor personless, the identified one not."""
    flask = services.flask(
        env={"OTEL_PROPAGATORS": "tracecontext,baggage,posthog", "OTEL_BSP_SCHEDULE_DELAY": "100"}
    )
    headers = list(ANON_BROWSER.items())
    assert _get(f"{flask.url}/items/1?capture=details", headers) == 200
    assert _get(f"{flask.url}/items/2?capture=details&user=user-42", headers) == 200
    identified_browser = [(k, "user-7" if "DISTINCT" in k else v) for k, v in headers]
    assert _get(f"{flask.url}/items/3?capture=details", identified_browser) == 200
    events = server.wait_for_events(6, timeout=30)
    got = {
        (e["properties"]["item"], e["event"]): (
            e["distinct_id"],
            e["properties"].get("$process_person_profile", True),
            e["properties"]["$window_id"],
        )
        for e in events
    }
    window = ANON_BROWSER["X-POSTHOG-WINDOW-ID"]
    assert got == {
        (1, "item_viewed"): (ANON, False, window),
        (1, "details"): (ANON, False, window),
        (2, "item_viewed"): ("user-42", True, window),
        (2, "details"): ("user-42", True, window),
        (3, "item_viewed"): ("user-7", True, window),
        (3, "details"): ("user-7", True, window),
    }


def test_log_records_of_the_request_carry_the_window_and_the_anonymous_mark(server, make_pipeline):
    tracer, processor = make_pipeline()
    logger_provider = LoggerProvider(shutdown_on_exit=False)
    logger_provider.add_log_record_processor(PostHogLogProcessor(processor=processor))
    log = logging.getLogger("shop.window")
    log.setLevel(logging.INFO)
    log.propagate = False
    handler = LoggingHandler(logger_provider=logger_provider)
    log.addHandler(handler)
    try:
        _request(tracer, ANON_BROWSER, lambda: log.info("a", extra={"posthog.event": "anon_log"}))

        def named():
            with identify("user-42"):
                log.info("b", extra={"posthog.event": "named_log"})

        _request(tracer, ANON_BROWSER, named)
        token = attach(W3C_AND_POSTHOG.extract(ANON_BROWSER))  # baggage, but no span
        try:
            log.info("c", extra={"posthog.event": "spanless_log"})
        finally:
            detach(token)
    finally:
        log.removeHandler(handler)
    assert processor.force_flush(10_000)
    events = {e["event"]: e for e in server.wait_for_events(5)}
    for name, (user, personless) in {
        "anon_log": (ANON, False),
        "named_log": ("user-42", True),
        "spanless_log": (ANON, False),
    }.items():
        props = events[name]["properties"]
        assert events[name]["distinct_id"] == user
        assert props.get("$process_person_profile", True) is personless
        assert props["$window_id"] == ANON_BROWSER["X-POSTHOG-WINDOW-ID"]
    logger_provider.shutdown()
