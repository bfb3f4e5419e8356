"""The devserver's event viewer, in a real headless Chromium (Debian's chromium package)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator

import pytest

from posthog_otel import PostHogClient
from tests.support.server import API_KEY

CHROMEDRIVER = shutil.which("chromedriver")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

if not (CHROMEDRIVER and CHROMIUM):
    if os.environ.get("CI"):
        raise RuntimeError(
            "CI must run the browser test: install Debian's chromium and chromium-driver"
        )
    pytest.skip(
        "needs chromium and chromedriver (apt-get install chromium chromium-driver)",
        allow_module_level=True,
    )

from selenium import webdriver  # noqa: E402 - only once a browser is known to exist
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

WIDTH = 1280


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-quic",
        f"--window-size={WIDTH},900",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture
def page(server, browser):
    """The viewer, freshly loaded, and a wait that polls often."""
    browser.get(server.url + "/")
    return WebDriverWait(browser, 15, poll_frequency=0.1)


def rows(browser, body: str = "events") -> list[tuple[str, str]]:
    """(event, distinct_id) per row, read in one go: the page may re-render between reads."""
    found = browser.execute_script(
        "return [...document.querySelectorAll(`#${arguments[0]} tr.event`)]"
        ".map(r => [r.dataset.event, r.dataset.person])",
        body,
    )
    return [tuple(row) for row in found]


def cells(browser, selector: str) -> list[str]:
    return browser.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map(c => c.textContent)", selector
    )


def column(browser, kind: str, body: str = "events") -> dict[str, str]:
    """Each row's ``td.<kind>`` text by its event name, read in one go."""
    return browser.execute_script(
        "return Object.fromEntries([...document.querySelectorAll(`#${arguments[0]} tr.event`)]"
        ".map(r => [r.dataset.event, r.querySelector(`td.${arguments[1]}`).textContent]))",
        body,
        kind,
    )


def text_of(browser, selector: str) -> str:
    return browser.execute_script(
        "const el = document.querySelector(arguments[0]); return el ? el.textContent : ''", selector
    )


def send(server, events: list[tuple[str, str, dict]]) -> None:
    """Capture ``events`` and wait until the server stored them."""
    before = server.store.count()
    with PostHogClient(API_KEY, server.url) as client:
        client.batch(events)
    server.wait_for_events(before + len(events))


def test_new_events_appear_live_filtered_on_the_server(server, browser, page):
    send(server, [("signed_up", "alice", {"plan": "pro", "$feature/new-checkout": "test"})])
    send(server, [("page_viewed", "bob", {"path": "/pricing"})])
    page.until(lambda b: rows(b) == [("page_viewed", "bob"), ("signed_up", "alice")])
    assert text_of(browser, ".flag") == 'new-checkout: "test"'

    send(server, [("checkout_completed", "alice", {"total": 59.9})])  # after the page loaded
    page.until(lambda b: rows(b)[:1] == [("checkout_completed", "alice")])

    browser.find_element(By.ID, "filter-distinct-id").send_keys("ALI")
    page.until(lambda b: rows(b) == [("checkout_completed", "alice"), ("signed_up", "alice")])
    browser.find_element(By.ID, "filter-event").send_keys("signed")
    page.until(lambda b: rows(b) == [("signed_up", "alice")])
    browser.find_element(By.CSS_SELECTOR, "#events tr.event").click()
    page.until(lambda b: '"plan": "pro"' in text_of(b, "#events tr.details pre"))

    browser.find_element(By.ID, "filter-text").send_keys("no such thing anywhere")
    page.until(lambda b: rows(b) == [] and text_of(b, "#empty") == "No events match these filters.")


def test_filters_reach_events_older_than_what_is_shown(server, browser, page):
    send(server, [("old_event", "first-user", {"n": 0})])
    send(server, [("tick", f"user-{i}", {"n": i}) for i in range(600)])
    page.until(lambda b: len(rows(b)) == 500)
    assert ("old_event", "first-user") not in rows(browser)
    browser.find_element(By.ID, "filter-distinct-id").send_keys("first-user")
    page.until(lambda b: rows(b) == [("old_event", "first-user")])
    assert "1 matching event" in text_of(browser, "#status")


