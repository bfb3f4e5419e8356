"""The OpenFeature provider for PostHog flags (extra: ``posthog-otel[openfeature]``).

``PostHogProvider`` resolves OpenFeature flags through a ``PostHogFlagProvider``;
see its docstring for how evaluation context maps to PostHog.
"""

from posthog_otel._flags.openfeature import PostHogProvider

__all__ = ["PostHogProvider"]
