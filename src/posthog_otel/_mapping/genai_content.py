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

``bounded`` (in ``bounds``) keeps each content property under a size, so a long
prompt shortens the event instead of losing it; JSON is decoded within the bounds of
``_limits``, and an index that is not a plain number (``gen_ai.prompt.².content``)
leaves out that attribute alone. Pure: no I/O.

``CONTENT_KEYS`` and ``is_content`` name what ``privacy_mode`` keeps out of every event.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from posthog_otel import _otel
from posthog_otel._mapping.bounds import MAX_CONTENT_BYTES, Trims, bounded, decode_json

__all__ = [
    "CONTENT_EVENTS",
    "MAX_CONTENT_BYTES",
    "bounded",
    "finish_reason",
    "input_messages",
    "is_content",
    "output_messages",
    "parse_json",
    "tool_definitions",
    "without_finish_reasons",
]

# What a model was sent and gave back, under every convention we read (and OpenInference's
# and Traceloop's entity values): privacy_mode sends none of it, in any event.
CONTENT_KEYS = frozenset(
    {
        "gen_ai.input.messages",
        "gen_ai.output.messages",
        "gen_ai.system_instructions",
        "gen_ai.tool.call.arguments",
        "gen_ai.tool.call.result",
        "gen_ai.prompt",
        "gen_ai.completion",
        "gen_ai.event.content",
        "gen_ai.retrieval.query.text",
        "gen_ai.retrieval.documents",
        "traceloop.entity.input",
        "traceloop.entity.output",
        "input.value",
        "output.value",
        "llm.prompts",
        "llm.completions",
    }
)
_CONTENT_PREFIXES = (
    "gen_ai.prompt.",
    "gen_ai.completion.",
    "llm.input_messages.",
    "llm.output_messages.",
    "llm.prompts.",
)
# Span events and log records (event names) of the GenAI conventions that carry content
# in their attributes or body, whatever the keys are called.
CONTENT_EVENTS = ("gen_ai.",)
_CONTENT_FIELDS = frozenset({"content", "message", "tool_calls", "arguments", "result"})


def is_content(key: str, event_name: str | None = None) -> bool:
    """Whether attribute ``key`` (of an event or record called ``event_name``) holds what
    a model was sent or gave back."""
    if key in CONTENT_KEYS or key.startswith(_CONTENT_PREFIXES):
        return True
    return (
        key in _CONTENT_FIELDS and bool(event_name) and str(event_name).startswith(CONTENT_EVENTS)
    )


_MESSAGE_EVENTS = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}


def parse_json(value: Any, trims: Trims, *, any_json: bool = False) -> Any:
    """A JSON array or object string decoded within bounds (``any_json``: any JSON
    value); anything else, or JSON that does not parse, as it is."""
    if isinstance(value, str):
        return decode_json(value, trims, any_json=any_json)
    return list(value) if isinstance(value, tuple) else value


def input_messages(
    attrs: Mapping[str, Any], events: Sequence[Any], trims: Trims, *, indexed: bool = True
) -> list[Any] | None:
    """The messages sent, from whichever recording the span has (system instructions
    first). ``indexed=False``: the caller knows there are no Traceloop attributes."""
    messages = _from_semconv(attrs.get("gen_ai.input.messages"), trims)
    if messages is None and indexed:
        messages = _indexed(attrs, "gen_ai.prompt.", trims)
    if messages is None:
        messages = _plain(attrs.get("gen_ai.prompt"), "user", trims)
    if messages is None and events:
        messages = _from_events(events, trims, output=False)
    system = _from_parts(parse_json(attrs.get("gen_ai.system_instructions"), trims))
    if system:
        messages = [{"role": "system", "content": system}, *(messages or [])]
    return messages


def output_messages(
    attrs: Mapping[str, Any], events: Sequence[Any], trims: Trims, *, indexed: bool = True
) -> list[Any] | None:
    """The model's choices, from whichever recording the span has."""
    messages = _from_semconv(attrs.get("gen_ai.output.messages"), trims)
    if messages is None and indexed:
        messages = _indexed(attrs, "gen_ai.completion.", trims)
    if messages is None:
        messages = _plain(attrs.get("gen_ai.completion"), "assistant", trims)
    if messages is None and events:
        messages = _from_events(events, trims, output=True)
    return messages


def tool_definitions(
    attrs: Mapping[str, Any], trims: Trims, *, indexed: bool = True
) -> list[Any] | None:
    """The tools offered to the model: ``gen_ai.tool.definitions`` or Traceloop's."""
    tools = parse_json(attrs.get("gen_ai.tool.definitions"), trims)
    if isinstance(tools, list):
        return tools
    if not indexed:
        return None
    found: dict[int, dict[str, Any]] = {}
    for key, value in attrs.items():
        if key.startswith("llm.request.functions."):
            index, _, field = key[len("llm.request.functions.") :].partition(".")
            number = _index(index)
            if number is not None and field:
                function = found.setdefault(number, {})
                function[field] = parse_json(value, trims) if field == "parameters" else value
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


