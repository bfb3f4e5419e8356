"""The public API is exactly what ``__all__`` lists; this pins it so it cannot drift."""

import posthog_otel


def test_all_is_pinned():
    assert sorted(posthog_otel.__all__) == sorted(
        [
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
    )


def test_every_public_name_exists():
    for name in posthog_otel.__all__:
        assert getattr(posthog_otel, name) is not None


def test_error_hierarchy():
    from posthog_otel import APIError, ConfigurationError, PostHogError, TransportError

    for cls in (APIError, ConfigurationError, TransportError):
        assert issubclass(cls, PostHogError)
    assert issubclass(posthog_otel.ResponseTooLargeError, TransportError)
    assert issubclass(ConfigurationError, ValueError)


def test_only_these_modules_are_public():
    """Everything else sits behind an underscore (a private module or package)."""
    import pkgutil

    public = {
        info.name
        for info in pkgutil.walk_packages(posthog_otel.__path__, "posthog_otel.")
        if not any(part.startswith("_") for part in info.name.split("."))
    }
    assert public == {
        "posthog_otel.cli",
        "posthog_otel.devserver",
        "posthog_otel.errors",
        "posthog_otel.openfeature",
    }
    from posthog_otel import devserver, errors, openfeature

    assert openfeature.__all__ == ["PostHogProvider"]
    assert sorted(devserver.__all__) == ["DevServer", "RecordedRequest"]
    assert sorted(errors.__all__) == sorted(
        [
            "APIError",
            "ConfigurationError",
            "PostHogError",
            "ResponseTooLargeError",
            "TransportError",
        ]
    )
