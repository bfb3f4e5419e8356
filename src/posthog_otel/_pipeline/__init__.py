"""The pipeline: hooks on the application's threads, a queue, and two workers.

Which module owns what: ARCHITECTURE.md (the one list of modules).
"""
