"""PostHog's rollout hash, as every PostHog SDK and the flag service compute it."""

from __future__ import annotations

import hashlib

_SCALE = float(0xFFFFFFFFFFFFFFF)


def rollout_hash(flag_key: str, distinct_id: str, salt: str = "") -> float:
    """A stable number in [0, 1] for this flag and user: sha1, first 15 hex digits."""
    digest = hashlib.sha1(f"{flag_key}.{distinct_id}{salt}".encode(), usedforsecurity=False)
    return int(digest.hexdigest()[:15], 16) / _SCALE
