"""A condition's filters by type: properties, cohorts, and other flags' values.

- ``cohort``: the cohort's property groups (AND/OR, nested, entries negated), which
  may name other cohorts and flags. A cohort the definitions do not hold (a static
  one) needs the server: the flag is asked of PostHog.
- ``flag``: flag dependencies. ``dependency_chain`` lists the flags to evaluate first,
  ending with the one named; an empty chain means the server found a cycle
  (undecided). The filter matches when that flag's value is the expected one: a
  variant matches its own name, and ``true`` matches any variant. A filter shaped
  wrongly (another operator, no key or value) never matches, with one warning.
- anything else: a property filter (``properties``).

Bounds (``_limits``): a cohort nested (through its groups and the cohorts it names)
deeper than ``FLAG_MAX_NESTING``, or holding more than ``FLAG_MAX_ITEMS`` entries in all
its groups, is measured without recursion before it is compiled, and needs the server;
so does a dependency chain longer than ``FLAG_MAX_ITEMS``, or one that names anything
but flag keys.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from posthog_otel._flags.local.predicate import (
    UNSUPPORTED_DEFINITION,
    FlagValue,
    InconclusiveError,
    NeedsServerError,
    Predicate,
    Scope,
    first_reason,
    never_decided,
    shown,
)
from posthog_otel._flags.local.properties import compile_property
from posthog_otel._limits import FLAG_MAX_ITEMS, FLAG_MAX_NESTING

__all__ = ["FilterCompiler", "cohort_heights", "cohort_key", "dependency_matches"]

logger = logging.getLogger(__name__)

_COHORT_OPERATORS = ("exact", "in", "not_in")
_warned: set[tuple[str, str]] = set()  # no lock: at worst a race warns twice


class FilterCompiler:
    """Compiles the filters of one definitions document; each cohort is compiled once."""

    def __init__(self, cohorts: Mapping[str, Any], matching_version: int) -> None:
        self._cohorts = cohorts
        self._version = matching_version
        self._groups: dict[str, Predicate] = {}
        self._compiling: set[str] = set()
        self._heights = cohort_heights(cohorts)

    def compile(self, prop: Any) -> Predicate:
        if not isinstance(prop, Mapping):
            return never_decided(UNSUPPORTED_DEFINITION, "a filter must be an object")
        kind = prop.get("type")
        if kind == "cohort":
            return self._cohort(prop)
        if kind == "flag":
            return _dependency(prop)
        return compile_property(prop, self._version)

    # -- cohorts -------------------------------------------------------------------------

    def _cohort(self, prop: Mapping[str, Any]) -> Predicate:
        cohort_id = cohort_key(prop.get("value"))  # "": no cohort the definitions hold
        op = prop.get("operator") or "exact"
        if not cohort_id or cohort_id not in self._cohorts:
            return _static_cohort(cohort_id or shown(prop.get("value")), negated=op == "not_in")
        if not isinstance(op, str) or op not in _COHORT_OPERATORS:
            return never_decided(UNSUPPORTED_DEFINITION, f"cohort operator {shown(op)}")
        if self._heights.get(cohort_id, 0) > FLAG_MAX_NESTING:
            problem = f"over {FLAG_MAX_NESTING} deep or {FLAG_MAX_ITEMS} entries"
            return _malformed(f"cohort {cohort_id} nests {problem}")
        members = self._cohort_group(cohort_id)
        if op == "not_in":
            return lambda values, scope: not members(values, scope)
        return members

    def _cohort_group(self, cohort_id: str) -> Predicate:
        found = self._groups.get(cohort_id)
        if found is None:
            if cohort_id in self._compiling:
                return never_decided(UNSUPPORTED_DEFINITION, f"cohort {cohort_id} names itself")
            self._compiling.add(cohort_id)
            try:
                found = self._group(self._cohorts[cohort_id])
            finally:
                self._compiling.discard(cohort_id)
            self._groups[cohort_id] = found
        return found

    def _group(self, group: Any) -> Predicate:
        """An AND/OR property group: nested groups, and filters that may be negated."""
        if isinstance(group, Mapping) and not group:
            return lambda values, scope: True
        if not isinstance(group, Mapping) or group.get("type") not in ("AND", "OR"):
            return _malformed("a cohort group must be an object of type AND or OR")
        if not isinstance(group.get("values"), list):
            return _malformed("a cohort group's values must be a list")
        every: bool = group["type"] == "AND"
        entries: list[tuple[Predicate, bool]] = []
        for entry in group["values"]:
            if not isinstance(entry, Mapping):
                entries.append((_malformed("a cohort group entry must be an object"), False))
            elif not entry or "values" in entry or entry.get("type") in ("AND", "OR"):
                entries.append((self._group(entry), False))
            else:
                entries.append((self.compile(entry), bool(entry.get("negation", False))))
        if not entries:
            return lambda values, scope: True

        def group_matches(values: Mapping[str, Any], scope: Scope) -> bool:
            decisive = False
            reason: str | None = None
            for test, negated in entries:  # every entry: a later one may need the server
                try:
                    if (test(values, scope) != negated) != every:
                        decisive = True
                except NeedsServerError:
                    raise
                except InconclusiveError as exc:
                    reason = first_reason(reason, exc.reason)
            if decisive:
                return not every
            if reason is not None:
                raise InconclusiveError(reason, "a cohort's filters could not be decided")
            return every

        return group_matches


def cohort_key(value: Any) -> str:
    """A cohort filter's value as the cohorts' key (``""`` if it cannot be one)."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() < 64:
        return str(value)
    return ""


