"""One PostHog project's connection: settings, the pooled transport and the retry policy.

The face the rest of the package talks through: ``PostHogClient`` builds its
blocking calls on it, and the span pipeline and the flag provider reach it with
``connection_of(client)``. Every request the package makes goes through here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from posthog_otel._client.batch import MAX_BATCH_BYTES, OpenBatch, SealedBatch, batch_head, batches
from posthog_otel._client.events import check_distinct_id, check_groups, check_properties
from posthog_otel._client.retry import RetryPolicy, send_with_retries
from posthog_otel._client.transport import HTTPResult, Transport
from posthog_otel._config import ClientConfig, check_key
from posthog_otel._flagdata import (
    FlagDefinitions,
    FlagsResponse,
    parse_definitions,
    parse_flags_response,
)
from posthog_otel._json import dumps, loads
from posthog_otel._limits import MAX_DEFINITIONS_ANSWER_BYTES, MAX_KEPT_HEADER_CHARS
from posthog_otel.errors import APIError, ConfigurationError, PostHogError

BATCH_PATH = "/batch/"
DEFINITIONS_PATHS = ("/flags/definitions", "/api/feature_flag/local_evaluation/")
# PostHog's OTLP/HTTP endpoints, one per signal (protobuf bodies, the project key as Bearer).
OTLP_PATHS = {"traces": "/i/v1/traces", "logs": "/i/v1/logs", "metrics": "/i/v1/metrics"}
OTLP_CONTENT_TYPE = "application/x-protobuf"
REDACTED = "[redacted]"
MAX_ECHO = 300  # characters of a server's text kept in an error message or a log line
MAX_ERROR_JSON = 4096  # bytes: a longer error answer is kept as short text, not parsed
MAX_DEPTH = 64  # levels of JSON we read; PostHog's answers are a handful deep
# Answer headers whose value is a credential whatever it holds: shown as REDACTED.
_CREDENTIAL_HEADERS = ("authorization", "cookie", "token", "secret", "api-key", "apikey")


@dataclass(frozen=True)
class Response:
    """PostHog's answer: status, headers (lower-cased names) and the parsed JSON body."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Any = None


