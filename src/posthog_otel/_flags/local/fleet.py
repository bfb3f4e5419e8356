"""Flag definitions shared by a fleet: PostHog's cache-provider protocol, and a file cache.

PostHog's SDKs let many processes poll as one through a ``FlagDefinitionCacheProvider``
(the same four methods here as in posthog-python, each sync or awaitable). Before each
poll, ``should_fetch_flag_definitions()`` elects a leader: the leader asks PostHog (with
its ETag, so an unchanged poll is a 304) and hands new definitions to
``on_flag_definitions_received(data)``; the others take ``get_flag_definitions()``.
A cache provider written for posthog-python works here unchanged, and ours work there:
the data is PostHog's ``FlagDefinitionCacheData`` (``flags`` as a list, ``cohorts``,
``group_type_mapping``, optional ``property_matching_version``), plus one key of ours,
``etag``, that posthog-python ignores and our next leader sends as ``If-None-Match``.

A cache may also offer ``flag_definitions_version()`` (ours do; it is not part of
PostHog's protocol): a cheap token that changes whenever the definitions do. A follower
then checks it every ``FLEET_CHECK_SECONDS`` between its polls and reads the whole cache
only when it changed, so a change reaches every process within one interval and about a
second, not two intervals; it still asks to lead once per interval.

Fail-safe, as posthog-python's: an error in ``should_fetch`` means fetch; in ``get``,
fetch; in ``on_received``, the definitions stay in memory; in ``shutdown``, logged.
Each run of errors is logged once. A follower that finds the cache empty and has
nothing loaded looks again for up to one interval (the leader is fetching) before it
fetches for itself, so a fleet started together makes one request, not one each.

``FileFlagDefinitionCache`` shares definitions among the processes of one host: a
lock file (``fcntl``) guards a lease (owner and deadline), the definitions are written
to a temporary file and renamed over the old ones, so a reader sees one whole set.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import inspect
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol, TypedDict, TypeVar, runtime_checkable

from posthog_otel import _forksafe
from posthog_otel._flagdata import FlagDefinitions, parse_definitions
from posthog_otel._flags.local.poller import Fetch
from posthog_otel._limits import (
    FLEET_CHECK_SECONDS,
    FLEET_FIRST_LOAD_WAIT,
    MAX_DEFINITIONS_ANSWER_BYTES,
)

__all__ = [
    "LEASE_FACTOR",
    "FileFlagDefinitionCache",
    "FlagDefinitionCacheData",
    "FlagDefinitionCacheProvider",
    "SharedDefinitions",
    "cache_data",
    "definitions_from",
    "stored_data",
]

logger = logging.getLogger(__name__)

# A leader's lease lasts this many poll intervals: longer than its next (jittered, up to
# 1.1 intervals) poll, which renews it; a crashed leader's lapses within 1.15 intervals.
LEASE_FACTOR = 1.15

T = TypeVar("T")
_FAILED = object()  # a cache method raised


def _fingerprint(data: Any) -> str:
    """A hash of cache data (``ValueError`` past the definitions' size limit)."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    if len(text) > MAX_DEFINITIONS_ANSWER_BYTES:
        raise ValueError("the cached definitions are over the size limit")
    return hashlib.sha256(text.encode()).hexdigest()


class _RequiredData(TypedDict):
    flags: list[dict[str, Any]]
    group_type_mapping: dict[str, str]
    cohorts: dict[str, Any]


class FlagDefinitionCacheData(_RequiredData, total=False):
    """PostHog's shape of cached flag definitions (posthog-python's, key for key), with
    ``etag``, ours, so the next leader's poll stays conditional."""

    property_matching_version: int
    minimal_flag_called_events: bool
    etag: str


@runtime_checkable
class FlagDefinitionCacheProvider(Protocol):
    """PostHog's protocol for sharing flag definitions; each method may be async."""

    def should_fetch_flag_definitions(self) -> bool | Awaitable[bool]: ...

    def get_flag_definitions(
        self,
    ) -> FlagDefinitionCacheData | Awaitable[FlagDefinitionCacheData | None] | None: ...

    def on_flag_definitions_received(
        self, data: FlagDefinitionCacheData
    ) -> Awaitable[None] | None: ...

    def shutdown(self) -> Awaitable[None] | None: ...


def cache_data(definitions: FlagDefinitions) -> FlagDefinitionCacheData:
    """Definitions as PostHog's cache data (plain JSON values, ``etag`` when known)."""
    data: FlagDefinitionCacheData = {
        "flags": [dict(flag) for flag in definitions.flags.values()],
        "group_type_mapping": dict(definitions.group_type_mapping),
        "cohorts": dict(definitions.cohorts),
        "property_matching_version": definitions.property_matching_version,
    }
    if definitions.etag:
        data["etag"] = definitions.etag
    return data


def definitions_from(data: Any) -> FlagDefinitions:
    """``FlagDefinitions`` from cache data; ``ValueError`` when it is not one."""
    etag = data.get("etag") if isinstance(data, dict) else None
    return parse_definitions(data, etag if isinstance(etag, str) and etag else None)


def stored_data(raw: bytes) -> FlagDefinitionCacheData:
    """Cache data as a cache stored it (JSON), within the definitions' byte limit;
    ``ValueError`` when it is too large or not a JSON object."""
    if len(raw) > MAX_DEFINITIONS_ANSWER_BYTES:
        raise ValueError("the cached definitions are over the size limit")
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("the cached definitions are not a JSON object")
    found: FlagDefinitionCacheData = data  # type: ignore[assignment]
    return found


class SharedDefinitions:
    """A poller's ``fetch`` that asks a cache provider first; counts what it did.

    Used only from the poller thread, but for ``stats()`` (read under its lock) and
    ``close()`` (after the poller stopped).
    """

    def __init__(self, fetch: Fetch, provider: object, interval: float) -> None:
        self._fetch = fetch
        self._provider: Any = provider
        self._interval = interval
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._seen: str | None = None  # fingerprint of the cache data last taken
        self._version: Any = None  # the cache's version token when last read whole
        self._full_due = 0.0  # monotonic time of the next full poll (lead, or read whole)
        self._versioned = callable(getattr(provider, "flag_definitions_version", None))
        self._loaded = False
        self._failing: set[str] = set()
        self.requests = 0
        self.from_cache = 0
        self.leader = False
        _forksafe.register(self)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        self._loop = None  # the parent's loop (and its selector) is not ours

    def stats(self) -> tuple[int, int, bool]:
        """Requests made, definitions taken from the cache, and whether this process led
        its last poll."""
        with self._lock:
            return self.requests, self.from_cache, self.leader

    def next_wait(self, wait: float) -> float:
        """The poller's wait before the next call: a follower of a versioned cache
        checks every ``FLEET_CHECK_SECONDS``; a leader waits its (jittered) interval."""
        if self._versioned and not self.leader and self._loaded:
            return min(wait, FLEET_CHECK_SECONDS)
        return wait

    def __call__(self, etag: str | None) -> FlagDefinitions | None:
        now = time.monotonic()
        if self._versioned and not self.leader and self._loaded and now < self._full_due:
            return self._check()
        self._full_due = now + self._interval * 0.9  # the next full poll, jitter allowed
        elected = self._ask("should_fetch_flag_definitions", default=_FAILED)
        if not elected:
            found = self._cached()
            if found is not None:
                return found if isinstance(found, FlagDefinitions) else None
            # the cache failed, or is empty with nothing loaded: fetch for ourselves
        with self._lock:
            self.requests += 1
            self.leader = bool(elected) and elected is not _FAILED
        answer = self._fetch(etag)
        if answer is not None:
            self._loaded = True
            data = cache_data(answer)
            self._seen = _fingerprint(data)  # read back later, it is nothing new
            self._ask("on_flag_definitions_received", data)
        elif etag is not None:
            self._loaded = True
        return answer

    def _check(self) -> FlagDefinitions | None:
        """Between full polls: the whole cache only when its version changed."""
        version = self._ask("flag_definitions_version", default=_FAILED)
        if version is _FAILED or version == self._version:
            return None
        found = self._cached()
        return found if isinstance(found, FlagDefinitions) else None

    def _cached(self) -> FlagDefinitions | bool | None:
        """Definitions from the cache; ``True``: nothing new; ``None``: fetch instead."""
        deadline = time.monotonic() + min(self._interval, FLEET_FIRST_LOAD_WAIT)
        while True:
            if self._versioned:  # before the read: a change after it is seen next time
                self._version = self._ask("flag_definitions_version", default=None)
            data = self._ask("get_flag_definitions", default=_FAILED)
            if data is _FAILED:
                return None
            if data:
                return self._take(data)
            if self._loaded:
                return True
            if self._closed.wait(min(0.25, max(0.05, self._interval / 20))):
                return True  # stopping: no request now
            if time.monotonic() >= deadline:
                return None

    def _take(self, data: Any) -> FlagDefinitions | bool | None:
        try:
            fingerprint = _fingerprint(data)
            definitions = None if fingerprint == self._seen else definitions_from(data)
        except (TypeError, ValueError) as exc:
            self._note("get_flag_definitions", exc)
            return None
        with self._lock:
            self.leader = False
            if definitions is not None:
                self.from_cache += 1
        self._loaded = True
        if definitions is None:
            return True
        self._seen = fingerprint
        return definitions

    def _ask(self, method: str, *args: Any, default: Any = None) -> Any:
        try:
            result = getattr(self._provider, method)(*args)
            if inspect.isawaitable(result):
                result = self._run(result)
        except Exception as exc:  # noqa: BLE001 - PostHog's rule: a cache never breaks flags
            self._note(method, exc)
            return default
        if method in self._failing:
            self._failing.discard(method)
            logger.info("posthog-otel: the flag definition cache answers again (%s)", method)
        return result

    def _note(self, method: str, exc: BaseException) -> None:
        if method in self._failing:
            return
        self._failing.add(method)
        then = {
            "should_fetch_flag_definitions": "fetching for this process",
            "get_flag_definitions": "fetching for this process",
            "on_flag_definitions_received": "keeping them in this process",
            "flag_definitions_version": "reading the whole cache at each poll instead",
        }.get(method, "shutting down anyway")
        logger.warning(
            "posthog-otel: the flag definition cache failed in %s (%s: %s); %s. "
            "Logged once until it answers.",
            method,
            type(exc).__name__,
            exc,
            then,
        )

    def _run(self, awaitable: Awaitable[T]) -> T:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()

        async def wrapped() -> T:
            return await awaitable

        return self._loop.run_until_complete(wrapped())

    def stop_waiting(self) -> None:
        """End a follower's wait for the leader (before the poller is stopped)."""
        self._closed.set()

    def close(self) -> None:
        """The provider's ``shutdown()`` (after the poller stopped); errors logged."""
        self._closed.set()
        self._ask("shutdown")
        if self._loop is not None:
            self._loop.close()
            self._loop = None


class FileFlagDefinitionCache:
    """Flag definitions shared by the processes of one host, in a file: one poll per
    host per interval.

    Args:
        path: the definitions file; ``<path>.lock`` holds the leader's lease. Its
            folder must exist and be writable by every process.
        poll_interval: the processes' ``poll_interval`` (seconds): a lease lasts 1.15
            of it, so a leader that dies is replaced within about two intervals.
    """

    def __init__(self, path: str | os.PathLike[str], *, poll_interval: float = 30.0) -> None:
        self._path = Path(path)
        self._lock_path = self._path.with_name(self._path.name + ".lock")
        self._lease = poll_interval * LEASE_FACTOR
        self._id = uuid.uuid4().hex

    def __repr__(self) -> str:
        return f"FileFlagDefinitionCache({str(self._path)!r})"

    def _owner(self) -> str:
        return f"{self._id}:{os.getpid()}"  # a forked child is not its parent's leader

    @contextlib.contextmanager
    def _locked(self) -> Any:
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield fd
        finally:
            os.close(fd)  # closing releases the lock

    def _edit_lease(self, change: Callable[[str, float], tuple[str, float] | None]) -> bool:
        with self._locked() as fd:
            raw = os.pread(fd, 256, 0).decode(errors="replace").split()
            try:
                owner, until = (raw[0], float(raw[1])) if len(raw) == 2 else ("", 0.0)
            except ValueError:  # a damaged lease is a free one
                owner, until = "", 0.0
            new = change(owner, until)
            if new is None:
                return False
            record = f"{new[0]} {new[1]!r}\n".encode()
            os.ftruncate(fd, 0)
            os.pwrite(fd, record, 0)
            return True

    def should_fetch_flag_definitions(self) -> bool:
        me, now = self._owner(), time.time()

        def take(owner: str, until: float) -> tuple[str, float] | None:
            return (me, now + self._lease) if owner in ("", me) or until <= now else None

        return self._edit_lease(take)

    def get_flag_definitions(self) -> FlagDefinitionCacheData | None:
        try:
            with self._path.open("rb") as file:
                raw = file.read(MAX_DEFINITIONS_ANSWER_BYTES + 1)
        except FileNotFoundError:
            return None
        return stored_data(raw)

    def flag_definitions_version(self) -> str | None:
        """A token that changes with every write (each is a rename: a new inode); ``None``
        while there is no file. Not PostHog's protocol: a follower's cheap check."""
        try:
            st = os.stat(self._path)
        except FileNotFoundError:
            return None
        return f"{st.st_ino}:{st.st_mtime_ns}:{st.st_size}"

    def on_flag_definitions_received(self, data: FlagDefinitionCacheData) -> None:
        temporary = self._path.with_name(f".{self._path.name}.{self._owner()}.tmp")
        try:
            temporary.write_text(json.dumps(data, separators=(",", ":")))
            os.replace(temporary, self._path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()

    def shutdown(self) -> None:
        me = self._owner()

        def release(owner: str, until: float) -> tuple[str, float] | None:
            return ("-", 0.0) if owner == me else None

        self._edit_lease(release)
