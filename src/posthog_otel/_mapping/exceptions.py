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

import builtins
import linecache
import os
import re
import reprlib
import sys
import sysconfig
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import islice
from types import FrameType
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from posthog_otel._limits import (
    EXCEPTION_CONTEXT_LINES,
    MAX_CODE_VARIABLE_CHARS,
    MAX_CODE_VARIABLE_FRAMES,
    MAX_CODE_VARIABLES_TOTAL,
    MAX_CONTEXT_LINE_CHARS,
    MAX_EXCEPTION_CHAIN,
    MAX_EXCEPTION_FRAMES,
    MAX_SOURCE_CONTEXT_TOTAL,
    MAX_STACKTRACE_LENGTH,
    MAX_STRING_LENGTH,
)
from posthog_otel._mapping.bounds import Trims, cut_string
from posthog_otel._mapping.convention import normalise_key

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
                frame.update(_text_frame_context(frame))
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


def _text_frame_context(frame: dict[str, Any]) -> dict[str, Any]:
    """Lines around an in-app frame parsed from text, as for an exception object; only
    for a ``.py`` file under the working directory whose line still reads as the
    traceback printed it (a path in the text is not a licence to read any file)."""
    path = frame["abs_path"]
    if not frame["in_app"] or not path.endswith(".py") or not os.path.isabs(path):
        return {}
    if not _under(os.path.normpath(path), os.getcwd()):
        return {}
    around = source_context(path, frame["lineno"])
    if not around or around["context_line"].strip() != frame["context_line"]:
        return {}  # the file changed since, or is not the one that ran
    # context_line stays as the traceback printed it (stripped), as before
    return {"pre_context": around["pre_context"], "post_context": around["post_context"]}


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


# --- exceptions as objects (autocapture): frames, source context, variables ------------

_MASKED = "$$_posthog_redacted_based_on_masking_rules_$$"
_URL_CREDENTIALS = re.compile(r"([a-z][a-z0-9+.\-]{0,30}://)[^/\s@'\"]*:[^/\s@'\"]*@", re.I)
# ExceptionGroup is Python 3.11's; on 3.10 nothing is a group.
_GROUP: type[BaseException] | None = getattr(builtins, "BaseExceptionGroup", None)
_BUILTIN_ROOTS = tuple(
    {os.path.realpath(p) for p in (sysconfig.get_paths()["stdlib"], sys.base_prefix) if p}
)


@dataclass(frozen=True)
class FrameOptions:
    """What frames built from an exception object carry.

    ``in_app_modules``: modules (and their submodules) always in-app. ``project_root``:
    files under it are in-app unless a library's (``site-packages``, ``dist-packages``)
    or the standard library's. ``code_variables``: the locals of in-app frames, masked
    by ``denylist`` (names) and URL credentials (values).
    """

    in_app_modules: tuple[str, ...] = ()
    project_root: str | None = None
    code_variables: bool = False
    denylist: re.Pattern[str] | None = None


def exception_list_from(
    exc: BaseException,
    mechanism: str,
    *,
    handled: bool,
    options: FrameOptions,
    trims: Trims | None = None,
) -> list[dict[str, Any]]:
    """``$exception_list`` from an exception object, as PostHog's SDK orders it: the
    exception first, then depth first what it came from (``__cause__``, or
    ``__context__`` unless suppressed) and an exception group's members, each with
    ``mechanism.exception_id`` and its ``parent_id``; at most ``MAX_EXCEPTION_CHAIN``."""
    trims = trims if trims is not None else Trims()
    entries: list[dict[str, Any]] = []
    seen: set[int] = set()
    # Characters of code variables left, frames with variables left, context characters left.
    budget = [MAX_CODE_VARIABLES_TOTAL, MAX_CODE_VARIABLE_FRAMES, MAX_SOURCE_CONTEXT_TOTAL]
    # (exception, parent id, how it relates to the parent); a stack, for depth first.
    stack: list[tuple[BaseException, int | None, str]] = [(exc, None, "")]
    while stack and len(entries) < MAX_EXCEPTION_CHAIN:
        current, parent, source = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        own_id = len(entries)
        entries.append(_entry_of(current, own_id, parent, source, mechanism, handled, trims))
        frames = _frames_of(current, options, budget, trims)
        if frames:
            entries[-1]["stacktrace"] = {"type": "raw", "frames": frames}
        children: list[tuple[BaseException, int | None, str]] = []
        if current.__suppress_context__:
            if current.__cause__ is not None:
                children.append((current.__cause__, own_id, "cause"))
        elif current.__context__ is not None:
            children.append((current.__context__, own_id, "context"))
        members = getattr(current, "exceptions", None)
        if _GROUP is not None and isinstance(current, _GROUP) and isinstance(members, tuple):
            children.extend((m, own_id, "member") for m in members[:MAX_EXCEPTION_CHAIN])
        stack.extend(reversed(children))
    if stack:
        trims.note("exception_chain")
    return entries


