"""Bounds on values from outside: a span's or log record's attributes, JSON decoded
from them, log bodies, and the size of a whole event. Pure: no I/O.

A value over a bound is cut, never refused, so one odd attribute costs at most its
own property and never its siblings: strings keep their start and a marker saying
how much was cut, lists their first items, nesting its first levels. Each cut is
noted in ``Trims`` by reason; the pipeline counts them in ``stats().trimmed``. The
bounds themselves are stated in ``_limits``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping
from itertools import islice
from typing import Any

from posthog_otel._json import dumps, lenient
from posthog_otel._limits import (
    MAX_JSON_LENGTH,
    MAX_LIST_ITEMS,
    MAX_STRING_LENGTH,
    MAX_VALUE_DEPTH,
)

__all__ = [
    "DEPTH_MARKER",
    "MAX_CONTENT_BYTES",
    "Trims",
    "bounded",
    "clip",
    "cut_string",
    "decode_json",
    "fit_event",
    "is_plain_sequence",
]

MAX_CONTENT_BYTES = 256 * 1024  # per GenAI content property: three still fit PostHog's 1 MB
DEPTH_MARKER = f"[posthog-otel cut: nested deeper than {MAX_VALUE_DEPTH} levels]"
_SCALARS = frozenset({int, float, bool, type(None)})
_NOT_JSON = object()


class Trims:
    """What bounding cut, by reason. One per mapper, used from one thread at a time."""

    __slots__ = ("counts",)

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def note(self, reason: str, n: int = 1) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + n

    def take(self) -> dict[str, int]:
        """The counts so far, and start again from none."""
        counts, self.counts = self.counts, {}
        return counts


def cut_string(text: str, keep: int) -> str:
    return f"{text[:keep]}... [posthog-otel cut {len(text) - keep:,} characters]"


def clip(value: Any, trims: Trims, *, strings: bool = True, _depth: int = 0) -> Any:
    """``value`` within the bounds: strings (unless ``strings`` is false), lists and maps
    cut, nesting beyond ``MAX_VALUE_DEPTH`` replaced by a marker; tuples become lists.
    Never raises; types JSON does not know are left for the encoder's lenient pass."""
    kind = type(value)
    if kind is str:
        if strings and len(value) > MAX_STRING_LENGTH:
            trims.note("string_length")
            return cut_string(value, MAX_STRING_LENGTH)
        return value
    if kind in _SCALARS:
        return value
    if kind is not dict and kind is not list and kind is not tuple:  # the usual ones first
        if isinstance(value, (bytes, bytearray)):
            return clip(bytes(value).decode("utf-8", "replace"), trims, strings=strings)
        if not isinstance(value, (list, tuple, Mapping)):
            return value
    if _depth >= MAX_VALUE_DEPTH:
        trims.note("depth")
        return DEPTH_MARKER
    if len(value) > MAX_LIST_ITEMS:
        trims.note("list_length")
    elif kind is tuple and is_plain_sequence(value):  # only a tuple can be one
        return value
    deeper = _depth + 1
    longest = MAX_STRING_LENGTH if strings else sys.maxsize  # a short string is kept as it is
    if kind is dict or isinstance(value, Mapping):  # dict first: no ABC check
        return {
            k if type(k) is str else str(k): v
            if type(v) in _SCALARS or (type(v) is str and len(v) <= longest)
            else clip(v, trims, strings=strings, _depth=deeper)
            for k, v in islice(value.items(), MAX_LIST_ITEMS)
        }
    return [
        v
        if type(v) in _SCALARS or (type(v) is str and len(v) <= longest)
        else clip(v, trims, strings=strings, _depth=deeper)
        for v in islice(value, MAX_LIST_ITEMS)
    ]


def is_plain_sequence(value: Any) -> bool:
    """Whether ``value`` is an attribute's sequence within the bounds, as it usually is: a
    short tuple of scalars or short strings (so it is sent as it is)."""
    if type(value) is not tuple or len(value) > MAX_LIST_ITEMS:
        return False
    kinds = set(map(type, value))
    if str in kinds:
        kinds.discard(str)
        if max(len(v) for v in value if type(v) is str) > MAX_STRING_LENGTH:
            return False
    return kinds <= _SCALARS


