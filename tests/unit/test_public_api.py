"""The public API is exactly what ``__all__`` lists; this pins it so it cannot drift."""

import posthog_otel


def test_all_is_pinned():
    assert sorted(posthog_otel.__all__) == sorted(
        [
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
            "NoAnswerError",
            "PostHogError",
            "ResponseTooLargeError",
            "TransportError",
        ]
    )


def test_public_names_show_the_public_module():
    """``posthog_otel.PostHogSpanProcessor``, not the private module it is defined in (as
    httpx does); the errors live in the public ``posthog_otel.errors``."""
    import typing

    for name in posthog_otel.__all__:
        obj = getattr(posthog_otel, name)
        if name == "__version__":
            continue
        expected = "posthog_otel.errors" if issubclass_safe(obj, Exception) else "posthog_otel"
        assert obj.__module__ == expected, name
        if isinstance(obj, type):  # annotations still resolve (dataclasses, NamedTuples)
            typing.get_type_hints(obj)


def issubclass_safe(obj, cls) -> bool:
    return isinstance(obj, type) and issubclass(obj, cls)


def test_public_values_and_errors_pickle():
    import pickle

    from posthog_otel import APIError, ConfigurationError, FeatureFlag, TransportError, errors

    flag = FeatureFlag("beta", True)
    assert pickle.loads(pickle.dumps(flag)) == flag
    for error in (
        ConfigurationError("host", "must be a URL"),
        TransportError("connection refused"),
        APIError(503, "busy"),
        errors.NoAnswerError("timed out", retryable=True),
    ):
        again = pickle.loads(pickle.dumps(error))
        assert type(again) is type(error)
        assert str(again) == str(error)
        assert vars(again) == vars(error)


def test_the_devserver_runs_as_a_module():
    """``python -m posthog_otel.devserver`` is ``posthog-otel devserver``."""
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "posthog_otel.devserver", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "--flags" in result.stdout