def _from_semconv(raw: Any, trims: Trims) -> list[Any] | None:
    if raw is None:
        return None
    messages = parse_json(raw, trims)
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


def _index(text: str) -> int | None:
    """A Traceloop index: plain ASCII digits, a few of them (``"²".isdigit()`` is true)."""
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 6 else None


def _indexed(attrs: Mapping[str, Any], prefix: str, trims: Trims) -> list[Any] | None:
    found: dict[int, dict[str, Any]] = {}
    for key, value in attrs.items():
        if not key.startswith(prefix):
            continue
        index, _, field = key[len(prefix) :].partition(".")
        number = _index(index)
        if number is None or not field:
            if index.isdigit():  # looks like an index, but is not one we can use
                trims.note("invalid_property")
            continue
        message = found.setdefault(number, {})
        if field.startswith("tool_calls."):
            call_index, _, call_field = field[len("tool_calls.") :].partition(".")
            call_number = _index(call_index)
            if call_number is not None and call_field:
                message.setdefault("tool_calls", {}).setdefault(call_number, {})[call_field] = value
            elif call_index.isdigit():
                trims.note("invalid_property")
        else:
            message[field] = value
    if not found:
        return None
    return [_openai_message(found[i], trims) for i in sorted(found)]


def _openai_message(fields: dict[str, Any], trims: Trims) -> dict[str, Any]:
    """Chat-completions style fields (role, content, tool_calls) to PostHog's shape."""
    role = fields.get("role") or "user"
    content = parse_json(fields.get("content"), trims)
    calls = fields.get("tool_calls")
    if isinstance(calls, dict):  # Traceloop's indexed calls
        calls = [calls[i] for i in sorted(calls)]
    if calls:
        items = [{"type": "text", "text": content}] if isinstance(content, str) and content else []
        items.extend(_function_item(call, trims) for call in calls if isinstance(call, dict))
        content = items
    out = {"role": role, "content": content if content is not None else ""}
    tool_call_id = fields.get("tool_call_id") or (fields.get("id") if role == "tool" else None)
    if tool_call_id:
        out["tool_call_id"] = tool_call_id
    if isinstance(fields.get("finish_reason"), str):
        out["finish_reason"] = fields["finish_reason"]
    return out


def _function_item(call: Mapping[str, Any], trims: Trims) -> dict[str, Any]:
    function = call.get("function")
    function = parse_json(function, trims) if function is not None else call
    name = function.get("name") if isinstance(function, dict) else None
    arguments = function.get("arguments") if isinstance(function, dict) else None
    return {
        "type": "function",
        "id": call.get("id"),
        "function": {"name": name, "arguments": arguments},
    }


def _plain(raw: Any, role: str, trims: Trims) -> list[Any] | None:
    """``gen_ai.prompt``/``gen_ai.completion`` as one attribute: JSON messages or text."""
    if raw is None:
        return None
    value = parse_json(raw, trims)
    if isinstance(value, list):
        return [_openai_message(m, trims) if isinstance(m, dict) else m for m in value]
    return [{"role": role, "content": value}]


# -- the older span events ------------------------------------------------------------


def _from_events(events: Iterable[Any], trims: Trims, *, output: bool) -> list[Any] | None:
    messages: list[Any] = []
    for event in events:
        name = event.name
        attrs = _otel.attributes_of(event)
        body = parse_json(attrs.get("gen_ai.event.content"), trims)
        fields = body if isinstance(body, dict) else dict(attrs)
        if output and name == "gen_ai.choice":
            message = parse_json(fields.get("message"), trims) or {}
            choice = dict(message) if isinstance(message, dict) else {"content": message}
            choice.setdefault("role", "assistant")
            if "finish_reason" in fields:
                choice["finish_reason"] = fields["finish_reason"]
            messages.append(_openai_message(choice, trims))
        elif not output and name in _MESSAGE_EVENTS:
            calls = parse_json(fields.get("tool_calls"), trims)
            fields = {**fields, "role": _MESSAGE_EVENTS[name], "tool_calls": calls}
            messages.append(_openai_message(fields, trims))
        elif name == ("gen_ai.content.completion" if output else "gen_ai.content.prompt"):
            key = "gen_ai.completion" if output else "gen_ai.prompt"
            role = "assistant" if output else "user"
            messages.extend(_plain(attrs.get(key), role, trims) or ())
    return messages or None
