"""Deliver what is queued when the process ends without its exit hooks: on SIGTERM, and
in a forked child that ends by ``os._exit``.

``docker stop``, Kubernetes and systemd send SIGTERM, whose default action ends the
process at once: no ``atexit``, and whatever is queued is lost. So the first
pipeline started on the main thread looks at SIGTERM's handler:

- The default: we install a handler that drains every pipeline (within
  ``timeout``), then restores the default and raises SIGTERM again, so the process
  still ends "killed by SIGTERM", as its supervisor expects.
- A framework's handler (uvicorn and gunicorn install one before loading the app):
  we wrap it. On SIGTERM the framework's handler runs as before and the service
  shuts down gracefully; a SIGTERM raised again on the main thread afterwards
  (uvicorn restores the previous handler and re-raises) is held until our exit hook
  has drained the pipelines, then let through. Still killed by SIGTERM, after
  delivery; a framework that exits normally exits normally.
- Ignored, or not settable from here (not the main thread): left alone.

``POSTHOG_FLUSH_ON_SIGTERM=false`` or ``flush_on_sigterm=False`` turns this off;
``POSTHOG_SIGTERM_TIMEOUT`` or ``sigterm_timeout`` sets the bound (5 s).

A forked child of ``multiprocessing`` or of Celery's prefork pool ends by ``os._exit``,
which skips ``atexit``: ``drain_in_children`` has such a child drain every pipeline,
within the same bound, just before it ends (``_forksafe.at_child_exit`` says how). This
is always on: it is what ``atexit`` does for any other process.
"""

from __future__ import annotations

import atexit
import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from posthog_otel import _forksafe
from posthog_otel._pipeline.worker import shutdown_all

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 5.0
Handler = Callable[[int, FrameType | None], Any]

_lock = threading.Lock()
_installed = False
_timeout = DEFAULT_TIMEOUT
_sigterm_blocked = False  # a re-raised SIGTERM waits until our exit hook has drained
_child_timeout = 0.0  # 0: no pipeline asked yet


def install(timeout: float) -> bool:
    """Take charge of SIGTERM as the module docstring says; ``True`` if we did (once)."""
    global _installed, _timeout
    sigterm = getattr(signal, "SIGTERM", None)
    if sigterm is None or threading.current_thread() is not threading.main_thread():
        return False
    with _lock:
        if _installed:
            return False
        current = signal.getsignal(sigterm)
        if current == signal.SIG_DFL:
            handler: Handler = _drain_then_die
        elif callable(current) and hasattr(signal, "pthread_sigmask"):
            handler = _chained(current)
        else:
            return False
        signal.signal(sigterm, handler)
        _installed, _timeout = True, timeout
        return True


def drain_in_children(timeout: float) -> None:
    """Have a forked child that ends by ``os._exit`` drain every pipeline first, within
    ``timeout`` seconds (the longest any pipeline asked for)."""
    global _child_timeout
    with _lock:
        first = _child_timeout == 0.0
        _child_timeout = max(_child_timeout, timeout)
    if first:
        _forksafe.at_child_exit(_drain_child)


def _drain_child() -> None:
    try:
        shutdown_all(_child_timeout)
    except Exception:  # the child is ending: say so, let it end
        logger.exception("posthog-otel could not drain its queues as this process ended")


def _drain_then_die(signum: int, frame: FrameType | None) -> None:
    _drain("SIGTERM")
    signal.signal(signum, signal.SIG_DFL)
    signal.raise_signal(signum)


def _chained(previous: Handler) -> Handler:
    def handler(signum: int, frame: FrameType | None) -> None:
        _hold(signum)
        previous(signum, frame)

    return handler


def _hold(signum: int) -> None:
    """Block ``signum`` on this (the main) thread until we have drained at exit."""
    global _sigterm_blocked
    if _sigterm_blocked:
        return
    _sigterm_blocked = True
    signal.pthread_sigmask(signal.SIG_BLOCK, {signum})
    atexit.register(_release, signum)  # runs before the workers' own exit hook


def _release(signum: int) -> None:
    _drain("exit after SIGTERM")
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signum})  # a held SIGTERM ends us now


def _drain(why: str) -> None:
    try:
        shutdown_all(_timeout)
    except Exception:  # a signal handler must never raise into the application
        logger.exception("posthog-otel could not drain its queues on %s", why)
