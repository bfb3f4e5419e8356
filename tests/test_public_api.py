"""The public API is exactly what ``__all__`` lists; this pins it so it cannot drift."""

import posthog_otel


def test_all_is_pinned():
    assert sorted(posthog_otel.__all__) == sorted(
        [
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
    )


def test_every_public_name_exists():
    for name in posthog_otel.__all__:
        assert getattr(posthog_otel, name) is not None


def test_error_hierarchy():
    from posthog_otel import APIError, ConfigurationError, PostHogError, TransportError

    for cls in (APIError, ConfigurationError, TransportError):
        assert issubclass(cls, PostHogError)
    assert issubclass(ConfigurationError, ValueError)
