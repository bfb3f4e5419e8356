"""From OpenTelemetry data to PostHog events, as pure functions (no I/O, no threads).

Which module owns what: ARCHITECTURE.md (the one list of modules).
"""
