"""Flag definitions shared by a fleet through Redis (the ``redis`` extra): one poll per
interval for every process on every host.

The leader holds a lease, a key set with ``SET NX PX`` (its owner id; it lasts 1.15
poll intervals) and renewed by the leader's next poll; only its owner renews or deletes
it (a Lua script compares first). A leader killed lets its lease lapse, and the next
process to poll takes over: within about two intervals. The definitions and their ETag
are one JSON value, so a new leader's poll is still conditional (a 304 while nothing
changed). When Redis cannot be reached every call raises, and the fleet falls back to
what PostHog's protocol says: each process polls for itself and keeps what it has.
"""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

from posthog_otel._flags.local.fleet import LEASE_FACTOR, FlagDefinitionCacheData, stored_data
from posthog_otel.errors import ConfigurationError

__all__ = ["RedisFlagDefinitionCache"]

# KEYS[1] the lease; ARGV: owner, lease in ms. The owner renews; anyone takes a free one.
_ACQUIRE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
"""
# Deleted only by its owner.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisFlagDefinitionCache:
    """PostHog's ``FlagDefinitionCacheProvider`` on Redis, for a fleet of processes.

    Args:
        redis: a ``redis.Redis`` client, or a URL (``redis://host:6379/0``) to make one
            (with 2-second timeouts, so an unreachable Redis costs little).
        key_prefix: the keys' prefix (``<prefix>:definitions``, ``:version``, ``:leader``);
            one per PostHog project.
        poll_interval: the processes' ``poll_interval`` (seconds), for the lease.
    """

    def __init__(
        self, redis: Any, *, key_prefix: str = "posthog-otel:flags", poll_interval: float = 30.0
    ) -> None:
        if isinstance(redis, str):
            try:
                import redis as redis_py
            except ImportError as exc:
                raise ConfigurationError(
                    "redis", "needs the redis package: pip install 'posthog-otel[redis]'"
                ) from exc
            redis = redis_py.Redis.from_url(redis, socket_timeout=2, socket_connect_timeout=2)
        self._redis = redis
        self._data_key = f"{key_prefix}:definitions"
        self._version_key = f"{key_prefix}:version"
        self._lease_key = f"{key_prefix}:leader"
        self._lease_ms = max(1, round(poll_interval * LEASE_FACTOR * 1000))
        self._id = uuid.uuid4().hex

    def __repr__(self) -> str:
        return f"RedisFlagDefinitionCache(key={self._data_key!r})"

    def _owner(self) -> str:
        return f"{self._id}:{os.getpid()}"  # a forked child is not its parent's leader

    def should_fetch_flag_definitions(self) -> bool:
        return bool(self._redis.eval(_ACQUIRE, 1, self._lease_key, self._owner(), self._lease_ms))

    def get_flag_definitions(self) -> FlagDefinitionCacheData | None:
        raw = self._redis.get(self._data_key)
        if raw is None:
            return None
        return stored_data(raw)

    def flag_definitions_version(self) -> Any:
        """A token written with every set of definitions (one small key), so followers
        check it often and read the definitions only when it changed. Not PostHog's
        protocol: a cache written by another implementation has none, and followers
        then read the whole cache once per interval."""
        return self._redis.get(self._version_key)

    def on_flag_definitions_received(self, data: FlagDefinitionCacheData) -> None:
        encoded = json.dumps(data, separators=(",", ":"))
        # One MSET: a reader never sees a new version with the old definitions.
        self._redis.mset({self._data_key: encoded, self._version_key: uuid.uuid4().hex})

    def shutdown(self) -> None:
        self._redis.eval(_RELEASE, 1, self._lease_key, self._owner())
