"""The OpenFeature provider's lifecycle: ``initialize()``, and events from the flag
definitions as the poller reports them.

``initialize()`` waits, at most ``init_timeout`` seconds, for what the provider needs:
with local evaluation the first definitions (it stops waiting once the first poll
fails), else one answer from PostHog's flag service (for a made-up user). It raises
``GeneralError`` (OpenFeature status ``ERROR``) when that fails, and
``ProviderFatalError`` (``FATAL``) when PostHog refuses the project API key, which
no retry can fix; when the definitions do not load it also asks the flag service
once, to tell the two apart. Events, after that, come from the polling thread::

    initializing ──ok──> ready <──definitions load again── error
         └──failed──> error <──401/402 drops them── ready
    ready ──polls failing for stale_after s──> stale ──a poll succeeds──> ready
    ready ──new definitions──> ready (PROVIDER_CONFIGURATION_CHANGED, with the flag keys)

Without local evaluation there are no definitions to watch: after ``initialize()``
the status stays ``READY``, and each read says how PostHog answered (``STALE``,
``ERROR``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Literal

from openfeature.event import ProviderEvent, ProviderEventDetails
from openfeature.exception import GeneralError, ProviderFatalError

from posthog_otel._flags.local.poller import DefinitionsEvent
from posthog_otel._flags.provider import PostHogFlagProvider
from posthog_otel.errors import APIError

__all__ = ["CHECK_DISTINCT_ID", "Lifecycle"]

logger = logging.getLogger(__name__)

# Who initialize() asks PostHog about: nobody real.
CHECK_DISTINCT_ID = "posthog-otel-openfeature-check"

Emit = Callable[[ProviderEvent, ProviderEventDetails], None]
State = Literal["initializing", "ready", "error", "stale", "stopped"]


class Lifecycle:
    """Provider state, under one lock; events go out through ``emit`` (never under it)."""

    def __init__(
        self, flags: PostHogFlagProvider, emit: Emit, *, init_timeout: float, stale_after: float
    ) -> None:
        self._flags = flags
        self._emit = emit
        self._init_timeout = init_timeout
        self._stale_after = stale_after
        self._lock = threading.Lock()
        self._state: State = "initializing"
        self._settled = threading.Event()  # the first poll has answered, one way or another
        self._subscribed = False
        self._timer: threading.Timer | None = None

    def initialize(self) -> None:
        with self._lock:
            self._state = "initializing"
        if self._flags.definitions_status() is None:
            ok, why = self._check_remote()
        else:
            ok, why = self._wait_for_definitions()
            if not ok:
                # Asked once more of the flag service: a refused project key is fatal, and
                # otherwise it is worth knowing whether lookups have somewhere to go.
                reachable, remote_why = self._check_remote()
                why += "; flags are asked of PostHog" if reachable else f"; {remote_why}"
        if not self._settle(ok):
            raise GeneralError(why)

    def _settle(self, ok: bool) -> bool:
        """Leave ``initializing``; whether the provider is ready. Definitions that load
        after this say so with ``PROVIDER_READY`` (were they to load within the moment
        before OpenFeature reports our failure, that report would come last)."""
        with self._lock:
            status = self._flags.definitions_status()
            ok = ok or (status is not None and status.loaded)  # loaded as the wait ended
            if self._state != "stopped":
                self._state = "ready" if ok else "error"
        return ok

    def stop(self) -> None:
        with self._lock:
            self._state = "stopped"
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()

    # -- initialize ---------------------------------------------------------------------

    def _wait_for_definitions(self) -> tuple[bool, str]:
        if not self._subscribed:
            self._subscribed = True
            self._flags.on_definitions_change(self._on_definitions)
        status = self._flags.definitions_status()
        if status is not None and not status.loaded and status.failing_since is None:
            # Subscribed before asking, so the first poll cannot pass unseen.
            self._settled.wait(self._init_timeout)
        status = self._flags.definitions_status()
        if status is not None and status.loaded:
            return True, ""
        why = (status.error if status is not None else None) or (
            f"none within {self._init_timeout:g} s"
        )
        return False, f"flag definitions did not load ({why})"

    def _check_remote(self) -> tuple[bool, str]:
        """One request to the flag service, for a made-up user (so no real user's first
        read is served from it); ``ProviderFatalError`` if it refuses the project key."""
        failure = self._flags.prefetch(CHECK_DISTINCT_ID)
        if failure is None:
            return True, ""
        if isinstance(failure, APIError) and failure.status == 401:
            raise ProviderFatalError(f"PostHog refused the project API key ({failure})")
        return False, f"PostHog's flag service did not answer ({failure})"

    # -- events (on the polling thread) --------------------------------------------------

    def _on_definitions(self, event: DefinitionsEvent) -> None:
        self._settled.set()
        out: list[tuple[ProviderEvent, ProviderEventDetails]] = []
        with self._lock:
            if self._state in ("initializing", "stopped"):
                return  # initialize() reports how things stand
            if event.kind in ("loaded", "recovered"):
                self._cancel_timer()
                if event.status.loaded and self._state in ("error", "stale"):
                    self._state = "ready"
                    details = ProviderEventDetails(message="flag definitions load again")
                    out.append((ProviderEvent.PROVIDER_READY, details))
            if event.kind == "changed":
                details = ProviderEventDetails(flags_changed=sorted(event.changed))
                out.append((ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, details))
            elif event.kind == "cleared":
                self._cancel_timer()
                self._state = "error"
                message = f"PostHog withdrew the flag definitions ({event.status.error})"
                out.append((ProviderEvent.PROVIDER_ERROR, ProviderEventDetails(message=message)))
            elif event.kind == "failing" and event.status.loaded and self._state == "ready":
                began = event.status.failing_since or time.monotonic()
                wait = max(0.0, began + self._stale_after - time.monotonic())
                self._timer = threading.Timer(wait, self._maybe_stale)
                self._timer.daemon = True
                self._timer.start()
        for kind, details in out:
            self._emit(kind, details)

    def _maybe_stale(self) -> None:
        status = self._flags.definitions_status()
        with self._lock:
            self._timer = None
            if self._state != "ready" or status is None or status.failing_since is None:
                return
            self._state = "stale"
        message = f"flag definitions not refreshed for {self._stale_after:g} s ({status.error})"
        logger.warning("posthog-otel: %s", message)
        self._emit(ProviderEvent.PROVIDER_STALE, ProviderEventDetails(message=message))

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
