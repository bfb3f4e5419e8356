"""An OpenFeature provider over ``PostHogFlagProvider`` (extra: ``posthog-otel[openfeature]``).

``targeting_key`` is the distinct_id (or, if absent, the identity in the current
OpenTelemetry context); the attributes ``groups`` and ``group_properties`` are
passed as such, and every other attribute as a person property. Booleans and
strings resolve from the flag's value (strings from a multivariate flag's
variant); integers, floats and objects resolve from the flag's payload.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

try:
    from openfeature.evaluation_context import EvaluationContext
    from openfeature.exception import ErrorCode
    from openfeature.flag_evaluation import FlagResolutionDetails, Reason
    from openfeature.provider import AbstractProvider, Metadata
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "posthog_otel.openfeature needs the openfeature extra: "
        "pip install 'posthog-otel[openfeature]'"
    ) from exc

from posthog_otel._flags.provider import Evaluation, PostHogFlagProvider
from posthog_otel._flags.values import FeatureFlag

__all__ = ["PostHogProvider"]

T = TypeVar("T")
_REASONS = {"cached": Reason.CACHED, "stale": Reason.STALE}


class _MismatchError(Exception):
    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code


class PostHogProvider(AbstractProvider):
    """OpenFeature flags from PostHog, through a ``PostHogFlagProvider``.

    Args:
        flags: the flag provider to resolve through (not shut down by us); by
            default one configured from the ``POSTHOG_*`` environment variables.
    """

    def __init__(self, flags: PostHogFlagProvider | None = None) -> None:
        super().__init__()
        self._owns = flags is None
        self._flags = flags if flags is not None else PostHogFlagProvider()

    def get_metadata(self) -> Metadata:
        return Metadata(name="posthog")

    def shutdown(self) -> None:
        if self._owns:
            self._flags.shutdown()

    def resolve_boolean_details(
        self,
        flag_key: str,
        default_value: bool,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[bool]:
        return self._resolve(
            flag_key, default_value, evaluation_context, _boolean, from_payload=False
        )

    def resolve_string_details(
        self, flag_key: str, default_value: str, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[str]:
        return self._resolve(
            flag_key, default_value, evaluation_context, _string, from_payload=False
        )

    def resolve_integer_details(
        self, flag_key: str, default_value: int, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[int]:
        return self._resolve(
            flag_key, default_value, evaluation_context, _integer, from_payload=True
        )

    def resolve_float_details(
        self,
        flag_key: str,
        default_value: float,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[float]:
        return self._resolve(flag_key, default_value, evaluation_context, _float, from_payload=True)

    def resolve_object_details(  # type: ignore[override]
        self,
        flag_key: str,
        default_value: Mapping[str, Any] | list[Any],
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[Mapping[str, Any] | list[Any]]:
        return self._resolve(
            flag_key, default_value, evaluation_context, _object, from_payload=True
        )

    def _resolve(
        self,
        key: str,
        default: T,
        context: EvaluationContext | None,
        convert: Callable[[Any], T],
        *,
        from_payload: bool,
    ) -> FlagResolutionDetails[T]:
        context = context or EvaluationContext()
        attributes: dict[str, Any] = dict(context.attributes or {})
        groups: Any = attributes.pop("groups", None)
        group_properties: Any = attributes.pop("group_properties", None)
        if groups is not None and not isinstance(groups, Mapping):
            return _error(default, ErrorCode.INVALID_CONTEXT, "the groups attribute must be a map")
        try:
            evaluation = self._flags.evaluate(
                key,
                context.targeting_key or None,
                groups,
                attributes or None,
                group_properties if isinstance(group_properties, Mapping) else None,
            )
        except ValueError as exc:
            code = (
                ErrorCode.INVALID_CONTEXT
                if context.targeting_key
                else ErrorCode.TARGETING_KEY_MISSING
            )
            return _error(default, code, str(exc))
        except TypeError as exc:
            return _error(default, ErrorCode.INVALID_CONTEXT, str(exc))
        flag = evaluation.flag
        if flag is None:
            if evaluation.error == "flag_missing":
                return _error(default, ErrorCode.FLAG_NOT_FOUND, f"no flag {key!r} in PostHog")
            return _error(default, ErrorCode.GENERAL, evaluation.error or "flag unavailable")
        reason = _reason(evaluation, flag)
        raw = flag.payload if from_payload else flag.enabled
        if from_payload and not flag.enabled:
            return _details(default, Reason.DISABLED, flag)
        if from_payload and raw is None:
            return _details(default, Reason.DEFAULT, flag)
        try:
            return _details(convert(raw), reason, flag)
        except _MismatchError as exc:
            return _error(default, exc.code, f"flag {key!r}: {exc}")


def _reason(evaluation: Evaluation, flag: FeatureFlag) -> Reason:
    if evaluation.source in _REASONS:
        return _REASONS[evaluation.source]
    return Reason.TARGETING_MATCH if flag.enabled else Reason.DISABLED


def _details(value: T, reason: Reason, flag: FeatureFlag) -> FlagResolutionDetails[T]:
    variant = flag.variant if flag.variant is not None else str(flag.enabled).lower()
    metadata = {"flag_id": flag.id, "version": flag.version, "request_id": flag.request_id}
    return FlagResolutionDetails(
        value=value,
        reason=reason,
        variant=variant,
        flag_metadata={k: v for k, v in metadata.items() if v is not None},
    )


def _error(default: T, code: ErrorCode, message: str) -> FlagResolutionDetails[T]:
    return FlagResolutionDetails(
        value=default, reason=Reason.ERROR, error_code=code, error_message=message
    )


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _MismatchError(
            ErrorCode.TYPE_MISMATCH, f"is multivariate ({value!r}); ask for a string"
        )
    return value


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise _MismatchError(ErrorCode.TYPE_MISMATCH, "is a boolean flag; ask for a boolean")
    return value


def _integer(value: Any) -> int:
    if isinstance(value, str):
        raise _MismatchError(ErrorCode.PARSE_ERROR, "payload is not a JSON number")
    if isinstance(value, bool) or not isinstance(value, int):
        raise _MismatchError(
            ErrorCode.TYPE_MISMATCH, f"payload is {type(value).__name__}, not an integer"
        )
    return value


def _float(value: Any) -> float:
    if isinstance(value, str):
        raise _MismatchError(ErrorCode.PARSE_ERROR, "payload is not a JSON number")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _MismatchError(
            ErrorCode.TYPE_MISMATCH, f"payload is {type(value).__name__}, not a number"
        )
    return float(value)


def _object(value: Any) -> Mapping[str, Any] | list[Any]:
    if isinstance(value, str):
        raise _MismatchError(ErrorCode.PARSE_ERROR, "payload is not a JSON object or array")
    if not isinstance(value, (Mapping, list)):
        raise _MismatchError(
            ErrorCode.TYPE_MISMATCH, f"payload is {type(value).__name__}, not an object"
        )
    return value
