"""The semver operators, as PostHog defines them (its ``sortableSemver``).

A version is ``major[.minor[.patch]]``, missing parts 0, with an optional ``v`` and
whitespace around it; a pre-release or build suffix (``-beta``, ``+5``) is ignored
and parts past the third are dropped. A part with a leading zero is not a version.

``semver_eq|neq|gt|gte|lt|lte`` compare; the ranges are ``~1.2.3`` (>=1.2.3 <1.3.0),
``^1.2.3`` (>=1.2.3 <2.0.0; ``^0.2.3`` <0.3.0, ``^0.0.3`` <0.0.4) and ``1.2.*``
(>=1.2.0 <1.3.0; ``1.*`` <2.0.0; ``1.2.3.*`` <1.2.4). A filter that is not a
version is inconclusive, and so is a property that is not one.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from typing import Any

from posthog_otel._flags.local.predicate import (
    MISSING_CONTEXT,
    UNSUPPORTED_DEFINITION,
    InconclusiveError,
    shown,
)

__all__ = ["OPERATORS", "compile_test", "parse_version"]

Version = tuple[int, int, int]

_COMPARE: dict[str, Callable[[Version, Version], bool]] = {
    "semver_eq": operator.eq,
    "semver_neq": operator.ne,
    "semver_gt": operator.gt,
    "semver_gte": operator.ge,
    "semver_lt": operator.lt,
    "semver_lte": operator.le,
}


def _tilde(version: Version) -> tuple[Version, Version]:
    major, minor, _ = version
    return version, (major, minor + 1, 0)


def _caret(version: Version) -> tuple[Version, Version]:
    major, minor, patch = version
    if major:
        return version, (major + 1, 0, 0)
    if minor:
        return version, (0, minor + 1, 0)
    return version, (0, 0, patch + 1)


_RANGES: dict[str, Callable[[Any], tuple[Version, Version]]] = {
    "semver_tilde": lambda value: _tilde(parse_version(value)),
    "semver_caret": lambda value: _caret(parse_version(value)),
    "semver_wildcard": lambda value: _wildcard(value),
}
OPERATORS = frozenset(_COMPARE) | frozenset(_RANGES)


def compile_test(op: str, value: Any) -> Callable[[Any], bool]:
    """A test of a property value against the filter version or range."""
    try:
        if op in _RANGES:
            low, high = _RANGES[op](value)
            return lambda v: low <= _property_version(v) < high
        wanted = parse_version(value)
    except ValueError:
        raise InconclusiveError(
            UNSUPPORTED_DEFINITION, f"{shown(value)} is not a version"
        ) from None
    compare = _COMPARE[op]
    return lambda v: compare(_property_version(v), wanted)


def _property_version(value: Any) -> Version:
    try:
        return _parsed(value) if type(value) is str else parse_version(value)
    except ValueError:
        raise InconclusiveError(MISSING_CONTEXT, f"{shown(value)} is not a version") from None


def parse_version(value: Any) -> Version:
    """``(major, minor, patch)``; ``ValueError`` if ``value`` is not a version."""
    core = str(value).strip().lstrip("vV").split("-")[0].split("+")[0]
    parts = core.split(".")
    if not parts[0]:
        raise ValueError("no major version")
    minor = parts[1] if len(parts) > 1 else ""
    patch = parts[2] if len(parts) > 2 else ""
    return (_part(parts[0]), _part(minor) if minor else 0, _part(patch) if patch else 0)


@functools.lru_cache(maxsize=4096)
def _parsed(text: str) -> Version:
    """Versions repeat from user to user: each string is parsed once (errors are not
    cached, so an invalid one is parsed again, and fails again)."""
    return parse_version(text)


def _wildcard(value: Any) -> tuple[Version, Version]:
    text = str(value).strip().lstrip("vV").replace("*", "").rstrip(".")
    parts = [_part(p) for p in [p for p in text.split(".") if p][:3]]
    if not parts:
        raise ValueError("no version before the wildcard")
    if len(parts) == 1:
        return (parts[0], 0, 0), (parts[0] + 1, 0, 0)
    if len(parts) == 2:
        return (parts[0], parts[1], 0), (parts[0], parts[1] + 1, 0)
    major, minor, patch = parts
    return (major, minor, patch), (major, minor, patch + 1)


def _part(text: str) -> int:
    if not text.isdigit() or (len(text) > 1 and text[0] == "0"):
        raise ValueError(f"{text!r} is not a version number")
    return int(text)
