"""What every mapping shares: the reserved keys, the credential denylist, and
deterministic uuids and timestamps. Pure: no I/O.

Every key starting ``posthog.`` is reserved: it steers the mapping and is never
sent as a property. See docs/tracing.md's convention table for the contract.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from typing import Any

from posthog_otel._mapping.bounds import Trims, clip, decode_json

TAG = "posthog.event"
DISTINCT_ID = "posthog.distinct_id"
PROPERTIES = "posthog.properties"
SESSION_ID = "posthog.session_id"
# The browser window (tab) of the session: posthog-js's X-POSTHOG-WINDOW-ID, as $window_id.
WINDOW_ID = "posthog.window_id"
# The distinct id posthog-js made for an anonymous visitor, as its header brought it: an
# event of exactly this user is personless (``$process_person_profile: false``), as
# posthog-js marks its own; "" once the app names the user itself.
ANONYMOUS_ID = "posthog.anonymous_id"
SET_PREFIX = "posthog.set."
SET_ONCE_PREFIX = "posthog.set_once."
GROUPS_PREFIX = "posthog.groups."
RESERVED_PREFIX = "posthog."
FLAG_EVALUATION = "feature_flag.evaluation"
USER_ID_KEYS = ("enduser.id", "user.id")

# Credentials by the last word of the key: ``http.request.header.authorization``,
# ``db.password``, ``x-api-key``, ``accessToken``; but not ``token_count``.
DEFAULT_DENYLIST = (
    "authorization",
    "cookie",
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "private_key",
    "credentials",
)


def denylist_pattern(words: Iterable[str] | re.Pattern[str] | None) -> re.Pattern[str] | None:
    """A pattern matching keys whose last word is one of ``words`` (any case or style)."""
    if words is None or isinstance(words, re.Pattern):
        return words
    alternatives = sorted({re.escape(normalise_key(w)).replace("_", "[._-]?") for w in words})
    if not alternatives:
        return None
    return re.compile(rf"(?:^|[._\-\s])(?:{'|'.join(alternatives)})$")


def normalise_key(key: str) -> str:
    """``accessToken`` and ``X-API-Key`` become ``access_token`` and ``x-api-key``."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", key).lower()


def event_uuid(trace_hex: str, span_hex: str, trace_id: int, position: int) -> str:
    """Deterministic, so exporting a span twice gives the same uuids and PostHog keeps one.

    An RFC 9562 version 8 uuid: the span id's bits, then the trace id's low bits with the
    event's ``position`` in the span mixed in (``SPAN_EVENT``, ...). Spans' ids are random,
    so these are as unique as random uuids, and cost no hashing."""
    low = trace_hex[20:] if not position else "%012x" % ((trace_id ^ position) & _LOW_48)
    variant = _VARIANT[trace_hex[16]]
    return f"{span_hex[:8]}-{span_hex[8:12]}-8{span_hex[13:16]}-{variant}{trace_hex[17:20]}-{low}"


# Positions of a span's events, for event_uuid: its own event, its GenAI event, and
# for span event i, 2 + 2i (the tagged event) and 3 + 2i (its $exception).
OWN_EVENT, GENAI_EVENT = 0, 1
_LOW_48 = (1 << 48) - 1


def span_event_position(index: int, *, exception: bool = False) -> int:
    return 2 + 2 * index + (1 if exception else 0)


_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}  # RFC 4122 variant bits


class IsoClock:
    """ISO 8601 from nanoseconds, reusing the formatted second (events cluster in time)."""

    def __init__(self) -> None:
        self._second = (-1, "")

    def iso(self, ns: int) -> str:
        second = ns // 1_000_000_000
        cached = self._second
        if cached[0] != second:
            cached = (second, time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second)))
            self._second = cached
        return cached[1] + "%06d+00:00" % (ns // 1000 % 1_000_000)  # noqa: UP031 - fastest


def note_flag_evaluation(
    attrs: Mapping[str, Any], flags: dict[str, Any], trims: Trims | None = None
) -> None:
    """Read a ``feature_flag.evaluation`` event, from us or another provider.

    The value wins over the variant (OpenFeature's hook JSON-encodes the value and
    may name a variant that is not PostHog's value); an evaluation that failed
    (``error.type``) exposed the user to nothing and is skipped. The value is
    decoded and clipped within the bounds of ``_limits`` (cuts noted in ``trims``).
    """
    key = attrs.get("feature_flag.key")
    if not isinstance(key, str) or not key or "error.type" in attrs:
        return
    trims = trims if trims is not None else Trims()
    value = attrs.get("feature_flag.result.value")
    if isinstance(value, str):
        value = decode_json(value, trims, any_json=True)
    value = clip(value, trims)
    if value is None:
        for name in ("feature_flag.result.variant", "feature_flag.variant"):
            variant = attrs.get(name)
            if isinstance(variant, str) and variant:
                value = variant
                break
    if value is not None:
        flags[key] = value
