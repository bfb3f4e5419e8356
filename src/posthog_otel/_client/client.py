"""``PostHogClient``: capture, batch and feature flags over one pooled connection.

The synchronous, low-level face of the library, mirroring PostHog's Elixir
``Posthog.Client`` v1.1.0: its calls block, raise on failure, and are safe to
share between threads. The span pipeline and the flag provider use the same
``Connection`` underneath, through ``connection_of(client)``.
"""

from __future__ import annotations

import logging
import uuid as uuid_module
from collections.abc import Iterable, Mapping
from datetime import datetime
from enum import Enum
from typing import Any

from posthog_otel._client.connection import Connection, Response
from posthog_otel._client.events import Event, iso_utc, now_iso, parse_timestamp
from posthog_otel._config import (
    DEFAULT_FLAGS_PATH,
    DEFAULT_HOST,
    ClientConfig,
    check_headers,
)
from posthog_otel._flagdata import (
    ExposureLog,
    FeatureFlag,
    FlagDefinitions,
    FlagsResponse,
    flag_called_properties,
)
from posthog_otel._json import dumps
from posthog_otel.errors import PostHogError

__all__ = ["PostHogClient", "Response", "client_from", "connection_of"]

logger = logging.getLogger(__name__)

CAPTURE_PATH = "/capture/"
_NOT_SENT = Response(status=200, headers={}, body=None)


class PostHogClient:
    """A thread-safe PostHog client for one project.

    Args:
        api_key: the project API key (``phc_...``).
        host: the PostHog URL; ``https://eu.i.posthog.com`` for the EU cloud.
        timeout: seconds allowed per request, from connecting to the answer's last
            byte (a slow trickle of bytes included).
        retries: retries after the first attempt, for failures worth retrying.
        retry_delay: the first backoff in seconds; it doubles per retry (max 30 s).
        enabled_capture: ``False`` makes ``capture`` and ``batch`` send nothing
            (flags still work).
        gzip: compress request bodies.
        headers: extra HTTP headers for every request.
        flags_path: the flag route, ``/decide/?v=4`` or ``/flags/?v=2``.
        flags_timeout: the timeout for flag requests; it also bounds how long a flag
            lookup waits for a fetch another thread started.
        ca_bundle: a PEM file of CA certificates to trust instead of the system's.
        secret_key: a project secret API key (``phs_...``) or a personal API key
            (``phx_...``), for flag definitions (local evaluation). Sent only to
            ``host``, as ``Authorization: Bearer``; never logged or shown.

    ``PostHogClient.from_env()`` reads the same settings from ``POSTHOG_API_KEY``,
    ``POSTHOG_HOST``, ``POSTHOG_TIMEOUT``, ``POSTHOG_RETRIES``,
    ``POSTHOG_RETRY_DELAY``, ``POSTHOG_ENABLED_CAPTURE``, ``POSTHOG_GZIP``,
    ``POSTHOG_HEADERS`` (``name=value,...``), ``POSTHOG_FLAGS_PATH``,
    ``POSTHOG_FLAGS_TIMEOUT``, ``POSTHOG_CA_BUNDLE`` and ``POSTHOG_SECRET_KEY`` (or
    ``POSTHOG_PERSONAL_API_KEY``).
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
        secret_key: str | None = None,
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
            secret_key=secret_key,
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
        self._connection = Connection(config)
        self._flag_events = ExposureLog()

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

        return self._connection.post(CAPTURE_PATH, body, self._config.timeout, extra)

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
        connection = self._connection
        if connection.closed.is_set():
            raise PostHogError("the client is closed")
        sent = 0
        response = _NOT_SENT
        for chunk in connection.batches(encoded):
            try:
                response = connection.checked(
                    connection.send_batch(chunk, headers=extra), "/batch/"
                )
            except PostHogError as exc:
                raise exc.with_sent(sent) from exc.__cause__  # the same error, counted
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
        return self._connection.fetch_flags(
            distinct_id, groups, group_properties, person_properties
        )

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
        answer = self._connection.fetch_flags(
            distinct_id, groups, group_properties, person_properties, flag_keys=[name]
        )
        flag = answer.flags.get(name)
        if send_feature_flag_event and self._config.enabled_capture:
            self._report_flag_called(name, flag, answer, distinct_id, groups)
        return flag

    def flag_definitions(self, etag: str | None = None) -> FlagDefinitions | None:
        """The project's flag definitions (flags, group types, cohorts), for local
        evaluation; ``None`` when they are unchanged since ``etag`` (HTTP 304).

        Needs ``secret_key`` (``ConfigurationError`` without it); raises ``APIError``
        (401: the key is wrong; 402: over the flags quota) or ``TransportError``.
        """
        return self._connection.flag_definitions(etag)

    def _report_flag_called(
        self,
        name: str,
        flag: FeatureFlag | None,
        answer: FlagsResponse,
        distinct_id: str,
        groups: Mapping[str, str] | None,
    ) -> None:
        value = None if flag is None else flag.enabled
        if not self._flag_events.first(distinct_id, name, value, groups):
            return
        properties = flag_called_properties(name, flag, answer)
        try:
            self.capture("$feature_flag_called", distinct_id, properties, groups=groups)
        except PostHogError as exc:
            logger.warning("could not send $feature_flag_called for %r: %s", name, exc)

    # -- plumbing ------------------------------------------------------------------

    def close(self) -> None:
        """Stop retries in progress and release pooled connections."""
        self._connection.close()

    def __enter__(self) -> PostHogClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def connection_of(client: PostHogClient) -> Connection:
    """The connection under ``client``: how the pipeline and the flag provider send."""
    return client._connection


def client_from(
    client: PostHogClient | None, api_key: str | None, host: str | None, options: dict[str, Any]
) -> tuple[PostHogClient, bool]:
    """The client to send through, and whether we built it (and so must close it)."""
    if client is not None:
        return client, False
    return PostHogClient.from_env(api_key=api_key, host=host, **options), True


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
