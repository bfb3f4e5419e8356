"""The only module that imports urllib3: one pooled connection manager per client.

It makes single attempts (plus one immediate retry of a stale pooled connection)
and returns what the server said; the retry policy lives in ``_retry``.
Redirects are never followed, so the request body (which carries the API key)
only ever goes to the configured host.
"""

from __future__ import annotations

import logging
import threading
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import urllib3
from urllib3.exceptions import (
    HTTPError,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    SSLError,
)

from posthog_otel import _forksafe
from posthog_otel._client.compress import gzip_bytes
from posthog_otel._version import __version__
from posthog_otel.errors import TransportError

logger = logging.getLogger(__name__)

USER_AGENT = f"posthog-otel/{__version__}"


@dataclass(frozen=True)
class HTTPResult:
    """What the server answered: status, lower-cased headers, raw body."""

    status: int
    headers: Mapping[str, str]
    data: bytes


class NoAnswerError(TransportError):
    """A request that got no answer; ``retryable`` says whether trying again can help."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class Transport:
    """POSTs to one base URL through a keep-alive pool; TLS verified, proxies honoured."""

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
        headers: Mapping[str, str] | None = None,
        gzipped: bool = False,
    ) -> HTTPResult:
        """Send one POST; raise ``NoAnswerError`` on no answer. ``gzipped`` says the body
        is compressed already (a sealed batch)."""
        request_headers = dict(self._headers)
        if headers:
            request_headers.update(headers)
        data = gzip_bytes(body) if self._gzip and not gzipped else body
        if gzipped or self._gzip:
            request_headers["Content-Encoding"] = "gzip"
        url = self._base_url + path
        try:
            return self._send(url, data, request_headers, timeout)
        except NoAnswerError as exc:
            if not isinstance(exc.__cause__, ProtocolError):
                raise
            # The server closed a pooled keep-alive connection as we reused it.
            logger.debug("retrying %s once on a fresh connection: %s", path, exc)
            return self._send(url, data, request_headers, timeout)

    def close(self) -> None:
        with self._lock:
            self._pool.clear()

    def _send(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> HTTPResult:
        try:
            response = self._pool.request(
                "POST",
                url,
                body=body,
                headers=headers,
                timeout=urllib3.Timeout(connect=timeout, read=timeout),
                retries=urllib3.Retry(0),
                redirect=False,
                preload_content=True,
            )
        except MaxRetryError as exc:
            raise _failure(url, exc.reason or exc) from (exc.reason or exc)
        except (HTTPError, OSError) as exc:
            raise _failure(url, exc) from exc
        names = {name.lower(): value for name, value in response.headers.items()}
        return HTTPResult(response.status, names, response.data)

    def _new_pool(self) -> urllib3.PoolManager:
        tls: dict[str, object] = {"cert_reqs": "CERT_REQUIRED"}
        if self._ca_bundle:
            tls["ca_certs"] = self._ca_bundle
        proxy = self._proxy_url()
        if proxy:
            return urllib3.ProxyManager(proxy, maxsize=self._maxsize, **tls)  # type: ignore[arg-type]
        return urllib3.PoolManager(maxsize=self._maxsize, **tls)  # type: ignore[arg-type]

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


def _failure(url: str, reason: BaseException) -> NoAnswerError:
    retryable = not isinstance(reason, SSLError) and isinstance(
        reason, (NewConnectionError, ProtocolError, HTTPError, OSError)
    )
    path = urlsplit(url).path
    return NoAnswerError(f"no answer from {path}: {_describe(reason)}", retryable=retryable)


def _describe(reason: BaseException) -> str:
    if isinstance(reason, NewConnectionError):
        return "could not connect (" + str(reason).rpartition(": ")[2] + ")"
    return f"{type(reason).__name__}: {reason}"
