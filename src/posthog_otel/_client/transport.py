"""The only module that imports urllib3: one pooled connection manager per client.

It makes single attempts and returns what the server said; the retry policy lives
in ``retry``. ``timeout`` bounds an attempt from connecting to the last byte of the
answer: urllib3's own timeouts bound each socket operation only, so every attempt
is also watched (``watchdog``), and its connection's socket is shut at the deadline
or when ``stop`` is set. An attempt that failed on a reused keep-alive connection
(the server closed it as we sent) is tried once more at once, within the same
deadline; a new connection that fails is the attempt's answer, so a reset costs
one request per configured try, never two. Redirects are never followed, so
the request body (which carries the API key) only ever goes to the configured host.
An answer is read within a size limit (``limit``), as received and once inflated
(``answer``); past it the request fails with ``ResponseTooLargeError``.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import (
    HTTPError,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    SSLError,
)

from posthog_otel import _forksafe
from posthog_otel._client.answer import AnswerTooLargeError, UnreadableAnswerError, read_body
from posthog_otel._client.batch import gzip_bytes
from posthog_otel._client.watchdog import WATCHDOG, Cutoff
from posthog_otel._limits import MAX_ANSWER_BYTES
from posthog_otel._version import __version__
from posthog_otel.errors import NoAnswerError, ResponseTooLargeError

logger = logging.getLogger(__name__)

USER_AGENT = f"posthog-otel/{__version__}"


@dataclass(frozen=True)
class HTTPResult:
    """What the server answered: status, lower-cased headers, raw body."""

    status: int
    headers: Mapping[str, str]
    data: bytes


class Transport:
    """POSTs (and GETs) to one base URL through a keep-alive pool; TLS verified, proxies
    honoured."""

    def __init__(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        gzip: bool = True,
        ca_bundle: str | None = None,
        maxsize: int = 10,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._gzip = gzip
        self._ca_bundle = ca_bundle
        self._maxsize = maxsize
        self._headers = {"User-Agent": USER_AGENT, **(headers or {})}
        self._headers["Content-Type"] = "application/json"
        self._lock = threading.Lock()
        self._pool = self._new_pool()
        _forksafe.register(self)

    def post(
        self,
        path: str,
        body: bytes,
        *,
        timeout: float,
        stop: threading.Event | None = None,
        headers: Mapping[str, str] | None = None,
        gzipped: bool = False,
        limit: int = MAX_ANSWER_BYTES,
    ) -> HTTPResult:
        """Send one POST and read the whole answer within ``timeout`` seconds; raise
        ``NoAnswerError`` when no complete answer came by then, or when ``stop`` was set
        before or during the request (cut off within ``watchdog.TICK``), and
        ``ResponseTooLargeError`` for an answer over ``limit`` bytes (as received or
        inflated). ``gzipped`` says the body is compressed already (a sealed batch)."""
        if stop is not None and stop.is_set():
            raise NoAnswerError(f"request to {path} not sent: stopping", retryable=False)
        request_headers = dict(self._headers)
        if headers:
            request_headers.update(headers)
        data = gzip_bytes(body) if self._gzip and not gzipped else body
        if gzipped or self._gzip:
            request_headers["Content-Encoding"] = "gzip"
        return self._request("POST", path, data, request_headers, timeout, stop, limit)

    def get(
        self,
        path: str,
        *,
        timeout: float,
        stop: threading.Event | None = None,
        headers: Mapping[str, str] | None = None,
        limit: int = MAX_ANSWER_BYTES,
    ) -> HTTPResult:
        """Send one GET (no body) and read the whole answer within ``timeout`` seconds
        and ``limit`` bytes, as ``post`` does. It never follows a redirect either, so
        ``headers`` (which may carry a secret key) only ever go to the configured host."""
        if stop is not None and stop.is_set():
            raise NoAnswerError(f"request to {path} not sent: stopping", retryable=False)
        request_headers = {k: v for k, v in self._headers.items() if k != "Content-Type"}
        request_headers.update(headers or {})
        return self._request("GET", path, None, request_headers, timeout, stop, limit)

    def _request(
        self,
        method: str,
        path: str,
        body: bytes | None,
        headers: dict[str, str],
        timeout: float,
        stop: threading.Event | None,
        limit: int,
    ) -> HTTPResult:
        """One request under the watchdog's deadline, retried once on another connection
        when the server closed the pooled keep-alive one as we reused it (a poll every
        30 s often finds it closed)."""
        url = self._base_url + path
        with WATCHDOG.watch(time.monotonic() + timeout, stop) as cutoff:
            try:
                return self._send(url, body, headers, cutoff, limit, method=method)
            except _StaleConnectionError as exc:
                where = urlsplit(url).path  # without the query, which may hold a key
                logger.debug("retrying %s %s once on another connection: %s", method, where, exc)
                return self._send(url, body, headers, cutoff, limit, method=method)

    def close(self) -> None:
        with self._lock:
            self._pool.clear()

    def _send(
        self,
        url: str,
        body: bytes | None,
        headers: dict[str, str],
        cutoff: Cutoff,
        limit: int,
        method: str = "POST",
    ) -> HTTPResult:
        attempt = _Attempt(cutoff)
        left = max(cutoff.deadline - time.monotonic(), 0.001)
        _current.attempt = attempt
        try:
            response = self._pool.request(
                method,
                url,
                body=body,
                headers=headers,
                timeout=urllib3.Timeout(connect=left, read=left),
                retries=urllib3.Retry(0),
                redirect=False,
                preload_content=False,  # read below, within the limit
                decode_content=False,  # inflated below, a bounded piece at a time
            )
        except MaxRetryError as exc:
            raise _failure(url, exc.reason or exc, attempt) from (exc.reason or exc)
        except (HTTPError, OSError) as exc:
            raise _failure(url, exc, attempt) from exc
        finally:
            _current.attempt = None
        names = {name.lower(): value for name, value in response.headers.items()}
        try:
            data = _read(response, names, limit, url, attempt)
        except BaseException:
            response.close()  # the rest of the body is never read: the connection goes
            response.release_conn()
            raise
        response.release_conn()
        if cutoff.reason is not None and not _framed(names):
            # Read to the end of a body that ends with the connection: our cut may be that end.
            raise _cut_off(url, cutoff)
        return HTTPResult(response.status, names, data)

    def _new_pool(self) -> urllib3.PoolManager:
        tls: dict[str, object] = {"cert_reqs": "CERT_REQUIRED"}
        if self._ca_bundle:
            tls["ca_certs"] = self._ca_bundle
        proxy = self._proxy_url()
        manager: urllib3.PoolManager
        if proxy:
            manager = urllib3.ProxyManager(proxy, maxsize=self._maxsize, **tls)  # type: ignore[arg-type]
        else:
            manager = urllib3.PoolManager(maxsize=self._maxsize, **tls)  # type: ignore[arg-type]
        manager.pool_classes_by_scheme = _POOLS  # connections the watchdog can interrupt
        return manager

    def _proxy_url(self) -> str | None:
        parts = urlsplit(self._base_url)
        proxies = urllib.request.getproxies_environment()
        if not parts.hostname or _proxy_bypass(parts.hostname, proxies):
            return None
        return proxies.get(parts.scheme)

    def _after_fork(self) -> None:
        # The parent's sockets and lock must not be touched in the child.
        self._lock = threading.Lock()
        self._pool = self._new_pool()


def _proxy_bypass(host: str, proxies: dict[str, str]) -> bool:
    """``NO_PROXY`` matching, as the standard library does it (absent from typeshed)."""
    bypass = getattr(urllib.request, "proxy_bypass_environment")  # noqa: B009
    return bool(bypass(host, proxies))


class _Attempt:
    """The request this thread is making: its cutoff, and whether its connection is a
    reused keep-alive one (only those get the immediate second try)."""

    __slots__ = ("cutoff", "reused")

    def __init__(self, cutoff: Cutoff) -> None:
        self.cutoff = cutoff
        self.reused = False


class _Current(threading.local):
    attempt: _Attempt | None = None


_current = _Current()


class _WatchedConnection(HTTPConnection):
    """An urllib3 connection that the watchdog can interrupt mid-request."""

    cutoff: Cutoff | None = None
    _last_socket: object = None  # the socket that carried the previous request

    def connect(self) -> None:
        self._attach()
        super().connect()
        self._attach()  # a cutoff that fired while connecting shuts the new socket

    def request(self, *args: Any, **kwargs: Any) -> None:
        attempt = _current.attempt
        if attempt is not None:
            attempt.reused = self.sock is not None and self.sock is self._last_socket
        self._attach()
        super().request(*args, **kwargs)
        self._last_socket = self.sock

    def interrupt(self) -> None:
        # An answer with "Connection: close" takes the socket: http.client hands it to the
        # response and sets self.sock to None, so the one this request used is shut instead.
        sock = self.sock if self.sock is not None else self._last_socket
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):  # already closed: nothing left to interrupt
                sock.shutdown(socket.SHUT_RDWR)

    def _attach(self) -> None:
        attempt = _current.attempt
        if attempt is not None:
            WATCHDOG.attach(attempt.cutoff, self)


class _WatchedTLSConnection(_WatchedConnection, HTTPSConnection):
    pass


class _Pool(urllib3.HTTPConnectionPool):
    ConnectionCls = _WatchedConnection


class _TLSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _WatchedTLSConnection


_POOLS: dict[str, type[urllib3.HTTPConnectionPool]] = {"http": _Pool, "https": _TLSPool}


class _StaleConnectionError(NoAnswerError):
    """The server closed a reused keep-alive connection as we sent on it."""


class _TooLargeError(NoAnswerError, ResponseTooLargeError):
    """An answer over its limit: not retried (the next answer would be as large)."""

    def __init__(self, message: str, *, limit: int, url_path: str) -> None:
        ResponseTooLargeError.__init__(self, message, limit=limit, url_path=url_path)
        self.retryable = False


def _read(
    response: urllib3.BaseHTTPResponse,
    headers: Mapping[str, str],
    limit: int,
    url: str,
    attempt: _Attempt,
) -> bytes:
    """The answer's body, inflated, within ``limit`` bytes (as declared, received and
    inflated)."""
    path = urlsplit(url).path
    declared = headers.get("content-length", "")
    try:
        if declared.isdigit() and int(declared) > limit:
            raise AnswerTooLargeError("as declared")
        return read_body(
            lambda n: response.read(n, decode_content=False),
            headers.get("content-encoding", ""),
            limit,
        )
    except AnswerTooLargeError as exc:
        message = f"the answer from {path} is over its limit of {limit:,} bytes ({exc.stage})"
        raise _TooLargeError(message, limit=limit, url_path=path) from None
    except UnreadableAnswerError as exc:
        raise NoAnswerError(f"unreadable answer from {path}: {exc}", retryable=True) from None
    except (HTTPError, OSError) as exc:
        raise _failure(url, exc, attempt) from exc


def _failure(url: str, reason: BaseException, attempt: _Attempt) -> NoAnswerError:
    if attempt.cutoff.reason is not None:
        return _cut_off(url, attempt.cutoff)
    retryable = not isinstance(reason, SSLError) and isinstance(
        reason, (NewConnectionError, ProtocolError, HTTPError, OSError)
    )
    path = urlsplit(url).path
    message = f"no answer from {path}: {_describe(reason)}"
    if attempt.reused and isinstance(reason, ProtocolError):
        return _StaleConnectionError(message, retryable=True)
    return NoAnswerError(message, retryable=retryable)


def _cut_off(url: str, cutoff: Cutoff) -> NoAnswerError:
    path = urlsplit(url).path
    if cutoff.reason == "stop":
        return NoAnswerError(f"request to {path} cut off: stopping", retryable=False)
    return NoAnswerError(f"no complete answer from {path}: timed out", retryable=True)


def _framed(headers: Mapping[str, str]) -> bool:
    """Whether the body's end was marked (length or chunks) rather than the connection's."""
    return "content-length" in headers or "chunked" in headers.get("transfer-encoding", "")


def _describe(reason: BaseException) -> str:
    if isinstance(reason, NewConnectionError):
        return "could not connect (" + str(reason).rpartition(": ")[2] + ")"
    return f"{type(reason).__name__}: {reason}"
