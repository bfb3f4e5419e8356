"""The devserver's small flag rules format, turned into PostHog's flag definitions.

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
key instead of the person), and optionally ``id`` and ``version``. For anything
more (properties, cohorts, dependencies), the flags file can be PostHog's own
definitions JSON instead (see ``_definitions``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


def rules_definitions(rules: Mapping[str, FlagRule]) -> dict[str, Any]:
    """The rules as PostHog's flag definitions: one condition each, rolled out by
    ``rollout_percentage``, on persons or on the rule's group type."""
    group_types = sorted({r.group_type for r in rules.values() if r.group_type is not None})
    index = {name: i for i, name in enumerate(group_types)}
    flags = []
    for rule in rules.values():
        filters: dict[str, Any] = {
            "groups": [{"properties": [], "rollout_percentage": rule.rollout_percentage}]
        }
        if rule.variants:
            variants = [{"key": name, "rollout_percentage": pct} for name, pct in rule.variants]
            filters["multivariate"] = {"variants": variants}
        payloads = {name: json.dumps(payload) for name, payload in rule.payloads.items()}
        if rule.payload is not None:
            payloads["true"] = json.dumps(rule.payload)
        if payloads:
            filters["payloads"] = payloads
        if rule.group_type is not None:
            filters["aggregation_group_type_index"] = index[rule.group_type]
        flags.append(
            {
                "id": rule.id,
                "key": rule.key,
                "version": rule.version,
                "active": rule.enabled,
                "ensure_experience_continuity": False,
                "filters": filters,
            }
        )
    mapping = {str(i): name for name, i in index.items()}
    return {"flags": flags, "group_type_mapping": mapping, "cohorts": {}}
