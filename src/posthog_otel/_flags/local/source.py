"""Local evaluation as the flag provider uses it: the poller, and flags as ``FeatureFlag``.

A lookup is answered with the flag, or with why it was not decided here:
``definitions_not_loaded``, ``flag_missing`` (the definitions have no such flag), or
one of the reasons in ``predicate``. The first lookup before the definitions load
logs that once.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from posthog_otel import _forksafe, _otel
from posthog_otel._config import check_key
from posthog_otel._flagdata import FeatureFlag, FlagDefinitions
from posthog_otel._flags.local.evaluator import Decision, LocalFlags, Subject, Undecided
from posthog_otel._flags.local.fleet import SharedDefinitions
from posthog_otel._flags.local.matcher import (
    CONDITION_MATCH,
    DISABLED,
    ENROLLMENT,
    HOLDOUT,
    NO_GROUP_TYPE,
    OUT_OF_ROLLOUT_BOUND,
    CompiledFlag,
)
from posthog_otel._flags.local.poller import DefinitionsPoller, Fetch
from posthog_otel.errors import ConfigurationError

if TYPE_CHECKING:
    from posthog_otel._client.connection import Connection

__all__ = ["FLAG_MISSING", "NOT_LOADED", "LocalSource", "local_source"]

logger = logging.getLogger(__name__)

NOT_LOADED = "definitions_not_loaded"
CACHE_METHODS = (
    "should_fetch_flag_definitions",
    "get_flag_definitions",
    "on_flag_definitions_received",
    "shutdown",
)
FLAG_MISSING = "flag_missing"


def local_source(
    connection: Connection,
    secret_key: str | None,
    enabled: bool | None,
    poll_interval: float,
    only_local: bool,
    cache: object | None = None,
) -> LocalSource | None:
    """Local evaluation for a flag provider, polling already; ``None`` when it is off
    (``enabled=None``: on when a secret key is given or configured). A given key is
    checked and stripped as the client's own is (``check_key``). With ``cache`` (PostHog's
    ``FlagDefinitionCacheProvider``) a fleet of processes shares the definitions."""
    if secret_key is not None:
        secret_key = check_key("secret_key", secret_key)
    key = secret_key or connection.config.secret_key
    if enabled is None:
        enabled = key is not None
    if isinstance(poll_interval, bool) or not isinstance(poll_interval, (int, float)):
        raise ConfigurationError("poll_interval", "must be a number of seconds")
    if not math.isfinite(poll_interval) or poll_interval <= 0:
        raise ConfigurationError("poll_interval", f"must be > 0 seconds, got {poll_interval}")
    if only_local and not enabled:
        raise ConfigurationError("only_local", "needs local evaluation (a secret key)")
    if cache is not None and not all(
        callable(getattr(cache, name, None)) for name in CACHE_METHODS
    ):
        raise ConfigurationError(
            "flag_definition_cache_provider",
            "must have PostHog's four methods: " + ", ".join(CACHE_METHODS),
        )
    if not enabled:
        return None
    if key is None:
        raise ConfigurationError(
            "secret_key",
            "local evaluation needs a project secret API key or personal API key "
            "(secret_key= or POSTHOG_SECRET_KEY)",
        )

    def fetch(etag: str | None) -> FlagDefinitions | None:
        with _otel.suppressed():  # our own requests make no spans
            return connection.flag_definitions(etag, retry=False, secret_key=key)

    shared = SharedDefinitions(fetch, cache, poll_interval) if cache is not None else None
    return LocalSource(shared or fetch, poll_interval, only_local=only_local, shared=shared)


class LocalSource:
    """Flags decided in process from polled definitions (shared through a cache, if
    ``shared``)."""

    def __init__(
        self,
        fetch: Fetch,
        poll_interval: float,
        *,
        only_local: bool,
        shared: SharedDefinitions | None = None,
    ) -> None:
        hint = shared.next_wait if shared is not None else None
        self.poller = DefinitionsPoller(fetch, poll_interval, next_wait=hint)
        self.shared = shared
        self._only_local = only_local
        self._warned = False
        self._warned_lock = threading.Lock()
        _forksafe.register(self)
        self.poller.start()

    def _after_fork(self) -> None:
        self._warned_lock = threading.Lock()

    def lookup(
        self,
        key: str,
        distinct_id: str,
        groups: Mapping[str, str] | None,
        person_properties: Mapping[str, Any] | None,
        group_properties: Mapping[str, Mapping[str, Any]] | None,
    ) -> FeatureFlag | str:
        """The flag, decided locally, or why it was not."""
        flags = self.poller.current()
        if flags is None:
            self._not_loaded()
            return NOT_LOADED
        compiled = flags.flags.get(key)
        if compiled is None:
            return FLAG_MISSING
        subject = flags.subject(distinct_id, person_properties, groups, group_properties)
        decision = flags.decide(key, subject)
        if isinstance(decision, Decision):
            return feature_flag(compiled, decision)
        return decision.reason if decision is not None else FLAG_MISSING

    def lookup_all(
        self,
        distinct_id: str,
        groups: Mapping[str, str] | None,
        person_properties: Mapping[str, Any] | None,
        group_properties: Mapping[str, Mapping[str, Any]] | None,
    ) -> tuple[dict[str, FeatureFlag], list[str]] | None:
        """Every flag decided locally, and the keys left undecided; ``None`` before the
        definitions load."""
        flags = self.poller.current()
        if flags is None:
            self._not_loaded()
            return None
        subject = flags.subject(distinct_id, person_properties, groups, group_properties)
        return _split(flags, subject)

    def _not_loaded(self) -> None:
        if self._warned:  # the common case, without the lock
            return
        with self._warned_lock:
            first, self._warned = not self._warned, True
        if not first:
            return
        then = "returning defaults (only_local)" if self._only_local else "asking PostHog"
        logger.warning(
            "posthog-otel: feature flag definitions are not loaded yet; %s until they are. "
            "Call load_definitions() first to wait for them.",
            then,
        )

    def stop(self) -> None:
        if self.shared is not None:
            self.shared.stop_waiting()
        self.poller.stop()
        if self.shared is not None:
            self.shared.close()


def _split(flags: LocalFlags, subject: Subject) -> tuple[dict[str, FeatureFlag], list[str]]:
    decided: dict[str, FeatureFlag] = {}
    undecided: list[str] = []
    compiled = flags.flags
    for key, decision in flags.decide_all(subject).items():
        if isinstance(decision, Undecided):
            undecided.append(key)
        else:
            flag = compiled[key]
            known = flag.results.get(decision)  # feature_flag's memory, read without a call
            decided[key] = known if known is not None else feature_flag(flag, decision)
    return decided, undecided


def feature_flag(flag: CompiledFlag, decision: Decision) -> FeatureFlag:
    """The ``FeatureFlag`` for a decision, made once per flag and decision."""
    known: FeatureFlag | None = flag.results.get(decision)
    if known is not None:
        return known
    value = decision.value

    def make() -> FeatureFlag:
        return FeatureFlag(
            name=flag.key,
            enabled=value,
            payload=flag.payload(value),
            variant=value if isinstance(value, str) else None,
            reason=f"Evaluated locally: {describe(decision)}",
            id=flag.id,
            version=flag.version,
            reason_code=decision.code,
            static=decision == flag.everyone,
        )

    found: FeatureFlag = flag.result_for(decision, make)
    return found


def describe(decision: Decision) -> str:
    """A decision in words, as the flag service's reason descriptions go."""
    where = f"condition set {decision.condition + 1}" if decision.condition is not None else ""
    return {
        CONDITION_MATCH: f"matched {where}",
        OUT_OF_ROLLOUT_BOUND: f"out of rollout bound, {where}",
        HOLDOUT: "in the holdout group",
        NO_GROUP_TYPE: "no group of the flag's group type given",
        DISABLED: "the flag is disabled",
        ENROLLMENT: "early access enrollment",
    }.get(decision.code, "no condition set matched")
