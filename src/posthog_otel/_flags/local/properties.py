"""Property filters: one operator and one filter value, compiled once into a predicate.

The rules are PostHog's (its SDK specification, and its Python SDK as the reference):

- A property the caller did not give is inconclusive (PostHog may know it), except
  to the server, where it is simply absent: only ``is_not_set`` matches it.
- Values that are not strings are compared in their JSON text (``true``, ``10``,
  ``["a","b"]``, ``null``), as the flag service sees them. ``exact`` and ``is_not``
  ignore case (Unicode), take a list as "any of", and, with property matching
  version 1, compare ``true``/``false`` filters by truthiness; the text operators
  ignore ASCII case only.
- ``gt``/``gte``/``lt``/``lte`` compare numbers (strings that spell one count); a
  value that is not a number does not match, and a filter that is not a number is
  inconclusive. ``None`` never matches a date or semver operator.
"""

from __future__ import annotations

import json
import math
import operator
import re
import string
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from posthog_otel._flags.local import dates, regex, semver
from posthog_otel._flags.local.predicate import (
    MISSING_CONTEXT,
    UNSUPPORTED_DEFINITION,
    InconclusiveError,
    Predicate,
    Scope,
    never_decided,
    shown,
)
from posthog_otel._limits import FLAG_MAX_INT_BITS, FLAG_MAX_VALUE_DEPTH

__all__ = ["OPERATORS", "compile_property", "json_text", "number_or_none"]

Test = Callable[[Any], bool]  # the property's value (present) in, match or not out

_TEXT = frozenset(
    {"icontains", "not_icontains", "starts_with", "not_starts_with", "ends_with", "not_ends_with"}
)
_NUMERIC: dict[str, Callable[[float, float], bool]] = {
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}
OPERATORS = frozenset(
    {"exact", "is_not", "is_set", "is_not_set", "regex", "not_regex", *_TEXT, *_NUMERIC}
    | dates.OPERATORS
    | semver.OPERATORS
)
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def compile_property(prop: Mapping[str, Any], matching_version: int) -> Predicate:
    """The predicate for one ``person`` or ``group`` property filter."""
    key = prop.get("key")
    op = prop.get("operator") or "exact"
    if not isinstance(key, str):
        return never_decided(UNSUPPORTED_DEFINITION, f"property key {shown(key)}")
    if not isinstance(op, str) or op not in OPERATORS:
        return never_decided(UNSUPPORTED_DEFINITION, f"unknown operator {shown(op)}")
    value = prop.get("value")
    choices = _choices(op, value, matching_version)
    if choices is not None:  # the commonest filter, in one frame instead of two

        def exact(values: Mapping[str, Any], scope: Scope) -> bool:
            if key in values:
                v = values[key]
                return (v if type(v) is str else json_text(v, MISSING_CONTEXT)).lower() in choices
            if scope.server_side:
                return False
            raise InconclusiveError(MISSING_CONTEXT, f"property {key!r} not given")

        return exact
    test = _test(op, value, matching_version)

    def predicate(values: Mapping[str, Any], scope: Scope) -> bool:
        if key in values:
            return test(values[key])
        if scope.server_side:
            return op == "is_not_set"
        raise InconclusiveError(MISSING_CONTEXT, f"property {key!r} not given")

    return predicate


def _choices(op: str, value: Any, matching_version: int) -> frozenset[str] | None:
    """The lowered texts an ``exact`` filter matches, when it is a plain "any of" (not the
    truthiness of version 1, not an empty list, not too deep or without a text); else
    ``None``, and ``_test`` compiles it."""
    if op != "exact" or (isinstance(value, list) and not value) or _too_deep(value):
        return None
    if matching_version != 2 and _boolish(value):
        return None
    items = value if isinstance(value, list) else [value]
    try:
        return frozenset(json_text(item, UNSUPPORTED_DEFINITION).lower() for item in items)
    except InconclusiveError:
        return None


def _test(op: str, value: Any, matching_version: int) -> Test:
    if op in ("is_set", "is_not_set"):
        is_set = op == "is_set"
        return lambda _: is_set
    if _too_deep(value):
        problem = f"a filter value nested over {FLAG_MAX_VALUE_DEPTH} deep"
        return _raise(InconclusiveError(UNSUPPORTED_DEFINITION, problem))
    try:
        if op in ("exact", "is_not"):
            exact = _exact(value, matching_version)
            return exact if op == "exact" else lambda v: not exact(v)
        if op in _TEXT:
            return _text_test(op, value)
        if op in _NUMERIC:
            return _numeric(_NUMERIC[op], value)
        if op in ("regex", "not_regex"):
            return _regex(op, value)
    except InconclusiveError as problem:
        return _raise(problem)
    # Checked before the filter value: None never matches a date or a version.
    try:
        if op in dates.OPERATORS:
            return _not_none(dates.compile_test(op, value))
        return _not_none(semver.compile_test(op, value))
    except InconclusiveError as problem:
        return _not_none(_raise(problem))


def _too_deep(value: Any) -> bool:
    """Whether lists and objects nest deeper than ``FLAG_MAX_VALUE_DEPTH`` (no recursion)."""
    level = [value]
    for _ in range(FLAG_MAX_VALUE_DEPTH + 1):
        level = [
            inner
            for item in level
            if isinstance(item, (list, dict))
            for inner in (item.values() if isinstance(item, dict) else item)
        ]
        if not level:
            return False
    return True


