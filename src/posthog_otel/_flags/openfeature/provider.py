"""``PostHogProvider``: OpenFeature's provider interface over a ``PostHogFlagProvider``.

Reads go through the flag provider, so they are decided locally or cached as its
own are, and leave the same span events and exposures. The asynchronous methods
never block the event loop: a read that needs no request (decided locally, or
cached) answers at once; one that must ask PostHog runs on the loop's default
executor, where identical concurrent reads still share one request.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import FlagResolutionDetails
from openfeature.provider import AbstractProvider, Metadata

from posthog_otel._flags.openfeature.lifecycle import Lifecycle
from posthog_otel._flags.openfeature.resolution import Kind, Query, error, query, resolve
from posthog_otel._flags.provider import PostHogFlagProvider
from posthog_otel._flags.remote import Evaluation
from posthog_otel.errors import ConfigurationError

if TYPE_CHECKING:
    from openfeature.flag_evaluation import FlagValueType
    from openfeature.track import TrackingEventDetails

__all__ = ["PostHogProvider"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
Structure = Sequence["FlagValueType"] | Mapping[str, "FlagValueType"]


class PostHogProvider(AbstractProvider):
    """OpenFeature flags from PostHog, through a ``PostHogFlagProvider``.

    Args:
        flags: the flag provider to resolve through (not shut down by us); by
            default one configured from the ``POSTHOG_*`` environment variables,
            shut down with this provider.
        init_timeout: seconds ``initialize()`` waits for the first flag definitions
            (with local evaluation) or the first answer from PostHog.
        stale_after: seconds of failing definitions polls after which the provider
            reports ``PROVIDER_STALE`` (it still serves the last definitions).
    """

    def __init__(
        self,
        flags: PostHogFlagProvider | None = None,
        *,
        init_timeout: float = 10.0,
        stale_after: float = 300.0,
    ) -> None:
        super().__init__()
        for name, seconds in (("init_timeout", init_timeout), ("stale_after", stale_after)):
            if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
                raise ConfigurationError(name, f"must be a number of seconds >= 0, not {seconds!r}")
        self._owns = flags is None
        self._untracked = 0  # tracking events refused for bad arguments
        self._flags = flags if flags is not None else PostHogFlagProvider()
        self._lifecycle = Lifecycle(
            self._flags, self.emit, init_timeout=init_timeout, stale_after=stale_after
        )

    def get_metadata(self) -> Metadata:
        return Metadata(name="posthog")

    def initialize(self, evaluation_context: EvaluationContext) -> None:
        """Wait (bounded) for flag definitions or a first answer from PostHog; raise if
        neither came, so OpenFeature reports ``ERROR`` (or ``FATAL`` for a refused key)."""
        self._lifecycle.initialize()

    def shutdown(self) -> None:
        """Stop reporting events; shut down the flag provider if we made it."""
        self._lifecycle.stop()
        if self._owns:
            self._flags.shutdown()

    # -- tracking ----------------------------------------------------------------------

    def track(
        self,
        tracking_event_name: str,
        evaluation_context: EvaluationContext | None = None,
        tracking_event_details: TrackingEventDetails | None = None,
    ) -> None:
        """Send the event to PostHog for the targeting key, with ``$feature/<key>`` for the
        flags that user was given, so experiments can use it as a metric. The details'
        attributes become properties, and its ``value`` the property ``value``."""
        found = query(evaluation_context)
        properties: dict[str, Any] = {}
        if tracking_event_details is not None:
            properties.update(tracking_event_details.attributes)
            if tracking_event_details.value is not None:
                properties["value"] = tracking_event_details.value
        try:
            if isinstance(found, str):
                raise TypeError(found)
            self._flags.capture(
                tracking_event_name, found[0], properties=properties, groups=found[1]
            )
        except (TypeError, ValueError) as exc:  # tracking must not break the caller
            self._untracked += 1
            if self._untracked == 1:
                logger.warning(
                    "posthog-otel: tracking event %r not sent (%s); such events are dropped, "
                    "and logged only this once",
                    tracking_event_name,
                    exc,
                )

    # -- synchronous reads -------------------------------------------------------------

    def resolve_boolean_details(
        self,
        flag_key: str,
        default_value: bool,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[bool]:
        return self._resolve("boolean", flag_key, default_value, evaluation_context)

    def resolve_string_details(
        self, flag_key: str, default_value: str, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[str]:
        return self._resolve("string", flag_key, default_value, evaluation_context)

    def resolve_integer_details(
        self, flag_key: str, default_value: int, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[int]:
        return self._resolve("integer", flag_key, default_value, evaluation_context)

    def resolve_float_details(
        self,
        flag_key: str,
        default_value: float,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[float]:
        return self._resolve("float", flag_key, default_value, evaluation_context)

    def resolve_object_details(
        self,
        flag_key: str,
        default_value: Structure,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[Structure]:
        return self._resolve("object", flag_key, default_value, evaluation_context)

    # -- asynchronous reads ------------------------------------------------------------

    async def resolve_boolean_details_async(
        self,
        flag_key: str,
        default_value: bool,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[bool]:
        return await self._resolve_async("boolean", flag_key, default_value, evaluation_context)

    async def resolve_string_details_async(
        self, flag_key: str, default_value: str, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[str]:
        return await self._resolve_async("string", flag_key, default_value, evaluation_context)

    async def resolve_integer_details_async(
        self, flag_key: str, default_value: int, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[int]:
        return await self._resolve_async("integer", flag_key, default_value, evaluation_context)

    async def resolve_float_details_async(
        self,
        flag_key: str,
        default_value: float,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[float]:
        return await self._resolve_async("float", flag_key, default_value, evaluation_context)

    async def resolve_object_details_async(
        self,
        flag_key: str,
        default_value: Structure,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[Structure]:
        return await self._resolve_async("object", flag_key, default_value, evaluation_context)

    # -- inside ------------------------------------------------------------------------

    def _resolve(
        self, kind: Kind, key: str, default: T, context: EvaluationContext | None
    ) -> FlagResolutionDetails[T]:
        found = query(context)
        if isinstance(found, str):
            return error(default, ErrorCode.INVALID_CONTEXT, found)
        try:
            evaluation = self._flags.evaluate(key, *found)
        except (TypeError, ValueError) as exc:
            return _bad_context(default, found, exc)
        return resolve(kind, key, default, evaluation)

    async def _resolve_async(
        self, kind: Kind, key: str, default: T, context: EvaluationContext | None
    ) -> FlagResolutionDetails[T]:
        found = query(context)
        if isinstance(found, str):
            return error(default, ErrorCode.INVALID_CONTEXT, found)
        try:
            evaluation: Evaluation | None = self._flags.evaluate_now(key, *found)
            if evaluation is None:
                # A request to PostHog: on a worker thread, in this context (the current
                # span, for the span event), so the loop goes on meanwhile.
                evaluation = await asyncio.to_thread(self._flags.evaluate, key, *found)
        except (TypeError, ValueError) as exc:
            return _bad_context(default, found, exc)
        return resolve(kind, key, default, evaluation)


def _bad_context(default: T, found: Query, exc: Exception) -> FlagResolutionDetails[T]:
    if isinstance(exc, ValueError) and found[0] is None:
        return error(default, ErrorCode.TARGETING_KEY_MISSING, str(exc))
    return error(default, ErrorCode.INVALID_CONTEXT, str(exc))
