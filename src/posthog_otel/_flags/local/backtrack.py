"""How dear Python's backtracking ``re`` can be, at most, for a pattern and a text length.

``re`` backtracks, holding the GIL: ``(a|a)*@example`` against 26 ``a`` takes seconds,
and every thread of the process waits. A pattern is searched with ``re`` only for
texts short enough that this model bounds the search by ``REGEX_RE_COST``; longer ones
go to the ``automaton``. The model bounds the backtracking search tree: start positions
(one when every branch begins with ``^``) x the steps from one position, where each item
of a sequence is reached once per way the items before it can match. Ways multiply
along a sequence and add over an alternation's branches (the largest counts when the
branches begin with disjoint characters); a repeat of a body with one way counts its
repeat counts, a repeat of a body with several ways multiplies them per round, a
repeat of one character class that what follows cannot begin with (``\\w+@``) hands on
one way, and a repeat of a body that can match nothing is left to the automaton. The
model is pessimistic (``.*.*=`` is far cheaper than it says), never optimistic; the
tests time ``re`` at the lengths it allows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from posthog_otel._flags.local.automaton import SINGLE, char_test
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
    return min(_INFINITE, starts * _walk(items, n)[1])


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


def _walk(items: Sequence[tuple[Any, Any]], n: int) -> tuple[float, float]:
    """From one position of an n-char text: the ways ``items`` can match, at most, and the
    steps a backtracking search spends on them (its search tree: each item is reached
    once per way of the items before it)."""
    ways, work = 1.0, 0.0
    for at, (op, av) in enumerate(items):
        item_ways, item_work = _item(str(op), av, n, items[at + 1 :])
        work = min(_INFINITE, work + ways * item_work)
        ways = min(_INFINITE, ways * item_ways)
    return ways, work


def _item(name: str, av: Any, n: int, rest: Sequence[tuple[Any, Any]]) -> tuple[float, float]:
    if name in SINGLE or name == "AT":
        return 1.0, 1.0
    if name == "SUBPATTERN":
        return _walk(av[3], n)
    if name == "BRANCH":
        branches = av[1]
        each = [_walk(branch, n) for branch in branches]
        work = sum(k for _, k in each) + 1  # every branch is tried, on every arrival
        if _disjoint(branches):
            return max(w for w, _ in each), work
        return min(_INFINITE, sum(w for w, _ in each)), work
    if name in ("MAX_REPEAT", "MIN_REPEAT"):
        return _repeat(av, n, rest)
    return _INFINITE, _INFINITE  # nothing else passes regex's scan; refuse to guess


def _repeat(av: Any, n: int, rest: Sequence[tuple[Any, Any]]) -> tuple[float, float]:
    low, high, body = av
    if _min_length(body) == 0:
        return _INFINITE, _INFINITE  # empty rounds: leave it to the automaton
    top = min(high, n)  # every round takes a character
    per_round, round_work = _walk(body, n)
    if top < low:  # too few characters: a failed walk
        return 1.0, (top + 1) * round_work
    if _stops_before(body, rest):
        return 1.0, top + 1.0  # one place to stop: the run's end
    if per_round <= 1.0:  # one walk forward, then a step back per way
        return float(top - low + 1), (top + 1) * round_work + (top - low + 1)
    if top * math.log2(per_round) > 100:  # a power this large is past any budget
        return _INFINITE, _INFINITE
    ways = sum(per_round**k for k in range(low, top + 1))
    return min(_INFINITE, ways), min(_INFINITE, sum(per_round**k for k in range(top + 1)))


def _stops_before(body: Sequence[tuple[Any, Any]], rest: Sequence[tuple[Any, Any]]) -> bool:
    """Whether a repeat of one character class ends only where ``rest`` can begin: when
    no character that can begin ``rest`` is in the class (``\\w+@``), a repeat can hand
    on one way at most, the one that ends the run."""
    if len(body) != 1 or str(body[0][0]) not in SINGLE:
        return False
    follow = _first(rest)
    if follow is None:
        return False
    test = char_test(str(body[0][0]), body[0][1])
    return not any(test(chr(code)) for code in follow)


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
