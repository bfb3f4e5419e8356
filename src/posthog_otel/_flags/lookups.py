"""Which source answers a flag read: local evaluation first, then PostHog through the
cache; each read counted (local, remote, undecided) and observed (span event,
exposure)."""

from __future__ import annotations

from posthog_otel._flagdata import FeatureFlag
from posthog_otel._flags.cache import Lookup
from posthog_otel._flags.local.source import FLAG_MISSING, NOT_LOADED, LocalSource
from posthog_otel._flags.observe import FlagObserver
from posthog_otel._flags.remote import Evaluation, RemoteFlags, all_flags
from posthog_otel._flags.remote import evaluation as remote_evaluation
from posthog_otel._flags.stats import FlagCounters
from posthog_otel._flags.subject import Checked

__all__ = ["FlagLookups"]


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

    def evaluate(self, key: str, who: str, checked: Checked, *, wait: bool) -> Evaluation | None:
        """Flag ``key`` for ``who``; with ``wait=False``, ``None`` instead of a request."""
        found = self._local.lookup(key, who, *checked) if self._local is not None else None
        lookup: Lookup | None = None
        evaluation = self._local_evaluation(found)
        if evaluation is None:
            lookup = (
                self._remote.lookup(who, *checked) if wait else self._remote.peek(who, *checked)
            )
            if lookup is None:
                return None  # nothing counted: the caller asks again, waiting
            if found is not None and found != FLAG_MISSING:
                self.counts.inconclusive.add()
            self.counts.remote.add()
            evaluation = remote_evaluation(lookup, key)
        answer = lookup.entry.answer if lookup is not None and lookup.entry is not None else None
        flag, source, error = evaluation.flag, evaluation.source, evaluation.error
        self._observer.observe(key, flag, source, error, who, checked[0], answer)
        return evaluation

    def all(self, who: str, checked: Checked) -> dict[str, FeatureFlag]:
        """Every flag for ``who`` (not observed). With local evaluation, PostHog is asked
        only when some flag could not be decided."""
        flags: dict[str, FeatureFlag] = {}
        undecided: list[str] | None = None
        if self._local is not None:
            found = self._local.lookup_all(who, *checked)
            if found is not None:
                flags, undecided = found
            if not undecided and found is not None:
                self.counts.local.add()
                return flags
            self.counts.inconclusive.add()
            if self._only_local:
                return flags
        self.counts.remote.add()
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
            self.counts.local.add()
            return Evaluation(found, "local")
        if found is None or not self._only_local:
            return None
        if found != FLAG_MISSING:
            self.counts.inconclusive.add()
        if found == NOT_LOADED:
            return Evaluation(None, "unavailable", NOT_LOADED)
        return Evaluation(None, "local", found)
