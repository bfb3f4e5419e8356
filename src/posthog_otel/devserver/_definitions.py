"""The devserver's flags: one definitions document, served for local evaluation and
evaluated for ``/decide`` and ``/flags``, so remote and local answers agree.

The flags file is either PostHog's own definitions JSON (what ``/flags/definitions``
returns: ``{"flags": [...], "group_type_mapping": ..., "cohorts": ...}``, so an export
of a real project works as it is) or the devserver's small rules format (see
``_rules``), turned into definitions.

``GET /flags/definitions`` and ``GET /api/feature_flag/local_evaluation/`` need
``Authorization: Bearer <secret key>`` (any key starting ``phs_`` or ``phx_``, or
only the one configured with ``--secret-key``) and ``?token=<project key>``; they
answer with an ``ETag``, and 304 to ``If-None-Match`` while the flags are unchanged.

``/decide`` and ``/flags`` evaluate those definitions as PostHog's flag service
would: a property the request does not give is absent (only ``is_not_set``
matches it), and a cohort the definitions do not hold has no members.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from posthog_otel._flagdata import RawPayload, parse_definitions
from posthog_otel._flags.local.evaluator import Decision, LocalFlags, Undecided
from posthog_otel._flags.local.source import describe
from posthog_otel.devserver._rules import load_rules, rules_definitions
from posthog_otel.devserver._wire import Answer, RejectError, Request

if TYPE_CHECKING:
    from posthog_otel.devserver import DevServer

__all__ = ["ServedFlags", "definitions", "flags_response", "load_flags", "remote_config_payload"]

SECRET_PREFIXES = ("phs_", "phx_")


@dataclass(frozen=True)
class ServedFlags:
    """The definitions document, its ETag, and the same definitions compiled."""

    body: Mapping[str, Any]
    etag: str
    local: LocalFlags


def load_flags(source: Mapping[str, Any] | str | Path | None) -> ServedFlags:
    """Flags from a mapping or a JSON file, in either format; ``ValueError`` if bad."""
    if isinstance(source, (str, Path)):
        try:
            source = json.loads(Path(source).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read flags file {str(source)!r}: {exc}") from None
    if isinstance(source, Mapping) and isinstance(source.get("flags"), list):
        body: Mapping[str, Any] = source
    else:
        body = rules_definitions(load_rules(source))
    definitions = parse_definitions(body)
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    etag = '"' + hashlib.sha256(canonical.encode()).hexdigest()[:20] + '"'
    return ServedFlags(body, etag, LocalFlags(definitions))


def definitions(app: DevServer, request: Request) -> Answer:
    """``GET /flags/definitions`` (and PostHog's older route): the flags for local
    evaluation, to a secret key, with an ``ETag``; 304 while they are unchanged."""
    key = request.bearer()
    accepted = (
        key == app.secret_key if app.secret_key is not None else key.startswith(SECRET_PREFIXES)
    )
    if not key or not accepted:
        detail = "a project secret API key (phs_...) or personal API key (phx_...) is required"
        raise RejectError(401, "not_authenticated", detail)
    token = request.arg("token")
    if not token or (app.api_key is not None and token != app.api_key):
        raise RejectError(401, "invalid_token", "token (the project API key) is wrong or missing")
    served = app.flags
    known = [tag.strip() for tag in request.header("If-None-Match").split(",")]
    if served.etag in known:
        return Answer(304, b"", headers={"ETag": served.etag})
    return Answer(200, served.body, headers={"ETag": served.etag})


def flags_response(
    flags: ServedFlags,
    request: Mapping[str, Any],
    keys: list[str] | None,
    *,
    detailed: bool,
    typed: bool = False,
) -> dict[str, Any]:
    """The body of a ``/decide`` or ``/flags`` answer to ``request``, in the detailed or
    legacy shape; ``typed`` adds each flag's ``value`` (its variant, else whether it is
    on), as ``/flags?v=4`` does."""
    local = flags.local
    device = request.get("$device_id")
    subject = local.subject(
        str(request["distinct_id"]),
        _mapping(request.get("person_properties")),
        {str(k): str(v) for k, v in _mapping(request.get("groups")).items()},
        {str(k): _mapping(v) for k, v in _mapping(request.get("group_properties")).items()},
        device if isinstance(device, str) else None,
    )
    wanted = [k for k in (local.flags if keys is None else keys) if k in local.flags]
    answers = {key: local.decide(key, subject, server_side=True) for key in wanted}
    if not detailed:
        values = {k: _value(a) for k, a in answers.items()}
        return {
            "featureFlags": values,
            "featureFlagPayloads": {
                k: _encoded(p)
                for k, v in values.items()
                if (p := local.flags[k].payload(v)) is not None
            },
            "errorsWhileComputingFlags": False,
        }
    detail = {key: _detailed(local, key, answer) for key, answer in answers.items()}
    if typed:
        for key, answer in answers.items():
            detail[key]["value"] = _value(answer)
    return {"flags": detail, "errorsWhileComputingFlags": False, "requestId": str(uuid.uuid4())}


def remote_config_payload(flags: ServedFlags, key: str) -> str | None:
    """A remote config flag's payload (its ``true`` payload), JSON-encoded as PostHog
    stores it; ``KeyError`` when there is no such flag."""
    payload = flags.local.flags[key].payload(True)
    return None if payload is None else _encoded(payload)


def _detailed(local: LocalFlags, key: str, answer: Decision | Undecided | None) -> dict[str, Any]:
    flag = local.flags[key]
    value = _value(answer)
    payload = flag.payload(value)
    if isinstance(answer, Decision):
        reason = {
            "code": answer.code,
            "condition_index": answer.condition,
            "description": describe(answer).capitalize(),
        }
    else:
        detail = answer.detail if answer is not None else "no such flag"
        reason = {"code": "unknown", "condition_index": None, "description": detail}
    return {
        "key": key,
        "enabled": bool(value),
        "variant": value if isinstance(value, str) else None,
        "reason": reason,
        "metadata": {
            "id": flag.id,
            "version": flag.version,
            "payload": None if payload is None else _encoded(payload),
        },
    }


def _encoded(payload: Any) -> str:
    """A payload as PostHog stores it: JSON text; one that never was JSON, as it was."""
    return str(payload) if isinstance(payload, RawPayload) else json.dumps(payload)


def _value(answer: Decision | Undecided | None) -> bool | str:
    """What the flag service answers; a flag it could not decide here is off."""
    return answer.value if isinstance(answer, Decision) else False


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