def test_rows_follow_event_time_or_arrival(server, browser, page):
    late = {"timestamp": "2026-03-01T12:00:00Z"}
    early = {"timestamp": "2026-03-01T09:00:00Z"}
    with PostHogClient(API_KEY, server.url) as client:
        client.capture("happened_late", "u", {}, **late)
        client.capture("happened_early", "u", {}, **early)  # arrives last
    server.wait_for_events(2)
    page.until(lambda b: [e for e, _ in rows(b)] == ["happened_late", "happened_early"])
    assert cells(browser, "#events td.when") == [
        "2026-03-01 12:00:00.000",
        "2026-03-01 09:00:00.000",
    ]
    Select(browser.find_element(By.ID, "order")).select_by_value("arrival")
    page.until(lambda b: [e for e, _ in rows(b)] == ["happened_early", "happened_late"])


def test_previews_show_what_matters_for_each_event(server, browser, page):
    send(
        server,
        [
            (
                "$ai_generation",
                "alice",
                {
                    "$ai_model": "gpt-4o-mini",
                    "$ai_input_tokens": 120,
                    "$ai_output_tokens": 48,
                    "$ai_latency": 1.234,
                    "$ai_provider": "openai",
                },
            ),
            (
                "$feature_flag_called",
                "alice",
                {"$feature_flag": "new-checkout", "$feature_flag_response": "test"},
            ),
            ("$exception", "alice", {"$exception_list": [{"type": "KeyError", "value": "'sku'"}]}),
            (
                "order_placed",
                "alice",
                {"service.name": "shop", "http.route": "/orders", "order.total": 42, "$lib": "x"},
            ),
            (
                "page_viewed",
                "0190e7c4-7a10-7000-8000-1d2e3f4a5b6c",
                {"$process_person_profile": False},
            ),
        ],
    )
    page.until(lambda b: len(rows(b)) == 5)
    previews = column(browser, "preview")
    assert previews["$ai_generation"] == "model=gpt-4o-mini  tokens=120 in, 48 out  latency=1.23 s"
    assert previews["$feature_flag_called"] == "flag=new-checkout  response=test"
    assert previews["$exception"] == "KeyError: 'sku'"
    # The event's own properties before the conventions (service.*, http.*), no $-keys.
    assert previews["order_placed"] == "order.total=42  service.name=shop  http.route=/orders"
    people = column(browser, "person")
    assert people["page_viewed"] == "anonymous0190e7c4-7a10-7000-8000-1d2e3f4a5b6c"
    assert people["order_placed"] == "alice"


def test_long_values_stay_in_the_window_and_in_full_when_expanded(server, browser, page):
    blob = "x" * 5000
    send(server, [("e" * 300, "d" * 150, {"blob": blob, "$feature/" + "f" * 200: "v" * 300})])
    page.until(lambda b: len(rows(b)) == 1)
    width = browser.execute_script("return document.documentElement.clientWidth")
    assert width <= WIDTH
    assert browser.execute_script("return document.documentElement.scrollWidth") <= width
    browser.find_element(By.CSS_SELECTOR, "#events tr.event").click()
    page.until(lambda b: text_of(b, "#events tr.details pre"))
    assert json.loads(text_of(browser, "#events tr.details pre"))["properties"]["blob"] == blob
    assert browser.execute_script("return document.documentElement.scrollWidth") <= width
    icon = browser.execute_script(
        "const r = await fetch(document.querySelector('link[rel=icon]').href);"
        "return [r.status, r.headers.get('content-type')]"
    )
    assert icon == [200, "image/svg+xml"]


