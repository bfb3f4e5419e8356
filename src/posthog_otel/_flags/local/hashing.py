"""PostHog's rollout hash, as every PostHog SDK and the flag service compute it."""

from __future__ import annotations

import functools
import hashlib
import importlib
from collections.abc import Callable
from typing import Any

from posthog_otel._limits import FLAG_HASHES_REMEMBERED

_sha1: Callable[[bytes], Any]
try:  # CPython's own SHA-1: for these short inputs a third cheaper than OpenSSL's
    _sha1 = importlib.import_module("_sha1").sha1
except (ImportError, AttributeError):  # pragma: no cover - a Python built without it
    _sha1 = functools.partial(hashlib.sha1, usedforsecurity=False)

_SCALE = float(0xFFFFFFFFFFFFFFF)
_from_bytes = int.from_bytes


def rollout_hash(flag_key: str, distinct_id: str, salt: str = "") -> float:
    """A stable number in [0, 1] for this flag and user: sha1, first 15 hex digits (the
    first 60 bits: 8 bytes shifted right by 4, with no hex text in between).

    The last ``FLAG_HASHES_REMEMBERED`` are remembered (a user asks for the same flags
    request after request, and ``get_flags`` hashes every flag): a remembered one costs
    a dict lookup instead of a SHA-1. At the bound the memory is emptied and refilled."""
    if type(distinct_id) is not str:
        return _rollout(flag_key, distinct_id, salt)
    key = (flag_key, distinct_id, salt)
    known = _remembered.get(key)
    if known is None:
        known = _rollout(flag_key, distinct_id, salt)
        if len(_remembered) >= FLAG_HASHES_REMEMBERED:
            _remembered.clear()
        _remembered[key] = known
    return known


def _rollout(flag_key: str, distinct_id: Any, salt: str) -> float:
    digest = _sha1(f"{flag_key}.{distinct_id}{salt}".encode()).digest()
    return (_from_bytes(digest[:8], "big") >> 4) / _SCALE


# No lock: a race at worst hashes twice, or empties the memory twice.
_remembered: dict[tuple[str, str, str], float] = {}


def holdout_hash(bucketing_value: str) -> float:
    """Where a subject falls for holdouts: the same hash, of ``holdout-<value>``."""
    digest = _sha1(f"holdout-{bucketing_value}".encode()).digest()
    return (_from_bytes(digest[:8], "big") >> 4) / _SCALE
