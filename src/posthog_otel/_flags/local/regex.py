"""``regex`` filters, decided locally only where Python and the flag service agree.

PostHog's flag service matches with Rust's regex engines; Python's ``re`` reads most of
the same syntax the same way, but not all of it. A pattern is used here only when it
keeps to the syntax both read alike; anything else is inconclusive (asked of PostHog):

- groups other than ``(...)`` and ``(?:...)`` (flags, lookaround, names), word
  boundaries, escapes other than ``\\d\\s\\w`` (and their capitals), ``\\f\\n\\r\\t``,
  ``\\xHH`` and escaped ASCII punctuation; in a class, ``\\b`` and only the escapes of
  regex metacharacters;
- nested or empty classes, ``&&``/``--``/``~~`` in a class, a shorthand class as the
  end of a range;
- a quantifier after ``^``, ``$``, ``()``, or right before ``+`` or ``{``; repeating a
  group that itself repeats (it can backtrack past the service's step limit); a
  ``{m,n}`` with a huge count or with nothing to repeat.

``$`` is strict (end of text, as in Rust), and a few values are inconclusive too:
non-ASCII text under ``\\w`` (the engines class marks and numbers differently), the
separators U+001C-U+001F under ``\\s``, and a final newline where ``$`` meets a
repetition. A pattern that neither engine accepts matches nothing, either way.

Every search is bounded in time. Python's ``re`` searches a value only when
``backtrack``'s cost model proves it cheap at that length (the common case: C speed);
the ``automaton`` (linear time, in pure Python so other threads run, with a step
budget) searches the rest. An optional engine was weighed and left out: ``google-re2``
is linear too but is a compiled extension that would have to be an extra, so the
fallback would still be needed and two engines' readings would have to agree; the
``regex`` package's ``timeout`` bounds time but still backtracks exponentially up to
it, and holds the GIL unless asked not to. The syntax above is a regular language, so
the automaton needs nothing and gives ``re``'s answer, as the tests check. A pattern
longer than ``REGEX_MAX_PATTERN_CHARS`` or nested deeper than ``REGEX_MAX_NESTING``, a
value longer than ``REGEX_MAX_VALUE_CHARS``, or a search over its step budget is
inconclusive: that filter is undecided, as any filter local evaluation cannot decide.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from posthog_otel._flags.local import automaton, backtrack
from posthog_otel._flags.local.predicate import UNSUPPORTED_DEFINITION, InconclusiveError
from posthog_otel._limits import REGEX_MAX_NESTING, REGEX_MAX_PATTERN_CHARS, REGEX_MAX_VALUE_CHARS

__all__ = ["SharedRegex", "compile_shared", "search"]

_SHORTHANDS = "dDsSwW"
_PLAIN_ESCAPES = _SHORTHANDS + "bfnrt"
_CLASS_ESCAPES = frozenset("\\-[]^.$*+?(){}|")
_NOTHING_TO_REPEAT = ("", "|", "(", "^", "$", "()", "quantifier")
_REPEAT = re.compile(r"\{([0-9]+)(?:,([0-9]*))?\}")
_SEPARATORS = frozenset("\x1c\x1d\x1e\x1f")


@dataclass(frozen=True)
class SharedRegex:
    """A pattern both engines read alike, and what its values must avoid."""

    compiled: re.Pattern[str]
    word_class: bool
    space_class: bool
    strict_end_repeats: bool  # ``$`` together with a quantifier or an alternation
    re_up_to: int  # the longest value Python's re searches within its cost budget
    machine: automaton.Automaton | None  # for longer values; None: too large to build


def _unshared(why: str) -> InconclusiveError:
    return InconclusiveError(UNSUPPORTED_DEFINITION, f"regex: {why} (asked of PostHog)")


def compile_shared(pattern: str) -> SharedRegex | None:
    """The (non-empty) pattern, compiled; ``None`` if it is invalid (matches nothing). Raises
    ``InconclusiveError`` when the engines could read it differently."""
    if len(pattern) > REGEX_MAX_PATTERN_CHARS:
        raise _unshared(f"a pattern over {REGEX_MAX_PATTERN_CHARS} characters")
    scan = _Scan(pattern)
    translated = scan.run()
    try:
        compiled = re.compile(translated)
        parsed = automaton.parse(translated)
    except re.error:
        return None
    except (RecursionError, OverflowError, ValueError) as exc:
        raise _unshared(type(exc).__name__) from None
    strict = scan.end_anchor and scan.repeats
    safe = backtrack.re_safe_length(parsed)
    machine = None if safe >= REGEX_MAX_VALUE_CHARS else automaton.build(parsed)
    return SharedRegex(compiled, scan.word_class, scan.space_class, strict, safe, machine)


def search(regex: SharedRegex, text: str) -> bool:
    """Whether the pattern occurs in ``text``; ``InconclusiveError`` for a value the engines
    could treat differently, or one too long or too dear to search."""
    if len(text) > REGEX_MAX_VALUE_CHARS:
        raise _unshared(f"a value over {REGEX_MAX_VALUE_CHARS} characters")
    if regex.strict_end_repeats and text.endswith("\n"):
        raise _unshared("a final newline against a strict $")
    if not text.isascii():
        if any("\ud800" <= c <= "\udfff" for c in text):
            raise _unshared("surrogates in the value")
        odd = (c for c in text if not (c.isascii() or c.isalpha() or c.isdecimal()))
        if regex.word_class and any(odd):
            raise _unshared("non-ASCII marks or numbers under \\w")
    if regex.space_class and not _SEPARATORS.isdisjoint(text):
        raise _unshared("U+001C-U+001F under \\s")
    if len(text) <= regex.re_up_to:
        try:
            return regex.compiled.search(text) is not None
        except (RecursionError, MemoryError) as exc:
            raise _unshared(type(exc).__name__) from None
    if regex.machine is None:
        raise _unshared("a pattern too large to search this value in bounded time")
    try:
        return regex.machine.search(text)
    except automaton.OverBudgetError:
        raise _unshared("the search is over its step budget") from None


class _Scan:
    """One left-to-right pass: check each token, and write Python's spelling of it."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self.at = 0
        self.out: list[str] = []
        self.class_start: int | None = None
        self.last = ""  # the previous token's kind: "", "(", "()", "^", "$", "|",
        #                 "quantifier", "literal", or the character itself
        self.groups: list[bool] = []  # per open group: does it repeat something?
        self.closed_repeats = False  # did the group closed last repeat something?
        self.word_class = self.space_class = self.end_anchor = self.repeats = False

    def peek(self, start: int, length: int = 1) -> str:
        return self.pattern[self.at + start : self.at + start + length]

    def run(self) -> str:
        while self.at < len(self.pattern):
            char = self.pattern[self.at]
            if "\ud800" <= char <= "\udfff":
                raise _unshared("surrogates in the pattern")
            if self.class_start is None:
                self.track_groups(char)
            if char == "\\":
                self.escape()
            elif char == "[":
                if self.class_start is not None:
                    raise _unshared("a class inside a class")
                self.class_start = self.at
                self.out.append(char)
            elif char == "]" and self.class_start is not None:
                self.close_class()
            elif self.class_start is not None:
                self.in_class(char)
            else:
                self.outside(char)
            self.at += 1
        return "".join(self.out)

    def track_groups(self, char: str) -> None:
        if char == "$":
            self.end_anchor = True
        if char in "*+?{|":
            self.repeats = True
        if char == "(":
            if len(self.groups) >= REGEX_MAX_NESTING:
                raise _unshared(f"groups nested over {REGEX_MAX_NESTING} deep")
            self.groups.append(False)
        elif char == ")":
            self.closed_repeats = self.groups.pop() if self.groups else False
            if self.groups:
                self.groups[-1] |= self.closed_repeats
        elif char in "*+?{":
            if self.last == ")" and self.closed_repeats:
                raise _unshared("a repeated group that repeats")
            if self.groups:
                self.groups[-1] = True

    def escape(self) -> None:
        self.at += 1
        if self.at == len(self.pattern):
            self.out.append("\\")  # a trailing backslash: invalid in both
            return
        char = self.pattern[self.at]
        in_class = self.class_start is not None
        if char == "x":
            digits = self.peek(1, 2)
            if len(digits) != 2 or not all(c in "0123456789abcdefABCDEF" for c in digits):
                raise _unshared("\\x needs two hex digits")
            self.out.append("\\x" + digits)
            self.at += 2
        else:
            if char in "bB<>" and not in_class:
                raise _unshared("word boundaries")
            if char not in _PLAIN_ESCAPES:
                if not (" " <= char <= "~") or char.isalnum():
                    raise _unshared(f"the escape \\{char}")
                if in_class and char not in _CLASS_ESCAPES:
                    raise _unshared(f"the escape \\{char} in a class")
            self.word_class |= char in "wW"
            self.space_class |= char in "sS"
            self.out.append("\\" + char)
        self.last = "literal"

    def close_class(self) -> None:
        assert self.class_start is not None
        negated = self.pattern[self.class_start + 1 : self.class_start + 2] == "^"
        if self.at == self.class_start + (2 if negated else 1):
            raise _unshared("an empty class")
        self.class_start = None
        self.last = "literal"
        self.out.append("]")

    def in_class(self, char: str) -> None:
        if self.peek(0, 2) in ("&&", "--", "~~"):
            raise _unshared("class set operations")
        if char == "-" and self.peek(1) not in ("", "]"):
            after = self.peek(1, 2)
            before = self.pattern[self.at - 2 : self.at] if self.at >= 2 else ""
            shorthand = {"\\" + c for c in _SHORTHANDS}
            if after in shorthand or before in shorthand:
                raise _unshared("a shorthand class in a range")
        self.out.append(char)

    def outside(self, char: str) -> None:
        if char == "(" and self.peek(1) == "?":
            if self.peek(2) != ":":
                raise _unshared("special groups")
            self.out.append("(?:")
            self.at += 2
            self.last = "("
        elif char == "{":
            self.repetition()
        elif char in "*+?":
            if self.last in ("^", "$", "()") or self.peek(1) in ("+", "{"):
                raise _unshared(f"{char} in this place")
            self.last = "quantifier"
            self.out.append(char)
        else:
            empty_group = char == ")" and self.last in ("(", "()")
            self.last = "()" if empty_group else char
            self.out.append(r"\Z" if char == "$" else char)  # Rust's $ is strict

    def repetition(self) -> None:
        found = _REPEAT.match(self.pattern, self.at)
        if found is None or self.last in _NOTHING_TO_REPEAT:
            raise _unshared("this use of {")
        if any(len(n) > 10 or int(n) > 0xFFFFFFFF for n in found.groups() if n):
            raise _unshared("a repetition count this large")
        self.out.append(found.group())
        self.at += len(found.group()) - 1
        if self.peek(1) in ("+", "{"):
            raise _unshared("a repetition followed by + or {")
        self.last = "quantifier"
