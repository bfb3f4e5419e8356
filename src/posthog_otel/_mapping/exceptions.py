"""PostHog error tracking: OpenTelemetry ``exception.*`` attributes to ``$exception_list``.

``Span.record_exception`` keeps only text (type, message and the formatted
traceback), so the frames are parsed back out of Python's traceback format,
chained causes included. Text that is not a Python traceback yields one
synthetic frame, so the exception is still recorded.

Bounded (``_limits``): only the last ``MAX_STACKTRACE_LENGTH`` characters of the text
are read (the outermost exception is printed last), a chain keeps its first
``MAX_EXCEPTION_CHAIN`` entries (outermost first, as PostHog's SDKs order them) with
``$exception_list_omitted`` saying how many more there were, and an exception keeps
the first and last halves of ``MAX_EXCEPTION_FRAMES`` frames.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from posthog_otel._limits import (
    MAX_EXCEPTION_CHAIN,
    MAX_EXCEPTION_FRAMES,
    MAX_STACKTRACE_LENGTH,
    MAX_STRING_LENGTH,
)
from posthog_otel._mapping.bounds import Trims, cut_string

# A line number of at most 9 digits: int() refuses thousands (Python's digit limit).
_FRAME = re.compile(r'^\s*File "(?P<path>[^"]+)", line (?P<line>\d{1,9})(?:, in (?P<func>.+))?$')
_CHAIN_SEPARATORS = (
    "During handling of the above exception, another exception occurred:",
    "The above exception was the direct cause of the following exception:",
)
_LIBRARY_MARKERS = ("site-packages", "dist-packages")
_STDLIB = re.compile(r"[/\\]lib[/\\]python\d+(?:\.\d+)?[/\\]")
_CARETS = re.compile(r"^\s*[~^]+\s*$")


def exception_list(
    exc_type: str, message: str, stacktrace: str, handled: bool, trims: Trims | None = None
) -> list[dict[str, Any]]:
    """``$exception_list``: the outermost exception first, then its causes, within the
    bounds (what they cut is noted in ``trims``; see ``omitted`` for the chain)."""
    trims = trims if trims is not None else Trims()
    if len(stacktrace) > MAX_STACKTRACE_LENGTH:
        trims.note("stacktrace_length")
        stacktrace = stacktrace[-MAX_STACKTRACE_LENGTH:]
    message = _bounded(message, trims)
    blocks = _split_blocks(stacktrace)
    entries: list[dict[str, Any]] = []
    for depth, block in enumerate(reversed(blocks)):
        if len(entries) >= MAX_EXCEPTION_CHAIN:
            break
        frames, parsed_type, parsed_value = _parse_block(block)
        if depth == 0:
            parsed_type, parsed_value = _outermost(exc_type, message, parsed_type)
        if parsed_type is None:
            continue
        if len(frames) > MAX_EXCEPTION_FRAMES:
            trims.note("exception_frames")
            half = MAX_EXCEPTION_FRAMES // 2
            frames = frames[:half] + frames[-half:]
        value = _bounded(parsed_value, trims)
        entries.append(_entry(parsed_type, value, frames, handled, chained=depth > 0))
    if not entries:
        type_name, value = _outermost(exc_type, message, None)
        entries.append(_entry(type_name, value, [], handled, chained=False))
    return entries


def omitted(stacktrace: str, kept: int) -> int:
    """How many exceptions of the chain were left out when ``kept`` were kept (counted
    by the separators Python prints between them)."""
    if len(stacktrace) < 10_000 and kept < MAX_EXCEPTION_CHAIN:
        return 0  # the usual case: short, and nothing to count
    chained = sum(stacktrace.count(separator) for separator in _CHAIN_SEPARATORS)
    return max(0, chained + 1 - kept)


def _bounded(text: str, trims: Trims) -> str:
    if len(text) <= MAX_STRING_LENGTH:
        return text
    trims.note("string_length")
    return cut_string(text, MAX_STRING_LENGTH)


def _outermost(exc_type: str, message: str, parsed_type: str | None) -> tuple[str, str]:
    """Trust the span event's attributes; the traceback may name the type more fully."""
    name = exc_type or parsed_type or "Exception"
    if parsed_type and parsed_type.rsplit(".", 1)[-1] == name.rsplit(".", 1)[-1]:
        name = parsed_type if len(parsed_type) > len(name) else name
    return name, message


def _entry(
    type_name: str, value: str, frames: list[dict[str, Any]], handled: bool, *, chained: bool
) -> dict[str, Any]:
    module, _, short = type_name.rpartition(".")
    synthetic = not frames
    if synthetic:
        frames = [
            {
                "platform": "python",
                "filename": "<unknown>",
                "function": "<unknown>",
                "in_app": False,
                "synthetic": True,
            }
        ]
    return {
        "type": short,
        "value": value,
        "module": module or "builtins",
        "mechanism": {
            "type": "chained" if chained else "generic",
            "handled": handled,
            "synthetic": synthetic,
        },
        "stacktrace": {"type": "raw", "frames": frames},
    }


