"""What a flag provider has done: lookups decided locally, asked of PostHog, or undecided."""

from __future__ import annotations

from dataclasses import dataclass

from posthog_otel import _forksafe
from posthog_otel._pipeline.stats import Counter

__all__ = ["FlagCounters", "FlagStats"]


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
        definition_polls: requests made for flag definitions.
    """

    local: int = 0
    remote: int = 0
    inconclusive: int = 0
    definitions_loaded: bool = False
    definition_polls: int = 0


class FlagCounters:
    """The provider's counters, for any thread; a forked child counts on from the
    parent's numbers with fresh locks."""

    __slots__ = ("__weakref__", "inconclusive", "local", "remote")

    def __init__(self) -> None:
        self.local = Counter()
        self.remote = Counter()
        self.inconclusive = Counter()
        _forksafe.register(self)

    def _after_fork(self) -> None:
        for name in ("local", "remote", "inconclusive"):
            fresh = Counter()
            fresh.add(getattr(self, name).value)
            setattr(self, name, fresh)
