"""What a forked child needs: fresh locks and threads, and a last drain before it ends.

A lock another thread held at the moment of ``os.fork()`` stays held forever in the
child, and the parent's threads do not exist there; so each object that owns locks,
pooled sockets or threads registers here and rebuilds them in ``_after_fork``.

A forked child of ``multiprocessing`` (its ``Process``, and ``Pool`` workers) or of
Celery's prefork pool (billiard) ends with ``os._exit``: ``atexit`` never runs there,
so what it queued would be lost. ``at_child_exit(callback)`` runs the callback in such a
child just before it ends, through the hooks those libraries offer, found lazily (we
import neither; an application that uses neither pays one dictionary look-up per fork):

- multiprocessing: ``Process._bootstrap`` clears the finalizer registry right after the
  fork, then runs the callbacks of ``multiprocessing.util.register_after_fork``. Ours
  adds a ``Finalize`` there, which ``util._exit_function`` runs when the target returns
  (a ``Pool`` worker's target returns at ``maxtasksperchild`` and on ``close()``), before
  ``os._exit``. A pipeline first built inside the child adds its ``Finalize`` at once.
- Celery: billiard runs the same after-fork callbacks but leaves its worker loop by
  ``os._exit`` from inside the target, skipping finalizers; Celery sends
  ``worker_process_shutdown`` in the child just before (at ``--max-tasks-per-child``,
  and when a warm shutdown ends the pool). When ``celery.signals`` is imported at
  fork time (a prefork worker imports Celery long before it forks its pool), or when a
  pipeline is built (``worker_process_init``), we connect to it.

Not covered: ``os._exit`` called by the application itself, SIGKILL (Celery's hard time
limit, and its pool children when the main process dies), a child ended by a signal
whose default action kills (Celery resets SIGTERM to that in its pool children), and
billiard pools used without Celery. ``before`` and ``after_in_child`` run for every
``os.fork()``; the callbacks run at most once per process.
"""

from __future__ import annotations

import logging
import os
import sys
import weakref
from collections.abc import Callable
from typing import Any, Protocol

logger = logging.getLogger(__name__)

# Before multiprocessing's own finalizers (a pool, queues, managers: 15 and below), so
# one that hangs cannot keep us from delivering.
FINALIZER_PRIORITY = 100
CELERY_UID = "posthog_otel.at_child_exit"


class ForkAware(Protocol):
    def _after_fork(self) -> None: ...


_REGISTERED: weakref.WeakSet[ForkAware] = weakref.WeakSet()


def register(owner: ForkAware) -> None:
    """Call ``owner._after_fork()`` in every child forked while ``owner`` is alive."""
    _REGISTERED.add(owner)


class _Hook:
    """The object ``register_after_fork`` holds (weakly, so it must be an instance)."""


_HOOK = _Hook()
_at_exit: list[Callable[[], None]] = []  # inherited by children, as the hooks are
_multiprocessing_hooked = False  # inherited too, as multiprocessing's registry is
_celery_hooked = False  # and Celery's receivers
_ended = False  # this process ran its callbacks


def at_child_exit(callback: Callable[[], None]) -> None:
    """Run ``callback`` when this process, or a child forked from it, is about to end
    by ``os._exit`` (see the module docstring); at most once per process."""
    if callback in _at_exit:
        return
    _at_exit.append(callback)
    _hook()
    util = sys.modules.get("multiprocessing.util")
    process = sys.modules.get("multiprocessing.process")
    if util is not None and process is not None and process.parent_process() is not None:
        _add_finalizer(_HOOK)  # built inside a child, after the registry was cleared


def _hook() -> None:
    """Hook into multiprocessing and Celery if the application imported them."""
    global _multiprocessing_hooked, _celery_hooked
    if not _at_exit:
        return
    util = sys.modules.get("multiprocessing.util")
    if util is not None and not _multiprocessing_hooked:
        util.register_after_fork(_HOOK, _add_finalizer)
        _multiprocessing_hooked = True
    celery = sys.modules.get("celery.signals")
    if celery is not None and not _celery_hooked:
        celery.worker_process_shutdown.connect(_on_celery_exit, weak=False, dispatch_uid=CELERY_UID)
        _celery_hooked = True


def _add_finalizer(_: _Hook) -> None:
    util = sys.modules["multiprocessing.util"]
    util.Finalize(None, _run_at_exit, exitpriority=FINALIZER_PRIORITY)


def _on_celery_exit(**_: Any) -> None:
    _run_at_exit()


def _run_at_exit() -> None:
    global _ended
    if _ended:
        return
    _ended = True
    for callback in list(_at_exit):
        try:
            callback()
        except Exception:  # the child is ending: say so, let it end
            logger.exception("posthog-otel could not deliver before this process ended")


def _before_fork() -> None:
    try:
        _hook()
    except Exception:  # never break the application's fork
        logger.exception("posthog-otel could not hook into this process's exit")


def _reset_in_child() -> None:
    global _ended
    _ended = False
    for owner in list(_REGISTERED):
        owner._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_child=_reset_in_child)
