"""One flag's definition, compiled: from a subject's properties to the flag's value.

In PostHog's order: early-access enrollment (``filters.feature_enrollment``), then
the holdout (``filters.holdout``: the held-out share gets ``holdout-<id>``), then
the conditions in order, the first match winning. A condition matches when all its
filters do and the subject falls inside its rollout; its ``variant``, if valid,
overrides the variant the hash picks. A condition of a flag on persons may target a
group instead (``aggregation_group_type_index`` of its own): it reads that group's
properties and rolls out by its key, and is skipped when that group is not given.

An undecided filter makes its condition undecided, and the next condition is tried;
the flag is undecided only if no condition matches after one was. With
``filters.early_exit``, a condition whose filters matched but whose rollout did not
ends the search.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from posthog_otel._flagdata import decode_payload
from posthog_otel._flags.local.filters import FilterCompiler
from posthog_otel._flags.local.hashing import holdout_hash, rollout_hash
from posthog_otel._flags.local.predicate import (
    MISSING_CONTEXT,
    UNSUPPORTED_DEFINITION,
    FlagValue,
    InconclusiveError,
    NeedsServerError,
    Predicate,
    Scope,
    first_reason,
)
from posthog_otel._limits import FLAG_MAX_ITEMS

__all__ = ["CompiledFlag", "Decision", "Groups"]

# Why a flag has its value, in the flag service's reason codes.
CONDITION_MATCH = "condition_match"
NO_CONDITION_MATCH = "no_condition_match"
OUT_OF_ROLLOUT_BOUND = "out_of_rollout_bound"
HOLDOUT = "holdout_condition_value"
NO_GROUP_TYPE = "no_group_type"
DISABLED = "flag_disabled"
ENROLLMENT = "feature_enrollment"

_NO_MATCH, _OUT_OF_BOUND, _MATCH = 0, 1, 2


class Decision(NamedTuple):
    """A flag's value for one subject, why (a reason code), and which condition (0-based)."""

    value: FlagValue
    code: str
    condition: int | None = None


class Groups(NamedTuple):
    """What conditions targeting a group read: type names by index, keys, properties."""

    mapping: Mapping[str, str]
    keys: Mapping[str, Any]
    properties: Mapping[str, Mapping[str, Any]]


NO_GROUPS = Groups({}, {}, {})
_NO_MATCH_DECISION = Decision(False, NO_CONDITION_MATCH)


class _MalformedError(Exception):
    pass


class _Condition:
    __slots__ = (
        "decisions",
        "group_index",
        "out_of_bound",
        "own_group",
        "tests",
        "threshold",
        "variant",
    )

    def __init__(
        self,
        raw: Any,
        index: int,
        compiler: FilterCompiler,
        aggregation: Any,
        variants: tuple[str, ...],
    ) -> None:
        if not isinstance(raw, Mapping):
            raise _MalformedError("a condition must be an object")
        filters = raw.get("properties") or []
        rollout = raw.get("rollout_percentage")
        if not isinstance(filters, list) or not isinstance(rollout, (int, float, type(None))):
            raise _MalformedError("a condition needs a list of filters and a numeric rollout")
        if len(filters) > FLAG_MAX_ITEMS:
            raise _MalformedError(f"over {FLAG_MAX_ITEMS} filters in a condition")
        self.tests: tuple[Predicate, ...] = tuple(compiler.compile(f) for f in filters)
        self.threshold: float | None = None if rollout is None else rollout / 100
        override = raw.get("variant")
        self.variant: str | None = override if override and override in variants else None
        own = raw.get("aggregation_group_type_index", aggregation)
        self.own_group = own != aggregation
        self.group_index = None if own is None else str(own)
        # Every answer this condition can give, made once: a lookup allocates none.
        self.decisions: dict[str | None, Decision] = {}
        self.out_of_bound = Decision(False, OUT_OF_ROLLOUT_BOUND, index)
        for name in (None, *variants):
            self.decisions[name] = Decision(name or True, CONDITION_MATCH, index)

    def subject(
        self, values: Mapping[str, Any], bucketing: Any, groups: Groups
    ) -> tuple[Mapping[str, Any], Any] | None:
        """The properties and bucketing value this condition, which targets a group of its
        own, reads; ``None`` to skip it."""
        if self.group_index is None:
            return values, bucketing
        name = groups.mapping.get(self.group_index)
        if not name or name not in groups.keys:
            return None
        if name not in groups.properties:
            raise InconclusiveError(MISSING_CONTEXT, f"no properties given for group {name!r}")
        return groups.properties[name], groups.keys[name]

    def test(self, key: str, values: Mapping[str, Any], bucketing: Any, scope: Scope) -> int:
        if self.tests:
            reason: str | None = None
            server: NeedsServerError | None = None
            for test in self.tests:  # no order among filters: a later one may still fail
                try:
                    if not test(values, scope):
                        return _NO_MATCH
                except NeedsServerError as exc:
                    if reason is None:  # the first undecided filter needs the server
                        server = exc
                    reason = first_reason(reason, exc.reason)
                except InconclusiveError as exc:
                    reason = first_reason(reason, exc.reason)
            if server is not None:
                raise server
            if reason is not None:
                raise InconclusiveError(reason, f"a filter of flag {key!r} could not be decided")
            if self.threshold is None:
                return _MATCH
        threshold = self.threshold  # the hash is at most 1: a rollout of 100% needs none
        if threshold is not None and threshold < 1 and rollout_hash(key, bucketing) > threshold:
            return _OUT_OF_BOUND
        return _MATCH


