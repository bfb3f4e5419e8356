"""A bounded, thread-safe "seen before?" set, evicting the least recently seen key."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable

from posthog_otel import _forksafe


class SeenSet:
    """Remembers at most ``maxsize`` keys; ``add`` says whether a key is new."""

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self._maxsize = maxsize
        self._keys: OrderedDict[Hashable, None] = OrderedDict()
        self._lock = threading.Lock()
        _forksafe.register(self)

    def add(self, key: Hashable) -> bool:
        """Record ``key``; ``True`` if it was not already remembered."""
        with self._lock:
            if key in self._keys:
                self._keys.move_to_end(key)
                return False
            self._keys[key] = None
            if len(self._keys) > self._maxsize:
                self._keys.popitem(last=False)
            return True

    def __len__(self) -> int:
        return len(self._keys)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
