"""What every devserver route works with: the request, the answer, PostHog's error
shapes, and JSON read strictly enough that nothing stored can break a reader."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

MAX_DEPTH = 128  # like serde_json, which PostHog's capture service parses with
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_$/-]{1,64}")


@dataclass(frozen=True)
class Request:
    """One request as a route sees it: the body decompressed, the query parsed."""

    method: str
    path: str
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]
    body: bytes = b""
    params: tuple[str, ...] = ()  # the route pattern's groups, such as a flag key

    def arg(self, name: str) -> str | None:
        """The first value of query parameter ``name``."""
        values = self.query.get(name)
        return values[0] if values else None

    def header(self, name: str) -> str:
        """A header's value ('' when absent), whatever its case on the wire."""
        wanted = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == wanted), "")

    def bearer(self) -> str:
        """The token of an ``Authorization: Bearer`` header, or ''."""
        scheme, _, token = self.header("Authorization").strip().partition(" ")
        return token.strip() if scheme.lower() == "bearer" else ""


@dataclass(frozen=True)
class Answer:
    """What a route answers: ``body`` is a JSON value, or bytes sent as they are."""

    status: int
    body: Any = None
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)


class RejectError(Exception):
    """A request PostHog would refuse; ``attr`` names the offending field, as PostHog's
    API errors do (``batch[3].event``)."""

    def __init__(
        self, status: int, code: str, detail: str, *, attr: str | None = None, kind: str = ""
    ) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.attr = status, code, detail, attr
        self.kind = kind or _KINDS.get(status, "validation_error")

    def answer(self) -> Answer:
        body = {"type": self.kind, "code": self.code, "detail": self.detail, "attr": self.attr}
        return Answer(self.status, body)


_KINDS = {401: "authentication_error", 403: "authentication_error", 404: "invalid_request"}


def not_found(detail: str = "Not found.") -> RejectError:
    return RejectError(404, "not_found", detail, kind="invalid_request")


def parse_json(data: bytes) -> Any:
    """The JSON document in ``data``, refused (400) when a reader of it could choke:
    ``NaN``/``Infinity``, numbers too large for a double, lone UTF-16 surrogates, or
    nesting deeper than ``MAX_DEPTH``. The error names where the problem is."""
    try:
        value = json.loads(data)
    except RecursionError:
        raise _too_deep("") from None
    except ValueError as exc:
        raise RejectError(400, "invalid_payload", f"body is not valid JSON: {exc}") from None
    _check_depth(value)
    try:  # the common case, at C speed: strict JSON that encodes as UTF-8
        json.dumps(value, ensure_ascii=False, allow_nan=False).encode()
    except (ValueError, UnicodeEncodeError):
        check_json(value)  # find the part, to name it
    return value


def _check_depth(value: Any) -> None:
    level = [value] if isinstance(value, (dict, list)) else []
    depth = 0
    while level:
        if depth >= MAX_DEPTH:
            check_json(value)  # find the part, to name it
        depth += 1
        level = [
            child
            for node in level
            for child in (node.values() if isinstance(node, dict) else node)
            if isinstance(child, (dict, list))
        ]


def check_json(value: Any) -> None:
    """Walk ``value`` without recursion; ``RejectError`` naming the first unsafe part
    by its path in the document, such as ``batch[3].properties.latency``."""
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        node, where, depth = stack.pop()
        if isinstance(node, str):
            _check_text(node, where)
        elif isinstance(node, float):
            if not math.isfinite(node):
                detail = f"{node} is not a JSON number (NaN, Infinity or out of range)"
                raise RejectError(400, "invalid_number", at(where, detail), attr=where or None)
        elif isinstance(node, (dict, list)):
            if depth >= MAX_DEPTH:
                raise _too_deep(where)
            # Children go on the stack last first, so the first problem is the one named.
            if isinstance(node, dict):
                for key, item in reversed(node.items()):
                    _check_text(key, where)
                    stack.append((item, _child(where, key), depth + 1))
            else:
                for i in range(len(node) - 1, -1, -1):
                    stack.append((node[i], f"{where}[{i}]", depth + 1))


def at(where: str, detail: str) -> str:
    """``detail`` prefixed with where in the body it applies, when that is not the root."""
    return f"{where}: {detail}" if where else detail


def _child(where: str, key: str) -> str:
    if _PLAIN_KEY.fullmatch(key):
        return f"{where}.{key}" if where else key
    return f"{where}[{json.dumps(key[:40])}]"


def _check_text(text: str, where: str) -> None:
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        detail = at(where, "text holds a lone UTF-16 surrogate")
        raise RejectError(400, "invalid_string", detail, attr=where or None) from None


def _too_deep(where: str) -> RejectError:
    detail = at(where, f"nested deeper than {MAX_DEPTH} levels")
    return RejectError(400, "too_deep", detail, attr=where or None)


def safe_json(value: Any) -> bytes:
    """``value`` as JSON that any parser reads: a non-finite number becomes null."""
    try:
        return json.dumps(value, allow_nan=False).encode()
    except ValueError:
        return json.dumps(_finite(value)).encode()


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value