def _raise(problem: InconclusiveError) -> Test:
    def test(value: Any) -> bool:
        raise InconclusiveError(problem.reason, str(problem))

    return test


def _not_none(test: Test) -> Test:
    return lambda value: False if value is None else test(value)


# -- exact, is_not ---------------------------------------------------------------------


def _exact(wanted: Any, matching_version: int) -> Test:
    if isinstance(wanted, list) and not wanted:
        return lambda v: _checked(v) and _truthy(v)
    if matching_version != 2 and _boolish(wanted):
        truth = _truthy(wanted)
        return lambda v: _checked(v) and _truthy(v) == truth
    items = wanted if isinstance(wanted, list) else [wanted]
    choices = frozenset(json_text(item, UNSUPPORTED_DEFINITION).lower() for item in items)
    return lambda v: (v if type(v) is str else json_text(v, MISSING_CONTEXT)).lower() in choices


def _checked(value: Any) -> bool:
    """``True``, once ``value`` is known to have a JSON text (else inconclusive)."""
    json_text(value, MISSING_CONTEXT)
    return True


def _boolish(value: Any) -> bool:
    if isinstance(value, bool):
        return True
    if isinstance(value, str):
        return value.lower() in ("true", "false")
    return isinstance(value, list) and all(_boolish(item) for item in value)


def _truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value.lower() == "true"
    return isinstance(value, list) and all(_truthy(item) for item in value)


# -- text, numbers, regex --------------------------------------------------------------


def _text_test(op: str, value: Any) -> Test:
    needle = json_text(value, UNSUPPORTED_DEFINITION).translate(_ASCII_LOWER)
    negate = op.startswith("not_")
    found = _FOUND[op.removeprefix("not_")]

    def test(v: Any) -> bool:
        text = v if type(v) is str else json_text(v, MISSING_CONTEXT)
        return found(text.translate(_ASCII_LOWER) if not text.islower() else text, needle) != negate

    return test


_FOUND: dict[str, Callable[[str, str], bool]] = {
    "icontains": operator.contains,
    "starts_with": str.startswith,
    "ends_with": str.endswith,
}


def _numeric(compare: Callable[[float, float], bool], value: Any) -> Test:
    bound = number_or_none(value)
    if bound is None:
        raise InconclusiveError(UNSUPPORTED_DEFINITION, f"{shown(value)} is not a finite number")
    limit = bound

    def test(v: Any) -> bool:
        number = number_or_none(v)
        return number is not None and compare(number, limit)

    return test


def number_or_none(value: Any) -> float | None:
    """A finite number from a number or a string that spells one exactly, else ``None``."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float, Decimal)):
        return None
    if isinstance(value, str) and not _NUMBER.fullmatch(value):
        return None
    try:
        number = float(value)
    except (ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _regex(op: str, value: Any) -> Test:
    if isinstance(value, (list, dict)):
        raise InconclusiveError(UNSUPPORTED_DEFINITION, f"a regex must be text, not {shown(value)}")
    pattern = str(value)
    compiled = regex.compile_shared(pattern) if pattern else None
    negate = op == "not_regex"

    def test(v: Any) -> bool:
        text = json_text(v, MISSING_CONTEXT)
        if not pattern:  # the empty pattern is found in every text
            return not negate
        if compiled is None:  # not a valid pattern: matches nothing, either way
            return False
        return regex.search(compiled, text) != negate

    return test


# -- JSON text ---------------------------------------------------------------------------


def json_text(value: Any, reason: str) -> str:
    """A string as it is; anything else as the flag service's JSON text of it. A value
    JSON cannot hold is inconclusive for ``reason`` (whose side it came from)."""
    if isinstance(value, str):
        return value
    return _json(value, reason, 0)


def _json(value: Any, reason: str, depth: int) -> str:
    if depth > FLAG_MAX_VALUE_DEPTH:
        raise InconclusiveError(reason, f"a value nested over {FLAG_MAX_VALUE_DEPTH} deep")
    if value is None:
        return "null"
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, str):
        return _quoted(value)
    if isinstance(value, int):
        if value.bit_length() > FLAG_MAX_INT_BITS:
            raise InconclusiveError(reason, "an integer too long to write out")
        return str(value)
    if isinstance(value, float):
        return _float_text(value, reason)
    if isinstance(value, list):
        return "[" + ",".join(_json(item, reason, depth + 1) for item in value) + "]"
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise InconclusiveError(reason, "object keys must be strings")
        pairs = (f"{_quoted(k)}:{_json(value[k], reason, depth + 1)}" for k in sorted(value))
        return "{" + ",".join(pairs) + "}"
    raise InconclusiveError(reason, f"a {type(value).__name__} has no JSON form")


def _quoted(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _float_text(number: float, reason: str) -> str:
    """Shortest round-trip digits, with the exponent written as the flag service does."""
    if not math.isfinite(number):
        raise InconclusiveError(reason, "JSON has no non-finite numbers")
    text = repr(number)
    mantissa, has_exponent, exponent = text.partition("e")
    if not has_exponent:
        return text
    power = int(exponent)
    if -6 < power < 0:
        return format(Decimal(text), "f")
    return f"{mantissa}e{'+' if power >= 0 else ''}{power}"
