"""Who a flag lookup is for, and its context checked into the JSON form PostHog sees.

The distinct id is the one given, else the identity in the current OpenTelemetry
context: the current span's ``posthog.distinct_id``, ``identify()``'s baggage, then
``enduser.id``/``user.id``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry import baggage, trace

from posthog_otel import _otel
from posthog_otel._client.events import check_distinct_id, check_groups, check_properties
from posthog_otel._mapping.convention import DISTINCT_ID, USER_ID_KEYS

__all__ = ["Checked", "Properties", "checked_context", "distinct_id_for"]

Properties = Mapping[str, Any]
Checked = tuple[dict[str, str] | None, Properties | None, Mapping[str, Properties] | None]


def distinct_id_for(distinct_id: str | None) -> str:
    """``distinct_id`` checked, or the one in the current context; ``ValueError`` if none."""
    if distinct_id is not None:
        return check_distinct_id(distinct_id)
    span = trace.get_current_span()
    attrs = _otel.attributes_of(span) if span.is_recording() else {}
    tagged = attrs.get(DISTINCT_ID)
    if isinstance(tagged, str) and tagged:
        return tagged
    carried = baggage.get_baggage(DISTINCT_ID)
    if isinstance(carried, str) and carried:
        return carried
    for name in USER_ID_KEYS:
        value = attrs.get(name)
        if isinstance(value, str) and value:
            return value
    raise ValueError(
        "no distinct_id given and none in the current context: pass distinct_id=, or "
        "wrap the request in identify(user_id)"
    )


def checked_context(
    groups: Mapping[str, str] | None,
    person_properties: Properties | None,
    group_properties: Mapping[str, Properties] | None,
) -> Checked:
    """The arguments, checked, and in the JSON form PostHog would see them in."""
    if person_properties and not _plain(person_properties):
        person_properties = check_properties(person_properties, "person_properties")
    if group_properties:
        group_properties = check_properties(group_properties, "group_properties")
    return (check_groups(groups) if groups else None), person_properties, group_properties


_PLAIN = frozenset({str, int, bool, type(None)})


def _plain(properties: Any) -> bool:
    """Whether ``properties`` are already what ``check_properties`` would make of them (a
    dict of strings to strings, integers, booleans or ``None``): the common case, and
    worth the shortcut on a lookup that takes microseconds."""
    if type(properties) is not dict:
        return False
    for key, value in properties.items():
        if type(key) is not str or type(value) not in _PLAIN:
            return False
    return True
