"""What a GenAI span says was sent to and received from a model, as PostHog shows it.

Three generations of recording, each converted to PostHog's message shape
(``{"role": ..., "content": "text" or [items]}``, tool calls as ``{"type":
"function", ...}`` items, tool results as ``role: tool`` with ``tool_call_id``):

- the current semantic conventions: ``gen_ai.input.messages`` and
  ``gen_ai.output.messages`` (JSON, messages made of typed ``parts``), and
  ``gen_ai.system_instructions``;
- the older span events: ``gen_ai.{system,user,assistant,tool}.message`` and
  ``gen_ai.choice``, or ``gen_ai.content.prompt``/``completion``;
- Traceloop (OpenLLMetry): ``gen_ai.prompt.N.role``/``.content``/``.tool_calls.M.*``
  and ``gen_ai.completion.N.*``, and tools as ``llm.request.functions.N.*``.

``bounded`` keeps each content property under a size, so a long prompt shortens the
event instead of losing it. Pure: no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from posthog_otel import _otel
from posthog_otel._json import dumps

MAX_CONTENT_BYTES = 256 * 1024  # per property: three of them still fit PostHog's 1 MB
_MESSAGE_EVENTS = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}


def parse_json(value: Any, *, any_json: bool = False) -> Any:
    """A JSON array or object string decoded (``any_json``: any JSON value); anything
    else, or JSON that does not parse, as it is."""
    if isinstance(value, str) and (any_json or value[:1] in ("[", "{")):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return list(value) if isinstance(value, tuple) else value


def input_messages(
    attrs: Mapping[str, Any], events: Sequence[Any], *, indexed: bool = True
) -> list[Any] | None:
    """The messages sent, from whichever recording the span has (system instructions
    first). ``indexed=False``: the caller knows there are no Traceloop attributes."""
    messages = _from_semconv(attrs.get("gen_ai.input.messages"))
    if messages is None and indexed:
        messages = _indexed(attrs, "gen_ai.prompt.")
    if messages is None:
        messages = _plain(attrs.get("gen_ai.prompt"), "user")
    if messages is None and events:
        messages = _from_events(events, output=False)
    system = _from_parts(parse_json(attrs.get("gen_ai.system_instructions")))
    if system:
        messages = [{"role": "system", "content": system}, *(messages or [])]
    return messages


def output_messages(
    attrs: Mapping[str, Any], events: Sequence[Any], *, indexed: bool = True
) -> list[Any] | None:
    """The model's choices, from whichever recording the span has."""
    messages = _from_semconv(attrs.get("gen_ai.output.messages"))
    if messages is None and indexed:
        messages = _indexed(attrs, "gen_ai.completion.")
    if messages is None:
        messages = _plain(attrs.get("gen_ai.completion"), "assistant")
    if messages is None and events:
        messages = _from_events(events, output=True)
    return messages


def tool_definitions(attrs: Mapping[str, Any], *, indexed: bool = True) -> list[Any] | None:
    """The tools offered to the model: ``gen_ai.tool.definitions`` or Traceloop's."""
    tools = parse_json(attrs.get("gen_ai.tool.definitions"))
    if isinstance(tools, list):
        return tools
    if not indexed:
        return None
    found: dict[int, dict[str, Any]] = {}
    for key, value in attrs.items():
        if key.startswith("llm.request.functions."):
            index, _, field = key[len("llm.request.functions.") :].partition(".")
            if index.isdigit() and field:
                function = found.setdefault(int(index), {})
                function[field] = parse_json(value) if field == "parameters" else value
    if not found:
        return None
    return [{"type": "function", "function": found[i]} for i in sorted(found)]


def finish_reason(messages: list[Any] | None) -> str | None:
    """The first output message's ``finish_reason``, where the messages carry one."""
    for message in messages or ():
        reason = message.get("finish_reason") if isinstance(message, dict) else None
        if isinstance(reason, str):
            return reason
    return None


def without_finish_reasons(messages: list[Any]) -> list[Any]:
    return [
        {k: v for k, v in m.items() if k != "finish_reason"} if isinstance(m, dict) else m
        for m in messages
    ]


