"""A small Gherkin reader and step runner, enough for OpenFeature's conformance features.

It reads ``Feature``, ``Background``, ``Scenario``, ``Scenario Outline`` with tagged
``Examples`` tables, steps (``Given``/``When``/``Then``/``And``/``But``) with data
tables, tags and comments, and expands each outline row into its own scenario. Steps
are matched by their text against registered regular expressions, whatever the
keyword.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STEP_KEYWORDS = ("Given ", "When ", "Then ", "And ", "But ")


@dataclass(frozen=True)
class Step:
    text: str
    table: tuple[tuple[str, ...], ...] = ()
    line: int = 0


@dataclass(frozen=True)
class Scenario:
    feature: str
    name: str
    tags: frozenset[str]
    steps: tuple[Step, ...]
    example: tuple[tuple[str, str], ...] = ()  # the outline row, column by column
    line: int = 0

    @property
    def id(self) -> str:
        """A readable, unique-enough name: the scenario, and its outline row."""
        if not self.example:
            return self.name
        return f"{self.name} [{', '.join(v for _, v in self.example)}]"


@dataclass
class _RawStep:
    text: str
    line: int
    table: list[tuple[str, ...]] = field(default_factory=list)


@dataclass
class _Block:
    name: str
    tags: set[str]
    line: int
    outline: bool = False
    steps: list[_RawStep] = field(default_factory=list)
    examples: list[tuple[set[str], list[tuple[str, ...]]]] = field(default_factory=list)


def cells(line: str) -> tuple[str, ...]:
    """A table row's cells, with Gherkin's escapes (``\\|``, ``\\\\``, ``\\n``) undone."""
    inner = line.strip()[1:]
    out, cell, i = [], "", 0
    while i < len(inner):
        char = inner[i]
        if char == "\\" and i + 1 < len(inner) and inner[i + 1] in "|\\n":
            cell += {"|": "|", "\\": "\\", "n": "\n"}[inner[i + 1]]
            i += 2
            continue
        if char == "|":
            out.append(cell.strip())
            cell = ""
        else:
            cell += char
        i += 1
    return tuple(out)


def load(path: Path) -> list[Scenario]:
    """Every scenario in a feature file, outlines expanded, background steps first."""
    feature, feature_tags = path.stem, set[str]()
    background: list[_RawStep] = []
    blocks: list[_Block] = []
    pending: set[str] = set()
    current: _Block | None = None
    steps: list[_RawStep] | None = None  # where the next step goes
    table: list[tuple[str, ...]] | None = None  # where the next table row goes
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("@"):
            pending |= set(line.split())
            continue
        keyword, _, rest = line.partition(":")
        if keyword == "Feature":
            feature, feature_tags, pending = rest.strip(), pending, set()
        elif keyword == "Background":
            steps, table = background, None
        elif keyword in ("Scenario", "Scenario Outline", "Scenario Template"):
            current = _Block(rest.strip(), pending, number, outline=keyword != "Scenario")
            blocks.append(current)
            steps, table, pending = current.steps, None, set()
        elif keyword in ("Examples", "Scenarios") and current is not None:
            rows: list[tuple[str, ...]] = []
            current.examples.append((pending, rows))
            steps, table, pending = None, rows, set()
        elif line.startswith("|"):
            if table is None:
                if not steps:
                    raise ValueError(f"{path.name}:{number}: a table row outside a step")
                table = steps[-1].table
            table.append(cells(line))
        elif line.startswith(STEP_KEYWORDS) and steps is not None:
            steps.append(_RawStep(line.split(" ", 1)[1].strip(), number))
            table = None
        else:
            raise ValueError(f"{path.name}:{number}: cannot read {line!r}")
    return [s for block in blocks for s in _expand(feature, feature_tags, background, block)]


def _expand(
    feature: str, feature_tags: set[str], background: list[_RawStep], block: _Block
) -> list[Scenario]:
    steps = tuple(Step(s.text, tuple(s.table), s.line) for s in (*background, *block.steps))
    tags = feature_tags | block.tags
    if not block.outline:
        return [Scenario(feature, block.name, frozenset(tags), steps, line=block.line)]
    expanded = []
    for example_tags, rows in block.examples:
        header, *values = rows
        for row in values:
            example = tuple(zip(header, row, strict=True))
            expanded.append(
                Scenario(
                    feature,
                    block.name,
                    frozenset(tags | example_tags),
                    tuple(_substituted(step, dict(example)) for step in steps),
                    example,
                    block.line,
                )
            )
    return expanded


def _substituted(step: Step, values: dict[str, str]) -> Step:
    def fill(text: str) -> str:
        return re.sub(r"<([^<>]+)>", lambda m: values.get(m.group(1), m.group(0)), text)

    table = tuple(tuple(fill(c) for c in row) for row in step.table)
    return Step(fill(step.text), table, step.line)


class Steps:
    """Step definitions: ``@steps.define(regex)`` on ``function(world, *groups)``; a
    step with a data table gets it as the keyword argument ``table``."""

    def __init__(self) -> None:
        self._defined: list[tuple[re.Pattern[str], Callable[..., Any]]] = []

    def define(self, pattern: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def register(function: Callable[..., Any]) -> Callable[..., Any]:
            self._defined.append((re.compile(pattern), function))
            return function

        return register

    def run(self, scenario: Scenario, world: Any) -> None:
        for step in scenario.steps:
            matches = [(p, f) for p, f in self._defined if p.fullmatch(step.text)]
            if len(matches) != 1:
                found = "no" if not matches else f"{len(matches)}"
                raise LookupError(f"{found} step definitions for {step.text!r} (line {step.line})")
            pattern, function = matches[0]
            groups = pattern.fullmatch(step.text).groups()  # type: ignore[union-attr]
            if step.table:
                function(world, *groups, table=step.table)
            else:
                function(world, *groups)
