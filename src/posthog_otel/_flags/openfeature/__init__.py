"""OpenFeature over PostHog flags (extra: ``posthog-otel[openfeature]``).

``provider`` (the ``PostHogProvider`` class), ``resolution`` (a flag read as an
OpenFeature type, with its reason or error code) and ``lifecycle``
(``initialize()`` and the provider events).
"""

try:
    import openfeature  # noqa: F401 - only to say which extra is missing
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "posthog_otel.openfeature needs the openfeature extra: "
        "pip install 'posthog-otel[openfeature]'"
    ) from exc

from posthog_otel._flags.openfeature.provider import PostHogProvider

__all__ = ["PostHogProvider"]
