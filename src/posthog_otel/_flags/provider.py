"""``PostHogFlagProvider``: feature flags that are cached, survive outages, and show on the trace.

One ``/decide`` request per user and context per ``cache_ttl``, shared by
concurrent callers; stale answers (marked so) while PostHog is unreachable, and
defaults when there is nothing to serve: a flag lookup never raises because
PostHog is down. Every evaluation inside a recording span adds a
``feature_flag.evaluation`` span event, and events captured afterwards in that
span or its children carry ``$feature/<key>``. ``$feature_flag_called`` goes out
once per user, flag, value and groups, through a background queue.

With a secret key, flags are decided in process (local evaluation): the project's
flag definitions are polled in the background (``_flags.local``), and PostHog is
asked only for a flag the definitions cannot decide for this user.

The parts: ``local.source`` (local answers), ``remote`` (PostHog's, through the
cache), ``observe`` (what a read leaves on the trace and in exposure events).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import baggage, trace

from posthog_otel import _otel
from posthog_otel._client.client import PostHogClient, client_from, connection_of
from posthog_otel._client.events import check_distinct_id, check_groups, check_properties
from posthog_otel._flags.cache import FlagCache, Lookup
from posthog_otel._flags.local.poller import DefinitionsStatus, Listener
from posthog_otel._flags.local.source import FLAG_MISSING, NOT_LOADED, local_source
from posthog_otel._flags.observe import FlagObserver
from posthog_otel._flags.remote import Evaluation, RemoteFlags, all_flags
from posthog_otel._flags.remote import evaluation as remote_evaluation
from posthog_otel._flags.stats import FlagCounters, FlagStats
from posthog_otel._flags.values import FeatureFlag
from posthog_otel._mapping.convention import DISTINCT_ID, USER_ID_KEYS
from posthog_otel._pipeline import signals
from posthog_otel._pipeline.processor import PostHogSpanProcessor, pipeline_of

__all__ = ["Evaluation", "PostHogFlagProvider"]

Properties = Mapping[str, Any]
Checked = tuple[dict[str, str] | None, Properties | None, Mapping[str, Properties] | None]


class PostHogFlagProvider:
    """Feature flags for request handling: decided locally with a secret key, else cached
    and coalesced; never raising on outages.

    Args:
        client: the ``PostHogClient`` to ask (not closed by us). Without one, a
            client is built from ``api_key``, ``host``, ``client_options`` and the
            ``POSTHOG_*`` environment variables, and closed by ``shutdown()``.
        cache_ttl: seconds an answer is reused for the same user and context.
        cache_size: users (and contexts) remembered, least recently used first out.
        send_feature_flag_events: send ``$feature_flag_called`` (once per user,
            flag, value and groups) so PostHog can count experiment exposures.
        processor: the ``PostHogSpanProcessor`` whose queue carries those events;
            without one, the provider keeps a queue of its own.
        stale_grace: seconds past ``cache_ttl`` an answer may still be served
            (marked stale) while PostHog cannot be reached.
        secret_key: a project secret API key (``phs_...``) or personal API key
            (``phx_...``) for local evaluation; by default the client's
            (``POSTHOG_SECRET_KEY``).
        local_evaluation: decide flags in process from polled definitions; ``None``
            means on when a secret key is configured.
        poll_interval: seconds between polls of the definitions (jittered by 10%).
        only_local: never ask PostHog for single flags: a flag local evaluation
            cannot decide is ``None`` (``default`` for ``is_enabled``).
        clock: a monotonic clock, for tests.
    """

    def __init__(
        self,
        client: PostHogClient | None = None,
        *,
        api_key: str | None = None,
        host: str | None = None,
        cache_ttl: float = 30.0,
        cache_size: int = 10_000,
        send_feature_flag_events: bool = True,
        processor: PostHogSpanProcessor | None = None,
        stale_grace: float = 300.0,
        secret_key: str | None = None,
        local_evaluation: bool | None = None,
        poll_interval: float = 30.0,
        only_local: bool = False,
        clock: Callable[[], float] = time.monotonic,
        **client_options: Any,
    ) -> None:
        sigterm = signals.settings(None, None)
        if client is None and secret_key is not None:
            client_options["secret_key"] = secret_key
        self._client, self._owns_client = client_from(client, api_key, host, client_options)
        self._connection = connection_of(self._client)
        self._only_local = only_local
        self._counts = FlagCounters()
        shared = pipeline_of(processor) if processor is not None else None
        self._observer = FlagObserver(
            self._connection, shared, send_events=send_feature_flag_events, sigterm=sigterm
        )
        cache = FlagCache(
            ttl=cache_ttl,
            size=cache_size,
            grace=stale_grace,
            clock=clock,
            # A lookup waits no longer than a fetch of its own would take: flags_timeout.
            wait_timeout=self._connection.config.flags_timeout,
        )
        self._remote = RemoteFlags(self._connection, cache)
        self._closed = False
        # Last: it starts the poller thread, once every argument is known to be good.
        self._local = local_source(
            self._connection, secret_key, local_evaluation, poll_interval, only_local
        )

    def __repr__(self) -> str:
        local = ", local_evaluation=True" if self._local is not None else ""
        return f"PostHogFlagProvider(client={self._client!r}{local})"

    # -- reading flags ---------------------------------------------------------------

    def get_flag(
        self,
        key: str,
        distinct_id: str | None = None,
        *,
        groups: Mapping[str, str] | None = None,
        person_properties: Properties | None = None,
        group_properties: Mapping[str, Properties] | None = None,
    ) -> FeatureFlag | None:
        """The flag for this user, or ``None`` if it does not exist or cannot be had.

        ``distinct_id`` defaults to the identity in the current context (the
        current span's ``posthog.distinct_id``, ``identify()``'s baggage, then
        ``enduser.id``/``user.id``); with none, ``ValueError``.
        """
        return self.evaluate(key, distinct_id, groups, person_properties, group_properties).flag

    def is_enabled(
        self,
        key: str,
        distinct_id: str | None = None,
        *,
        groups: Mapping[str, str] | None = None,
        person_properties: Properties | None = None,
        group_properties: Mapping[str, Properties] | None = None,
        default: bool = False,
    ) -> bool:
        """Whether the flag is on (a variant counts as on); ``default`` when it is unknown."""
        flag = self.get_flag(
            key,
            distinct_id,
            groups=groups,
            person_properties=person_properties,
            group_properties=group_properties,
        )
        return default if flag is None else bool(flag.enabled)

    def get_payload(
        self,
        key: str,
        distinct_id: str | None = None,
        *,
        groups: Mapping[str, str] | None = None,
        person_properties: Properties | None = None,
        group_properties: Mapping[str, Properties] | None = None,
    ) -> Any:
        """The flag's decoded payload for this user, or ``None``."""
        flag = self.get_flag(
            key,
            distinct_id,
            groups=groups,
            person_properties=person_properties,
            group_properties=group_properties,
        )
        return None if flag is None else flag.payload

    def get_flags(
        self,
        distinct_id: str | None = None,
        *,
        groups: Mapping[str, str] | None = None,
        person_properties: Properties | None = None,
        group_properties: Mapping[str, Properties] | None = None,
    ) -> dict[str, FeatureFlag]:
        """Every flag for this user (no span events or ``$feature_flag_called``). With
        local evaluation, PostHog is asked only when some flag could not be decided."""
        who = self._who(distinct_id)
        checked = self._checked(groups, person_properties, group_properties)
        flags: dict[str, FeatureFlag] = {}
        undecided: list[str] | None = None
        if self._local is not None:
            found = self._local.lookup_all(who, *checked)
            if found is not None:
                flags, undecided = found
            if not undecided and found is not None:
                self._counts.local.add()
                return flags
            self._counts.inconclusive.add()
            if self._only_local:
                return flags
        self._counts.remote.add()
        remote = all_flags(self._remote.lookup(who, *checked))
        if remote is None:
            return flags
        if undecided is None:
            return remote
        wanted = set(undecided) | (remote.keys() - flags.keys())  # and flags we lack
        return {**flags, **{k: f for k, f in remote.items() if k in wanted}}

    def evaluate(
        self,
        key: str,
        distinct_id: str | None = None,
        groups: Mapping[str, str] | None = None,
        person_properties: Properties | None = None,
        group_properties: Mapping[str, Properties] | None = None,
    ) -> Evaluation:
        """The flag, where its answer came from, and why it is missing (for adapters such
        as OpenFeature; raises ``ValueError``/``TypeError`` for bad arguments)."""
        if not isinstance(key, str) or not key:
            raise ValueError("flag key must be a non-empty string")
        who = self._who(distinct_id)
        checked = self._checked(groups, person_properties, group_properties)
        lookup: Lookup | None = None
        evaluation = self._local_evaluation(key, who, checked)
        if evaluation is None:
            self._counts.remote.add()
            lookup = self._remote.lookup(who, *checked)
            evaluation = remote_evaluation(lookup, key)
        answer = lookup.entry.answer if lookup is not None and lookup.entry is not None else None
        flag, source, error = evaluation.flag, evaluation.source, evaluation.error
        self._observer.observe(key, flag, source, error, who, checked[0], answer)
        return evaluation

    def stats(self) -> FlagStats:
        """How many lookups were decided locally, asked of PostHog, or undecided."""
        status = self._local.poller.status() if self._local is not None else None
        return FlagStats(
            local=self._counts.local.value,
            remote=self._counts.remote.value,
            inconclusive=self._counts.inconclusive.value,
            definitions_loaded=status is not None and status.loaded,
            definition_polls=status.polls if status is not None else 0,
        )

    # -- local evaluation ------------------------------------------------------------------

    def load_definitions(self, timeout: float = 10.0) -> bool:
        """Wait up to ``timeout`` seconds for the flag definitions (for scripts and tests;
        servers need not: lookups ask PostHog until they load). ``True`` once loaded;
        ``False`` if they did not load in time, or local evaluation is off."""
        return self._local is not None and self._local.poller.wait_loaded(timeout)

    def definitions_status(self) -> DefinitionsStatus | None:
        """Where local evaluation stands (loaded, failing since when); ``None`` if off."""
        return self._local.poller.status() if self._local is not None else None

    def on_definitions_change(self, listener: Listener) -> None:
        """Call ``listener(event)`` when definitions load, change (``event.changed`` holds
        the flag keys), are cleared, or start or stop failing. It runs on the polling
        thread and must not block. For the OpenFeature lifecycle events."""
        if self._local is None:
            raise ValueError("local evaluation is off: there are no definitions to watch")
        self._local.poller.subscribe(listener)

    # -- lifecycle -------------------------------------------------------------------------

    def flush(self, timeout: float = 30.0) -> bool:
        """Deliver the ``$feature_flag_called`` events queued so far."""
        return self._observer.flush(timeout)

    def shutdown(self, timeout: float = 30.0) -> None:
        """Deliver queued events, then release what we own. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._local is not None:
            self._local.stop()
        self._observer.shutdown(timeout)
        if self._owns_client:
            self._client.close()

    # -- inside ----------------------------------------------------------------------------

    def _who(self, distinct_id: str | None) -> str:
        if distinct_id is not None:
            return check_distinct_id(distinct_id)
        span = trace.get_current_span()
        attrs = _otel.attributes_of(span) if span.is_recording() else {}
        tagged = attrs.get(DISTINCT_ID)
        if isinstance(tagged, str) and tagged:
            return tagged
        carried = baggage.get_baggage(DISTINCT_ID)
        if isinstance(carried, str) and carried:
            return carried
        for name in USER_ID_KEYS:
            value = attrs.get(name)
            if isinstance(value, str) and value:
                return value
        raise ValueError(
            "no distinct_id given and none in the current context: pass distinct_id=, or "
            "wrap the request in identify(user_id)"
        )

    def _checked(
        self,
        groups: Mapping[str, str] | None,
        person_properties: Properties | None,
        group_properties: Mapping[str, Properties] | None,
    ) -> Checked:
        """The arguments, checked, and in the JSON form PostHog would see them in."""
        if person_properties and not _plain(person_properties):
            person_properties = check_properties(person_properties, "person_properties")
        if group_properties:
            group_properties = check_properties(group_properties, "group_properties")
        return (check_groups(groups) if groups else None), person_properties, group_properties

    def _local_evaluation(self, key: str, who: str, checked: Checked) -> Evaluation | None:
        """The flag from local evaluation; ``None`` to ask PostHog instead."""
        if self._local is None:
            return None
        found = self._local.lookup(key, who, *checked)
        if isinstance(found, FeatureFlag):
            self._counts.local.add()
            return Evaluation(found, "local")
        if found != FLAG_MISSING:
            self._counts.inconclusive.add()
        if not self._only_local:
            return None
        if found == NOT_LOADED:
            return Evaluation(None, "unavailable", NOT_LOADED)
        return Evaluation(None, "local", found)


_PLAIN = frozenset({str, int, bool, type(None)})


def _plain(properties: Any) -> bool:
    """Whether ``properties`` are already what ``check_properties`` would make of them (a
    dict of strings to strings, integers, booleans or ``None``): the common case, and
    worth the shortcut on a lookup that takes microseconds."""
    if type(properties) is not dict:
        return False
    for key, value in properties.items():
        if type(key) is not str or type(value) not in _PLAIN:
            return False
    return True
