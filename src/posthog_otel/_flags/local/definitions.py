"""A project's flag definitions, as ``/flags/definitions`` answers, parsed and checked.

The answer is ``{"flags": [...], "group_type_mapping": {"0": "company"}, "cohorts":
{"<id>": {"type": "AND"|"OR", "values": [...]}}}``, optionally with
``property_matching_version``. A flag without a string ``key`` is left out (it could
never be asked for); anything else odd in one flag is kept, and that flag is then
asked of PostHog when it is used.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = ["FlagDefinitions", "parse_definitions"]


@dataclass(frozen=True)
class FlagDefinitions:
    """A project's feature flag definitions, for local evaluation.

    Attributes:
        flags: each flag's definition (a JSON object) by key, in PostHog's order.
        group_type_mapping: group type names by their index (``{"0": "company"}``).
        cohorts: the property groups of the cohorts flags refer to, by cohort id.
        property_matching_version: how ``exact``/``is_not`` read ``true``/``false``
            filters: 1 by truthiness, 2 as text.
        etag: PostHog's ETag for them, to ask later whether they changed.
    """

    flags: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    group_type_mapping: Mapping[str, str] = field(default_factory=dict)
    cohorts: Mapping[str, Any] = field(default_factory=dict)
    property_matching_version: int = 1
    etag: str | None = None

    def __post_init__(self) -> None:
        for name in ("flags", "group_type_mapping", "cohorts"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))

    def changed_keys(self, older: FlagDefinitions | None) -> frozenset[str]:
        """Flags whose evaluation may differ from ``older``'s: added, removed or changed;
        every flag when cohorts, group types or the matching version changed."""
        if older is None:
            return frozenset(self.flags)
        if (
            self.cohorts != older.cohorts
            or self.group_type_mapping != older.group_type_mapping
            or self.property_matching_version != older.property_matching_version
        ):
            return frozenset(self.flags) | frozenset(older.flags)
        keys = self.flags.keys() | older.flags.keys()
        return frozenset(k for k in keys if self.flags.get(k) != older.flags.get(k))


def parse_definitions(body: Any, etag: str | None = None) -> FlagDefinitions:
    """``FlagDefinitions`` from the parsed JSON answer; ``ValueError`` when it is not one."""
    if not isinstance(body, Mapping):
        raise ValueError(f"flag definitions must be a JSON object, not {type(body).__name__}")
    flags = body.get("flags")
    if not isinstance(flags, list):
        raise ValueError("flag definitions have no 'flags' list")
    mapping = body.get("group_type_mapping") or {}
    cohorts = body.get("cohorts") or {}
    if not isinstance(mapping, Mapping) or not isinstance(cohorts, Mapping):
        raise ValueError("group_type_mapping and cohorts must be JSON objects")
    by_key: dict[str, Mapping[str, Any]] = {}
    for flag in flags:
        if isinstance(flag, Mapping) and isinstance(flag.get("key"), str) and flag["key"]:
            by_key[flag["key"]] = flag
    version = body.get("property_matching_version", 1)
    return FlagDefinitions(
        flags=by_key,
        group_type_mapping={str(k): v for k, v in mapping.items() if isinstance(v, str)},
        cohorts={str(k): v for k, v in cohorts.items()},
        property_matching_version=version if isinstance(version, int) else 1,
        etag=etag,
    )
