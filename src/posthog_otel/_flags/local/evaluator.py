"""Every flag of one definitions document, compiled; decisions for one subject at a time.

Pure: definitions and a subject (distinct id, person properties, groups and their
properties, device id) in; for each flag a ``Decision`` or ``Undecided`` (with the
reason) out. As PostHog's SDKs do, ``distinct_id`` is a person property unless given,
and each group given has its key as the group property ``$group_key``.

The order, before any condition: an inactive flag is ``False``; one that asks for
experience continuity is undecided (it needs the server's memory of the person);
a flag on a group type this project does not have is undecided, and one whose
group the caller did not give is ``False``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from typing import Any, NamedTuple

from posthog_otel._flagdata import FlagDefinitions
from posthog_otel._flags.local.filters import FilterCompiler
from posthog_otel._flags.local.matcher import (
    DISABLED,
    NO_GROUP_TYPE,
    NO_GROUPS,
    CompiledFlag,
    Decision,
    Groups,
)
from posthog_otel._flags.local.predicate import (
    EXPERIENCE_CONTINUITY,
    UNRESOLVED_DEPENDENCY,
    UNSUPPORTED_DEFINITION,
    FlagValue,
    InconclusiveError,
    NeedsServerError,
)
from posthog_otel._limits import FLAG_MAX_DEPENDENCY_DEPTH

__all__ = ["Decision", "LocalFlags", "Subject", "Undecided"]

logger = logging.getLogger(__name__)


class Undecided(NamedTuple):
    """Local evaluation cannot decide this flag; ``reason`` is one of the four in
    ``predicate``, ``detail`` says what was missing."""

    reason: str
    detail: str


class Subject(NamedTuple):
    """Who a flag is evaluated for, with the properties as flags read them."""

    distinct_id: str
    person: Mapping[str, Any]
    groups: Groups
    device_id: str | None = None


# A named tuple made in C: its ``__new__`` is a Python frame, and a lookup makes one.
_subject = functools.partial(tuple.__new__, Subject)


class LocalFlags:
    """The compiled flags of one ``FlagDefinitions``; safe to share between threads."""

    def __init__(self, definitions: FlagDefinitions) -> None:
        compiler = FilterCompiler(definitions.cohorts, definitions.property_matching_version)
        self.definitions = definitions
        self.flags = {k: CompiledFlag(raw, compiler) for k, raw in definitions.flags.items()}
        self._no_groups = Groups(definitions.group_type_mapping, {}, {})

    def subject(
        self,
        distinct_id: str,
        person_properties: Mapping[str, Any] | None = None,
        groups: Mapping[str, Any] | None = None,
        group_properties: Mapping[str, Mapping[str, Any]] | None = None,
        device_id: str | None = None,
    ) -> Subject:
        """The subject as flags read it (``distinct_id`` and ``$group_key`` added)."""
        person = person_properties or {}
        if "distinct_id" not in person:
            person = {**person, "distinct_id": distinct_id}
        if not groups:
            return _subject((distinct_id, person, self._no_groups, device_id))
        given = group_properties or {}
        by_group = {
            name: {"$group_key": key, **(given.get(name) or {})} for name, key in groups.items()
        }
        mapping = self.definitions.group_type_mapping
        return Subject(distinct_id, person, Groups(mapping, groups, by_group), device_id)

    def decide(
        self, key: str, subject: Subject, *, server_side: bool = False
    ) -> Decision | Undecided | None:
        """Flag ``key`` for ``subject``; ``None`` if the definitions have no such flag.
        ``server_side`` decides as PostHog's flag service would (the devserver's use)."""
        flag = self.flags.get(key)
        if flag is None:
            return None
        try:
            return self._decide(flag, subject, server_side)
        except InconclusiveError as exc:
            return Undecided(exc.reason, str(exc))
        except Exception as exc:  # noqa: BLE001 - an odd definition costs this flag only
            return _failed(key, exc)

    def decide_all(
        self, subject: Subject, *, server_side: bool = False
    ) -> dict[str, Decision | Undecided]:
        """Every flag for ``subject``, in the definitions' order. The flags on persons share
        one scope: a dependency is evaluated once for all of them."""
        answers: dict[str, Decision | Undecided] = {}
        scope = _Scope(self.flags, subject.distinct_id, subject.device_id, server_side)
        person, who, groups = subject.person, subject.distinct_id, subject.groups
        for key, flag in self.flags.items():
            try:
                if flag.plain:  # what _decide would do, without its checks
                    answers[key] = flag.match(person, who, scope, groups)
                else:
                    answers[key] = self._decide(flag, subject, server_side, scope)
            except InconclusiveError as exc:
                answers[key] = Undecided(exc.reason, str(exc))
            except Exception as exc:  # noqa: BLE001 - an odd definition costs this flag only
                answers[key] = _failed(key, exc)
        return answers

    def _decide(
        self, flag: CompiledFlag, subject: Subject, server_side: bool, shared: _Scope | None = None
    ) -> Decision:
        if not flag.active:
            return _DISABLED
        if flag.continuity and not server_side:
            raise InconclusiveError(EXPERIENCE_CONTINUITY, f"flag {flag.key!r} keeps experiences")
        if flag.broken is not None:
            raise NeedsServerError(UNSUPPORTED_DEFINITION, flag.broken)
        groups = subject.groups
        if flag.aggregation is None:
            if flag.by_device:
                bucketing = flag.bucketing(subject.distinct_id, subject.device_id, server_side)
            else:
                bucketing = subject.distinct_id
            scope = shared or _Scope(
                self.flags, subject.distinct_id, subject.device_id, server_side
            )
            return flag.match(subject.person, bucketing, scope, groups)
        name = groups.mapping.get(str(flag.aggregation))
        if not name:
            if server_side:
                return Decision(False, NO_GROUP_TYPE)
            problem = f"flag {flag.key!r} is on a group type the project does not have"
            raise InconclusiveError(UNSUPPORTED_DEFINITION, problem)
        if name not in groups.keys:
            return Decision(False, NO_GROUP_TYPE)  # the server would say the same
        group_key = groups.keys[name]
        scope = _Scope(self.flags, group_key, subject.device_id, server_side)
        return flag.match(groups.properties[name], group_key, scope, groups)


_DISABLED = Decision(False, DISABLED)


def _failed(key: str, exc: Exception) -> Undecided:
    """A flag whose evaluation failed in a way no filter foresaw (a bug, or a value deeper
    than the stack allows): undecided, logged once per flag key."""
    if key not in _failed_keys and len(_failed_keys) < 1000:
        _failed_keys.add(key)
        logger.warning(
            "posthog-otel: flag %r could not be evaluated locally (%s); asking PostHog",
            key[:200],
            type(exc).__name__,
            exc_info=True,
        )
    return Undecided(UNSUPPORTED_DEFINITION, f"flag {key[:200]!r} failed: {type(exc).__name__}")


_failed_keys: set[str] = set()  # no lock: at worst a race logs twice


class _Scope:
    """One top-level evaluation: the flags its dependencies evaluated, and their values."""

    __slots__ = ("depth", "device_id", "done", "flags", "server_side", "subject")

    def __init__(
        self, flags: Mapping[str, CompiledFlag], subject: Any, device_id: str | None, server: bool
    ) -> None:
        self.flags = flags
        self.subject = subject  # the distinct id, or the group key for a group flag
        self.device_id = device_id
        self.server_side = server
        self.done: dict[str, FlagValue | None] = {}  # None: tried, undecided
        self.depth = 0

    def dependency(self, chain: tuple[str, ...], key: str, values: Mapping[str, Any]) -> FlagValue:
        done = self.done
        for name in chain:  # a flag with no definition outranks one that is undecided
            if name not in done and name not in self.flags:
                done[name] = None
                raise InconclusiveError(UNSUPPORTED_DEFINITION, f"flag {name!r} is not defined")
        for name in chain:
            if name not in done:
                self._evaluate(name, values)
        value = done.get(key)
        if value is None:
            known = key in self.flags and key in done
            reason = UNRESOLVED_DEPENDENCY if known else UNSUPPORTED_DEFINITION
            raise InconclusiveError(reason, f"flag {key!r}, a dependency, is undecided")
        return value

    def _evaluate(self, name: str, values: Mapping[str, Any]) -> None:
        flag = self.flags[name]
        if not flag.active:
            self.done[name] = False
            return
        if flag.continuity and not self.server_side:
            self.done[name] = None
            raise InconclusiveError(UNRESOLVED_DEPENDENCY, f"flag {name!r} keeps experiences")
        if self.depth >= FLAG_MAX_DEPENDENCY_DEPTH:
            raise NeedsServerError(UNSUPPORTED_DEFINITION, "flag dependencies nest too deep")
        self.depth += 1
        try:
            if flag.aggregation is None:
                bucketing = flag.bucketing(self.subject, self.device_id, self.server_side)
            else:
                bucketing = self.subject  # a group flag goes on bucketing by the group
            self.done[name] = flag.match(values, bucketing, self, NO_GROUPS).value
        except NeedsServerError as exc:
            raise NeedsServerError(UNRESOLVED_DEPENDENCY, f"flag {name!r}: {exc}") from exc
        except InconclusiveError as exc:
            self.done[name] = None
            raise InconclusiveError(UNRESOLVED_DEPENDENCY, f"flag {name!r}: {exc}") from exc
        finally:
            self.depth -= 1
