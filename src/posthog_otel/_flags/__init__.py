"""Feature flags: the provider, remote answers and their cache, what a read leaves behind.

Local evaluation is in ``local``, the OpenFeature provider in ``openfeature`` (extra
``openfeature``). Which module owns what: ARCHITECTURE.md (the one list of modules).
"""
