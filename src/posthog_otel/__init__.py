"""posthog-otel: PostHog product analytics and feature flags from OpenTelemetry.

The public API is exactly the names in ``__all__``; everything else is private.
Alongside: ``posthog_otel.openfeature`` (the OpenFeature provider, extra
``openfeature``) and ``posthog_otel.devserver`` (a local PostHog-compatible server).
"""

from posthog_otel._client.client import PostHogClient, Response
from posthog_otel._client.events import Event
from posthog_otel._context import PostHogPropagator, capture, identify
from posthog_otel._flagdata import FeatureFlag, FlagDefinitions, FlagsResponse
from posthog_otel._flags.provider import PostHogFlagProvider
from posthog_otel._flags.stats import FlagStats
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

__all__ = [
    "APIError",
    "ConfigurationError",
    "Event",
    "FeatureFlag",
    "FlagDefinitions",
    "FlagStats",
    "FlagsResponse",
    "PipelineStats",
    "PostHogClient",
    "PostHogError",
    "PostHogFlagProvider",
    "PostHogLogExporter",
    "PostHogLogProcessor",
    "PostHogPropagator",
    "PostHogSpanExporter",
    "PostHogSpanProcessor",
    "Response",
    "ResponseTooLargeError",
    "TransportError",
    "__version__",
    "capture",
    "identify",
]
