"""Flags evaluated on live spans, handed down to the child spans started afterwards.

So events captured later in the same request, in a child span, carry
``$feature/<key>`` for the variant the user saw. Flags evaluated on a span itself
are read from its ``feature_flag.evaluation`` events instead (which also works for
other providers); this table only carries what ancestors knew when a span began.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_MAX_LIVE_SPANS = 50_000  # spans that never end must not grow this forever

FlagMap = Mapping[str, Any]


class SpanFlags:
    """span id -> (flags inherited at start, flags known now); empty unless flags are used."""

    def __init__(self) -> None:
        self.live: dict[int, tuple[FlagMap | None, FlagMap]] = {}

    def started(self, span_id: int, parent_id: int) -> None:
        entry = self.live.get(parent_id)
        if entry is not None:
            self.live[span_id] = (entry[1], entry[1])

    def evaluated(self, span_id: int, key: str, value: Any) -> None:
        inherited, known = self.live.get(span_id, (None, {}))
        if len(self.live) >= _MAX_LIVE_SPANS:
            self.live.clear()
        self.live[span_id] = (inherited, {**known, key: value})

    def ended(self, span_id: int) -> FlagMap | None:
        """Forget the span; what it inherited from its ancestors, if anything."""
        entry = self.live.pop(span_id, None)
        return entry[0] if entry is not None else None
