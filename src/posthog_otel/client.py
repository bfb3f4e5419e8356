"""``PostHogClient``: capture, batch and feature flags over one pooled connection.

The synchronous, low-level face of the library, mirroring PostHog's Elixir
``Posthog.Client`` v1.1.0: its calls block, raise on failure, and are safe to
share between threads. The span processor and the flag provider build on it.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid as uuid_module
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from posthog_otel._config import DEFAULT_FLAGS_PATH, DEFAULT_HOST, ClientConfig, check_headers
from posthog_otel._events import (
    MAX_BATCH_BYTES,
    Event,
    OpenBatch,
    SealedBatch,
    batch_head,
    batches,
    check_distinct_id,
    check_groups,
    check_properties,
    iso_utc,
    now_iso,
    parse_timestamp,
)
from posthog_otel._json import dumps, loads
from posthog_otel._lru import SeenSet
from posthog_otel._retry import RetryPolicy, send_with_retries
from posthog_otel._transport import HTTPResult, Transport
from posthog_otel.errors import APIError, PostHogError
from posthog_otel.flags import FeatureFlag, FlagsResponse, parse_flags_response

__all__ = ["PostHogClient", "Response"]

logger = logging.getLogger(__name__)

CAPTURE_PATH = "/capture/"
BATCH_PATH = "/batch/"
FLAG_EVENTS_REMEMBERED = 50_000


@dataclass(frozen=True)
class Response:
    """PostHog's answer: status, headers (lower-cased names) and the parsed JSON body."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Any = None


_NOT_SENT = Response(status=200, headers={}, body=None)


