"""Fresh locks and threads in a forked child, for every object that holds them.

A lock another thread held at the moment of ``os.fork()`` stays held forever in the
child, and the parent's threads do not exist there; so each object that owns locks,
pooled sockets or threads registers here and rebuilds them in ``_after_fork``.
"""

from __future__ import annotations

import os
import weakref
from typing import Protocol


class ForkAware(Protocol):
    def _after_fork(self) -> None: ...


_REGISTERED: weakref.WeakSet[ForkAware] = weakref.WeakSet()


def register(owner: ForkAware) -> None:
    """Call ``owner._after_fork()`` in every child forked while ``owner`` is alive."""
    _REGISTERED.add(owner)


def _reset_in_child() -> None:
    for owner in list(_REGISTERED):
        owner._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_in_child)
