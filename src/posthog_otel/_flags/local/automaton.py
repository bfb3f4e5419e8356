"""A linear-time regex search: the pattern as a Thompson automaton, stepped in pure Python.

Every live state is stepped together over the text, so a search takes at most states x
characters steps, whatever the pattern (``(a|a)*`` included), and the interpreter still
switches threads while it runs. It stops at ``REGEX_STEP_BUDGET`` steps (the search is
then inconclusive, as PostHog's flag service calls a pattern over its backtrack limit
an error), and a pattern whose counted repeats unroll past ``REGEX_MAX_STATES`` is not
built. It answers only *whether* the pattern occurs, which for the syntax ``regex`` lets
through (a regular language: no back-references, look-around, or atomic groups) does
not depend on how an engine explores it: the same answer as ``re``, which the tests
check on generated patterns.

The pattern is read here (not by ``re``'s private parser) into the tree ``re`` reads:
``(kind, argument)`` pairs named as ``re``'s (``LITERAL``, ``IN``, ``BRANCH``, ...).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from typing import Any

from posthog_otel._limits import REGEX_MAX_STATES, REGEX_STEP_BUDGET

__all__ = ["MANY", "SINGLE", "Automaton", "OverBudgetError", "build", "parse"]

SINGLE = frozenset({"LITERAL", "NOT_LITERAL", "ANY", "IN"})
CharTest = Callable[[str], bool]


class OverBudgetError(Exception):
    """The search needed more than ``REGEX_STEP_BUDGET`` steps."""


MANY = 1 << 62  # no upper bound on a repeat
_SHORTHAND = {
    "d": "CATEGORY_DIGIT",
    "D": "CATEGORY_NOT_DIGIT",
    "s": "CATEGORY_SPACE",
    "S": "CATEGORY_NOT_SPACE",
    "w": "CATEGORY_WORD",
    "W": "CATEGORY_NOT_WORD",
}
_CONTROL = {"f": "\f", "n": "\n", "r": "\r", "t": "\t"}


class UnreadError(ValueError):
    """Syntax this reader does not take (it reads only what ``regex``'s scan lets through)."""


def parse(translated: str) -> list[tuple[str, Any]]:
    """A pattern, in Python's spelling and already compiled by ``re``, as a tree shaped like
    ``re``'s own parse: ``(kind, argument)`` pairs (``LITERAL``, ``IN``, ``BRANCH``, ...)."""
    reader = _Reader(translated)
    items = reader.alternation(0)
    if reader.at != len(translated):
        raise UnreadError("an unmatched )")
    return items


class _Reader:
    """Recursive descent over the shared syntax; nesting is bounded by ``regex``'s scan."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.at = 0

    def peek(self) -> str:
        return self.text[self.at : self.at + 1]

    def take(self) -> str:
        char = self.peek()
        if not char:
            raise UnreadError("the pattern ends early")
        self.at += 1
        return char

    def alternation(self, depth: int) -> list[tuple[str, Any]]:
        branches = [self.sequence(depth)]
        while self.peek() == "|":
            self.at += 1
            branches.append(self.sequence(depth))
        if len(branches) == 1:
            return branches[0]
        return [("BRANCH", (None, branches))]

    def sequence(self, depth: int) -> list[tuple[str, Any]]:
        items: list[tuple[str, Any]] = []
        while self.peek() not in ("", "|", ")"):
            item = self.atom(depth)
            items.append(self.quantified(item))
        return items

    def atom(self, depth: int) -> tuple[str, Any]:
        char = self.take()
        if char == "(":
            if self.text.startswith("?:", self.at):
                self.at += 2
            elif self.peek() == "?":
                raise UnreadError("a special group")
            inner = self.alternation(depth + 1)
            if self.take() != ")":
                raise UnreadError("an unclosed group")
            return ("SUBPATTERN", (None, 0, 0, inner))
        if char == "[":
            return ("IN", self.char_class())
        if char == "^":
            return ("AT", "AT_BEGINNING")
        if char == ".":
            return ("ANY", None)
        if char == "\\":
            if self.peek() == "Z":
                self.at += 1
                return ("AT", "AT_END_STRING")
            kind, value = self.escape()
            return ("IN", [(kind, value)]) if kind == "CATEGORY" else (kind, value)
        if char in "*+?{":
            raise UnreadError("nothing to repeat")
        return ("LITERAL", ord(char))

    def escape(self) -> tuple[str, Any]:
        char = self.take()
        if char in _SHORTHAND:
            return ("CATEGORY", _SHORTHAND[char])
        if char == "x":
            digits = self.text[self.at : self.at + 2]
            self.at += 2
            return ("LITERAL", int(digits, 16))
        if char in _CONTROL:
            return ("LITERAL", ord(_CONTROL[char]))
        if char.isalnum() and char != "b":
            raise UnreadError(f"the escape \\{char}")
        return ("LITERAL", 8 if char == "b" else ord(char))  # \b: backspace, in a class

    def char_class(self) -> list[tuple[str, Any]]:
        items: list[tuple[str, Any]] = []
        if self.peek() == "^":
            self.at += 1
            items.append(("NEGATE", None))
        first = True
        while True:
            char = self.take()
            if char == "]" and not first:
                return items
            first = False
            low = self.escape() if char == "\\" else ("LITERAL", ord(char))
            if self.peek() == "-" and self.text[self.at + 1 : self.at + 2] not in ("", "]"):
                self.at += 1
                char = self.take()
                high = self.escape() if char == "\\" else ("LITERAL", ord(char))
                if low[0] != "LITERAL" or high[0] != "LITERAL" or high[1] < low[1]:
                    raise UnreadError("a bad range")
                items.append(("RANGE", (low[1], high[1])))
            else:
                items.append(low)

    def quantified(self, item: tuple[str, Any]) -> tuple[str, Any]:
        char = self.peek()
        if char and char in "*+?":
            self.at += 1
            low, high = {"*": (0, MANY), "+": (1, MANY), "?": (0, 1)}[char]
        elif char == "{":
            end = self.text.index("}", self.at)
            counts = self.text[self.at + 1 : end].split(",")
            self.at = end + 1
            low = int(counts[0])
            high = low if len(counts) == 1 else int(counts[1]) if counts[1] else MANY
        else:
            return item
        kind = "MAX_REPEAT"
        if self.peek() == "?":
            self.at += 1
            kind = "MIN_REPEAT"
        return (kind, (low, high, [item]))


# -- the automaton ---------------------------------------------------------------------------

_CHAR, _SPLIT, _BEGIN, _END, _MATCH = range(5)


class TooLargeError(Exception):
    """The pattern unrolls to more than ``REGEX_MAX_STATES`` states."""


class Automaton:
    """A pattern as states: each tests one character, splits in two, or asserts a place."""

    __slots__ = ("kinds", "nexts", "others", "start", "tests")

    def __init__(self) -> None:
        self.kinds: list[int] = []
        self.tests: list[CharTest | None] = []
        self.nexts: list[int] = []
        self.others: list[int] = []
        self.start = 0

    def _add(self, kind: int, test: CharTest | None = None, out: int = -1, other: int = -1) -> int:
        if len(self.kinds) >= REGEX_MAX_STATES:
            raise TooLargeError
        self.kinds.append(kind)
        self.tests.append(test)
        self.nexts.append(out)
        self.others.append(other)
        return len(self.kinds) - 1

    def search(self, text: str) -> bool:
        """Whether the pattern occurs in ``text``; ``OverBudgetError`` past the budget."""
        kinds, tests, nexts, others = self.kinds, self.tests, self.nexts, self.others
        marks = [-1] * len(kinds)
        end = len(text)
        steps = 0
        current: list[int] = []
        for at in range(end + 1):
            # The states reached at ``at``: those carried over, and a new start (search).
            stack = [*current, self.start] if at else [self.start]
            current = []
            while stack:
                state = stack.pop()
                if marks[state] == at:
                    continue
                marks[state] = at
                steps += 1
                kind = kinds[state]
                if kind == _CHAR:
                    current.append(state)
                elif kind == _SPLIT:
                    stack.append(others[state])
                    stack.append(nexts[state])
                elif kind == _MATCH:
                    return True
                elif (kind == _BEGIN and at == 0) or (kind == _END and at == end):
                    stack.append(nexts[state])
            if at == end:
                return False
            char = text[at]
            steps += len(current)
            if steps > REGEX_STEP_BUDGET:
                raise OverBudgetError
            current = [nexts[s] for s in current if tests[s](char)]  # type: ignore[misc]
        return False


def build(items: Sequence[tuple[Any, Any]]) -> Automaton | None:
    """The automaton for a parsed pattern; ``None`` if it would be too large."""
    machine = Automaton()
    try:
        match = machine._add(_MATCH)
        machine.start = _Builder(machine).sequence(items, match)
    except TooLargeError:
        return None
    return machine


class _Builder:
    """Builds states back to front: each piece is given the state that follows it."""

    def __init__(self, machine: Automaton) -> None:
        self.machine = machine

    def sequence(self, items: Sequence[tuple[Any, Any]], follow: int) -> int:
        for op, av in reversed(items):
            follow = self.item(str(op), av, follow)
        return follow

    def item(self, name: str, av: Any, follow: int) -> int:
        add = self.machine._add
        if name in SINGLE:
            return add(_CHAR, char_test(name, av), follow)
        if name == "AT":
            where = str(av)
            if where == "AT_BEGINNING":
                return add(_BEGIN, out=follow)
            if where == "AT_END_STRING":
                return add(_END, out=follow)
            raise TooLargeError  # no other anchor passes regex's scan
        if name == "SUBPATTERN":
            return self.sequence(av[3], follow)
        if name == "BRANCH":
            branches = [self.sequence(branch, follow) for branch in av[1]]
            while len(branches) > 1:
                last = branches.pop()
                branches[-1] = add(_SPLIT, out=branches[-1], other=last)
            return branches[0]
        if name in ("MAX_REPEAT", "MIN_REPEAT"):
            return self.repeat(av, follow)
        raise TooLargeError  # an unknown piece: not built, so never guessed at

    def repeat(self, av: Any, follow: int) -> int:
        low, high, body = av
        add = self.machine._add
        if high == MANY:
            loop = add(_SPLIT, out=-1, other=follow)  # body again, or on
            self.machine.nexts[loop] = self.sequence(body, loop)
            follow = loop
        else:
            for _ in range(high - low):  # each optional round: body, or straight on
                if len(self.machine.kinds) >= REGEX_MAX_STATES:
                    raise TooLargeError
                follow = add(_SPLIT, out=self.sequence(body, follow), other=follow)
        for _ in range(low):
            if len(self.machine.kinds) >= REGEX_MAX_STATES:
                raise TooLargeError
            follow = self.sequence(body, follow)
        return follow


def char_test(name: str, av: Any) -> CharTest:
    """One character's test, as Python's ``re`` reads it (Unicode, no flags)."""
    if name == "LITERAL":
        wanted = chr(av)
        return wanted.__eq__
    if name == "NOT_LITERAL":
        unwanted = chr(av)
        return unwanted.__ne__
    if name == "ANY":
        return "\n".__ne__
    negated = False
    categories: list[CharTest] = []
    spans: list[tuple[int, int]] = []
    for kind, value in av:
        kind = str(kind)
        if kind == "NEGATE":
            negated = True
        elif kind == "LITERAL":
            spans.append((value, value))
        elif kind == "RANGE":
            spans.append((value[0], value[1]))
        elif kind == "CATEGORY":
            categories.append(_CATEGORIES[str(value)])
        else:
            raise TooLargeError  # nothing else passes regex's scan
    starts, ends = _merged(spans)

    def test(char: str) -> bool:  # a binary search, however many ranges the class has
        code = ord(char)
        at = bisect.bisect_right(starts, code) - 1
        found = at >= 0 and code <= ends[at]
        return (found or any(t(char) for t in categories)) != negated

    return test


def _merged(spans: list[tuple[int, int]]) -> tuple[list[int], list[int]]:
    starts: list[int] = []
    ends: list[int] = []
    for low, high in sorted(spans):
        if ends and low <= ends[-1] + 1:
            ends[-1] = max(ends[-1], high)
        else:
            starts.append(low)
            ends.append(high)
    return starts, ends


_CATEGORIES: dict[str, CharTest] = {
    "CATEGORY_DIGIT": str.isdecimal,
    "CATEGORY_NOT_DIGIT": lambda c: not c.isdecimal(),
    "CATEGORY_SPACE": str.isspace,
    "CATEGORY_NOT_SPACE": lambda c: not c.isspace(),
    "CATEGORY_WORD": lambda c: c.isalnum() or c == "_",
    "CATEGORY_NOT_WORD": lambda c: not (c.isalnum() or c == "_"),
}