# -- the current conventions: messages of typed parts -------------------------------


def _from_semconv(raw: Any) -> list[Any] | None:
    if raw is None:
        return None
    messages = parse_json(raw)
    if not isinstance(messages, list):
        return [{"role": "user", "content": messages}]
    return [_message(m) for m in messages]


def _message(message: Any) -> Any:
    if not isinstance(message, dict) or not isinstance(message.get("parts"), list):
        return message  # already role/content, or something we pass on as recorded
    out: dict[str, Any] = {"role": message.get("role") or "user"}
    for part in message["parts"]:
        if isinstance(part, dict) and part.get("type") == "tool_call_response":
            out["tool_call_id"] = part.get("id")
    out["content"] = _from_parts(message["parts"])
    for key in ("name", "finish_reason"):
        if message.get(key):
            out[key] = message[key]
    return out


def _from_parts(parts: Any) -> Any:
    """Parts to PostHog content: one text part is a string, anything else a list of items."""
    if not isinstance(parts, list):
        return parts
    items = [_item(part) for part in parts]
    if len(items) == 1 and isinstance(items[0], dict) and items[0].get("type") == "text":
        return items[0]["text"]
    return items


def _item(part: Any) -> Any:
    if not isinstance(part, dict):
        return {"type": "text", "text": str(part)}
    kind = part.get("type")
    if kind == "text":
        return {"type": "text", "text": part.get("content", "")}
    if kind == "tool_call":
        function = {"name": part.get("name"), "arguments": part.get("arguments")}
        return {"type": "function", "id": part.get("id"), "function": function}
    if kind == "tool_call_response":
        response = part.get("response")
        text = response if isinstance(response, str) else json.dumps(response, default=str)
        return {"type": "text", "text": text}
    if kind == "reasoning":
        return {"type": "reasoning", "text": part.get("content", "")}
    if kind == "uri" and part.get("modality") == "image":
        return {"type": "image", "image": part.get("uri")}
    return dict(part)  # blobs, files and types from later conventions: as recorded


# -- Traceloop: gen_ai.prompt.0.role, gen_ai.prompt.0.tool_calls.1.name, ... --------


def _indexed(attrs: Mapping[str, Any], prefix: str) -> list[Any] | None:
    found: dict[int, dict[str, Any]] = {}
    for key, value in attrs.items():
        if not key.startswith(prefix):
            continue
        index, _, field = key[len(prefix) :].partition(".")
        if not index.isdigit() or not field:
            continue
        message = found.setdefault(int(index), {})
        if field.startswith("tool_calls."):
            call_index, _, call_field = field[len("tool_calls.") :].partition(".")
            if call_index.isdigit() and call_field:
                message.setdefault("tool_calls", {}).setdefault(int(call_index), {})[call_field] = (
                    value
                )
        else:
            message[field] = value
    if not found:
        return None
    return [_openai_message(found[i]) for i in sorted(found)]


def _openai_message(fields: dict[str, Any]) -> dict[str, Any]:
    """Chat-completions style fields (role, content, tool_calls) to PostHog's shape."""
    role = fields.get("role") or "user"
    content = parse_json(fields.get("content"))
    calls = fields.get("tool_calls")
    if isinstance(calls, dict):  # Traceloop's indexed calls
        calls = [calls[i] for i in sorted(calls)]
    if calls:
        items = [{"type": "text", "text": content}] if isinstance(content, str) and content else []
        items.extend(_function_item(call) for call in calls if isinstance(call, dict))
        content = items
    out = {"role": role, "content": content if content is not None else ""}
    tool_call_id = fields.get("tool_call_id") or (fields.get("id") if role == "tool" else None)
    if tool_call_id:
        out["tool_call_id"] = tool_call_id
    if isinstance(fields.get("finish_reason"), str):
        out["finish_reason"] = fields["finish_reason"]
    return out


def _function_item(call: Mapping[str, Any]) -> dict[str, Any]:
    function = call.get("function")
    function = parse_json(function) if function is not None else call
    name = function.get("name") if isinstance(function, dict) else None
    arguments = function.get("arguments") if isinstance(function, dict) else None
    return {
        "type": "function",
        "id": call.get("id"),
        "function": {"name": name, "arguments": arguments},
    }


