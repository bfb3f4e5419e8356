"""``is_date_before`` and ``is_date_after``: ISO dates and relative ones, as PostHog reads them.

A filter date is ISO 8601 (``2024-05-01``, ``2024-05-01T10:00:00Z``, ``... +02:00``,
``... UTC``; no zone means UTC; a bare year means that year, today's month and day) or
relative to now: ``-24h``, ``-7d``, ``-2w``, ``-1m``, ``-1y`` (the minus is optional,
the count under 10,000, and a count of more than ``FLAG_MAX_DATE_DIGITS`` digits not a
date). Months and years count back in calendar steps, clamping the day on the way, so
March 31 less two months is January 28 (PostHog's SDK specification). Relative dates
are read at each evaluation, not once.

The property may be an ISO string, a ``datetime`` or a ``date``; anything else, or a
string that is not a date, is inconclusive.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Callable
from typing import Any

from posthog_otel._flags.local.predicate import (
    MISSING_CONTEXT,
    UNSUPPORTED_DEFINITION,
    InconclusiveError,
    shown,
)
from posthog_otel._limits import FLAG_MAX_DATE_DIGITS

__all__ = ["OPERATORS", "compile_test", "parse_datetime"]

OPERATORS = frozenset({"is_date_before", "is_date_after"})
_RELATIVE = re.compile(r"-?([0-9]+)([a-z])$")
_YEAR = re.compile(r"\d{4}")
_SPACED_OFFSET = re.compile(r" ([+-]\d{2}:\d{2})$")
_MAX_COUNT = 10_000
_HOURS = {"h": 1, "d": 24, "w": 24 * 7}


def compile_test(op: str, value: Any) -> Callable[[Any], bool]:
    """A test of a property value against the filter date (``InconclusiveError`` if the
    filter is not a date)."""
    text = str(value)
    limit = _limit(text)
    before = op == "is_date_before"

    def test(v: Any) -> bool:
        when = limit()
        if isinstance(v, dt.datetime):
            seen = _aware(v)
            return seen < when if before else seen > when
        if isinstance(v, dt.date):
            return v < when.date() if before else v > when.date()
        if not isinstance(v, str):
            raise InconclusiveError(MISSING_CONTEXT, f"a {type(v).__name__} is not a date")
        try:
            seen = _aware(parse_datetime(v))
        except (ValueError, OverflowError):
            raise InconclusiveError(MISSING_CONTEXT, f"{shown(v)} is not a date") from None
        return seen < when if before else seen > when

    return test


def _limit(text: str) -> Callable[[], dt.datetime]:
    """When the filter date depends on today, a function that reads it now; otherwise
    the date, parsed once."""
    if _RELATIVE.match(text) or _YEAR.fullmatch(text.strip()):
        return lambda: _filter_date(text)
    fixed = _filter_date(text)
    return lambda: fixed


def _filter_date(text: str) -> dt.datetime:
    when = _relative(text)
    if when is not None:
        return when
    try:
        return _aware(parse_datetime(text))
    except (ValueError, OverflowError):
        raise InconclusiveError(UNSUPPORTED_DEFINITION, f"{shown(text)} is not a date") from None


def _relative(text: str) -> dt.datetime | None:
    found = _RELATIVE.match(text)
    if found is None:
        return None
    digits, unit = found.group(1).lstrip("0") or "0", found.group(2)
    if len(digits) > FLAG_MAX_DATE_DIGITS:  # int() of thousands of digits raises
        return None
    count = int(digits)
    if count >= _MAX_COUNT:
        return None
    now = dt.datetime.now(dt.timezone.utc)
    if unit in _HOURS:
        return now - dt.timedelta(hours=count * _HOURS[unit])
    if unit == "m":
        return _months_back(now, count)
    if unit == "y":
        return _years_back(now, count)
    return None


def _months_back(now: dt.datetime, months: int) -> dt.datetime | None:
    month_index = now.year * 12 + now.month - 1
    target = month_index - months
    year = target // 12
    if not 1 <= year <= 9999:
        return None
    day = now.day
    while day > 28 and month_index > target:  # clamp through every month passed
        month_index -= 1
        day = min(day, calendar.monthrange(month_index // 12, month_index % 12 + 1)[1])
    return now.replace(year=year, month=target % 12 + 1, day=day)


def _years_back(now: dt.datetime, years: int) -> dt.datetime | None:
    year = now.year - years
    if not 1 <= year <= 9999:
        return None
    leap_day = years > 0 and (now.month, now.day) == (2, 29)
    return now.replace(year=year, day=28 if leap_day else now.day)


def parse_datetime(text: str) -> dt.datetime:
    """An ISO 8601 date or time, also with ``Z``, `` UTC`` or `` +HH:MM``; a bare year is
    that year on today's month and day. Raises ``ValueError``."""
    text = text.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    elif text.upper().endswith(" UTC"):
        text = text[:-4] + "+00:00"
    elif _YEAR.fullmatch(text):
        today = dt.datetime.now()
        return dt.datetime(int(text), today.month, today.day)
    return dt.datetime.fromisoformat(_SPACED_OFFSET.sub(r"\1", text))


def _aware(when: dt.datetime) -> dt.datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.timezone.utc)