def test_a_trace_shows_every_service_span_person_and_flag(server, browser, page):
    from opentelemetry import propagate
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    from posthog_otel import PostHogFlagProvider, PostHogSpanProcessor, capture, identify

    server.set_flags({"new-checkout": "test"})
    services = {}
    for name in ("shop", "inventory"):
        client = PostHogClient(API_KEY, server.url)
        processor = PostHogSpanProcessor(client, flush_interval=0.05)
        provider = TracerProvider(resource=Resource.create({"service.name": name}))
        provider.add_span_processor(processor)
        services[name] = (provider, processor, client)
    shop, inventory = (services[n][0].get_tracer("test") for n in ("shop", "inventory"))
    flags = PostHogFlagProvider(services["shop"][2], processor=services["shop"][1])
    carrier: dict[str, str] = {}
    with identify("alice"):
        with shop.start_as_current_span(
            "GET /checkout", attributes={"posthog.event": "checkout_started"}
        ):
            flags.get_flag("new-checkout")
            capture("cart_viewed", {"items": 2})
            propagate.inject(carrier)  # what an instrumented HTTP client sends
    with inventory.start_as_current_span(
        "POST /reserve",
        context=propagate.extract(carrier),
        attributes={"posthog.event": "stock_reserved", "sku": "TEE-1"},
    ):
        pass
    for provider, _, client in services.values():
        provider.shutdown()
        client.close()
    stored = server.wait_for_events(4)
    trace_id = next(e for e in stored if e["event"] == "stock_reserved")["properties"]["$trace_id"]
    send(server, [("unrelated", "bob", {"$trace_id": "another-trace"})])

    page.until(lambda b: len(rows(b)) == 5)
    link = browser.find_element(
        By.CSS_SELECTOR, "#events tr.event[data-event='stock_reserved'] td.trace a"
    )
    assert link.text == trace_id[:8]
    link.click()
    page.until(lambda b: len(rows(b, "trace-events")) == 4)
    assert text_of(browser, "#trace-id") == trace_id
    events = [e for e, _ in rows(browser, "trace-events")]
    by_time = sorted(stored, key=lambda e: e["timestamp"])
    assert events == [e["event"] for e in by_time if e["event"] != "unrelated"]
    assert {p for _, p in rows(browser, "trace-events")} == {"alice"}
    spans = column(browser, "span", "trace-events")
    assert spans["stock_reserved"].startswith("POST /reserve")
    assert spans["cart_viewed"].startswith("GET /checkout")  # the span it was captured in
    services_shown = column(browser, "service", "trace-events")
    assert services_shown["stock_reserved"] == "inventory"
    assert services_shown["checkout_started"] == "shop"
    flags_shown = column(browser, "flags", "trace-events")
    assert flags_shown["checkout_started"] == 'new-checkout: "test"'
    summary = text_of(browser, "#trace-summary")
    assert "from 2 services (" in summary
    assert "people: alice" in summary
    assert 'new-checkout="test"' in summary

    browser.find_element(By.ID, "trace-back").click()
    page.until(lambda b: len(rows(b)) == 5)


HOSTILE = '"><img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'


def test_hostile_values_stay_inert_text(server, browser, page):
    send(
        server,
        [
            (
                HOSTILE,
                HOSTILE,
                {
                    HOSTILE: HOSTILE,
                    "$feature/" + HOSTILE: HOSTILE,
                    "$trace_id": HOSTILE,
                    "$otel_span_name": HOSTILE,
                    "service.name": HOSTILE,
                },
            )
        ],
    )
    page.until(lambda b: len(rows(b)) == 1)
    assert rows(browser) == [(HOSTILE, HOSTILE)]
    assert text_of(browser, "#events td.name") == HOSTILE
    assert HOSTILE in text_of(browser, "#events td.preview")
    browser.find_element(By.CSS_SELECTOR, "#events td.trace a").click()
    page.until(lambda b: len(rows(b, "trace-events")) == 1)
    assert text_of(browser, "#trace-id") == HOSTILE
    assert text_of(browser, "#trace-events td.span").startswith(HOSTILE)
    injected = browser.execute_script(
        "return [window.__pwned, document.querySelectorAll('main img, main script').length]"
    )
    assert injected == [None, 0]


def test_requests_the_server_does_not_speak_are_shown(server, browser, page):
    import urllib.error
    import urllib.request

    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(server.url + "/array/phc_web/config", timeout=10)
    page.until(lambda b: not b.find_element(By.ID, "not-spoken").get_attribute("hidden"))
    assert "GET /array/phc_web/config (1)" in text_of(browser, "#not-spoken")


