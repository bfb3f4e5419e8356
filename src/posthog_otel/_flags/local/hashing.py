"""PostHog's rollout hash, as every PostHog SDK and the flag service compute it."""

from __future__ import annotations

import functools
import hashlib
import importlib
from collections.abc import Callable
from typing import Any

_sha1: Callable[[bytes], Any]
try:  # CPython's own SHA-1: for these short inputs a third cheaper than OpenSSL's
    _sha1 = importlib.import_module("_sha1").sha1
except (ImportError, AttributeError):  # pragma: no cover - a Python built without it
    _sha1 = functools.partial(hashlib.sha1, usedforsecurity=False)

_SCALE = float(0xFFFFFFFFFFFFFFF)
_from_bytes = int.from_bytes


def rollout_hash(flag_key: str, distinct_id: str, salt: str = "") -> float:
    """A stable number in [0, 1] for this flag and user: sha1, first 15 hex digits (the
    first 60 bits: 8 bytes shifted right by 4, with no hex text in between)."""
    digest = _sha1(f"{flag_key}.{distinct_id}{salt}".encode()).digest()
    return (_from_bytes(digest[:8], "big") >> 4) / _SCALE


def holdout_hash(bucketing_value: str) -> float:
    """Where a subject falls for holdouts: the same hash, of ``holdout-<value>``."""
    digest = _sha1(f"holdout-{bucketing_value}".encode()).digest()
    return (_from_bytes(digest[:8], "big") >> 4) / _SCALE
