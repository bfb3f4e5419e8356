"""From tagged attributes to a PostHog event: what spans, span events and log records share.

Splitting attributes into properties, reserved ``posthog.*`` values and denied
credentials; identity, groups and session from the reserved values; and the event
dict itself. Pure: no I/O. The reserved keys are in ``convention``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from posthog_otel._limits import MAPPING_KEY_SETS, MAX_STRING_LENGTH
from posthog_otel._mapping.bounds import Trims, clip, decode_json, is_plain_sequence
from posthog_otel._mapping.convention import (
    ANONYMOUS_ID,
    DISTINCT_ID,
    GROUPS_PREFIX,
    PROPERTIES,
    RESERVED_PREFIX,
    SESSION_ID,
    SET_ONCE_PREFIX,
    SET_PREFIX,
    TAG,
    USER_ID_KEYS,
    WINDOW_ID,
    IsoClock,
    normalise_key,
)
from posthog_otel._mapping.genai import CONTENT_EVENTS, is_content
from posthog_otel._mapping.web import URL_ATTRIBUTES, redact_attribute
from posthog_otel._version import LIB, __version__

__all__ = [
    "NEEDS_GROUPS",
    "EventBuilder",
    "InvalidTagError",
    "MappingOptions",
    "anonymous",
    "groups",
    "identity_or_error",
    "note_problem",
    "session",
    "window",
]


class InvalidTagError(ValueError):
    """A reserved ``posthog.*`` attribute holds a value the convention cannot use."""


# What an attribute key is, decided once per key: a property, a credential to drop, a URL
# to redact, or reserved (bit flags, so one pass over the keys says what the event needs:
# groups, the people properties, the JSON properties).
_PLAIN, _DENIED, _URL = 0, -1, -2
_RESERVED, NEEDS_GROUPS, _NEEDS_PEOPLE, _NEEDS_JSON = 1, 2, 4, 8
_SCALARS = frozenset({int, float, bool, type(None)})
_SCALARS_AND_STR = _SCALARS | {str}


@dataclass(frozen=True)
class MappingOptions:
    capture_exceptions: bool = False
    include_resource_attributes: bool = False
    denylist: re.Pattern[str] | None = None
    llm_analytics: bool = True  # GenAI spans become $ai_* events (see ``genai``)
    privacy_mode: bool = False  # ... and no event with prompts, outputs, tool calls (any)


class EventBuilder:
    """Splits attribute sets and builds events; remembers what each key is.

    One per mapper, used from one thread at a time (the worker's, or an export's).
    Every value taken from attributes is clipped to the bounds in ``_limits``; what was
    cut is noted in ``trims``. With ``privacy_mode``, GenAI content keys are denied like
    credentials, in every event.
    """

    def __init__(self, options: MappingOptions, trims: Trims | None = None) -> None:
        self.trims = trims if trims is not None else Trims()
        self._privacy = options.privacy_mode
        self._denylist = options.denylist
        self._all_resource = options.include_resource_attributes
        self._kinds: dict[str, int] = {}  # attribute key -> plain, reserved or denied
        # a set of attribute keys -> its keys that are not plain properties, and needs
        self._plans: dict[tuple[str, ...], tuple[tuple[tuple[str, int], ...], int]] = {}
        self._clock = IsoClock()
        self._resource: tuple[Any, dict[str, Any]] = (object(), {})

    def split(
        self, attrs: Mapping[str, Any], event_name: str | None = None
    ) -> tuple[dict[str, Any], dict[str, Any], int]:
        """Plain properties (minus denied keys), the reserved ``posthog.*`` values, and
        ``needs``, a bitmask of what the reserved ones ask for (``NEEDS_GROUPS``, people,
        JSON properties).
        ``event_name``: the span event's or log record's, which may mark its attributes
        as GenAI content.

        The keys' kinds are looked up once per set of keys (a span's attribute keys are
        usually the same from one span to the next), and the values are walked only
        when they are not plainly within the bounds.
        """
        keys = tuple(attrs)
        plan = self._plans.get(keys)
        if plan is None:
            plan = self._plan(keys)
        special, needs = plan
        props = dict(attrs)
        reserved: dict[str, Any] = {}
        urls = None
        for key, kind in special:
            if kind > 0:
                reserved[key] = self._within_bounds(key, props.pop(key))
            elif kind == _DENIED:
                del props[key]
            else:
                urls = [*(urls or ()), key]
        scalars, longest = _SCALARS, MAX_STRING_LENGTH  # locals: read per value
        for key, value in props.items():  # replacing values only: the dict keeps its size
            of = type(value)
            if of is str:
                if len(value) > longest:
                    props[key] = clip(value, self.trims)
            elif of not in scalars and not is_plain_sequence(value):
                props[key] = clip(value, self.trims)  # walked only if not plainly small
        if urls:
            for key in urls:
                props[key] = redact_attribute(key, props[key], self._denylist)
        if self._privacy and event_name and event_name.startswith(CONTENT_EVENTS):
            for key in [k for k in props if is_content(k, event_name)]:
                del props[key]
        return props, reserved, needs

    def _plan(self, keys: tuple[str, ...]) -> tuple[tuple[tuple[str, int], ...], int]:
        """The keys that are not plain properties, with their kinds, and what they need."""
        special = []
        needs = 0
        for key in keys:
            kind = self._kinds.get(key)
            if kind is None:
                kind = self._classify(key)
            if kind != _PLAIN:
                special.append((key, kind))
                if kind > 0:
                    needs |= kind
        plan = (tuple(special), needs)
        if len(self._plans) >= MAPPING_KEY_SETS:  # usually a few; stay bounded if not
            self._plans.clear()
        self._plans[keys] = plan
        return plan

    def _within_bounds(self, key: str, value: Any) -> Any:
        """One attribute's value clipped to the bounds (``posthog.properties`` keeps its
        length: it is decoded, and bounded, as JSON)."""
        if type(value) not in _SCALARS_AND_STR:
            if not is_plain_sequence(value):
                return clip(value, self.trims)
        elif type(value) is str and len(value) > MAX_STRING_LENGTH and key != PROPERTIES:
            return clip(value, self.trims)
        return value

    def denied(self, key: str) -> bool:
        """Whether ``key`` names a credential that must never be sent."""
        kind = self._kinds.get(key)
        return (self._classify(key) if kind is None else kind) == _DENIED

    def resource_properties(self, resource: Any) -> dict[str, Any]:
        """``$lib``, ``$lib_version`` and ``service.name`` (or every resource attribute
        not denied); computed once per resource, usually one per process."""
        cached_for, context = self._resource
        if cached_for is resource:
            return context
        attrs = resource.attributes if resource is not None else {}
        context = {"$lib": LIB, "$lib_version": __version__}
        if self._all_resource:
            context.update((k, v) for k, v in attrs.items() if not self.denied(k))
        elif "service.name" in attrs:
            context["service.name"] = attrs["service.name"]
        self._resource = (resource, context)
        return context

    def build(
        self,
        reserved: Mapping[str, Any],
        needs: int,
        props: dict[str, Any],
        context: Mapping[str, Any],
        flags: Mapping[str, Any],
        identity: str | InvalidTagError | None,
        groups: Mapping[str, str],
        session: str | None,
        timestamp: int,
        uuid: str,
        personless_id: str,
        apply_people: bool = True,
        window: str | None = None,
        anonymous: str | None = None,
    ) -> dict[str, Any]:
        """One event called ``reserved[TAG]``; ``personless_id`` when nobody is known.

        ``window`` becomes ``$window_id``. When the user is ``anonymous`` (the id
        posthog-js made for an anonymous visitor, from its header) the event is
        personless, as posthog-js marks that visitor's own events.

        Raises ``InvalidTagError`` when the name, the identity (an error already) or
        ``posthog.properties`` is unusable.
        """
        name = reserved.get(TAG)
        if not isinstance(name, str) or not name.strip():
            raise InvalidTagError(f"{TAG} must be a non-empty string, got {name!r}")
        if isinstance(identity, InvalidTagError):
            raise identity
        properties = {**context, **props}
        if needs & _NEEDS_JSON:
            properties.update(self._extra_properties(reserved[PROPERTIES]))
        if needs & _NEEDS_PEOPLE and apply_people:
            self._people(reserved, properties)
        for key, value in flags.items():
            properties[f"$feature/{key}"] = value
        if groups:
            properties["$groups"] = dict(groups)
        if session and "$session_id" not in properties:  # a property of its own wins
            properties["$session_id"] = session
        if window and "$window_id" not in properties:
            properties["$window_id"] = window
        if identity is None:
            identity = personless_id
            properties["$process_person_profile"] = False
        elif anonymous and identity == anonymous:
            properties.setdefault("$process_person_profile", False)
        return {
            "event": name,
            "distinct_id": identity,
            "properties": properties,
            "timestamp": self._clock.iso(timestamp),
            "uuid": uuid,
        }

    def _classify(self, key: str) -> int:
        deny = self._denylist
        if key.startswith(RESERVED_PREFIX):
            kind = _RESERVED
            if key.startswith(GROUPS_PREFIX):
                kind |= NEEDS_GROUPS
            elif key.startswith((SET_PREFIX, SET_ONCE_PREFIX)):
                kind |= _NEEDS_PEOPLE
            elif key == PROPERTIES:
                kind |= _NEEDS_JSON
        elif self._privacy and is_content(key):
            kind = _DENIED
        elif deny is not None and key in URL_ATTRIBUTES:
            kind = _URL
        elif deny is not None and deny.search(normalise_key(key)):
            kind = _DENIED
        else:
            kind = _PLAIN
        if len(self._kinds) >= 10_000:  # keys are usually few; stay bounded if not
            self._kinds.clear()
        self._kinds[key] = kind
        return kind

    def _people(self, reserved: Mapping[str, Any], properties: dict[str, Any]) -> None:
        """``posthog.set.<name>`` and ``posthog.set_once.<name>`` to ``$set``/``$set_once``."""
        for prefix, target in ((SET_PREFIX, "$set"), (SET_ONCE_PREFIX, "$set_once")):
            values = {
                k[len(prefix) :]: v
                for k, v in reserved.items()
                if k.startswith(prefix) and not self.denied(k[len(prefix) :])
            }
            if values:
                properties[target] = {**properties.get(target, {}), **values}

    def _extra_properties(self, raw: Any) -> dict[str, Any]:
        if isinstance(raw, Mapping):  # log records may hold maps; span attributes cannot
            return self.scrub(raw)
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8", "replace")
        decoded = decode_json(raw, self.trims) if isinstance(raw, str) else None
        if decoded is raw:
            raise InvalidTagError(f"{PROPERTIES} is not JSON (or is too long or deep to read)")
        if not isinstance(decoded, dict):
            raise InvalidTagError(f"{PROPERTIES} must be a JSON object string")
        return self.scrub(decoded)

    def scrub(self, value: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of a nested map (clipped to the bounds) without the keys the denylist
        names, at any depth."""
        clipped = clip(value, self.trims)
        return self._scrub(clipped) if isinstance(clipped, Mapping) else {}

    def _scrub(self, value: Mapping[str, Any]) -> dict[str, Any]:
        return {
            k: self._scrub(v) if isinstance(v, Mapping) else v
            for k, v in value.items()
            if not self.denied(k)
        }