def _split_blocks(text: str) -> list[list[str]]:
    blocks: list[list[str]] = [[]]
    for line in text.splitlines():
        if line.strip() in _CHAIN_SEPARATORS:
            blocks.append([])
        else:
            blocks[-1].append(line)
    return [b for b in blocks if any(line.strip() for line in b)]


def _parse_block(lines: list[str]) -> tuple[list[dict[str, Any]], str | None, str]:
    frames: list[dict[str, Any]] = []
    tail: list[str] = []
    i = 0
    while i < len(lines):
        match = _FRAME.match(lines[i])
        if match:
            tail = []
            frame = _frame(match["path"], int(match["line"]), match["func"] or "<module>")
            nxt = lines[i + 1] if i + 1 < len(lines) else ""
            if nxt.startswith("    ") and not _FRAME.match(nxt) and not _CARETS.match(nxt):
                frame["context_line"] = nxt.strip()
                i += 1
            frames.append(frame)
        elif _is_message_line(lines[i], continuing=bool(tail)):
            tail.append(lines[i])
        i += 1
    if not tail:
        return frames, None, ""
    first, sep, rest = tail[0].partition(": ")
    if not re.fullmatch(r"[\w.]+", first):
        return frames, None, ""
    value = "\n".join([rest, *tail[1:]]) if sep else "\n".join(tail[1:])
    return frames, first, value


def _is_message_line(line: str, *, continuing: bool) -> bool:
    """The ``Type: message`` line after the frames, and any lines the message runs on."""
    if line.startswith(" "):
        return continuing
    return bool(line) and not line.startswith("Traceback (most recent call last)")


def _frame(path: str, line: int, function: str) -> dict[str, Any]:
    library = next((m for m in _LIBRARY_MARKERS if m in path), None)
    in_app = library is None and not _STDLIB.search(path) and not path.startswith("<")
    filename = path
    module = None
    if library is not None:
        filename = path.split(library, 1)[1].lstrip("/\\")
        module = _module_of(filename)
    elif in_app and os.path.isabs(path):
        try:
            relative = os.path.relpath(path)
        except ValueError:  # another drive on Windows
            relative = path
        if not relative.startswith(".."):
            filename = relative
            module = _module_of(relative)
    frame: dict[str, Any] = {
        "platform": "python",
        "filename": filename,
        "abs_path": path,
        "function": function,
        "lineno": line,
        "in_app": in_app,
    }
    if module:
        frame["module"] = module
    return frame


def _module_of(relative_path: str) -> str | None:
    if not relative_path.endswith(".py"):
        return None
    parts = relative_path[:-3].replace("\\", "/").split("/")
    if parts[-1] == "__init__":
        parts = parts[:-1]
    if not parts or not all(p.isidentifier() for p in parts):
        return None
    return ".".join(p for p in parts if p != "src") or None


def escaped_from(span: ReadableSpan, eattrs: Mapping[str, Any], *, last: bool) -> bool:
    """``exception.escaped``, or the mark ``start_as_current_span`` leaves instead: the
    span's error status describing this very exception, recorded last."""
    if str(eattrs.get("exception.escaped", "")).lower() == "true":
        return True
    status = span.status
    if not last or status.status_code is not StatusCode.ERROR or not status.description:
        return False
    short_type = str(eattrs.get("exception.type", "")).rsplit(".", 1)[-1]
    return status.description == f"{short_type}: {eattrs.get('exception.message', '')}"


def exception_properties(
    eattrs: Mapping[str, Any], escaped: bool, level: str = "error", *, trims: Trims | None = None
) -> dict[str, Any]:
    """``$exception_list`` and ``$exception_level`` from OpenTelemetry's ``exception.*``
    attributes (a span event's, or a log record's); with ``$exception_list_omitted``
    when the chain was longer than ``MAX_EXCEPTION_CHAIN``."""
    trims = trims if trims is not None else Trims()
    stacktrace = str(eattrs.get("exception.stacktrace", ""))
    props: dict[str, Any] = {
        "$exception_list": exception_list(
            str(eattrs.get("exception.type", ""))[:1000],
            str(eattrs.get("exception.message", "")),
            stacktrace,
            handled=not escaped,
            trims=trims,
        ),
        "$exception_level": level,
    }
    left_out = omitted(stacktrace, len(props["$exception_list"]))
    if left_out:
        trims.note("exception_chain")
        props["$exception_list_omitted"] = left_out
    return props
