"""Web properties from server spans, and URLs without their credentials (pure, no I/O).

The attribute sets in the first table are what the Flask (WSGI) and FastAPI (ASGI)
instrumentations record, in each semantic-convention mode; test_frameworks.py checks
the same against the real frameworks.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.trace import SpanKind

from posthog_otel._mapping.convention import DEFAULT_DENYLIST, denylist_pattern
from posthog_otel._mapping.spans import MappingOptions, SpanMapper
from posthog_otel._mapping.web import redact_query, redact_url, web_properties
from tests.support.spans import recording

DENY = denylist_pattern(DEFAULT_DENYLIST)
SHOP = "http://shop.example:8080/items/3?token=REDACTED&page=2"

WSGI_OLD = {
    "http.scheme": "http",
    "http.server_name": "shop.example",
    "net.host.name": "shop.example:8080",
    "http.host": "shop.example:8080",
    "net.host.port": 8080,
    "http.target": "/items/3?token=zqx&page=2",
}
STABLE = {  # WSGI and ASGI alike: server.address is the Host header, port included
    "url.scheme": "http",
    "server.address": "shop.example:8080",
    "server.port": 8080,
    "url.path": "/items/3",
    "url.query": "token=zqx&page=2",
}
ASGI_OLD = {
    "http.scheme": "http",
    "http.host": "shop.example:8080",
    "net.host.port": 8080,
    "http.target": "/items/3",
    "http.url": "http://shop.example:8080/items/3?token=zqx&page=2",
    "http.server_name": "shop.example:8080",
}


@pytest.mark.parametrize(
    ("attrs", "url", "host", "path"),
    [
        pytest.param(WSGI_OLD, SHOP, "shop.example:8080", "/items/3", id="flask-default"),
        pytest.param(STABLE, SHOP, "shop.example:8080", "/items/3", id="stable-http"),
        pytest.param(ASGI_OLD, SHOP, "shop.example:8080", "/items/3", id="fastapi-default"),
        pytest.param({**WSGI_OLD, **STABLE}, SHOP, "shop.example:8080", "/items/3", id="http/dup"),
        pytest.param(
            {
                "url.scheme": "https",
                "server.address": "shop.example",
                "server.port": 443,
                "url.path": "/",
            },
            "https://shop.example/",
            "shop.example",
            "/",
            id="default-port-omitted",
        ),
        pytest.param(
            {
                "url.scheme": "HTTPS",
                "server.address": "shop.example",
                "server.port": 8443,
                "url.path": "/a",
            },
            "https://shop.example:8443/a",
            "shop.example:8443",
            "/a",
            id="other-port-kept",
        ),
        pytest.param(
            {"http.scheme": "http", "http.host": "shop.example:80", "http.target": "/"},
            "http://shop.example/",
            "shop.example",
            "/",
            id="host-header-default-port",
        ),
        pytest.param(
            {"url.scheme": "http", "server.address": "::1", "server.port": 8080, "url.path": "/x"},
            "http://[::1]:8080/x",
            "[::1]:8080",
            "/x",
            id="ipv6-bracketed",
        ),
        pytest.param(
            {"http.scheme": "http", "http.host": "[::1]:8080", "http.target": "/x"},
            "http://[::1]:8080/x",
            "[::1]:8080",
            "/x",
            id="ipv6-host-header",
        ),
        pytest.param(
            {
                "http.scheme": "http",
                "net.host.name": "api.internal",
                "net.host.port": 5000,
                "http.target": "/v1",
            },
            "http://api.internal:5000/v1",
            "api.internal:5000",
            "/v1",
            id="net-host-name",
        ),
        pytest.param(
            {"http.scheme": "https", "http.server_name": "shop.example", "http.target": "/q?x=1"},
            "https://shop.example/q?x=1",
            "shop.example",
            "/q",
            id="server-name-last",
        ),
        pytest.param(
            {"server.address": "shop.example", "url.path": "/a"},
            None,
            "shop.example",
            "/a",
            id="no-scheme-no-url",
        ),
        pytest.param(
            {"http.scheme": "http", "http.target": "http://shop.example/p?api_key=k"},
            "http://shop.example/p?api_key=REDACTED",
            "shop.example",
            "/p",
            id="absolute-form-target",
        ),
        pytest.param(
            {"url.full": "https://ann:pw@shop.example/cart?password=x#top", "url.path": "/cart"},
            "https://REDACTED:REDACTED@shop.example/cart?password=REDACTED#top",
            "shop.example",
            "/cart",
            id="user-info",
        ),
        pytest.param(
            {"http.url": "http://h:1/checkout?x=1"},
            "http://h:1/checkout?x=1",
            "h:1",
            "/checkout",
            id="path-from-url",
        ),
        pytest.param(
            {"http.url": "http://[::1/x?token=1"},
            "http://[::1/x?token=REDACTED",
            "[::1",
            "/x",
            id="malformed-url-does-not-raise",
        ),
        pytest.param({"http.method": "GET"}, None, None, None, id="nothing-to-go-on"),
    ],
)
def test_web_properties_from_every_framework_and_convention(attrs, url, host, path):
    found = web_properties(attrs, DENY)
    assert (found.get("$current_url"), found.get("$host"), found.get("$pathname")) == (
        url,
        host,
        path,
    )


@pytest.mark.parametrize(
    ("query", "redacted"),
    [
        ("token=zqx&page=2", "token=REDACTED&page=2"),
        ("page=2&Password=x", "page=2&Password=REDACTED"),
        (
            "access_token=a&accessToken=b&api-key=c&X-API-Key=d",
            "access_token=REDACTED&accessToken=REDACTED&api-key=REDACTED&X-API-Key=REDACTED",
        ),
        (
            "user[password]=x&user%5Bpassword%5D=y",
            "user[password]=REDACTED&user%5Bpassword%5D=REDACTED",
        ),
        ("api%5Fkey=x&client+secret=y", "api%5Fkey=REDACTED&client+secret=REDACTED"),
        ("token_count=3&q=token", "token_count=3&q=token"),
        ("token&token=&a=1&&b==2", "token&token=&a=1&&b==2"),
        ("", ""),
    ],
)
def test_credential_query_parameters_keep_their_name_and_lose_their_value(query, redacted):
    assert redact_query(query, DENY) == redacted


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("https://u:p@h/x?token=1#frag", "https://REDACTED:REDACTED@h/x?token=REDACTED#frag"),
        ("https://ghp_secret@h/", "https://REDACTED@h/"),
        ("https://a@b@h?x=1", "https://REDACTED@h?x=1"),
        ("/path?secret=1&b=2", "/path?secret=REDACTED&b=2"),
        ("/a@b/c?x=1", "/a@b/c?x=1"),
        ("/x#token=1?token=2", "/x#token=1?token=2"),
        ("http://h/p?q=1", "http://h/p?q=1"),
    ],
)
def test_urls_lose_user_info_and_credential_parameters(url, redacted):
    assert redact_url(url, DENY) == redacted


def test_the_users_denylist_decides_what_is_redacted():
    custom = denylist_pattern(["session"])
    assert redact_query("session=s&token=t", custom) == "session=REDACTED&token=t"
    assert redact_url("https://u:p@h/?token=t", None) == "https://u:p@h/?token=t"
    assert web_properties(WSGI_OLD, None)["$current_url"].endswith("?token=zqx&page=2")


CREDENTIALS = {"token": True, "accessToken": True, "user[password]": True, "X-Api-Key": True}
PLAIN = {"page": False, "token_count": False, "q": False, "tokens": False}


@given(
    st.lists(
        st.tuples(
            st.sampled_from(sorted({**CREDENTIALS, **PLAIN})),
            st.text(alphabet="xyz019%+:/?", min_size=1, max_size=8),
        ),
        max_size=6,
    )
)
def test_redaction_keeps_order_and_names_and_changes_only_credential_values(params):
    query = "&".join(f"{name}={value}" for name, value in params)
    expected = "&".join(f"{n}={'REDACTED' if CREDENTIALS.get(n) else v}" for n, v in params)
    assert redact_query(query, DENY) == expected


def test_every_url_bearing_attribute_is_redacted_on_every_span():
    """Server and client spans alike: the properties never carry the token."""
    mapper = SpanMapper(MappingOptions(denylist=DENY))
    attrs = {
        "posthog.event": "e",
        **ASGI_OLD,
        **STABLE,
        **WSGI_OLD,
        "url.full": ASGI_OLD["http.url"],
    }
    with recording() as (tracer, ended):
        for kind in (SpanKind.SERVER, SpanKind.CLIENT):
            with tracer.start_as_current_span("GET", kind=kind, attributes=attrs) as span:
                span.add_event("viewed", {"posthog.event": "viewed"})
    events = [event for span in ended() for event in mapper.map_span(span)]
    assert len(events) == 4
    for event in events:
        values = [v for v in event["properties"].values() if isinstance(v, str)]
        assert not [v for v in values if "zqx" in v], event["properties"]
    server = events[1]["properties"]
    assert server["$current_url"] == SHOP
    assert server["url.query"] == "token=REDACTED&page=2"
    assert server["http.target"] == "/items/3?token=REDACTED&page=2"
    assert server["url.full"] == server["http.url"] == SHOP
    assert events[0]["properties"]["$current_url"] == SHOP  # the span event's context
    assert events[3]["properties"]["url.full"] == SHOP  # a client span's own URL


def test_nothing_is_redacted_when_the_denylist_is_off():
    mapper = SpanMapper(MappingOptions(denylist=None))
    with recording() as (tracer, ended):
        with tracer.start_as_current_span(
            "GET", kind=SpanKind.SERVER, attributes={"posthog.event": "e", **STABLE}
        ):
            pass
    (event,) = mapper.map_span(ended()[0])
    assert event["properties"]["url.query"] == "token=zqx&page=2"
    assert (
        event["properties"]["$current_url"] == "http://shop.example:8080/items/3?token=zqx&page=2"
    )