def note_problem(problems: list[str] | None, error: Exception) -> None:
    """One event is lost to an unusable tag (or to a value nothing foresaw): its reason
    joins ``problems`` (without a list, the error is raised)."""
    if problems is None:
        raise error
    problems.append(str(error) if isinstance(error, InvalidTagError) else f"{error!r}"[:500])


def identity_or_error(
    reserved: Sequence[Mapping[str, Any]], attrs: Sequence[Mapping[str, Any]]
) -> str | InvalidTagError | None:
    """Our tag (nearest first, inherited copies included), then ``enduser.id``/``user.id``;
    an unusable tag is returned as the error, for the events that would use it."""
    for tags in reserved:
        value = tags.get(DISTINCT_ID)
        if value is not None:
            if not isinstance(value, str) or not value.strip():
                return InvalidTagError(f"{DISTINCT_ID} must be a non-empty string, got {value!r}")
            return value
    for source in attrs:
        for key in USER_ID_KEYS:
            value = source.get(key)
            if isinstance(value, str) and value:
                return value
    return None


def groups(reserved: Mapping[str, Any]) -> dict[str, str]:
    """``posthog.groups.<type>`` = key, as ``$groups`` wants them."""
    return {
        k[len(GROUPS_PREFIX) :]: str(v)
        for k, v in reserved.items()
        if k.startswith(GROUPS_PREFIX) and v is not None and v != ""
    }


def window(*reserved: Mapping[str, Any]) -> str | None:
    """``posthog.window_id``, nearest first (an event's own, then its span's)."""
    for tags in reserved:
        value = tags.get(WINDOW_ID)
        if isinstance(value, str) and value:
            return value
    return None


def anonymous(*reserved: Mapping[str, Any]) -> str | None:
    """``posthog.anonymous_id``, nearest first; "" (the app named the user) ends the
    search: nobody is anonymous then."""
    for tags in reserved:
        value = tags.get(ANONYMOUS_ID)
        if isinstance(value, str):
            return value or None
    return None


def session(reserved: Mapping[str, Any], attrs: Mapping[str, Any]) -> str | None:
    """``posthog.session_id``, else ``session.id``."""
    value = reserved.get(SESSION_ID) or attrs.get("session.id")
    return str(value) if value else None