def _entry_of(
    exc: BaseException,
    own_id: int,
    parent: int | None,
    source: str,
    mechanism: str,
    handled: bool,
    trims: Trims,
) -> dict[str, Any]:
    cls = type(exc)
    module = getattr(cls, "__module__", None) or "builtins"
    try:
        value = str(exc)
    except Exception:  # noqa: BLE001 - a user's __str__
        value = "<unprintable>"
    mech: dict[str, Any] = {"exception_id": own_id, "synthetic": False}
    if parent is None:
        mech.update(type=mechanism, handled=handled)
    else:
        mech.update(type="chained", parent_id=parent, source=source)
    if _GROUP is not None and isinstance(exc, _GROUP):
        mech["is_exception_group"] = True
    return {
        "type": cls.__qualname__[:1000],
        "value": _bounded(value, trims),
        "module": str(module)[:1000],
        "mechanism": mech,
    }


def _frames_of(
    exc: BaseException, options: FrameOptions, budget: list[int], trims: Trims
) -> list[dict[str, Any]]:
    entries: list[tuple[FrameType, int]] = []
    tb = exc.__traceback__
    while tb is not None:
        entries.append((tb.tb_frame, tb.tb_lineno))
        tb = tb.tb_next
    if len(entries) > MAX_EXCEPTION_FRAMES:
        trims.note("exception_frames")
        half = MAX_EXCEPTION_FRAMES // 2
        entries = entries[:half] + entries[-half:]
    frames = [_frame_of(frame, line, options) for frame, line in entries]
    for (frame, line), built in zip(reversed(entries), reversed(frames), strict=True):
        if budget[2] <= 0:  # innermost first: the frames that matter most keep their lines
            trims.note("source_context")
            break
        if built["in_app"]:
            around = source_context(frame.f_code.co_filename, line, frame.f_globals)
            budget[2] -= (
                sum(map(len, around.get("pre_context", ())))
                + sum(map(len, around.get("post_context", ())))
                + len(around.get("context_line", ""))
            )
            built.update(around)
    if options.code_variables:  # innermost in-app frames first, within the budget
        for (frame, _), built in zip(reversed(entries), reversed(frames), strict=True):
            if budget[1] <= 0 or budget[0] <= 0:
                break
            if built["in_app"] and frame.f_code.co_name != "<module>":  # not a module's globals
                budget[1] -= 1
                variables = code_variables(frame.f_locals, options.denylist, budget)
                if variables:
                    built["code_variables"] = variables
    return frames


def _frame_of(frame: FrameType, lineno: int, options: FrameOptions) -> dict[str, Any]:
    code = frame.f_code
    path = code.co_filename
    module = frame.f_globals.get("__name__")
    module = module if isinstance(module, str) else None
    abs_path = os.path.abspath(path) if not path.startswith("<") else path
    in_app = is_in_app(abs_path, module, options)
    filename = abs_path
    library = next((m for m in _LIBRARY_MARKERS if m in abs_path), None)
    if library is not None:
        filename = abs_path.split(library, 1)[1].lstrip("/\\")
    elif options.project_root and _under(abs_path, options.project_root):
        filename = os.path.relpath(abs_path, options.project_root)
    built: dict[str, Any] = {
        "platform": "python",
        "filename": filename,
        "abs_path": abs_path,
        "module": module,
        "function": code.co_name,
        "lineno": lineno,
        "in_app": in_app,
    }
    return built


