__version__ = "0.1.0"
LIB = "posthog-otel"  # the $lib property PostHog shows for our events
