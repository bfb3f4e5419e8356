"""OpenFeature's conformance flags (``openfeature_spec/test-flags.json``) as PostHog flag
definitions, for the devserver to serve.

Each spec flag becomes a multivariate PostHog flag whose variants are the spec's
variant names, each carrying the spec's value as its JSON payload:

- ``defaultVariant`` with no ``contextEvaluator``: one condition with no filters,
  giving everyone that variant (so local evaluation knows the value is ``STATIC``).
- a ``contextEvaluator`` (``<conditions> ? '<variant>' : ''``): one condition with
  those filters giving that variant; a user it does not match gets the flag's
  ``false`` value, whose payload is the default variant's value (PostHog's
  ``payloads.false``), as OpenFeature's ``''`` means "the default variant".
- ``disabled``: an inactive flag.

The expressions are read by a parser for the subset the spec uses: terms joined by
``&&``, each ``name == 'text'``, ``name == number``, ``name > number`` or ``!name``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

# The deprecated evaluation.feature reads a flag test-flags.json no longer has; this is
# it, as flagd's testing flags defined it, in the same form.
CONTEXT_AWARE = {
    "variants": {"internal": "INTERNAL", "external": "EXTERNAL"},
    "defaultVariant": "external",
    "contextEvaluator": (
        "fn == 'Sulisław' && ln == 'Świętopełk' && age == 29 && !customer ? 'internal' : ''"
    ),
}

_TERM = re.compile(r"(\w+)\s*(==|>)\s*('(?:[^']*)'|-?\d+(?:\.\d+)?)")


def definitions(spec_flags: Mapping[str, Any]) -> dict[str, Any]:
    """PostHog's flag definitions document for the spec's flags."""
    flags = [_flag(n, key, spec) for n, (key, spec) in enumerate(sorted(spec_flags.items()), 1)]
    return {"flags": flags, "group_type_mapping": {}, "cohorts": {}}


def _flag(flag_id: int, key: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    variants: Mapping[str, Any] = spec["variants"]
    default = spec.get("defaultVariant")
    payloads = {name: json.dumps(value) for name, value in variants.items()}
    conditions = []
    expression = spec.get("contextEvaluator")
    if expression:
        properties, variant = parse(expression)
        conditions.append({"properties": properties, "rollout_percentage": 100, "variant": variant})
        if default is not None:
            payloads["false"] = json.dumps(variants[default])
    elif default is not None:
        conditions.append({"properties": [], "rollout_percentage": 100, "variant": default})
    split = [
        {"key": name, "rollout_percentage": 100 if name == default else 0} for name in variants
    ]
    if default is None:  # PostHog's variants add up to 100: give the first all of it
        split[0]["rollout_percentage"] = 100
    return {
        "id": flag_id,
        "key": key,
        "version": 1,
        "active": not spec.get("disabled", False),
        "filters": {
            "groups": conditions,
            "multivariate": {"variants": split},
            "payloads": payloads,
        },
    }


def parse(expression: str) -> tuple[list[dict[str, Any]], str]:
    """``conditions ? 'variant' : ''`` as PostHog person property filters and the variant."""
    found = re.fullmatch(r"(.+)\?\s*'([^']+)'\s*:\s*''", expression.strip())
    if found is None:
        raise ValueError(f"not an expression this translation reads: {expression!r}")
    filters = []
    for term in found.group(1).split("&&"):
        term = term.strip()
        if re.fullmatch(r"!\w+", term):
            filters.append(_filter(term[1:], "exact", [False]))
            continue
        parts = _TERM.fullmatch(term)
        if parts is None:
            raise ValueError(f"not a term this translation reads: {term!r}")
        name, op, raw = parts.groups()
        value = raw[1:-1] if raw.startswith("'") else json.loads(raw)
        if op == "==":
            filters.append(_filter(name, "exact", [value]))
        else:
            filters.append(_filter(name, "gt", value))
    return filters, found.group(2)


def _filter(key: str, operator: str, value: Any) -> dict[str, Any]:
    return {"key": key, "type": "person", "operator": operator, "value": value}
