"""The devserver's feature flags: a small rules file, evaluated with PostHog's hash.

A flags file maps each flag key to a rule::

    {
      "new-dashboard": true,                                  # on for everyone
      "old-banner": false,                                    # off for everyone
      "pricing-test": "variant-a",                            # always this variant
      "beta": {"rollout_percentage": 30, "payload": {"limit": 5}},
      "checkout": {"variants": {"control": 50, "test": 50},
                   "payloads": {"test": {"color": "green"}}},
      "org-flag": {"group_type": "company", "rollout_percentage": 50}
    }

Rule fields: ``enabled`` (default true), ``rollout_percentage`` (0-100, default
100), ``variants`` (name to percentage, summing to 100), ``payload`` (for the
flag) or ``payloads`` (per variant), ``group_type`` (roll out by that group's
key instead of the person), and optionally ``id`` and ``version``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from posthog_otel._flags.hashing import rollout_hash

_RULE_FIELDS = {
    "enabled",
    "rollout_percentage",
    "variants",
    "payload",
    "payloads",
    "group_type",
    "id",
    "version",
}


@dataclass(frozen=True)
class FlagRule:
    key: str
    id: int
    enabled: bool = True
    rollout_percentage: float = 100.0
    variants: tuple[tuple[str, float], ...] = ()
    payload: Any = None
    payloads: Mapping[str, Any] = field(default_factory=dict)
    group_type: str | None = None
    version: int = 1


@dataclass(frozen=True)
class Evaluation:
    enabled: bool
    variant: str | None
    payload: Any
    code: str
    description: str
    condition_index: int | None


def load_rules(source: Mapping[str, Any] | str | Path | None) -> dict[str, FlagRule]:
    """Rules from a mapping or a JSON file path; ``ValueError`` naming the bad flag."""
    if source is None:
        return {}
    if isinstance(source, (str, Path)):
        try:
            source = json.loads(Path(source).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read flags file {str(source)!r}: {exc}") from None
    if not isinstance(source, Mapping):
        raise ValueError("flags must be a JSON object mapping flag keys to rules")
    return {key: _rule(key, i + 1, spec) for i, (key, spec) in enumerate(source.items())}


def _rule(key: str, default_id: int, spec: Any) -> FlagRule:
    if not isinstance(key, str) or not key:
        raise ValueError(f"flag key {key!r} must be a non-empty string")
    if isinstance(spec, bool):
        return FlagRule(key, default_id, enabled=spec)
    if isinstance(spec, str):
        return FlagRule(key, default_id, variants=((spec, 100.0),))
    if not isinstance(spec, Mapping):
        raise ValueError(f"flag {key!r}: a rule is true, false, a variant name or an object")
    unknown = set(spec) - _RULE_FIELDS
    if unknown:
        raise ValueError(f"flag {key!r}: unknown fields {sorted(unknown)}")
    rollout = spec.get("rollout_percentage", 100)
    if (
        isinstance(rollout, bool)
        or not isinstance(rollout, (int, float))
        or not 0 <= rollout <= 100
    ):
        raise ValueError(f"flag {key!r}: rollout_percentage must be a number from 0 to 100")
    variants = _variants(key, spec.get("variants", {}))
    payloads = spec.get("payloads", {})
    if not isinstance(payloads, Mapping) or not set(payloads) <= {name for name, _ in variants}:
        raise ValueError(f"flag {key!r}: payloads must map variant names to payloads")
    group_type = spec.get("group_type")
    if group_type is not None and not isinstance(group_type, str):
        raise ValueError(f"flag {key!r}: group_type must be a string")
    return FlagRule(
        key=key,
        id=_int(key, "id", spec.get("id", default_id)),
        enabled=bool(spec.get("enabled", True)),
        rollout_percentage=float(rollout),
        variants=variants,
        payload=spec.get("payload"),
        payloads=dict(payloads),
        group_type=group_type,
        version=_int(key, "version", spec.get("version", 1)),
    )


def _variants(key: str, spec: Any) -> tuple[tuple[str, float], ...]:
    if not isinstance(spec, Mapping):
        raise ValueError(f"flag {key!r}: variants must map names to percentages")
    variants = tuple((str(name), float(pct)) for name, pct in spec.items())
    if variants and abs(sum(pct for _, pct in variants) - 100) > 1e-9:
        raise ValueError(f"flag {key!r}: variant percentages must add up to 100")
    return variants


def _int(key: str, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"flag {key!r}: {name} must be an integer")
    return value


def evaluate(rule: FlagRule, distinct_id: str, groups: Mapping[str, Any]) -> Evaluation:
    """What PostHog's flag service would answer for one rule and one user."""
    if not rule.enabled:
        return Evaluation(False, None, None, "no_condition_match", "Flag is off", None)
    subject = distinct_id
    if rule.group_type is not None:
        if rule.group_type not in groups:
            return Evaluation(
                False, None, None, "no_group_type", f"No {rule.group_type} group given", None
            )
        subject = str(groups[rule.group_type])
    if rollout_hash(rule.key, subject) > rule.rollout_percentage / 100:
        return Evaluation(
            False, None, None, "out_of_rollout_bound", "Out of rollout bound, condition set 1", 0
        )
    variant = _pick_variant(rule, subject)
    payload = rule.payloads.get(variant) if variant is not None else rule.payload
    return Evaluation(True, variant, payload, "condition_match", "Matched condition set 1", 0)


def _pick_variant(rule: FlagRule, subject: str) -> str | None:
    if not rule.variants:
        return None
    value = rollout_hash(rule.key, subject, salt="variant")
    low = 0.0
    for name, pct in rule.variants:
        high = low + pct / 100
        if low <= value < high:
            return name
        low = high
    return rule.variants[-1][0]


def flags_response(
    rules: Mapping[str, FlagRule],
    distinct_id: str,
    groups: Mapping[str, Any],
    keys: Iterable[str] | None,
    *,
    detailed: bool,
    typed: bool = False,
) -> dict[str, Any]:
    """The body of a ``/decide`` or ``/flags`` answer, in the detailed or legacy shape;
    ``typed`` adds each flag's ``value`` (its variant, else whether it is on), as
    ``/flags?v=4`` does."""
    wanted = [k for k in (rules if keys is None else keys) if k in rules]
    results = {key: evaluate(rules[key], distinct_id, groups) for key in wanted}
    if not detailed:
        return {
            "featureFlags": {k: r.variant or r.enabled for k, r in results.items()},
            "featureFlagPayloads": {
                k: json.dumps(r.payload) for k, r in results.items() if r.payload is not None
            },
            "errorsWhileComputingFlags": False,
        }
    flags: dict[str, dict[str, Any]] = {}
    for key, r in results.items():
        flags[key] = {
            "key": key,
            "enabled": r.enabled,
            "variant": r.variant,
            "reason": {
                "code": r.code,
                "condition_index": r.condition_index,
                "description": r.description,
            },
            "metadata": {
                "id": rules[key].id,
                "version": rules[key].version,
                "payload": None if r.payload is None else json.dumps(r.payload),
            },
        }
        if typed:
            flags[key]["value"] = r.variant or r.enabled
    return {"flags": flags, "errorsWhileComputingFlags": False, "requestId": str(uuid.uuid4())}
