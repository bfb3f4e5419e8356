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

Here too: which source answers a read (``FlagLookups``: local evaluation first, then
PostHog through the cache; each read counted, local, remote or undecided, and observed:
span event, exposure), who a lookup is for (``distinct_id_for``: the one given, else
the current span's ``posthog.distinct_id``, ``identify()``'s baggage, then
``enduser.id``/``user.id``) with its context checked into the JSON form PostHog sees
(``flag_context``), and what the provider has done (``FlagStats``). Local answers
are ``local.source``'s, PostHog's ``remote``'s; ``observe`` owns what a read leaves on
the trace and in exposure events.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from opentelemetry import baggage, trace

from posthog_otel import _forksafe, _otel
from posthog_otel._client.client import PostHogClient, client_from, connection_of
from posthog_otel._client.events import check_distinct_id, check_groups, check_properties
from posthog_otel._flagdata import FeatureFlag
from posthog_otel._flags.local.poller import DefinitionsStatus, Listener
from posthog_otel._flags.local.source import FLAG_MISSING, NOT_LOADED, LocalSource, local_source
from posthog_otel._flags.observe import FlagObserver
from posthog_otel._flags.remote import Evaluation, FlagCache, Lookup, RemoteFlags, all_flags
from posthog_otel._flags.remote import evaluation as remote_evaluation
from posthog_otel._mapping.convention import DISTINCT_ID, USER_ID_KEYS
from posthog_otel._pipeline.pipeline import PipelineOptions
from posthog_otel._pipeline.spans import PostHogSpanProcessor, pipeline_of
from posthog_otel._pipeline.stats import ThreadCounter
from posthog_otel.errors import PostHogError

