"""JSON in and out: the one encoder, and conversion of Python values to JSON values.

With the ``orjson`` extra installed, encoding is several times faster; what
orjson refuses (integers over 64 bits, lone surrogates) falls back to the
standard library, so both give the same events. A lone surrogate (text that is
not valid Unicode, say from ``os.fsdecode``) becomes U+FFFD, the replacement
character: never ``?``, which would merge ``"a\\udc80"`` with a real ``"a?"``.

``to_json_value`` is strict (the synchronous API: a bad value raises, naming the
property); ``lenient`` never raises (the pipeline: a value that cannot be sent as
it is becomes the closest thing that can, so the event is not lost).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import math
import uuid
from collections.abc import Mapping
from decimal import Decimal
from types import ModuleType
from typing import Any

_orjson: ModuleType | None
try:
    import orjson as _orjson
except ImportError:  # the optional extra is not installed
    _orjson = None

_MAX_DEPTH = 64
_PLAIN = frozenset({str, int, bool, type(None)})  # exact types, sent as they are
_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON. Raises ``TypeError`` for values JSON cannot hold; NaN and
    infinity become ``null`` with orjson and raise ``ValueError`` without it."""
    if _orjson is not None:
        try:
            return _orjson.dumps(value)  # type: ignore[no-any-return]
        except TypeError:
            pass
    text = _encoder.encode(value)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates, which UTF-8 cannot hold
        return _without_lone_surrogates(text).encode("utf-8")


def _without_lone_surrogates(text: str) -> str:
    """Each lone surrogate as U+FFFD (UTF-16 pairs them where they pair, as JSON does)."""
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def loads(data: bytes | str) -> Any:
    return json.loads(data)


def to_json_value(value: Any, name: str, _depth: int = 0) -> Any:
    """Convert ``value`` to plain JSON types, or raise naming property ``name``.

    Converted: datetime/date/time (ISO 8601), UUID (string), Decimal (number),
    Enum (its value), set/frozenset/tuple (list), dataclass instances (object).
    """
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"property {name!r} is {value}, which JSON cannot represent")
        return value
    if _depth >= _MAX_DEPTH:
        raise ValueError(f"property {name!r} is nested more than {_MAX_DEPTH} levels deep")
    # Containers copy plain items as they are; only the rest recurse (and name their path).
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if type(key) is not str:
                key = _key(key, name)
            if type(item) in _PLAIN or (type(item) is float and math.isfinite(item)):
                out[key] = item
            else:
                out[key] = to_json_value(item, f"{name}.{key}" if name else key, _depth + 1)
        return out
    if isinstance(value, (list, tuple)):
        return [
            item
            if type(item) in _PLAIN or (type(item) is float and math.isfinite(item))
            else to_json_value(item, f"{name}[{i}]", _depth + 1)
            for i, item in enumerate(value)
        ]
    if isinstance(value, (set, frozenset)):
        items = [to_json_value(item, f"{name}[]", _depth + 1) for item in value]
        try:
            return sorted(items)
        except TypeError:
            return items
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"property {name!r} is {value}, which JSON cannot represent")
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, enum.Enum):
        return to_json_value(value.value, name, _depth + 1)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return to_json_value(fields, name, _depth + 1)
    raise TypeError(
        f"property {name!r} is a {type(value).__name__}, which cannot be sent as JSON; "
        "convert it to a string, number, boolean, list or dict"
    )


def _key(key: Any, name: str) -> str:
    """A mapping key as JSON's string, or ``TypeError`` naming where it is."""
    if isinstance(key, enum.Enum):
        key = key.value
    if not isinstance(key, (str, int, float, bool)):
        where = f"property {name!r}" if name else "properties"
        raise TypeError(f"{where} has a {type(key).__name__} key; keys must be strings")
    return str(key)


def lenient(value: Any, _depth: int = 0) -> Any:
    """Like ``to_json_value`` but never raises: NaN/infinity become ``None``, bytes are
    decoded, and anything else unknown becomes its ``str()``."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if _depth >= _MAX_DEPTH:
        return None
    if isinstance(value, Mapping):
        return {str(k): lenient(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [lenient(item, _depth + 1) for item in value]
    try:
        return to_json_value(value, "", _depth)
    except (TypeError, ValueError, RecursionError):
        try:
            return str(value)
        except Exception:  # noqa: BLE001 - a broken __str__ must not lose the event
            return None