def test_an_exception_shows_its_frames_and_context_lines(server, browser, page):
    frame = {
        "filename": "app/config.py",
        "function": "parse_config",
        "lineno": 12,
        "in_app": True,
        "pre_context": ["def parse_config(text):"],
        "context_line": "    return int(text)",
        "post_context": ["", "def start():"],
        "code_variables": {"text": "'not a number'"},
    }
    library = {"filename": "flask/app.py", "function": "dispatch", "lineno": 80, "in_app": False}
    entry = {
        "type": "ValueError",
        "value": "invalid literal",
        "mechanism": {"type": "sys.excepthook", "handled": False},
        "stacktrace": {"type": "raw", "frames": [library, frame]},
    }
    send(server, [("$exception", "alice", {"$exception_list": [entry]})])
    page.until(lambda b: len(rows(b)) == 1)
    browser.find_element(By.CSS_SELECTOR, "#events tr.event").click()
    page.until(lambda b: text_of(b, "#events tr.details .stack"))
    assert text_of(browser, ".stack .exception") == "ValueError: invalid literal (sys.excepthook)"
    frames = browser.execute_script(
        "return [...document.querySelectorAll('.stack .frame')].map(f => [f.className, "
        "f.firstChild.textContent])"
    )
    assert frames == [
        ["frame", "flask/app.py:80 in dispatch"],
        ["frame in-app", "app/config.py:12 in parse_config"],
    ]
    assert text_of(browser, ".stack pre.context") == (
        "  def parse_config(text):\n>     return int(text)\n  \n  def start():"
    )
    assert text_of(browser, ".stack pre.variables") == "text = 'not a number'"


# --- OpenTelemetry's spans and log lines: a trace's waterfall, a person's page ---------------

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
ROOT, CHILD, GRANDCHILD, SIBLING = (
    "00f067aa0ba902b7",
    "00f067aa0ba902b8",
    "00f067aa0ba902b9",
    "00f067aa0ba902ba",
)
BASE = 1_700_000_000_000_000_000  # ns; 2023-11-14T22:13:20Z
MS = 1_000_000


