"""What a compiled filter is: a test of properties that may answer "inconclusive".

Local evaluation decides a flag from its definition and what the caller passed. When
that is not enough (a property not given, a cohort the definitions do not hold, a
regex on which PostHog's flag service and Python could disagree) the flag is
*undecided*, and is asked of PostHog. There are two strengths, as in PostHog's SDKs:

- ``InconclusiveError``: this filter or condition cannot be decided here; a later
  condition of the flag may still decide it.
- ``NeedsServerError``: the flag needs data only the server has; no later condition may
  decide it locally.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

__all__ = [
    "EXPERIENCE_CONTINUITY",
    "MISSING_CONTEXT",
    "UNRESOLVED_DEPENDENCY",
    "UNSUPPORTED_DEFINITION",
    "InconclusiveError",
    "NeedsServerError",
    "Predicate",
    "Scope",
    "first_reason",
    "never_decided",
    "shown",
]

# Why a flag is undecided. When several apply, the first in this order is reported
# (PostHog's SDK specification fixes it, so every SDK names the same one).
EXPERIENCE_CONTINUITY = "experience_continuity"
UNSUPPORTED_DEFINITION = "unsupported_definition"
UNRESOLVED_DEPENDENCY = "unresolved_dependency"
MISSING_CONTEXT = "missing_context"
_ORDER = {
    EXPERIENCE_CONTINUITY: 0,
    UNSUPPORTED_DEFINITION: 1,
    UNRESOLVED_DEPENDENCY: 2,
    MISSING_CONTEXT: 3,
}

FlagValue = bool | str


class InconclusiveError(Exception):
    """This filter cannot be decided locally; ``reason`` is one of the four above."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class NeedsServerError(InconclusiveError):
    """The flag needs data only PostHog has: stop evaluating it locally."""


def first_reason(current: str | None, new: str) -> str:
    """The reason to report when both apply."""
    if current is None or _ORDER.get(new, 9) < _ORDER.get(current, 9):
        return new
    return current


class Scope(Protocol):
    """One top-level evaluation, as a filter sees it."""

    @property
    def server_side(self) -> bool:
        """Decide as PostHog's flag service would: a property not given is absent,
        a cohort not in the definitions has no members, nothing is inconclusive."""
        ...

    def dependency(self, chain: tuple[str, ...], key: str, values: Mapping[str, Any]) -> FlagValue:
        """The value of flag ``key`` for this subject, after evaluating ``chain`` in order;
        raises ``InconclusiveError`` when it cannot be had."""
        ...


# A compiled filter: properties (person or group) in, match or not out; it may raise
# ``InconclusiveError`` and nothing else.
Predicate = Callable[[Mapping[str, Any], Scope], bool]


def never_decided(reason: str, detail: str) -> Predicate:
    """A filter that can never be decided locally (an unknown operator, a bad value)."""

    def predicate(values: Mapping[str, Any], scope: Scope) -> bool:
        raise InconclusiveError(reason, detail)

    return predicate


def shown(value: Any) -> str:
    """A value from a definition, fit for a message: text shortened, anything else by its
    type (the repr of a deeply nested value could itself fail)."""
    if isinstance(value, str):
        return repr(value[:80])
    if value is None or isinstance(value, (bool, int, float)):
        return repr(value)[:80]
    return f"a {type(value).__name__}"
