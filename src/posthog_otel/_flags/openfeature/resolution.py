"""A PostHog flag read as an OpenFeature type: pure functions, no I/O.

A PostHog flag has two faces: its value (``True``/``False``, or a variant's key) and
the payload of that value (any JSON). A read of type T gives the payload when it is
a T, else the flag's own value when that is a T (booleans: a flag without variants;
strings: the variant's key); integers, floats and objects exist only as payloads.
So a multivariate flag read as a string gives its variant, and as an object the
variant's payload; a payload that is a JSON boolean or string is that type's value.

Reasons (see ``_flags.reasons``): an inactive flag gives the caller's default with
``DISABLED``. A flag that is off for this user (no condition matched, outside the
rollout) is no error: a boolean read gives ``False``, any other the payload of
``false`` if the flag has one, else the caller's default, with ``DEFAULT``. A value
the flag cannot give as the type asked for is ``TYPE_MISMATCH``; a payload that is
not valid JSON, read as a number or object, is ``PARSE_ERROR``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Literal, TypeVar

from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import FlagResolutionDetails, Reason

from posthog_otel._flagdata import FeatureFlag, RawPayload, result_reason
from posthog_otel._flags.local.source import FLAG_MISSING, NOT_LOADED
from posthog_otel._flags.remote import Evaluation

__all__ = ["Kind", "Query", "error", "query", "resolve"]

T = TypeVar("T")
Kind = Literal["boolean", "string", "integer", "float", "object"]

_REASONS = {
    "static": Reason.STATIC,
    "targeting_match": Reason.TARGETING_MATCH,
    "default": Reason.DEFAULT,
    "cached": Reason.CACHED,
    "stale": Reason.STALE,
}
_TYPE_NAMES = {"integer": "an integer", "float": "a number", "object": "an object"}

# The evaluation context as PostHog's arguments: distinct_id, groups, person_properties
# and group_properties.
Query = tuple[str | None, Mapping[str, str] | None, dict[str, Any] | None, Any]


def query(context: EvaluationContext | None) -> Query | str:
    """``targeting_key`` is the distinct_id; the attributes ``groups`` and
    ``group_properties`` go as such, all others as person properties. A string says
    why the context cannot be used."""
    context = context or EvaluationContext()
    attributes: dict[str, Any] = dict(context.attributes or {})
    groups: Any = attributes.pop("groups", None)
    group_properties: Any = attributes.pop("group_properties", None)
    if groups is not None and not isinstance(groups, Mapping):
        return "the groups attribute must be a map of group type to key"
    if group_properties is not None and not isinstance(group_properties, Mapping):
        return "the group_properties attribute must be a map of group type to properties"
    return context.targeting_key or None, groups, attributes or None, group_properties


def resolve(kind: Kind, key: str, default: T, evaluation: Evaluation) -> FlagResolutionDetails[T]:
    """The details of reading flag ``key`` as ``kind``, ``default`` when it gives none."""
    flag = evaluation.flag
    if flag is None:
        return _missing(key, default, evaluation.error)
    reason = result_reason(flag, evaluation.source)
    metadata = _metadata(flag)
    if reason == "disabled":
        return FlagResolutionDetails(default, reason=Reason.DISABLED, flag_metadata=metadata)
    value, problem = _typed(kind, flag)
    if problem is not None:
        details = error(default, problem[0], f"flag {key!r} {problem[1]}")
        details.flag_metadata = metadata
        return details
    if value is None:  # off for this user, and nothing to read as this type
        return FlagResolutionDetails(default, reason=Reason.DEFAULT, flag_metadata=metadata)
    variant = flag.variant if flag.variant is not None else str(flag.enabled).lower()
    return FlagResolutionDetails(
        value, reason=_REASONS[reason], variant=variant, flag_metadata=metadata
    )


def error(default: T, code: ErrorCode, message: str) -> FlagResolutionDetails[T]:
    return FlagResolutionDetails(
        value=default, reason=Reason.ERROR, error_code=code, error_message=message
    )


def _typed(kind: Kind, flag: FeatureFlag) -> tuple[Any, tuple[ErrorCode, str] | None]:
    """The value of type ``kind`` the flag gives (``None``: none, the flag being off), or
    why it cannot give one."""
    payload, value = flag.payload, flag.enabled
    if payload is not None and _is(kind, payload):
        return (float(payload) if kind == "float" else payload), None
    if value is False:
        return (False if kind == "boolean" else None), None
    mismatch = ErrorCode.TYPE_MISMATCH
    if kind == "boolean":
        if value is True:
            return True, None
        return None, (mismatch, f"is multivariate (variant {value!r}) with no boolean payload")
    if kind == "string":
        if isinstance(value, str):
            return value, None
        return None, (mismatch, "is a boolean flag with no string payload")
    wanted = _TYPE_NAMES[kind]
    if isinstance(payload, RawPayload):
        return None, (ErrorCode.PARSE_ERROR, f"has a payload that is not JSON, so not {wanted}")
    if payload is None:
        return None, (mismatch, f"has no payload to read as {wanted}")
    return None, (mismatch, f"has a payload that is {type(payload).__name__}, not {wanted}")


def _is(kind: Kind, payload: Any) -> bool:
    if kind == "boolean":
        return isinstance(payload, bool)
    if kind == "string":
        return isinstance(payload, str) and not isinstance(payload, RawPayload)
    if kind == "integer":
        return isinstance(payload, int) and not isinstance(payload, bool)
    if kind == "float":
        return isinstance(payload, (int, float)) and not isinstance(payload, bool)
    return isinstance(payload, (dict, list))


def _metadata(flag: FeatureFlag) -> Mapping[str, bool | int | float | str]:
    """The flag's id, version, PostHog's reason and request id; read-only, as OpenFeature
    asks of flag metadata."""
    found = {
        "flag_id": flag.id,
        "version": flag.version,
        "reason": flag.reason_code or flag.reason,
        "request_id": flag.request_id,
    }
    return MappingProxyType({k: v for k, v in found.items() if v is not None})


def _missing(key: str, default: T, why: str | None) -> FlagResolutionDetails[T]:
    if why == FLAG_MISSING:
        return error(default, ErrorCode.FLAG_NOT_FOUND, f"no flag {key!r} in PostHog")
    if why == NOT_LOADED:
        return error(default, ErrorCode.PROVIDER_NOT_READY, "flag definitions are not loaded")
    return error(default, ErrorCode.GENERAL, why or "flag unavailable")