def post_otlp(server, signal: str, body: dict) -> None:
    import urllib.request

    request = urllib.request.Request(
        f"{server.url}/i/v1/{signal}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {API_KEY}"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200


def otlp_span(span_id, parent, name, start_ms, end_ms, **extra):
    return {
        "traceId": TRACE,
        "spanId": span_id,
        "parentSpanId": parent,
        "name": name,
        "startTimeUnixNano": str(BASE + start_ms * MS),
        "endTimeUnixNano": str(BASE + end_ms * MS),
        "attributes": [{"key": "posthogDistinctId", "value": {"stringValue": "alice"}}],
        **extra,
    }


def otlp_log(body, severity, at_ms, span_id="", distinct_id=None):
    attributes = []
    if distinct_id:
        attributes.append({"key": "posthogDistinctId", "value": {"stringValue": distinct_id}})
    return {
        "timeUnixNano": str(BASE + at_ms * MS),
        "severityNumber": severity,
        "body": {"stringValue": body},
        "attributes": attributes,
        "traceId": TRACE if span_id else "",
        "spanId": span_id,
    }


def store_a_trace(server) -> None:
    """Four spans over 100 ms (a sibling named to break the page if it could), an event in
    the second, a log line in the third and one outside every span."""
    from datetime import datetime, timezone

    spans = [
        otlp_span(SIBLING, ROOT, HOSTILE, 75, 95),
        otlp_span(GRANDCHILD, CHILD, "POST /stripe", 30, 60),
        otlp_span(CHILD, ROOT, "charge card", 20, 70, status={"code": 2, "message": "declined"}),
        otlp_span(ROOT, "", "GET /checkout", 0, 100),
    ]
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": "shop"}}]}
    post_otlp(
        server,
        "traces",
        {"resourceSpans": [{"resource": resource, "scopeSpans": [{"spans": spans}]}]},
    )
    logs = [
        otlp_log("card declined", 17, 50, GRANDCHILD, "alice"),
        otlp_log(HOSTILE, 5, 98, "0000000000000001"),
    ]
    post_otlp(server, "logs", {"resourceLogs": [{"scopeLogs": [{"logRecords": logs}]}]})
    when = datetime.fromtimestamp((BASE + 25 * MS) / 1e9, tz=timezone.utc).isoformat()
    properties = {"$trace_id": TRACE, "$span_id": CHILD}
    with PostHogClient(API_KEY, server.url) as client:
        client.capture("checkout_started", "alice", properties, timestamp=when)
    server.wait_for_events(1)


def waterfall(browser) -> list[dict]:
    return browser.execute_script(
        "return [...document.querySelectorAll('#waterfall .span-row[data-span-id]')].map(r => ({"
        "id: r.dataset.spanId, depth: Number(r.dataset.depth),"
        "name: r.querySelector('.span-name').textContent,"
        "left: parseFloat(r.querySelector('.bar').style.left),"
        "width: parseFloat(r.querySelector('.bar').style.width),"
        "error: r.querySelector('.bar').classList.contains('error'),"
        "events: [...r.querySelectorAll('.mark.event')].map(m => [m.dataset.event, parseFloat(m.style.left)]),"
        "logs: [...r.querySelectorAll('.mark.log')].map(m => [m.dataset.level, parseFloat(m.style.left)])}))"
    )


def test_a_trace_is_a_waterfall_with_its_events_and_log_lines_on_it(server, browser):
    store_a_trace(server)
    browser.get(f"{server.url}/#trace={TRACE}")
    wait = WebDriverWait(browser, 15, poll_frequency=0.1)
    wait.until(lambda b: len(waterfall(b)) == 4)
    shown = waterfall(browser)
    # Nested by parent, siblings by start: root, its first child and grandchild, then the sibling.
    assert [(s["id"], s["depth"]) for s in shown] == [
        (ROOT, 0),
        (CHILD, 1),
        (GRANDCHILD, 2),
        (SIBLING, 1),
    ]
    assert [s["name"] for s in shown] == ["GET /checkout", "charge card", "POST /stripe", HOSTILE]
    # Bars by start and duration, as a share of the trace's 100 ms.
    bars = [(round(s["left"], 3), round(s["width"], 3)) for s in shown]
    assert bars == [(0, 100), (20, 50), (30, 30), (75, 20)]
    assert [s["error"] for s in shown] == [False, True, False, False]
    # The event sits in its span's row at its time; the log line in its span's row.
    assert [(e, round(x, 3)) for e, x in shown[1]["events"]] == [("checkout_started", 25)]
    assert [(lv, round(x, 3)) for lv, x in shown[2]["logs"]] == [("error", 50)]
    assert sum(len(s["events"]) + len(s["logs"]) for s in shown) == 2
    # The log line of a span not stored is on a row of its own.
    loose = browser.execute_script(
        "return [...document.querySelectorAll('#waterfall .loose .mark.log')].map(m => m.title)"
    )
    assert len(loose) == 1 and HOSTILE in loose[0]
    assert "4 spans · 2 log lines" in text_of(browser, "#trace-summary")
    logs = cells(browser, "#trace-logs td.preview")
    assert logs == ["card declined", HOSTILE]
    assert cells(browser, "#trace-logs td.span") == ["POST /stripe", "0000000000000001"]
    assert cells(browser, "#trace-logs td.offset") == ["+50", "+98"]
    assert rows(browser, "trace-events") == [("checkout_started", "alice")]
    injected = browser.execute_script(
        "return [window.__pwned, document.querySelectorAll('main img, main script').length]"
    )
    assert injected == [None, 0]


def test_a_person_page_shows_their_events_traces_and_log_lines(server, browser):
    store_a_trace(server)
    send(server, [("signed_up", "bob", {})])
    browser.get(server.url + "/")
    wait = WebDriverWait(browser, 15, poll_frequency=0.1)
    wait.until(lambda b: len(rows(b)) == 2)
    browser.find_element(
        By.CSS_SELECTOR, "#events tr.event[data-person='alice'] td.person a.id"
    ).click()
    wait.until(lambda b: len(rows(b, "person-events")) == 1)
    assert text_of(browser, "#person-id") == "alice"
    assert rows(browser, "person-events") == [("checkout_started", "alice")]
    wait.until(lambda b: cells(b, "#person-traces td.trace-id") == [TRACE])
    assert cells(browser, "#person-traces td.name") == ["GET /checkout"]
    assert cells(browser, "#person-traces td.count") == ["4", "1", "100.0 ms"]
    assert cells(browser, "#person-logs td.preview") == ["card declined"]  # only alice's
    assert cells(browser, "#person-logs td.level") == ["error"]
    assert text_of(browser, "#person-summary").startswith("1 events · 1 traces · 1 log lines")
    assert browser.find_element(By.ID, "list-view").get_attribute("hidden")
    browser.find_element(By.CSS_SELECTOR, "#person-traces td.trace-id a").click()
    wait.until(lambda b: len(waterfall(b)) == 4)
    assert text_of(browser, "#trace-id") == TRACE
    browser.find_element(By.ID, "trace-back").click()
    wait.until(lambda b: len(rows(b)) == 2)