def is_in_app(abs_path: str, module: str | None, options: FrameOptions) -> bool:
    """``in_app_modules`` first; then files under the project root, libraries and the
    standard library excepted; anything else (``<string>``, elsewhere) is not."""
    if module and any(module == m or module.startswith(m + ".") for m in options.in_app_modules):
        return True
    if abs_path.startswith("<") or any(m in abs_path for m in _LIBRARY_MARKERS):
        return False
    if _STDLIB.search(abs_path) and any(_under(abs_path, r) for r in _BUILTIN_ROOTS):
        return False
    return bool(options.project_root) and _under(abs_path, options.project_root or "")


def _under(path: str, root: str) -> bool:
    root = root.rstrip("/\\")
    return path == root or path.startswith(root + os.sep)


def source_context(path: str, lineno: int, module_globals: Any = None) -> dict[str, Any]:
    """``pre_context``, ``context_line`` and ``post_context`` around ``lineno`` (from 1),
    each line cut at ``MAX_CONTEXT_LINE_CHARS``; nothing when the source is unreadable."""
    try:
        lines = linecache.getlines(path, module_globals)
    except Exception:  # noqa: BLE001 - a loader's get_source, a file gone
        return {}
    index = lineno - 1
    if not 0 <= index < len(lines):
        return {}

    def clip(line: str) -> str:
        return line.rstrip("\r\n")[:MAX_CONTEXT_LINE_CHARS]

    first = max(0, index - EXCEPTION_CONTEXT_LINES)
    last = index + 1 + EXCEPTION_CONTEXT_LINES
    return {
        "pre_context": [clip(line) for line in lines[first:index]],
        "context_line": clip(lines[index]),
        "post_context": [clip(line) for line in lines[index + 1 : last]],
    }


_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = MAX_CODE_VARIABLE_CHARS
_REPR.maxlevel = 3


def code_variables(
    local_vars: Mapping[str, Any], denylist: re.Pattern[str] | None, budget: list[int]
) -> dict[str, str]:
    """A frame's locals as bounded ``repr`` text: names matching ``denylist`` (and
    mapping keys matching it, one level down) masked, URL credentials masked in every
    value; ``budget[0]`` (characters left for the exception) is spent as they are added."""
    out: dict[str, str] = {}
    for name, value in list(local_vars.items()):
        if budget[0] <= 0:
            break
        if not isinstance(name, str) or name.startswith("__"):
            continue
        if denylist is not None and denylist.search(normalise_key(name)):
            text = _MASKED
        else:
            text = _masked_repr(value, denylist)
        budget[0] -= len(name) + len(text)
        out[name] = text
    return out


def _masked_repr(value: Any, denylist: re.Pattern[str] | None) -> str:
    try:
        if denylist is not None and isinstance(value, Mapping):
            value = {
                k: (_MASKED if isinstance(k, str) and denylist.search(normalise_key(k)) else v)
                for k, v in islice(value.items(), _REPR.maxdict + 1)
            }
        if isinstance(value, (bytes, bytearray, memoryview)):  # reprlib reprs them whole
            value = bytes(value[:MAX_CODE_VARIABLE_CHARS])
        text = _REPR.repr(value)
    except Exception:  # noqa: BLE001 - a user's __repr__
        return "<unrepresentable>"
    text = _URL_CREDENTIALS.sub(rf"\1{_MASKED}@", text)
    if len(text) > MAX_CODE_VARIABLE_CHARS:
        text = text[:MAX_CODE_VARIABLE_CHARS] + "..."
    return text