class Connection:
    """Requests to one PostHog project, retried by one policy; safe to share between threads."""

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self.policy = RetryPolicy(retries=config.retries, delay=config.retry_delay)
        self._transport = Transport(
            config.host, headers=config.headers, gzip=config.gzip, ca_bundle=config.ca_bundle
        )
        self.closed = threading.Event()
        self._head = batch_head(config.api_key)
        self._bearer = f"Bearer {config.api_key}"
        self._secrets = _secrets(config)
        self._definitions_path = DEFINITIONS_PATHS[0]

    def close(self) -> None:
        """Stop retries in progress and release pooled connections."""
        self.closed.set()
        self._transport.close()

    # -- batches ---------------------------------------------------------------------

    def open_batch(self) -> OpenBatch:
        """An empty ``/batch/`` body to fill (compressed when sealed, if gzip is on)."""
        return OpenBatch(self._head, gzip=self.config.gzip)

    def batches(
        self, encoded: Iterable[bytes], max_events: int | None = None, limit: int = MAX_BATCH_BYTES
    ) -> Iterator[SealedBatch]:
        """Encoded events packed, in order, into sealed ``/batch/`` bodies."""
        return batches(
            encoded, self._head, gzip=self.config.gzip, max_events=max_events, limit=limit
        )

    def send_batch(
        self,
        batch: SealedBatch,
        *,
        deadline: float | None = None,
        stop: threading.Event | None = None,
        on_retry: Callable[[], None] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> HTTPResult:
        """Send one sealed ``/batch/``, retried by the policy; the last answer, or
        ``TransportError`` when none came.

        ``deadline`` (on the ``time.monotonic()`` scale; ``None``: no limit but
        ``timeout`` per attempt) bounds the whole call, backoff and retries included:
        it returns or raises by then, whatever the server does (each attempt's socket
        is shut at the deadline, a trickled answer included). Setting ``stop`` (default:
        this connection closing) ends a backoff at once and cuts off the request in
        flight within about 0.1 s; the call then raises ``TransportError`` (or returns
        the last retryable answer it had). A connection still being opened is not
        interrupted, but its connect timeout never passes the deadline.
        """
        return self._send(BATCH_PATH, batch.body, batch.gzipped, headers, deadline, stop, on_retry)

    def send_otlp(
        self,
        signal: str,
        body: bytes,
        *,
        deadline: float | None = None,
        stop: threading.Event | None = None,
        on_retry: Callable[[], None] | None = None,
        gzipped: bool = False,
    ) -> HTTPResult:
        """Send one OTLP/HTTP protobuf export (``signal``: ``traces``, ``logs`` or
        ``metrics``) to PostHog's ``/i/v1/<signal>``, authorised by the project key as a
        Bearer token; retried, bounded and cut off exactly as ``send_batch``. ``body`` is
        the serialised export request, compressed here when gzip is on (``gzipped``: it
        already is, compressed once for every attempt)."""
        headers = {"Content-Type": OTLP_CONTENT_TYPE, "Authorization": self._bearer}
        return self._send(
            OTLP_PATHS[signal], lambda: body, gzipped, headers, deadline, stop, on_retry
        )

    def _send(
        self,
        path: str,
        body: Callable[[], bytes],
        gzipped: bool,
        headers: Mapping[str, str] | None,
        deadline: float | None,
        stop: threading.Event | None,
        on_retry: Callable[[], None] | None,
    ) -> HTTPResult:
        """POST ``body()`` (called per attempt) to ``path`` under the retry policy, one
        deadline and ``stop`` (default: this connection closing); see ``send_batch``."""
        stop = stop if stop is not None else self.closed
        return send_with_retries(
            lambda t: self._transport.post(
                path, body(), timeout=t, stop=stop, headers=headers, gzipped=gzipped
            ),
            self.policy,
            timeout=self.config.timeout,
            deadline=deadline,
            stop=stop,
            on_retry=on_retry,
            clock=time.monotonic,
        )

    # -- single requests -------------------------------------------------------------------

    def post(
        self,
        path: str,
        body: Callable[[], bytes],
        timeout: float,
        headers: Mapping[str, str] | None = None,
        *,
        retry: bool = True,
    ) -> Response:
        """POST ``body()`` (called per attempt); raise ``APIError`` unless PostHog answers 2xx.

        ``timeout`` bounds each attempt, from connecting to the answer's last byte;
        closing the connection cuts off the attempt in flight."""
        if self.closed.is_set():
            raise PostHogError("the client is closed")
        policy = self.policy if retry else RetryPolicy(retries=0)
        result = send_with_retries(
            lambda t: self._transport.post(
                path, body(), timeout=t, stop=self.closed, headers=headers
            ),
            policy,
            timeout=timeout,
            stop=self.closed,
        )
        return self.checked(result, path)

    def checked(
        self, result: HTTPResult, path: str, secrets: tuple[str, ...] | None = None
    ) -> Response:
        """``result`` as a ``Response``, or ``APIError`` for a non-2xx status; neither
        shows ``secrets`` (default: this connection's keys) in its body or headers."""
        secrets = self._secrets if secrets is None else secrets
        parsed = self._parse_body(result, secrets)
        headers = _safe_headers(result.headers, secrets)
        if not 200 <= result.status < 300:
            path_only = path.partition("?")[0]
            raise APIError(result.status, parsed, url_path=path_only, headers=headers)
        return Response(result.status, headers, parsed)

    def fetch_flags(
        self,
        distinct_id: str,
        groups: Mapping[str, str] | None = None,
        group_properties: Mapping[str, Mapping[str, Any]] | None = None,
        person_properties: Mapping[str, Any] | None = None,
        *,
        flag_keys: Sequence[str] | None = None,
        retry: bool = True,
    ) -> FlagsResponse:
        """Every flag (or ``flag_keys``) for one user from the flag service."""
        request: dict[str, Any] = {
            "api_key": self.config.api_key,
            "distinct_id": check_distinct_id(distinct_id),
            "geoip_disable": True,
        }
        if groups:
            request["groups"] = check_groups(groups)
        if person_properties:
            request["person_properties"] = check_properties(person_properties, "person_properties")
        if group_properties:
            request["group_properties"] = check_properties(group_properties, "group_properties")
        if flag_keys:
            request["flag_keys_to_evaluate"] = list(flag_keys)
        body = dumps(request)
        path = self.config.flags_path
        response = self.post(path, lambda: body, self.config.flags_timeout, retry=retry)
        try:
            return parse_flags_response(response.body)
        except Exception as exc:  # whatever the answer holds, the fetch failed
            problem = _echo(f"unreadable flags answer: {type(exc).__name__}: {exc}", self._secrets)
            raise APIError(response.status, problem, url_path="flags") from exc

    def flag_definitions(
        self, etag: str | None = None, *, retry: bool = True, secret_key: str | None = None
    ) -> FlagDefinitions | None:
        """The project's flag definitions, or ``None`` when they are unchanged since
        ``etag`` (HTTP 304). Needs a secret key (``secret_key``, else the configured
        one), sent only to the configured host. Older PostHog (404 on
        ``/flags/definitions``) is asked at its older route."""
        secret = secret_key or self.config.secret_key
        if secret is None:
            raise ConfigurationError(
                "secret_key", "flag definitions need a project secret API key (POSTHOG_SECRET_KEY)"
            )
        if self.closed.is_set():
            raise PostHogError("the client is closed")
        secrets = self._secrets
        if secret != self.config.secret_key:
            secret = check_key("secret_key", secret)
            secrets = tuple(sorted({*secrets, secret}, key=len, reverse=True))
        headers = {"Authorization": f"Bearer {secret}", "Accept": "application/json"}
        if etag:
            headers["If-None-Match"] = etag
        query = f"?token={quote(self.config.api_key, safe='')}&send_cohorts"
        policy = self.policy if retry else RetryPolicy(retries=0)

        def get(path: str) -> HTTPResult:
            return send_with_retries(
                lambda t: self._transport.get(
                    path + query,
                    timeout=t,
                    stop=self.closed,
                    headers=headers,
                    limit=MAX_DEFINITIONS_ANSWER_BYTES,
                ),
                policy,
                timeout=self.config.timeout,
                stop=self.closed,
            )

        path = self._definitions_path
        result = get(path)
        if result.status == 404 and path != DEFINITIONS_PATHS[-1]:
            path = self._definitions_path = DEFINITIONS_PATHS[-1]  # and from now on
            result = get(path)
        if result.status == 304:
            return None
        response = self.checked(result, path, secrets)
        etag = response.headers.get("etag")  # redacted, should it hold a key
        if len(result.headers.get("etag", "")) > MAX_KEPT_HEADER_CHARS:
            etag = None  # too long to send back in every poll: no conditional requests
        try:
            return parse_definitions(response.body, etag)
        except ValueError as exc:
            problem = _echo(f"unreadable flag definitions: {exc}", secrets)
            raise APIError(response.status, problem, url_path=path) from exc

    def _parse_body(self, result: HTTPResult, secrets: tuple[str, ...]) -> Any:
        """The answer's JSON with ``secrets`` removed; an error answer that is not small
        JSON is kept as a short text. ``None`` for a 2xx answer we cannot read."""
        data = result.data
        if not data:
            return None
        ok = 200 <= result.status < 300
        if ok or len(data) <= MAX_ERROR_JSON:
            try:
                return _redact(loads(data), secrets)
            except (ValueError, RecursionError):
                if ok:
                    return None
        # Only the start is shown: decode a window wide enough to redact a secret it cuts.
        text = data[: MAX_ERROR_JSON * 4].decode("utf-8", "replace")
        return _echo(text, secrets, f"{len(data):,} bytes")


def _secrets(config: ClientConfig) -> tuple[str, ...]:
    """What must never be echoed: the keys, and custom header values (tokens, often)."""
    values = [v for v in config.headers.values() if len(v) >= 8]
    keys = [k for k in (config.api_key, config.secret_key) if k]
    return tuple(sorted({*keys, *values}, key=len, reverse=True))


def _safe_headers(headers: Mapping[str, str], secrets: tuple[str, ...]) -> dict[str, str]:
    """Answer headers fit to show: a credential-like header (``Set-Cookie``, ``X-Api-Key``,
    ...) is ``REDACTED`` whole, a secret inside any other value is removed, and a value is
    cut to ``MAX_KEPT_HEADER_CHARS``."""
    safe = {}
    for name, value in headers.items():
        if any(word in name for word in _CREDENTIAL_HEADERS):
            safe[name] = REDACTED
            continue
        for secret in secrets:
            value = value.replace(secret, REDACTED)
        safe[name] = value[:MAX_KEPT_HEADER_CHARS]
    return safe


def _echo(text: str, secrets: tuple[str, ...], size: str = "") -> str:
    """Server text fit for an exception or a log line: secrets removed, then shortened
    to ``MAX_ECHO`` characters; ``size`` describes the whole, if ``text`` is a part."""
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    if len(text) <= MAX_ECHO:
        return text
    return f"{text[:MAX_ECHO]}... ({size or f'{len(text):,} characters'})"


def _redact(value: Any, secrets: tuple[str, ...], depth: int = 0) -> Any:
    """``value`` with every secret removed, in keys and in strings."""
    if depth > MAX_DEPTH:
        raise ValueError("nested too deeply")
    if isinstance(value, str):
        for secret in secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, list):
        return [_redact(v, secrets, depth + 1) for v in value]
    if isinstance(value, dict):
        return {_redact(k, secrets): _redact(v, secrets, depth + 1) for k, v in value.items()}
    return value
