"""posthog-otel: PostHog product analytics and feature flags from OpenTelemetry.

The public API is exactly the names in ``__all__``; everything else is private.
Alongside: ``posthog_otel.openfeature`` (the OpenFeature provider, extra
``openfeature``) and ``posthog_otel.devserver`` (a local PostHog-compatible server).
"""

from typing import TYPE_CHECKING, Any

from posthog_otel._client.client import PostHogClient, Response
from posthog_otel._client.events import Event
from posthog_otel._context import PostHogPropagator, capture, identify
from posthog_otel._flagdata import FeatureFlag, FlagDefinitions, FlagsResponse
from posthog_otel._flags.local.fleet import FileFlagDefinitionCache
from posthog_otel._flags.local.rediscache import RedisFlagDefinitionCache
from posthog_otel._flags.provider import FlagStats, PostHogFlagProvider
from posthog_otel._pipeline.logs import PostHogLogExporter, PostHogLogProcessor
from posthog_otel._pipeline.spans import PostHogSpanExporter, PostHogSpanProcessor
from posthog_otel._pipeline.stats import PipelineStats
from posthog_otel._version import __version__
from posthog_otel.errors import (
    APIError,
    ConfigurationError,
    PostHogError,
    ResponseTooLargeError,
    TransportError,
)

if TYPE_CHECKING:
    from posthog_otel._pipeline.metric_exporter import PostHogMetricExporter

__all__ = [
    "APIError",
    "ConfigurationError",
    "Event",
    "FeatureFlag",
    "FileFlagDefinitionCache",
    "FlagDefinitions",
    "FlagStats",
    "FlagsResponse",
    "PipelineStats",
    "PostHogClient",
    "PostHogError",
    "PostHogFlagProvider",
    "PostHogLogExporter",
    "PostHogLogProcessor",
    "PostHogMetricExporter",
    "PostHogPropagator",
    "PostHogSpanExporter",
    "PostHogSpanProcessor",
    "RedisFlagDefinitionCache",
    "Response",
    "ResponseTooLargeError",
    "TransportError",
    "__version__",
    "capture",
    "identify",
]


# Public names show where users import them from (as httpx does): reprs, tracebacks
# and pickles say ``posthog_otel.PostHogSpanProcessor``, not the private module. The
# errors already live in the public ``posthog_otel.errors``. A class's own annotations
# are resolved first, in the module that defines them, so ``typing.get_type_hints``
# keeps working on the value classes (it looks names up in ``__module__``).
def _show_as_public(names: list[str]) -> None:
    import typing

    for name in names:
        obj = globals().get(name)
        if obj is None:  # imported when first used (see __getattr__)
            continue
        if not getattr(obj, "__module__", "").startswith("posthog_otel._"):
            continue
        own = vars(obj).get("__annotations__") if isinstance(obj, type) else None
        if own:
            hints = typing.get_type_hints(obj, include_extras=True)
            obj.__annotations__ = {key: hints[key] for key in own}
        obj.__module__ = "posthog_otel"


_show_as_public(__all__)


def __getattr__(name: str) -> Any:
    """``PostHogMetricExporter`` is imported when first named: it loads OpenTelemetry's
    metrics SDK, which an application that exports no metrics never pays for."""
    if name == "PostHogMetricExporter":
        from posthog_otel._pipeline.metric_exporter import PostHogMetricExporter

        globals()[name] = PostHogMetricExporter
        _show_as_public([name])
        return PostHogMetricExporter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
