"""Spans and log records to OTLP protobuf, linked to PostHog's person and session.

PostHog links a trace or a log record to a person through the attribute
``posthogDistinctId`` and to a session replay through ``sessionId``. We know both for a
span from its ``posthog.distinct_id`` and ``posthog.session_id`` (which the span hook and
``identify()`` set), and for a log record from the context it was emitted in; this adds
them to what is sent, unless the span or record sets them itself.

The encoding is OpenTelemetry's own (``encode_spans``, ``encode_logs`` of
``opentelemetry-exporter-otlp-proto-common``, the ``otlp`` extra, found by
``_otel.otlp_encoders``), imported when first needed, a whole batch at a time: encoding
each span as a request of its own (protobuf requests joined byte for byte are one
request) would give exact sizes as a batch fills, but costs twice the instructions per
span (463k against 233k under callgrind, 512-span batches: the resource is encoded, and
hashed, once per request). Attributes the ``attribute_denylist`` marks as credentials
are left out, as from events. Pure: no I/O.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from posthog_otel import _otel
from posthog_otel._limits import MAX_OTLP_KEY_VERDICTS
from posthog_otel._mapping.convention import DISTINCT_ID, SESSION_ID, normalise_key
from posthog_otel.errors import ConfigurationError

__all__ = [
    "PERSON_KEY",
    "SESSION_KEY",
    "LogRecordItem",
    "encode_logs_request",
    "encode_spans_request",
    "require_encoders",
]

_T = TypeVar("_T")

PERSON_KEY = "posthogDistinctId"  # PostHog: "Link logs to a person"
SESSION_KEY = "sessionId"  # PostHog: "Link session replay"


@dataclass(frozen=True, slots=True)
class LogRecordItem:
    """A log record to send as OTLP, with the identity and session its context knew when
    it was emitted (the record's own attributes still win)."""

    record: Any  # as the SDK hands it to processors (ReadWriteLogRecord, or LogData)
    distinct_id: str | None = None
    session_id: str | None = None


@functools.cache
def require_encoders(setting: str = "send_traces") -> tuple[Callable[..., Any], Callable[..., Any]]:
    """OpenTelemetry's ``encode_spans`` and ``encode_logs``; ``ConfigurationError`` naming
    ``setting`` and the extra when they are not installed."""
    try:
        encode_spans, encode_logs = _otel.otlp_encoders()
    except ImportError:
        raise ConfigurationError(
            setting,
            "needs OpenTelemetry's OTLP encoding: pip install 'posthog-otel[otlp]' "
            "(opentelemetry-exporter-otlp-proto-common and opentelemetry-proto)",
        ) from None
    return encode_spans, encode_logs


def encode_spans_request(spans: Sequence[Any], denylist: re.Pattern[str] | None = None) -> bytes:
    """Ended SDK spans as one serialised ``ExportTraceServiceRequest``, each carrying
    ``posthogDistinctId`` and ``sessionId`` from its ``posthog.*`` attributes; attributes
    whose key ``denylist`` marks as a credential are left out, as from events."""
    encode_spans, _ = require_encoders()
    # Matched with its encoded self by position, not read back: reading the encoded
    # attributes cost a fifth of the encoding.
    ordered = _in_encoder_order(spans, spans)
    request = encode_spans(ordered)
    encoded = [
        span
        for resource_spans in request.resource_spans
        for scope_spans in resource_spans.scope_spans
        for span in scope_spans.spans
    ]
    denied = _denied(denylist)
    if len(encoded) != len(ordered):  # not grouped as expected: read each one back
        for span in encoded:
            _link_from_attributes(span.attributes, denied)
    else:
        for span, pb_span in zip(ordered, encoded, strict=True):
            attrs = span.attributes or {}
            if denylist is not None and denied is not None and _any_denied(denylist, attrs, denied):
                _drop_denied(pb_span.attributes, denied)
            identity, session = attrs.get(DISTINCT_ID), attrs.get(SESSION_ID)
            if identity or session:
                _link(pb_span.attributes, attrs, identity, session)
    data: bytes = request.SerializeToString()
    return data


def encode_logs_request(
    items: Sequence[LogRecordItem], denylist: re.Pattern[str] | None = None
) -> bytes:
    """Log records as one serialised ``ExportLogsServiceRequest`` (their trace and span
    ids as the SDK set them), each carrying ``posthogDistinctId`` and ``sessionId``: its
    own ``posthog.*`` attributes first, then what its context knew."""
    _, encode_logs = require_encoders("send_logs")
    ordered = _in_encoder_order(items, [item.record for item in items])
    request = encode_logs([item.record for item in ordered])
    encoded = [
        record
        for resource_logs in request.resource_logs
        for scope_logs in resource_logs.scope_logs
        for record in scope_logs.log_records
    ]
    if len(encoded) != len(ordered):  # not grouped as expected: one request per record
        return b"".join(encode_logs_request([item], denylist) for item in items)
    denied = _denied(denylist)
    for item, record in zip(ordered, encoded, strict=True):
        if denied is not None:
            _drop_denied(record.attributes, denied)
        own = item.record.log_record.attributes or {}
        identity = own.get(DISTINCT_ID) or item.distinct_id
        session = own.get(SESSION_ID) or item.session_id
        if identity or session:
            _link(record.attributes, own, identity, session)
    data: bytes = request.SerializeToString()
    return data


def _in_encoder_order(items: Sequence[_T], records: Sequence[Any]) -> list[_T]:
    """``items`` in the order OpenTelemetry's encoders write their ``records`` (spans or
    log records): grouped by resource, then scope, each in the order it first appears,
    in their own order within a group. Encoded in this order, the n-th encoded span or
    record is the n-th item's."""
    groups: dict[Any, dict[Any, list[_T]]] = {}
    for item, record in zip(items, records, strict=True):
        scope = record.instrumentation_scope or None
        groups.setdefault(_resource_of(record), {}).setdefault(scope, []).append(item)
    return [item for scopes in groups.values() for group in scopes.values() for item in group]


def _resource_of(record: Any) -> Any:
    """A span's or record's resource: on it (records: 1.39 and later), or on its
    ``log_record``."""
    resource = getattr(record, "resource", None)
    return resource if resource is not None else getattr(record.log_record, "resource", None)


def _link_from_attributes(encoded: Any, denied: Callable[[str], bool] | None) -> None:
    """Add PostHog's two keys to an encoded span's attributes from its ``posthog.*`` ones,
    leaving out the ``denied`` ones."""
    identity = session = None
    own = set()
    dropped = []
    for index, pair in enumerate(encoded):
        key = pair.key
        if denied is not None and denied(key):
            dropped.append(index)
        elif key == DISTINCT_ID:
            identity = pair.value.string_value
        elif key == SESSION_ID:
            session = pair.value.string_value
        elif key in (PERSON_KEY, SESSION_KEY):
            own.add(key)
    for index in reversed(dropped):
        del encoded[index]
    if identity or session:
        _link(encoded, own, identity, session)


def _drop_denied(encoded: Any, denied: Callable[[str], bool]) -> None:
    for index in reversed([i for i, pair in enumerate(encoded) if denied(pair.key)]):
        del encoded[index]


_verdicts: dict[tuple[re.Pattern[str], str | frozenset[str]], bool] = {}


def _denied(denylist: re.Pattern[str] | None) -> Callable[[str], bool] | None:
    """Whether ``denylist`` marks a key as a credential, each key decided once (keys repeat
    on every span; the memo holds at most ``MAX_OTLP_KEY_VERDICTS`` keys, then starts over)."""
    if denylist is None:
        return None

    def denied(key: str) -> bool:
        verdict = _verdicts.get((denylist, key))
        if verdict is None:
            if len(_verdicts) >= MAX_OTLP_KEY_VERDICTS:
                _verdicts.clear()
            verdict = _verdicts[denylist, key] = bool(denylist.search(normalise_key(key)))
        return verdict

    return denied


def _any_denied(
    denylist: re.Pattern[str], attrs: Mapping[str, Any], denied: Callable[[str], bool]
) -> bool:
    """Whether any of ``attrs``' keys is a credential: decided once per set of keys (spans
    of one kind repeat theirs), in the same bounded memo as the keys' verdicts."""
    keys = frozenset(attrs)
    verdict = _verdicts.get((denylist, keys))
    if verdict is None:
        if len(_verdicts) >= MAX_OTLP_KEY_VERDICTS:
            _verdicts.clear()
        verdict = any(denied(key) for key in keys)
        _verdicts[denylist, keys] = verdict
    return verdict


def _link(encoded: Any, own: Collection[str], identity: Any, session: Any) -> None:
    """Append PostHog's two keys to ``encoded`` (repeated ``KeyValue``) where the span or
    record does not set them itself."""
    if isinstance(identity, str) and identity and PERSON_KEY not in own:
        encoded.add(key=PERSON_KEY, value={"string_value": identity})
    if isinstance(session, str) and session and SESSION_KEY not in own:
        encoded.add(key=SESSION_KEY, value={"string_value": session})
