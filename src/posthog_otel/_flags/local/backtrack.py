"""How dear Python's backtracking ``re`` can be, at most, for a pattern and a text length.

``re`` backtracks, holding the GIL: ``(a|a)*@example`` against 26 ``a`` takes seconds,
and every thread of the process waits. A pattern is searched with ``re`` only for
texts short enough that this model bounds the search by ``REGEX_RE_COST``; longer ones
go to the ``automaton``. The model bounds the backtracking search tree: start positions
(one when every branch begins with ``^``) x the ways the pattern can match from one
position x its size. Ways multiply along a sequence and add over an alternation's
branches (the largest counts when the branches begin with disjoint characters); a
repeat of a body with one way counts its repeat counts, a repeat of a body with several
ways multiplies them per round, and a repeat of a body that can match nothing is left
to the automaton. The model is pessimistic (``\\w+@\\w+`` is far cheaper than it says),
never optimistic; the tests time ``re`` at the lengths it allows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from posthog_otel._flags.local.automaton import SINGLE
from posthog_otel._limits import REGEX_MAX_VALUE_CHARS, REGEX_RE_COST

__all__ = ["re_safe_length"]

_INFINITE = 1e30  # a cost too large to be met, kept finite


def re_safe_length(items: Sequence[tuple[Any, Any]]) -> int:
    """The longest text (at most ``REGEX_MAX_VALUE_CHARS``) that Python's ``re`` searches
    within ``REGEX_RE_COST``; -1 if none is short enough."""
    low, high = -1, REGEX_MAX_VALUE_CHARS
    while low < high:  # the cost grows with the length: the last length within budget
        mid = (low + high + 1) // 2
        if _cost(items, mid) <= REGEX_RE_COST:
            low = mid
        else:
            high = mid - 1
    return low


def _cost(items: Sequence[tuple[Any, Any]], n: int) -> float:
    starts = 1 if _anchored(items) else n + 1
    return min(_INFINITE, starts * _ways(items, n) * _size(items, n))


def _anchored(items: Sequence[tuple[Any, Any]]) -> bool:
    if not items:
        return False
    op, av = items[0]
    name = str(op)
    if name == "AT":
        return str(av) == "AT_BEGINNING"
    if name == "SUBPATTERN":
        return _anchored(av[3])
    if name == "BRANCH":
        return all(_anchored(branch) for branch in av[1])
    return False


def _ways(items: Sequence[tuple[Any, Any]], n: int) -> float:
    """How many ways, at most, ``items`` can match from one position of an n-char text."""
    total = 1.0
    for op, av in items:
        total = min(_INFINITE, total * _item_ways(str(op), av, n))
    return total


def _item_ways(name: str, av: Any, n: int) -> float:
    if name in SINGLE or name == "AT":
        return 1.0
    if name == "SUBPATTERN":
        return _ways(av[3], n)
    if name == "BRANCH":
        branches = av[1]
        each = [_ways(branch, n) for branch in branches]
        return max(each) if _disjoint(branches) else min(_INFINITE, sum(each))
    if name in ("MAX_REPEAT", "MIN_REPEAT"):
        low, high, body = av
        if _min_length(body) == 0:
            return _INFINITE  # empty rounds: leave it to the automaton
        top = min(high, n)  # every round takes a character
        if top < low:
            return 1.0
        per_round = _ways(body, n)
        if per_round <= 1.0:
            return float(top - low + 1)
        if top * math.log2(per_round) > 100:  # a power this large is past any budget
            return _INFINITE
        return min(_INFINITE, sum(per_round**k for k in range(low, top + 1)))
    return _INFINITE  # nothing else passes regex's scan; refuse to guess


def _size(items: Sequence[tuple[Any, Any]], n: int) -> float:
    """The steps one way through ``items`` takes, at most (counted repeats unrolled)."""
    total = 0.0
    for op, av in items:
        name = str(op)
        if name == "SUBPATTERN":
            total += _size(av[3], n)
        elif name == "BRANCH":
            total += sum(_size(branch, n) for branch in av[1]) + 1
        elif name in ("MAX_REPEAT", "MIN_REPEAT"):
            total += _size(av[2], n) * min(max(av[0], 1), n + 1) + 1
        else:
            total += 1
    return total


def _min_length(items: Sequence[tuple[Any, Any]]) -> int:
    total = 0
    for op, av in items:
        name = str(op)
        if name in SINGLE:
            total += 1
        elif name == "SUBPATTERN":
            total += _min_length(av[3])
        elif name == "BRANCH":
            total += min(_min_length(branch) for branch in av[1])
        elif name in ("MAX_REPEAT", "MIN_REPEAT"):
            total += av[0] * _min_length(av[2])
    return total


def _disjoint(branches: Sequence[Sequence[tuple[Any, Any]]]) -> bool:
    """Whether no two branches can start at the same character (so one way at most)."""
    seen: set[int] = set()
    for branch in branches:
        first = _first(branch)
        if first is None or _min_length(branch) == 0 or not seen.isdisjoint(first):
            return False
        seen |= first
    return True


def _first(items: Sequence[tuple[Any, Any]]) -> set[int] | None:
    """The code points ``items`` can start with, when few and known."""
    if not items:
        return None
    op, av = items[0]
    name = str(op)
    if name == "LITERAL":
        return {av}
    if name == "SUBPATTERN":
        return _first(av[3])
    if name in ("MAX_REPEAT", "MIN_REPEAT") and av[0] >= 1:
        return _first(av[2])
    if name == "IN":
        found: set[int] = set()
        for kind, value in av:
            kind = str(kind)
            if kind == "LITERAL":
                found.add(value)
            elif kind == "RANGE" and value[1] - value[0] < 256:
                found.update(range(value[0], value[1] + 1))
            else:
                return None
        return found
    return None
