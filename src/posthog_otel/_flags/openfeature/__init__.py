"""OpenFeature over PostHog flags (extra: ``posthog-otel[openfeature]``).

Which module owns what: ARCHITECTURE.md (the one list of modules).
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
