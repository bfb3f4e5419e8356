"""Property-based: no attribute value, however odd, makes the pipeline raise or send bad JSON."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from posthog_otel import PostHogClient
from posthog_otel._client.client import connection_of
from posthog_otel._mapping.convention import DEFAULT_DENYLIST, denylist_pattern
from posthog_otel._mapping.spans import MappingOptions, SpanMapper
from posthog_otel._pipeline.delivery import Delivery
from posthog_otel._pipeline.stats import Stats
from tests.support.spans import recording

scalars = (
    st.text()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.booleans()
    | st.none()
    | st.binary(max_size=20)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
keys = st.text(min_size=1, max_size=30) | st.sampled_from(
    [
        "posthog.event",
        "posthog.distinct_id",
        "posthog.properties",
        "posthog.session_id",
        "posthog.set.email",
        "posthog.groups.company",
        "enduser.id",
        "user.id",
        "session.id",
        "url.full",
        "exception.stacktrace",
    ]
)
attribute_maps = st.dictionaries(keys, values, max_size=10)

DELIVERY = Delivery(
    connection_of(PostHogClient("phc_never_used", "http://127.0.0.1:9")),
    Stats(),
    SpanMapper(
        MappingOptions(capture_exceptions=True, denylist=denylist_pattern(DEFAULT_DENYLIST))
    ),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(span_attributes=attribute_maps, event_attributes=attribute_maps, tagged=st.booleans())
def test_mapping_never_raises_and_always_encodes_valid_json(
    span_attributes, event_attributes, tagged
):
    with recording() as (tracer, ended):
        with tracer.start_as_current_span("s", attributes=span_attributes) as span:
            if tagged:
                event_attributes = {**event_attributes, "posthog.event": "e"}
            span.add_event("exception", event_attributes)
        (readable,) = ended()
    for encoded in DELIVERY.encode_item(readable):
        event = json.loads(encoded)
        assert isinstance(event["event"], str) and event["event"]
        assert isinstance(event["distinct_id"], str) and event["distinct_id"]
        assert isinstance(event["properties"], dict)
        assert not any(k.startswith("posthog.") for k in event["properties"])