__all__ = [
    "Evaluation",
    "FlagContext",
    "FlagCounters",
    "FlagLookups",
    "FlagStats",
    "PostHogFlagProvider",
    "Properties",
    "distinct_id_for",
    "flag_context",
]


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
        flag_definition_cache_provider: PostHog's ``FlagDefinitionCacheProvider``
            (posthog-python's protocol, sync or async; ``FileFlagDefinitionCache``,
            ``RedisFlagDefinitionCache``): processes share one poll per interval.
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
        flag_definition_cache_provider: object | None = None,
        clock: Callable[[], float] = time.monotonic,
        **client_options: Any,
    ) -> None:
        options = PipelineOptions.from_env()  # for the exposures' own queue, if needed
        if client is None and secret_key is not None:
            client_options["secret_key"] = secret_key
        self._client, self._owns_client = client_from(client, api_key, host, client_options)
        self._connection = connection_of(self._client)
        shared = pipeline_of(processor) if processor is not None else None
        self._observer = FlagObserver(
            self._connection, shared, send_events=send_feature_flag_events, options=options
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
            self._connection,
            secret_key,
            local_evaluation,
            poll_interval,
            only_local,
            flag_definition_cache_provider,
        )
        self._lookups = FlagLookups(self._local, self._remote, self._observer, only_local)

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
        return self._read(key, distinct_id, groups, person_properties, group_properties)

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
        flag = self._read(key, distinct_id, groups, person_properties, group_properties)
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
        flag = self._read(key, distinct_id, groups, person_properties, group_properties)
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
        who = distinct_id_for(distinct_id)
        return self._lookups.all(who, flag_context(groups, person_properties, group_properties))

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
        who, checked = self._subject(key, distinct_id, groups, person_properties, group_properties)
        evaluation = self._lookups.evaluate(key, who, checked, wait=True)
        assert evaluation is not None  # with wait=True there always is one
        return evaluation

    def evaluate_now(
        self,
        key: str,
        distinct_id: str | None = None,
        groups: Mapping[str, str] | None = None,
        person_properties: Properties | None = None,
        group_properties: Mapping[str, Properties] | None = None,
    ) -> Evaluation | None:
        """``evaluate()``, if it needs no request: decided locally, or answered from the
        cache (or by the breaker, during an outage). ``None`` when PostHog must be asked:
        then call ``evaluate()`` where waiting is allowed (off an event loop)."""
        who, checked = self._subject(key, distinct_id, groups, person_properties, group_properties)
        return self._lookups.evaluate(key, who, checked, wait=False)

    def prefetch(
        self,
        distinct_id: str | None = None,
        *,
        groups: Mapping[str, str] | None = None,
        person_properties: Properties | None = None,
        group_properties: Mapping[str, Properties] | None = None,
    ) -> Exception | None:
        """Ask PostHog for this user's flags now, unless a fresh answer is cached, so later
        lookups answer from the cache: ``None`` when it answered, else what went wrong (a
        refused project key is an ``APIError`` with status 401). For start-up checks."""
        who = distinct_id_for(distinct_id)
        lookup = self._remote.lookup(
            who, *flag_context(groups, person_properties, group_properties)
        )
        if lookup.source in ("fresh", "cached"):
            return None
        return lookup.failure or PostHogError(lookup.error or "flag service unavailable")

    def capture(
        self,
        event: str,
        distinct_id: str | None = None,
        *,
        properties: Properties | None = None,
        groups: Mapping[str, str] | None = None,
    ) -> bool:
        """Send ``event`` for this user, with ``$feature/<key>`` for each flag this provider
        gave them (the last value), so PostHog experiments can use it as a metric; through
        the span processor's queue, or the provider's own. With no distinct id given or in
        the context, the event is personless, as ``capture()``'s. ``False`` if not queued."""
        if not isinstance(event, str) or not event:
            raise ValueError("event must be a non-empty string")
        try:
            who: str | None = distinct_id_for(distinct_id)
        except ValueError:
            if distinct_id is not None:
                raise
            who = None
        checked = check_properties(properties), (check_groups(groups) if groups else None)
        return self._observer.capture(event, who, *checked)

    def stats(self) -> FlagStats:
        """How many lookups were decided locally, asked of PostHog, or undecided."""
        status = self._local.poller.status() if self._local is not None else None
        polls, from_cache, leader = status.polls if status is not None else 0, 0, False
        if self._local is not None and self._local.shared is not None:
            polls, from_cache, leader = self._local.shared.stats()
        local, remote, inconclusive = self._lookups.counts.totals()
        return FlagStats(
            local=local,
            remote=remote,
            inconclusive=inconclusive,
            definitions_loaded=status is not None and status.loaded,
            definition_polls=polls,
            definitions_from_cache=from_cache,
            definitions_leader=leader,
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

    def _read(
        self,
        key: str,
        distinct_id: str | None,
        groups: Mapping[str, str] | None,
        person_properties: Properties | None,
        group_properties: Mapping[str, Properties] | None,
    ) -> FeatureFlag | None:
        """``evaluate(...).flag``, for the reads that want only the flag."""
        if not isinstance(key, str) or not key:
            raise ValueError("flag key must be a non-empty string")
        who = distinct_id_for(distinct_id)
        checked = flag_context(groups, person_properties, group_properties)
        return self._lookups.flag(key, who, checked)

    def _subject(
        self,
        key: str,
        distinct_id: str | None,
        groups: Mapping[str, str] | None,
        person_properties: Properties | None,
        group_properties: Mapping[str, Properties] | None,
    ) -> tuple[str, FlagContext]:
        if not isinstance(key, str) or not key:
            raise ValueError("flag key must be a non-empty string")
        who = distinct_id_for(distinct_id)
        return who, flag_context(groups, person_properties, group_properties)


Properties = Mapping[str, Any]


class FlagContext(NamedTuple):
    """What a flag read is asked in, checked, in the JSON form PostHog sees."""

    groups: dict[str, str] | None
    person_properties: Properties | None
    group_properties: Mapping[str, Properties] | None


NO_CONTEXT = FlagContext(None, None, None)
# A named tuple made in C: its ``__new__`` is a Python frame, and every read makes one.
_context = functools.partial(tuple.__new__, FlagContext)


def distinct_id_for(distinct_id: str | None) -> str:
    """``distinct_id`` checked, or the one in the current context; ``ValueError`` if none."""
    if distinct_id is not None:
        if type(distinct_id) is str and distinct_id.strip():  # the common case, one frame
            return distinct_id
        return check_distinct_id(distinct_id)
    span = trace.get_current_span()
    attrs = _otel.ACCESS.attributes(span) if span.is_recording() else {}
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


def flag_context(
    groups: Mapping[str, str] | None,
    person_properties: Properties | None,
    group_properties: Mapping[str, Properties] | None,
) -> FlagContext:
    """The arguments, checked, and in the JSON form PostHog would see them in."""
    if groups is None and person_properties is None and group_properties is None:
        return NO_CONTEXT
    if person_properties and not _plain(person_properties):
        person_properties = check_properties(person_properties, "person_properties")
    if group_properties:
        group_properties = check_properties(group_properties, "group_properties")
    return _context((check_groups(groups) if groups else None, person_properties, group_properties))


_PLAIN = frozenset({str, int, bool, type(None)})
_STR = frozenset({str})


def _plain(properties: Any) -> bool:
    """Whether ``properties`` are already what ``check_properties`` would make of them (a
    dict of strings to strings, integers, booleans or ``None``): the common case, and
    worth the shortcut on a lookup that takes microseconds."""
    if type(properties) is not dict:
        return False
    # Both loops run in C: ``map(type, ...)`` into a set's superset test.
    return _STR.issuperset(map(type, properties)) and _PLAIN.issuperset(
        map(type, properties.values())
    )


@dataclass(frozen=True)
class FlagStats:
    """A snapshot of a ``PostHogFlagProvider``'s lookups since it started.

    Attributes:
        local: lookups decided from the flag definitions, with no request.
        remote: lookups answered from PostHog's flag service (or its cached answers).
        inconclusive: lookups the definitions could not decide (a property not given,
            a static cohort, experience continuity, ...), or made before they
            loaded; each is also counted in ``remote`` unless ``only_local`` is set.
        definitions_loaded: local evaluation has definitions to decide from.
        definition_polls: requests this process made for flag definitions.
        definitions_from_cache: times it took new definitions from the
            ``flag_definition_cache_provider`` instead (another process polled).
        definitions_leader: it was the fleet's leader at its last poll.
    """

    local: int = 0
    remote: int = 0
    inconclusive: int = 0
    definitions_loaded: bool = False
    definition_polls: int = 0
    definitions_from_cache: int = 0
    definitions_leader: bool = False


LOCAL, REMOTE, INCONCLUSIVE = 0, 1, 2  # a count's place in ``FlagCounters``' cells


class FlagCounters(ThreadCounter):
    """The provider's three counts (``LOCAL``, ``REMOTE``, ``INCONCLUSIVE``), for any
    thread, with no lock on a read's path (one cell per thread holds all three). A forked
    child counts on from its parent's numbers, with a fresh lock."""

    def __init__(self) -> None:
        super().__init__(width=3)
        _forksafe.register(self)

    def _after_fork(self) -> None:
        self.fresh_lock()


class FlagLookups:
    """Reads for checked arguments (``subject``): one flag, or all of a user's flags."""

    def __init__(
        self,
        local: LocalSource | None,
        remote: RemoteFlags,
        observer: FlagObserver,
        only_local: bool,
    ) -> None:
        self._local = local
        self._remote = remote
        self._observer = observer
        self._only_local = only_local
        self.counts = FlagCounters()

    def flag(self, key: str, who: str, checked: FlagContext) -> FeatureFlag | None:
        """``evaluate(..., wait=True).flag``; a flag decided locally is observed and
        returned with no ``Evaluation`` built for it."""
        if self._local is None:  # PostHog's answers only: _evaluate's remote half, inline
            lookup = self._remote.lookup(who, *checked)
            self.counts.add(1, REMOTE)
            flag, source, error = remote_evaluation(lookup, key)
            answer = lookup.entry.answer if lookup.entry is not None else None
            self._observer.observe(key, flag, source, error, who, checked.groups, answer)
            return flag
        found = self._local.lookup(key, who, *checked)
        if isinstance(found, FeatureFlag):
            self.counts.add(1, LOCAL)
            self._observer.observe(key, found, "local", None, who, checked.groups, None)
            return found
        evaluation = self._evaluate(key, who, checked, True, found)
        assert evaluation is not None  # with wait=True there always is one
        return evaluation.flag

    def evaluate(
        self, key: str, who: str, checked: FlagContext, *, wait: bool
    ) -> Evaluation | None:
        """Flag ``key`` for ``who``; with ``wait=False``, ``None`` instead of a request."""
        found = self._local.lookup(key, who, *checked) if self._local is not None else None
        return self._evaluate(key, who, checked, wait, found)

    def _evaluate(
        self,
        key: str,
        who: str,
        checked: FlagContext,
        wait: bool,
        found: FeatureFlag | str | None,
    ) -> Evaluation | None:
        """``evaluate`` once local evaluation has answered ``found`` (``None``: it is off)."""
        lookup: Lookup | None = None
        evaluation = None if found is None else self._local_evaluation(found)
        if evaluation is None:
            lookup = (
                self._remote.lookup(who, *checked) if wait else self._remote.peek(who, *checked)
            )
            if lookup is None:
                return None  # nothing counted: the caller asks again, waiting
            if found is not None and found != FLAG_MISSING:
                self.counts.add(1, INCONCLUSIVE)
            self.counts.add(1, REMOTE)
            evaluation = remote_evaluation(lookup, key)
        answer = lookup.entry.answer if lookup is not None and lookup.entry is not None else None
        flag, source, error = evaluation
        self._observer.observe(key, flag, source, error, who, checked.groups, answer)
        return evaluation

    def all(self, who: str, checked: FlagContext) -> dict[str, FeatureFlag]:
        """Every flag for ``who`` (not observed). With local evaluation, PostHog is asked
        only when some flag could not be decided."""
        flags: dict[str, FeatureFlag] = {}
        undecided: list[str] | None = None
        if self._local is not None:
            found = self._local.lookup_all(who, *checked)
            if found is not None:
                flags, undecided = found
            if not undecided and found is not None:
                self.counts.add(1, LOCAL)
                return flags
            self.counts.add(1, INCONCLUSIVE)
            if self._only_local:
                return flags
        self.counts.add(1, REMOTE)
        remote = all_flags(self._remote.lookup(who, *checked))
        if remote is None:
            return flags
        if undecided is None:
            return remote
        wanted = set(undecided) | (remote.keys() - flags.keys())  # and flags we lack
        return {**flags, **{k: f for k, f in remote.items() if k in wanted}}

    def _local_evaluation(self, found: FeatureFlag | str | None) -> Evaluation | None:
        """What local evaluation's answer (or why it has none) makes of a read; ``None``
        to ask PostHog instead."""
        if isinstance(found, FeatureFlag):
            self.counts.add(1, LOCAL)
            return Evaluation(found, "local")
        if found is None or not self._only_local:
            return None
        if found != FLAG_MISSING:
            self.counts.add(1, INCONCLUSIVE)
        if found == NOT_LOADED:
            return Evaluation(None, "unavailable", NOT_LOADED)
        return Evaluation(None, "local", found)
