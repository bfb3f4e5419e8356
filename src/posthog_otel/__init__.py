"""posthog-otel: PostHog product analytics and feature flags from OpenTelemetry.

The public API is exactly the names in ``__all__``; everything else is private.
"""

from posthog_otel._events import Event
from posthog_otel._stats import PipelineStats
from posthog_otel._version import __version__
from posthog_otel.client import PostHogClient, Response
from posthog_otel.context import capture, identify
from posthog_otel.errors import APIError, ConfigurationError, PostHogError, TransportError
from posthog_otel.exporter import PostHogSpanExporter
from posthog_otel.flags import FeatureFlag, FlagsResponse
from posthog_otel.processor import PostHogSpanProcessor
from posthog_otel.provider import PostHogFlagProvider

__all__ = [
    "APIError",
    "ConfigurationError",
    "Event",
    "FeatureFlag",
    "FlagsResponse",
    "PipelineStats",
    "PostHogClient",
    "PostHogError",
    "PostHogFlagProvider",
    "PostHogSpanExporter",
    "PostHogSpanProcessor",
    "Response",
    "TransportError",
    "__version__",
    "capture",
    "identify",
]
