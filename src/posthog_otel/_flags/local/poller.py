"""Flag definitions kept fresh by one background thread, at the cost of one request a poll.

Each poll is one GET with ``If-None-Match``: while nothing changed PostHog answers 304
with no body. Polls come every ``interval`` seconds, jittered by up to 10% so a fleet
of workers started together does not poll in step; the first starts at once, and
nobody waits for it. New definitions are compiled on this thread, then swapped in
whole, so a lookup sees the old set or the new one, never a mix.

Failures: 401 (the secret key is refused) and 402 (over the flags quota) drop the
definitions, since PostHog says they must not be used; any other failure keeps the
last ones. Each run of failures is logged once, and its end once.

State, under one condition variable::

    idle ──start()──> polling ──stop()──> stopped
      ^                  │
      └──── fork ────────┘   (a forked child polls on its own, from its next lookup)

Observers (``subscribe``) hear, on this thread: ``loaded`` (the first definitions),
``changed`` (with the keys of the flags whose answers may differ), ``cleared``
(401/402), ``failing`` (a run of failures began) and ``recovered``.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from posthog_otel import _forksafe
from posthog_otel._flagdata import FlagDefinitions
from posthog_otel._flags.local.evaluator import LocalFlags
from posthog_otel.errors import APIError, PostHogError

__all__ = ["DefinitionsEvent", "DefinitionsPoller", "DefinitionsStatus"]

logger = logging.getLogger(__name__)

JITTER = 0.1

EventKind = Literal["loaded", "changed", "cleared", "failing", "recovered"]


@dataclass(frozen=True)
class DefinitionsStatus:
    """Where local evaluation stands.

    Attributes:
        loaded: definitions are in use (lookups are decided locally).
        flags: how many flags they hold.
        polls: polls so far (answered or not; with a shared cache, reads of it too).
        failing_since: when the current run of failed polls began
            (``time.monotonic()`` scale), or ``None`` while polls succeed.
        error: what the last failed poll said, while failing.
    """

    loaded: bool = False
    flags: int = 0
    polls: int = 0
    failing_since: float | None = None
    error: str | None = None


@dataclass(frozen=True)
class DefinitionsEvent:
    """Something changed: the kind, the flags affected, and the status after it."""

    kind: EventKind
    status: DefinitionsStatus
    changed: frozenset[str] = field(default_factory=frozenset)


Listener = Callable[[DefinitionsEvent], None]
Fetch = Callable[[str | None], FlagDefinitions | None]  # etag in; None means unchanged


class DefinitionsPoller:
    """Polls ``fetch`` every ``interval`` seconds from one daemon thread."""

    def __init__(
        self,
        fetch: Fetch,
        interval: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        name: str = "posthog-otel-flag-definitions",
        next_wait: Callable[[float], float] | None = None,
    ) -> None:
        self._fetch = fetch
        self._interval = interval
        self._next_wait = next_wait  # the wait before the next poll, from the jittered one
        self._clock = clock
        self._name = name
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._state: Literal["idle", "polling", "stopped"] = "idle"
        self._flags: LocalFlags | None = None
        self._etag: str | None = None
        self._polls = 0
        self._failing_since: float | None = None
        self._error: str | None = None
        self._listeners: list[Listener] = []
        _forksafe.register(self)

    # -- the faces -------------------------------------------------------------------

    def current(self) -> LocalFlags | None:
        """The definitions in use, or ``None`` before they load (or after 401/402)."""
        if self._thread is None and self._state == "idle":
            self.start()  # first use in a forked child
        return self._flags

    def start(self) -> None:
        with self._cond:
            if self._state != "idle":
                return
            self._state = "polling"
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()

    def wait_loaded(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for definitions; whether they are loaded."""
        self.start()
        with self._cond:
            self._cond.wait_for(
                lambda: self._flags is not None or self._state == "stopped", timeout
            )
            return self._flags is not None

    def status(self) -> DefinitionsStatus:
        with self._cond:
            return self._status()

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener(event)`` on the poller thread after each change (it must not
        block; an exception it raises is logged and ignored)."""
        with self._cond:
            self._listeners.append(listener)

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._state = "stopped"
            thread = self._thread
            self._cond.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _after_fork(self) -> None:
        self._cond = threading.Condition()
        self._thread = None
        if self._state == "polling":
            self._state = "idle"

    # -- the thread ------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._state != "polling":
                    return
            self._poll()
            wait = self._interval * random.uniform(1 - JITTER, 1 + JITTER)
            if self._next_wait is not None:
                wait = self._next_wait(wait)
            with self._cond:
                self._cond.wait_for(lambda: self._state != "polling", wait)

    def _poll(self) -> None:
        with self._cond:
            etag, before = self._etag, self._flags
        try:
            answer = self._fetch(etag)
            compiled = None if answer is None else LocalFlags(answer)
        except APIError as exc:
            if exc.status in (401, 402):
                self._cleared(exc)
            else:
                self._failed(exc)
            return
        except PostHogError as exc:
            self._failed(exc)
            return
        except Exception as exc:  # a bug must not end the thread
            logger.warning("posthog-otel: polling flag definitions failed", exc_info=True)
            self._failed(exc)
            return
        changed: frozenset[str] = frozenset()
        with self._cond:
            self._polls += 1
            recovered = self._failing_since is not None
            self._failing_since = self._error = None
            if answer is not None and compiled is not None:
                changed = answer.changed_keys(before.definitions if before else None)
                self._flags, self._etag = compiled, answer.etag
                self._cond.notify_all()  # wake load_definitions()
            status = self._status()
        if recovered:
            logger.info("posthog-otel: flag definitions load again")
            self._tell(DefinitionsEvent("recovered", status))
        if before is None and compiled is not None:
            self._tell(DefinitionsEvent("loaded", status, changed))
        elif changed:
            self._tell(DefinitionsEvent("changed", status, changed))

    def _cleared(self, exc: APIError) -> None:
        with self._cond:
            dropped = self._flags is not None
        first = self._note_failure(exc, clear=True)
        with self._cond:
            status = self._status()
        if first:
            if exc.status == 401:
                logger.error(
                    "posthog-otel: PostHog refused the secret key for flag definitions "
                    "(HTTP 401); flags are asked of PostHog until it is accepted. Check "
                    "POSTHOG_SECRET_KEY (a project secret API key, phs_..., or a personal "
                    "API key, phx_...)."
                )
            else:
                logger.warning(
                    "posthog-otel: PostHog says the project is over its feature flags quota "
                    "(HTTP 402); local flag definitions dropped until it answers again."
                )
            self._tell(DefinitionsEvent("failing", status))
        if dropped:
            self._tell(DefinitionsEvent("cleared", status))

    def _failed(self, exc: Exception) -> None:
        if not self._note_failure(exc, clear=False):
            return
        with self._cond:
            status = self._status()
            kept = "keeping the last ones" if status.loaded else "flags are asked of PostHog"
        logger.warning(
            "posthog-otel: flag definitions could not be loaded (%s); %s, and retrying "
            "every %.0f s. Logged once until they load.",
            exc,
            kept,
            self._interval,
        )
        self._tell(DefinitionsEvent("failing", status))

    def _note_failure(self, exc: Exception, *, clear: bool) -> bool:
        """Record a failed poll; ``True`` if it begins a run of failures."""
        with self._cond:
            self._polls += 1
            self._error = str(exc)
            if clear:
                self._flags, self._etag = None, None
            if self._failing_since is not None:
                return False
            self._failing_since = self._clock()
            return True

    def _status(self) -> DefinitionsStatus:
        flags = self._flags
        return DefinitionsStatus(
            loaded=flags is not None,
            flags=len(flags.flags) if flags is not None else 0,
            polls=self._polls,
            failing_since=self._failing_since,
            error=self._error,
        )

    def _tell(self, event: DefinitionsEvent) -> None:
        with self._cond:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(event)
            except Exception:  # an observer's bug must not stop polling
                logger.warning("posthog-otel: a flag definitions listener failed", exc_info=True)