class PostHogClient:
    """A thread-safe PostHog client for one project.

    Args:
        api_key: the project API key (``phc_...``).
        host: the PostHog URL; ``https://eu.i.posthog.com`` for the EU cloud.
        timeout: seconds allowed to connect, and again to read, per request.
        retries: retries after the first attempt, for failures worth retrying.
        retry_delay: the first backoff in seconds; it doubles per retry (max 30 s).
        enabled_capture: ``False`` makes ``capture`` and ``batch`` send nothing
            (flags still work).
        gzip: compress request bodies.
        headers: extra HTTP headers for every request.
        flags_path: the flag route, ``/decide/?v=4`` or ``/flags/?v=2``.
        flags_timeout: the per-request timeout for flag requests.
        ca_bundle: a PEM file of CA certificates to trust instead of the system's.

    ``PostHogClient.from_env()`` reads the same settings from ``POSTHOG_API_KEY``,
    ``POSTHOG_HOST``, ``POSTHOG_TIMEOUT``, ``POSTHOG_RETRIES``,
    ``POSTHOG_RETRY_DELAY``, ``POSTHOG_ENABLED_CAPTURE``, ``POSTHOG_GZIP``,
    ``POSTHOG_HEADERS`` (``name=value,...``), ``POSTHOG_FLAGS_PATH``,
    ``POSTHOG_FLAGS_TIMEOUT`` and ``POSTHOG_CA_BUNDLE``.
    """

    def __init__(
        self,
        api_key: str,
        host: str = DEFAULT_HOST,
        *,
        timeout: float = 5.0,
        retries: int = 3,
        retry_delay: float = 1.0,
        enabled_capture: bool = True,
        gzip: bool = True,
        headers: Mapping[str, str] | None = None,
        flags_path: str = DEFAULT_FLAGS_PATH,
        flags_timeout: float = 3.0,
        ca_bundle: str | None = None,
    ) -> None:
        config = ClientConfig(
            api_key=api_key,
            host=host,
            timeout=timeout,
            retries=retries,
            retry_delay=retry_delay,
            enabled_capture=enabled_capture,
            gzip=gzip,
            headers=headers or {},
            flags_path=flags_path,
            flags_timeout=flags_timeout,
            ca_bundle=ca_bundle,
        )
        self._init(config)

    @classmethod
    def from_env(cls, **overrides: Any) -> PostHogClient:
        """Configure from ``POSTHOG_*`` variables; keyword arguments that are not ``None`` win."""
        return cls._from_config(ClientConfig.from_env(**overrides))

    @classmethod
    def _from_config(cls, config: ClientConfig) -> PostHogClient:
        client = cls.__new__(cls)
        client._init(config)
        return client

    def _init(self, config: ClientConfig) -> None:
        self._config = config
        self._policy = RetryPolicy(retries=config.retries, delay=config.retry_delay)
        self._transport = Transport(
            config.host, headers=config.headers, gzip=config.gzip, ca_bundle=config.ca_bundle
        )
        self._closed = threading.Event()
        self._flag_events = SeenSet(FLAG_EVENTS_REMEMBERED)
        self._head = batch_head(config.api_key)

    def __repr__(self) -> str:
        return (
            f"PostHogClient(host={self._config.host!r}, "
            f"enabled_capture={self._config.enabled_capture})"
        )

    @property
    def host(self) -> str:
        return self._config.host

    @property
    def enabled_capture(self) -> bool:
        return self._config.enabled_capture

    # -- capture ---------------------------------------------------------------

    def capture(
        self,
        event: str | Enum,
        distinct_id: str,
        properties: Mapping[str, Any] | None = None,
        *,
        timestamp: datetime | str | None = None,
        uuid: uuid_module.UUID | str | None = None,
        groups: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """Send one event now, to the single-event endpoint.

        Raises ``TypeError``/``ValueError`` for bad input (before sending),
        ``APIError`` for a non-2xx answer and ``TransportError`` for no answer.
        """
        built = Event(event, distinct_id, properties, timestamp=timestamp, uuid=uuid, groups=groups)
        encoded = built.encode()
        extra = _check_request_headers(headers)
        if not self._config.enabled_capture:
            return _NOT_SENT
        api_key = self._config.api_key

        def body() -> bytes:
            head = dumps({"api_key": api_key, "sent_at": now_iso()})
            return head[:-1] + b"," + encoded[1:]

        return self._post(CAPTURE_PATH, body, self._config.timeout, extra)

    def batch(
        self,
        events: Iterable[Event | tuple[Any, ...]],
        *,
        timestamp: datetime | str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """Send many events to ``/batch/``, split into requests of at most 5 MiB.

        ``events`` are ``Event`` values or ``(event, distinct_id, properties)``
        tuples. ``timestamp`` applies to events without their own. Every event is
        validated before anything is sent. Requests go out in order; on a failure
        the raised error's ``sent`` attribute counts the leading events already
        accepted. Returns the last response.
        """
        default_ts = iso_utc(parse_timestamp(timestamp)) if timestamp is not None else now_iso()
        encoded = [_as_event(item, i).encode(default_ts) for i, item in enumerate(events)]
        if not encoded:
            raise ValueError("batch needs at least one event")
        extra = _check_request_headers(headers)
        if not self._config.enabled_capture:
            return _NOT_SENT
        sent = 0
        response = _NOT_SENT
        for chunk in self._batches(encoded):
            try:
                response = self._post(
                    BATCH_PATH, chunk.body, self._config.timeout, extra, gzipped=chunk.gzipped
                )
            except PostHogError as exc:
                exc.sent = sent
                raise
            sent += len(chunk)
        return response

    # -- feature flags -----------------------------------------------------------

    def feature_flags(
        self,
        distinct_id: str,
        *,
        groups: Mapping[str, str] | None = None,
        group_properties: Mapping[str, Mapping[str, Any]] | None = None,
        person_properties: Mapping[str, Any] | None = None,
    ) -> FlagsResponse:
        """Every flag's value for ``distinct_id``, from the flag service."""
        return self._fetch_flags(distinct_id, groups, group_properties, person_properties)

    def feature_flag(
        self,
        name: str,
        distinct_id: str,
        *,
        send_feature_flag_event: bool = True,
        groups: Mapping[str, str] | None = None,
        group_properties: Mapping[str, Mapping[str, Any]] | None = None,
        person_properties: Mapping[str, Any] | None = None,
    ) -> FeatureFlag | None:
        """One flag for ``distinct_id``; ``None`` when PostHog does not know the flag.

        Unless ``send_feature_flag_event=False``, also captures
        ``$feature_flag_called`` once per (distinct_id, flag, value, groups).
        """
        if not isinstance(name, str) or not name:
            raise ValueError("flag name must be a non-empty string")
        answer = self._fetch_flags(
            distinct_id, groups, group_properties, person_properties, flag_keys=[name]
        )
        flag = answer.flags.get(name)
        if send_feature_flag_event and self._config.enabled_capture:
            self._report_flag_called(name, flag, answer, distinct_id, groups)
        return flag

    def _fetch_flags(
        self,
        distinct_id: str,
        groups: Mapping[str, str] | None,
        group_properties: Mapping[str, Mapping[str, Any]] | None,
        person_properties: Mapping[str, Any] | None,
        *,
        flag_keys: Sequence[str] | None = None,
        retry: bool = True,
    ) -> FlagsResponse:
        request: dict[str, Any] = {
            "api_key": self._config.api_key,
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
        response = self._post(
            self._config.flags_path, lambda: body, self._config.flags_timeout, None, retry=retry
        )
        try:
            return parse_flags_response(response.body)
        except ValueError as exc:
            raise APIError(response.status, response.body, url_path="flags") from exc

    def _report_flag_called(
        self,
        name: str,
        flag: FeatureFlag | None,
        answer: FlagsResponse,
        distinct_id: str,
        groups: Mapping[str, str] | None,
    ) -> None:
        value = None if flag is None else flag.enabled
        if not self._flag_events.add(exposure_key(distinct_id, name, value, groups)):
            return
        properties = flag_called_properties(name, flag, answer)
        try:
            self.capture("$feature_flag_called", distinct_id, properties, groups=groups)
        except PostHogError as exc:
            logger.warning("could not send $feature_flag_called for %r: %s", name, exc)

    # -- plumbing ------------------------------------------------------------------

    def close(self) -> None:
        """Stop retries in progress and release pooled connections."""
        self._closed.set()
        self._transport.close()

    def __enter__(self) -> PostHogClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _post(
        self,
        path: str,
        body: Callable[[], bytes],
        timeout: float,
        headers: Mapping[str, str] | None,
        *,
        retry: bool = True,
        gzipped: bool = False,
    ) -> Response:
        if self._closed.is_set():
            raise PostHogError("the client is closed")
        policy = self._policy if retry else RetryPolicy(retries=0)
        result = send_with_retries(
            lambda t: self._transport.post(
                path, body(), timeout=t, headers=headers, gzipped=gzipped
            ),
            policy,
            timeout=timeout,
            stop=self._closed,
        )
        parsed = self._parse_body(result)
        if not 200 <= result.status < 300:
            path_only = path.partition("?")[0]
            raise APIError(result.status, parsed, url_path=path_only, headers=result.headers)
        return Response(result.status, result.headers, parsed)

    def _batches(
        self,
        encoded: Iterable[bytes],
        max_events: int | None = None,
        limit: int = MAX_BATCH_BYTES,
    ) -> Iterator[SealedBatch]:
        """Encoded events packed into sealed ``/batch/`` bodies (compressed if gzip is on)."""
        return batches(
            encoded, self._head, gzip=self._config.gzip, max_events=max_events, limit=limit
        )

    def _open_batch(self) -> OpenBatch:
        """An empty ``/batch/`` body for the pipeline to fill (compressed if gzip is on)."""
        return OpenBatch(self._head, gzip=self._config.gzip)

    def _send_batch(
        self,
        batch: SealedBatch,
        *,
        deadline: float,
        stop: threading.Event,
        on_retry: Callable[[], None] | None = None,
    ) -> HTTPResult:
        """For the pipeline: one sealed ``/batch/``, retried until ``deadline``
        (``time.monotonic()`` scale). Returns the last answer; raises ``TransportError``."""
        return send_with_retries(
            lambda t: self._transport.post(
                BATCH_PATH, batch.body(), timeout=t, gzipped=batch.gzipped
            ),
            self._policy,
            timeout=self._config.timeout,
            deadline=deadline,
            stop=stop,
            on_retry=on_retry,
            clock=time.monotonic,
        )

    def _parse_body(self, result: HTTPResult) -> Any:
        if not result.data:
            return None
        try:
            parsed = loads(result.data)
        except ValueError:
            parsed = result.data.decode("utf-8", "replace")
            if 200 <= result.status < 300:
                return None
        return _redact(parsed, self._config.api_key)


def exposure_key(
    distinct_id: str, flag: str, value: Any, groups: Mapping[str, str] | None
) -> tuple[Any, ...]:
    """What ``$feature_flag_called`` is sent once per: user, flag, value and groups."""
    return (distinct_id, flag, value, tuple(sorted(groups.items())) if groups else ())


def flag_called_properties(
    name: str, flag: FeatureFlag | None, answer: FlagsResponse | None = None, error: str = ""
) -> dict[str, Any]:
    """The properties of a ``$feature_flag_called`` event, as PostHog's SDKs send them."""
    value = None if flag is None else flag.enabled
    properties: dict[str, Any] = {
        "$feature_flag": name,
        "$feature_flag_response": value,
        f"$feature/{name}": value,
        "locally_evaluated": False,
    }
    if flag is not None:
        optional = {
            "$feature_flag_payload": flag.payload,
            "$feature_flag_id": flag.id,
            "$feature_flag_version": flag.version,
            "$feature_flag_reason": flag.reason,
            "$feature_flag_request_id": flag.request_id,
        }
        properties.update({k: v for k, v in optional.items() if v is not None})
    errors = [error] if error else []
    if answer is not None and answer.errors_while_computing_flags:
        errors.append("errors_while_computing_flags")
    if answer is not None and answer.quota_limited:
        errors.append("quota_limited")
    if flag is None and not error:
        errors.append("flag_missing")
    if errors:
        properties["$feature_flag_error"] = ",".join(dict.fromkeys(errors))
    return properties


def _as_event(item: Event | tuple[Any, ...], index: int) -> Event:
    if isinstance(item, Event):
        return item
    if isinstance(item, tuple) and len(item) in (2, 3):
        return Event(*item)
    raise TypeError(
        f"events[{index}] must be an Event or an (event, distinct_id, properties) tuple, "
        f"not {type(item).__name__}"
    )


def _check_request_headers(headers: Mapping[str, str] | None) -> dict[str, str] | None:
    return check_headers(headers) if headers else None


def _redact(value: Any, secret: str) -> Any:
    """Remove the API key from anything the server echoed back."""
    if isinstance(value, str):
        return value.replace(secret, "[redacted]") if secret in value else value
    if isinstance(value, list):
        return [_redact(v, secret) for v in value]
    if isinstance(value, dict):
        return {k: _redact(v, secret) for k, v in value.items()}
    return value
