"""PostHog's rollout hash, as every PostHog SDK and the flag service compute it."""

from __future__ import annotations

import hashlib

_SCALE = float(0xFFFFFFFFFFFFFFF)


def rollout_hash(flag_key: str, distinct_id: str, salt: str = "") -> float:
    """A stable number in [0, 1] for this flag and user: sha1, first 15 hex digits."""
    return _unit(f"{flag_key}.{distinct_id}{salt}")


def holdout_hash(bucketing_value: str) -> float:
    """Where a subject falls for holdouts: the same hash, of ``holdout-<value>``."""
    return _unit(f"holdout-{bucketing_value}")


def _unit(text: str) -> float:
    digest = hashlib.sha1(text.encode(), usedforsecurity=False)
    return int(digest.hexdigest()[:15], 16) / _SCALE