def cohort_heights(cohorts: Mapping[str, Any]) -> dict[str, int]:
    """How deep each cohort nests: its groups, and through the cohorts it names, theirs.

    Iterative (a chain of any depth costs no recursion), and capped: a height over
    ``FLAG_MAX_NESTING`` is reported as one more than it. A cohort in a cycle counts the
    cycle once (compiling it finds the cycle)."""
    own: dict[str, list[tuple[str, int]]] = {}  # cohort -> (cohort named, at what depth)
    for cohort_id, group in cohorts.items():
        refs: list[tuple[str, int]] = [("", 1)]  # the cohort's own group: 1 deep
        stack: list[tuple[Any, int]] = [(group, 1)]
        entries_seen = 0
        while stack:
            node, depth = stack.pop()  # a group, ``depth`` deep in this cohort
            if depth > FLAG_MAX_NESTING:
                refs.append(("", depth))  # deep enough on its own
                continue
            entries = node.get("values") if isinstance(node, Mapping) else None
            entries_seen += len(entries) if isinstance(entries, list) else 0
            if entries_seen > FLAG_MAX_ITEMS:  # too large to evaluate per lookup
                refs.append(("", FLAG_MAX_NESTING + 1))
                break
            for entry in entries[: FLAG_MAX_ITEMS + 1] if isinstance(entries, list) else ():
                if not isinstance(entry, Mapping):
                    continue
                if "values" in entry:  # a nested group, as the compiler reads it
                    stack.append((entry, depth + 1))
                    refs.append(("", depth + 1))
                elif entry.get("type") == "cohort":
                    refs.append((cohort_key(entry.get("value")), depth))  # one deeper
        own[str(cohort_id)] = refs
    heights: dict[str, int] = {"": 0}
    for root in own:
        todo = [root]
        visiting: set[str] = set()
        while todo:
            cohort_id = todo[-1]
            if cohort_id in heights:
                todo.pop()
                continue
            waiting = [
                ref
                for ref, _ in own[cohort_id]
                if ref and ref in own and ref not in heights and ref not in visiting
            ]
            if cohort_id not in visiting and waiting:
                visiting.add(cohort_id)
                todo.extend(waiting)
                continue
            todo.pop()
            visiting.discard(cohort_id)
            height = max(d + heights.get(ref, 0) for ref, d in own[cohort_id])
            heights[cohort_id] = min(height, FLAG_MAX_NESTING + 1)
    return heights


def _static_cohort(cohort_id: str, *, negated: bool) -> Predicate:
    def predicate(values: Mapping[str, Any], scope: Scope) -> bool:
        if scope.server_side:  # nobody is in a cohort the server does not know
            return negated
        raise NeedsServerError(
            UNSUPPORTED_DEFINITION, f"cohort {cohort_id} is not in the definitions (static?)"
        )

    return predicate


def _malformed(problem: str) -> Predicate:
    def predicate(values: Mapping[str, Any], scope: Scope) -> bool:
        raise NeedsServerError(UNSUPPORTED_DEFINITION, problem)

    return predicate


# -- flag dependencies ----------------------------------------------------------------------


def _dependency(prop: Mapping[str, Any]) -> Predicate:
    key = prop.get("key")
    expected = prop.get("value")
    if prop.get("operator", "exact") != "flag_evaluates_to" or not key or expected is None:
        _warn_once(shown(key), "the operator must be flag_evaluates_to, with a key and a value")
        return lambda values, scope: False
    chain = prop.get("dependency_chain")
    if not isinstance(chain, list):
        return never_decided(UNSUPPORTED_DEFINITION, f"dependency on {shown(key)} without a chain")
    if not chain:
        return never_decided(UNSUPPORTED_DEFINITION, f"circular dependency on {shown(key)}")
    if not isinstance(key, str) or not all(isinstance(name, str) for name in chain):
        return never_decided(UNSUPPORTED_DEFINITION, "a dependency chain names only flag keys")
    if len(chain) > FLAG_MAX_ITEMS:
        return never_decided(UNSUPPORTED_DEFINITION, f"a dependency chain of over {FLAG_MAX_ITEMS}")
    order = tuple(chain)
    name = key

    def predicate(values: Mapping[str, Any], scope: Scope) -> bool:
        return dependency_matches(expected, scope.dependency(order, name, values))

    return predicate


def dependency_matches(expected: Any, actual: FlagValue) -> bool:
    """Whether a flag's value is the one a dependency filter expects."""
    if isinstance(actual, str) and actual:
        if isinstance(expected, bool):
            return bool(expected)  # any variant is "on"
        return isinstance(expected, str) and actual == str(expected)  # case-sensitive
    return isinstance(actual, bool) and isinstance(expected, bool) and actual == expected


def _warn_once(key: str, problem: str) -> None:
    if (key, problem) in _warned:
        return
    _warned.add((key, problem))
    logger.warning(
        "posthog-otel: a flag dependency on %r is malformed (%s); it never matches. "
        "Fix the condition in PostHog.",
        key,
        problem,
    )