class CompiledFlag:
    """A flag ready to evaluate; a definition that cannot be read is always undecided."""

    def __init__(self, raw: Mapping[str, Any], compiler: FilterCompiler) -> None:
        self.key = str(raw["key"])
        self.id = _int_or_none(raw.get("id"))
        self.version = _int_or_none(raw.get("version"))
        self.active = bool(raw.get("active"))
        self.continuity = bool(raw.get("ensure_experience_continuity", False))
        self.aggregation: Any = None
        self.by_device = self.enrollment = self.early_exit = False
        self.holdout: tuple[str, float, bool] | None = None  # variant, share, everyone
        self.variants: tuple[tuple[float, float, str], ...] = ()
        self.conditions: tuple[_Condition, ...] = ()
        self.broken: str | None = None
        self.payloads: dict[str, Any] = {}
        self.results: dict[Decision, Any] = {}  # the provider's FeatureFlag per decision
        try:
            self._compile(raw, compiler)
        except Exception as exc:  # noqa: BLE001 - any odd definition costs this flag only
            problem = f"{type(exc).__name__}: {exc}"[:200]
            self.broken = f"flag {self.key[:200]!r} has a definition we cannot read ({problem})"
        # The decision every subject gets, if the definition leaves nothing to chance.
        self.everyone: Decision | None = None if self.broken else self._everyone()
        # Nothing before the conditions, and none on a group of its own: ``_match_direct``.
        self.direct = (
            self.broken is None
            and not self.enrollment
            and self.holdout is None
            and _none_on_own_groups(self.conditions)
        )
        # Nothing to check before the conditions: an active flag on persons, bucketed by
        # the distinct id, readable, with no experience continuity.
        self.plain = (
            self.active
            and not self.continuity
            and self.broken is None
            and self.aggregation is None
            and not self.by_device
        )

    def _compile(self, raw: Mapping[str, Any], compiler: FilterCompiler) -> None:
        filters = raw.get("filters") or {}
        if not isinstance(filters, Mapping):
            raise _MalformedError("filters must be an object")
        self.aggregation = filters.get("aggregation_group_type_index")
        bucketing = raw.get("bucketing_identifier") or filters.get("bucketing_identifier")
        self.by_device = bucketing == "device_id"
        self.enrollment = filters.get("feature_enrollment") is True
        self.early_exit = bool(filters.get("early_exit"))
        holdout = filters.get("holdout")
        if holdout and None not in (holdout.get("exclusion_percentage"), holdout.get("id")):
            # An out-of-range share is clamped, not refused.
            share = min(max(float(holdout["exclusion_percentage"]), 0.0), 100.0)
            self.holdout = (f"holdout-{holdout['id']}", share / 100, share == 100.0)
        variants = (filters.get("multivariate") or {}).get("variants") or []
        self.variants = _ranges(variants)
        names = tuple(name for _, _, name in self.variants)
        conditions = filters.get("groups") or []
        if not isinstance(conditions, list):
            raise _MalformedError("filters.groups must be a list")
        if len(conditions) > FLAG_MAX_ITEMS or len(self.variants) > FLAG_MAX_ITEMS:
            raise _MalformedError(f"over {FLAG_MAX_ITEMS} conditions or variants")
        self.conditions = tuple(
            _Condition(c, i, compiler, self.aggregation, names) for i, c in enumerate(conditions)
        )
        if sum(len(c.tests) for c in self.conditions) > FLAG_MAX_ITEMS:  # each lookup tests all
            raise _MalformedError(f"over {FLAG_MAX_ITEMS} filters in all")
        payloads = filters.get("payloads") or {}
        self.payloads = {str(k): decode_payload(v) for k, v in dict(payloads).items()}

    def _everyone(self) -> Decision | None:
        """The decision every subject gets, when the definition makes it the same for all
        (an active flag with no filters, no rollout or variant split, no holdout); ``None``
        when it depends on who asks. OpenFeature calls such a value ``STATIC``."""
        if not self.active or self.enrollment or self.holdout or self.aggregation is not None:
            return None
        out_of_bound: Decision | None = None
        for condition in self.conditions:
            if condition.tests or condition.own_group:
                return None
            if condition.threshold is None or condition.threshold >= 1:
                if condition.variant is not None or not self.variants:
                    return condition.decisions[condition.variant]
                whole = [name for low, high, name in self.variants if low <= 0 and high >= 1]
                return condition.decisions[whole[0]] if whole else None
            if condition.threshold > 0:
                return None
            out_of_bound = condition.out_of_bound  # a 0% rollout: nobody is in it
            if self.early_exit:
                break
        return out_of_bound or _NO_MATCH_DECISION

    def bucketing(self, distinct_id: str, device_id: str | None, server_side: bool) -> str:
        """Who the rollout hashes for a flag on persons: the distinct id, or the device."""
        if not self.by_device:
            return distinct_id
        if device_id:
            return device_id
        if server_side:
            return distinct_id
        raise InconclusiveError(MISSING_CONTEXT, f"flag {self.key!r} buckets by device_id")

    def payload(self, value: FlagValue) -> Any:
        """The decoded payload for this value (``"true"``/``"false"`` or the variant)."""
        if isinstance(value, bool):
            return self.payloads.get("true" if value else "false")
        return self.payloads.get(value)

    def result_for(self, decision: Decision, make: Callable[[], Any]) -> Any:
        """What ``make()`` gives for ``decision``, made once and then remembered (the
        provider's ``FeatureFlag`` for each decision)."""
        found = self.results.get(decision)
        if found is None:
            found = self.results[decision] = make()
        return found

    def match(
        self, values: Mapping[str, Any], bucketing: Any, scope: Scope, groups: Groups
    ) -> Decision:
        """The flag's value for a subject with these properties (raises ``InconclusiveError``)."""
        if self.direct:
            try:
                return self._match_direct(values, bucketing, scope)
            except InconclusiveError:
                pass  # decided again below, each filter on its own (filters are pure)
        if self.broken is not None:
            raise NeedsServerError(UNSUPPORTED_DEFINITION, self.broken)
        if self.enrollment:
            return self._enrolled(values, scope)
        if self.holdout is not None:
            name, share, everyone = self.holdout
            if everyone or holdout_hash(bucketing) <= share:
                return Decision(name, HOLDOUT)
        reason: str | None = None
        out_of_bound: Decision | None = None
        for condition in self.conditions:
            reads, who = values, bucketing
            try:
                if condition.own_group:
                    subject = condition.subject(values, bucketing, groups)
                    if subject is None:
                        continue
                    reads, who = subject
                result = condition.test(self.key, reads, who, scope)
            except NeedsServerError:
                raise
            except InconclusiveError as exc:
                reason = first_reason(reason, exc.reason)
                continue
            if result == _MATCH:
                variant = condition.variant or (self._variant(who) if self.variants else None)
                return condition.decisions[variant]
            if result == _OUT_OF_BOUND:
                out_of_bound = condition.out_of_bound
                if self.early_exit:
                    break
        if reason is not None:
            raise InconclusiveError(reason, f"no condition of flag {self.key!r} could be decided")
        return out_of_bound or _NO_MATCH_DECISION

    def _match_direct(self, values: Mapping[str, Any], bucketing: Any, scope: Scope) -> Decision:
        """``match`` for a flag with nothing before its conditions and none on a group of
        its own, in one frame, for as long as every filter is decided: the first
        ``InconclusiveError`` hands the flag to ``match``'s careful loop, which weighs each
        filter's reason."""
        out_of_bound: Decision | None = None
        for condition in self.conditions:
            for test in condition.tests:
                if not test(values, scope):
                    break
            else:
                threshold = condition.threshold  # the hash is at most 1: 100% needs none
                if (
                    threshold is not None
                    and threshold < 1
                    and rollout_hash(self.key, bucketing) > threshold
                ):
                    out_of_bound = condition.out_of_bound
                    if self.early_exit:
                        break
                    continue
                variant = condition.variant or (self._variant(bucketing) if self.variants else None)
                return condition.decisions[variant]
        return out_of_bound or _NO_MATCH_DECISION

    def _enrolled(self, values: Mapping[str, Any], scope: Scope) -> Decision:
        if self.aggregation is not None:
            raise InconclusiveError(UNSUPPORTED_DEFINITION, "enrollment on a group flag")
        name = f"$feature_enrollment/{self.key}"
        if name not in values:
            if scope.server_side:
                return Decision(False, ENROLLMENT)
            raise InconclusiveError(MISSING_CONTEXT, f"property {name!r} not given")
        enrolled = values[name]
        return Decision(enrolled is True or enrolled == "true", ENROLLMENT)

    def _variant(self, bucketing: Any) -> str | None:
        if not self.variants:
            return None
        point = rollout_hash(self.key, bucketing, salt="variant")
        for low, high, name in self.variants:
            if low <= point < high:
                return name
        return None


def _none_on_own_groups(conditions: tuple[_Condition, ...]) -> bool:
    return not any(condition.own_group for condition in conditions)


def _ranges(variants: Any) -> tuple[tuple[float, float, str], ...]:
    """Cumulative ``[low, high)`` ranges, added up in the variants' order."""
    ranges = []
    low: float = 0
    for variant in variants:
        high = low + variant["rollout_percentage"] / 100
        ranges.append((low, high, variant["key"]))
        low = high
    return tuple(ranges)


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