def _plain(raw: Any, role: str) -> list[Any] | None:
    """``gen_ai.prompt``/``gen_ai.completion`` as one attribute: JSON messages or text."""
    if raw is None:
        return None
    value = parse_json(raw)
    if isinstance(value, list):
        return [_openai_message(m) if isinstance(m, dict) else m for m in value]
    return [{"role": role, "content": value}]


# -- the older span events ------------------------------------------------------------


def _from_events(events: Iterable[Any], *, output: bool) -> list[Any] | None:
    messages: list[Any] = []
    for event in events:
        name = event.name
        attrs = _otel.attributes_of(event)
        body = parse_json(attrs.get("gen_ai.event.content"))
        fields = body if isinstance(body, dict) else dict(attrs)
        if output and name == "gen_ai.choice":
            message = parse_json(fields.get("message")) or {}
            choice = dict(message) if isinstance(message, dict) else {"content": message}
            choice.setdefault("role", "assistant")
            if "finish_reason" in fields:
                choice["finish_reason"] = fields["finish_reason"]
            messages.append(_openai_message(choice))
        elif not output and name in _MESSAGE_EVENTS:
            calls = parse_json(fields.get("tool_calls"))
            messages.append(
                _openai_message({**fields, "role": _MESSAGE_EVENTS[name], "tool_calls": calls})
            )
        elif name == ("gen_ai.content.completion" if output else "gen_ai.content.prompt"):
            key = "gen_ai.completion" if output else "gen_ai.prompt"
            messages.extend(_plain(attrs.get(key), "assistant" if output else "user") or ())
    return messages or None


# -- size -------------------------------------------------------------------------------


def bounded(value: Any, limit: int = MAX_CONTENT_BYTES) -> Any:
    """``value`` if its JSON fits in ``limit`` bytes; else the same structure with its
    longest strings cut (each ending with a marker saying how much was cut). Strings
    of up to ``_KEEP`` bytes (roles, ids, names) are never cut."""
    if _rough_size(value) * 2 <= limit:  # even if escaping doubled it, it fits
        return value
    size = len(dumps(value))
    if size <= limit:
        return value
    lengths = sorted(n for n in map(_utf8_len, _strings(value)) if n > _KEEP)
    cap = _level(lengths, sum(lengths) - (size - limit) - 64 * len(lengths))
    while cap > _KEEP:
        cut = _cut(value, cap)
        if len(dumps(cut)) <= limit:
            return cut
        cap = cap * 3 // 4  # escapes made the strings longer than counted
    text = dumps(value)[: limit - 100].decode("utf-8", "ignore")
    return f"{text}... [posthog-otel cut {size - len(text):,} bytes of JSON]"


_KEEP = 128


def _utf8_len(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "replace"))


def _rough_size(value: Any) -> int:
    if isinstance(value, str):
        return _utf8_len(value)
    if isinstance(value, dict):
        return sum(len(k) + _rough_size(v) + 4 for k, v in value.items()) + 2
    if isinstance(value, (list, tuple)):
        return sum(_rough_size(v) + 1 for v in value) + 2
    return 8


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings(item)


def _level(lengths: list[int], budget: int) -> int:
    """The largest cap such that the strings, each cut to it, add up to ``budget``."""
    remaining = budget
    for i, length in enumerate(lengths):
        share = remaining // (len(lengths) - i)
        if length > share:
            return share
        remaining -= length
    return lengths[-1] if lengths else 0


def _cut(value: Any, cap: int) -> Any:
    """Every string over ``cap`` UTF-8 bytes cut to ``cap`` bytes, with a marker."""
    if isinstance(value, str):
        if _utf8_len(value) <= cap:
            return value
        kept = value[:cap] if value.isascii() else value.encode()[:cap].decode("utf-8", "ignore")
        return f"{kept}... [posthog-otel cut {len(value) - len(kept):,} characters]"
    if isinstance(value, dict):
        return {k: _cut(v, cap) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_cut(v, cap) for v in value]
    return value