def decode_json(text: str, trims: Trims, *, any_json: bool = False) -> Any:
    """An attribute string decoded as JSON (an array or object; ``any_json``: any value)
    and clipped, except strings (content has its own byte bound). Text that is not
    JSON, too long to parse, or nested too deep for the parser comes back as it is."""
    if not any_json and text[:1] not in ("[", "{"):
        return text
    if len(text) > MAX_JSON_LENGTH:
        trims.note("json_length")
        return text
    try:
        value = json.loads(text)
    except ValueError:
        return text
    except RecursionError:  # the C parser's guard: deeper than the interpreter allows
        trims.note("depth")
        return text
    return value if type(value) in _SCALARS else clip(value, trims, strings=False)


# -- size ---------------------------------------------------------------------------


def fit_event(event: dict[str, Any], size: int, limit: int, trims: Trims) -> dict[str, Any] | None:
    """``event`` (``size`` bytes of JSON) with its largest properties shortened until it
    fits ``limit`` bytes, or ``None`` when its properties are not what makes it large."""
    props = event.get("properties")
    if not isinstance(props, dict):
        return None
    sizes: dict[str, int] = {}
    for key, value in props.items():
        try:
            sizes[key] = len(dumps(value))
        except Exception:  # noqa: BLE001 - an odd value: measure what will be sent
            sizes[key] = len(dumps(lenient(value)))
    excess = size - limit + 1024  # a margin for what shortening adds (markers, escapes)
    fitted = dict(props)
    for key in sorted(sizes, key=sizes.__getitem__, reverse=True):
        before = sizes[key]
        if excess <= 0 or before <= 1024:
            break
        value = bounded(lenient(fitted[key]), max(512, before - excess))
        after = len(dumps(value))
        if after >= before:
            value = f"[posthog-otel cut {before:,} bytes to fit the event]"
            after = len(value) + 2
        fitted[key] = value
        excess -= before - after
        trims.note("event_size")
    if excess > 1024:
        return None
    return {**event, "properties": fitted}


def bounded(value: Any, limit: int = MAX_CONTENT_BYTES) -> Any:
    """``value`` if its JSON fits in ``limit`` bytes; else the same structure with its
    longest strings cut (each ending with a marker saying how much was cut). Strings
    of up to ``_KEEP`` bytes (roles, ids, names) are never cut."""
    if _rough_size(value) * 2 <= limit:  # even if escaping doubled it, it fits
        return value
    size = len(dumps(value))
    if size <= limit:
        return value
    lengths = sorted(n for n in map(_utf8_len, _strings(value)) if n > _KEEP)
    cap = _level(lengths, sum(lengths) - (size - limit) - 64 * len(lengths))
    while cap > _KEEP:
        cut = _cut(value, cap)
        if len(dumps(cut)) <= limit:
            return cut
        cap = cap * 3 // 4  # escapes made the strings longer than counted
    text = dumps(value)[: limit - 100].decode("utf-8", "ignore")
    return f"{text}... [posthog-otel cut {size - len(text):,} bytes of JSON]"


_KEEP = 128


def _utf8_len(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "replace"))


def _rough_size(value: Any) -> int:
    if isinstance(value, str):
        return _utf8_len(value)
    if isinstance(value, dict):
        return sum(len(k) + _rough_size(v) + 4 for k, v in value.items()) + 2
    if isinstance(value, (list, tuple)):
        return sum(_rough_size(v) + 1 for v in value) + 2
    return 8


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings(item)


def _level(lengths: list[int], budget: int) -> int:
    """The largest cap such that the strings, each cut to it, add up to ``budget``."""
    remaining = budget
    for i, length in enumerate(lengths):
        share = remaining // (len(lengths) - i)
        if length > share:
            return share
        remaining -= length
    return lengths[-1] if lengths else 0


def _cut(value: Any, cap: int) -> Any:
    """Every string over ``cap`` UTF-8 bytes cut to ``cap`` bytes, with a marker."""
    if isinstance(value, str):
        if _utf8_len(value) <= cap:
            return value
        kept = (
            value[:cap]
            if value.isascii()
            else value.encode("utf-8", "surrogatepass")[:cap].decode("utf-8", "ignore")
        )
        return f"{kept}... [posthog-otel cut {len(value) - len(kept):,} characters]"
    if isinstance(value, dict):
        return {k: _cut(v, cap) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_cut(v, cap) for v in value]
    return value
