"""Local flag evaluation: PostHog's flag definitions, polled, and matched in process.

Everything but the poller (and ``source``, which the provider uses) is pure: definitions
and the caller's identity, properties and groups in; a value, or the reason local
evaluation cannot decide, out. Which module owns what: ARCHITECTURE.md (the one list of
modules).
"""
