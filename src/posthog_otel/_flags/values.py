"""Feature flag values, and parsing of the flag service's two response shapes."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FeatureFlag", "FlagsResponse", "RawPayload", "decode_payload", "parse_flags_response"]

FlagValue = bool | str


@dataclass(frozen=True)
class FeatureFlag:
    """One flag's value for one user.

    ``enabled`` is the flag's value, as in PostHog's other SDKs: ``True`` or
    ``False``, or the variant's name for a multivariate flag. ``reason_code`` is
    PostHog's reason (``condition_match``, ``no_condition_match``,
    ``out_of_rollout_bound``, ``flag_disabled``, ...) when known; ``static`` says local
    evaluation found that every user gets this value (no targeting, no split).
    """

    name: str
    enabled: FlagValue
    payload: Any = None
    variant: str | None = None
    reason: str | None = None
    id: int | None = None
    version: int | None = None
    request_id: str | None = None
    reason_code: str | None = None
    static: bool = False

    @property
    def value(self) -> FlagValue:
        """Same as ``enabled``; reads better for multivariate flags."""
        return self.enabled


@dataclass(frozen=True)
class FlagsResponse:
    """What ``/decide`` (or ``/flags``) answered for one user."""

    flags: Mapping[str, FeatureFlag] = field(default_factory=dict)
    request_id: str | None = None
    errors_while_computing_flags: bool = False
    quota_limited: bool = False

    @property
    def feature_flags(self) -> dict[str, FlagValue]:
        """Flag key to value, like the legacy ``featureFlags`` map."""
        return {key: flag.enabled for key, flag in self.flags.items()}

    @property
    def feature_flag_payloads(self) -> dict[str, Any]:
        """Flag key to decoded payload, for flags that have one."""
        return {key: f.payload for key, f in self.flags.items() if f.payload is not None}


class RawPayload(str):
    """A payload that is not valid JSON, kept as its text (still a ``str``), so readers
    that need JSON can tell it from a payload that is a JSON string."""

    __slots__ = ()


def decode_payload(raw: Any) -> Any:
    """Payloads arrive JSON-encoded: decode them, keeping a non-JSON string as it is
    (as a ``RawPayload``)."""
    if not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return RawPayload(raw)


def parse_flags_response(body: Any) -> FlagsResponse:
    """Accept both the detailed (``flags``) and the legacy (``featureFlags``) shapes."""
    if not isinstance(body, Mapping):
        raise ValueError(f"flag service answered {type(body).__name__}, not a JSON object")
    request_id = _str_or_none(body.get("requestId"))
    errors = bool(body.get("errorsWhileComputingFlags", False))
    quota = body.get("quotaLimited")
    quota_limited = isinstance(quota, list) and "feature_flags" in quota
    flags: dict[str, FeatureFlag] = {}
    if quota_limited:
        pass
    elif isinstance(body.get("flags"), Mapping):
        for key, detail in body["flags"].items():
            if isinstance(detail, Mapping):
                flags[str(key)] = _detailed_flag(str(key), detail, request_id)
    elif isinstance(body.get("featureFlags"), Mapping):
        payloads = body.get("featureFlagPayloads")
        payloads = payloads if isinstance(payloads, Mapping) else {}
        for key, value in body["featureFlags"].items():
            if isinstance(value, (bool, str)):
                flags[str(key)] = FeatureFlag(
                    name=str(key),
                    enabled=value,
                    payload=decode_payload(payloads.get(key)),
                    variant=value if isinstance(value, str) else None,
                    request_id=request_id,
                )
    return FlagsResponse(flags, request_id, errors, quota_limited)


def _detailed_flag(key: str, detail: Mapping[str, Any], request_id: str | None) -> FeatureFlag:
    variant = _str_or_none(detail.get("variant"))
    enabled = bool(detail.get("enabled", False))
    metadata = detail.get("metadata")
    metadata = metadata if isinstance(metadata, Mapping) else {}
    reason = detail.get("reason")
    reason = reason if isinstance(reason, Mapping) else {}
    code = _str_or_none(reason.get("code"))
    description = reason.get("description")
    if description is None:
        description = code
    return FeatureFlag(
        name=key,
        enabled=variant if variant is not None else enabled,
        payload=decode_payload(metadata.get("payload")),
        variant=variant,
        reason=_str_or_none(description),
        id=_int_or_none(metadata.get("id")),
        version=_int_or_none(metadata.get("version")),
        request_id=request_id,
        reason_code=code,
    )


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
