"""GenAI spans to PostHog's LLM analytics events. Pure: no I/O.

A span is a GenAI span when it has ``gen_ai.operation.name`` (OpenTelemetry's GenAI
conventions), Traceloop's ``llm.request.type`` or OpenInference's
``openinference.span.kind``; it needs no tag. Its event:

- ``$ai_generation`` for ``chat``, ``text_completion``, ``generate_content`` (and
  Traceloop's ``completion``, OpenInference's ``LLM``), ``$ai_embedding`` for
  ``embeddings`` (OpenInference's ``EMBEDDING``);
- otherwise ``$ai_span`` inside another GenAI span, and ``$ai_trace`` when it is the
  outermost one (an agent invocation, an OpenInference ``CHAIN`` or ``AGENT``).

A span that looks like GenAI (a provider or model attribute of any of these
conventions) but has no operation we know gives no event: ``unmapped`` names why, for
the pipeline to count and log.

Nesting comes from ``posthog.ai.parent_id``, which the span processor writes on every
span started under a GenAI span (``parent_for_children``): the nearest GenAI
ancestor's span id, or the trace id when that ancestor is the ``$ai_trace`` itself,
as PostHog's trace tree expects. Property names follow PostHog's LLM analytics
schema; messages are converted as below.

Content: what a GenAI span says was sent to and received from a model, as PostHog shows it.

Three generations of recording, each converted to PostHog's message shape
(``{"role": ..., "content": "text" or [items]}``, tool calls as ``{"type":
"function", ...}`` items, tool results as ``role: tool`` with ``tool_call_id``):

- the current semantic conventions: ``gen_ai.input.messages`` and
  ``gen_ai.output.messages`` (JSON, messages made of typed ``parts``), and
  ``gen_ai.system_instructions``;
- the older span events: ``gen_ai.{system,user,assistant,tool}.message`` and
  ``gen_ai.choice``, or ``gen_ai.content.prompt``/``completion``;
- Traceloop (OpenLLMetry): ``gen_ai.prompt.N.role``/``.content``/``.tool_calls.M.*``
  and ``gen_ai.completion.N.*``, and tools as ``llm.request.functions.N.*``;
- OpenInference: ``llm.input_messages.N.message.role``/``.content``/``.contents.M.*``/
  ``.tool_calls.M.tool_call.*`` and ``llm.output_messages.N.message.*``, else
  ``input.value``/``output.value``; tools as ``llm.tools.N.tool.json_schema``.

``bounded`` (in ``bounds``) keeps each content property under a size, so a long
prompt shortens the event instead of losing it; JSON is decoded within the bounds of
``_limits``, and an index that is not a plain number (``gen_ai.prompt.².content``)
leaves out that attribute alone. Pure: no I/O.

``CONTENT_KEYS`` and ``is_content`` name what ``privacy_mode`` keeps out of every event.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from posthog_otel import _otel
from posthog_otel._limits import MAX_STRING_LENGTH
from posthog_otel._mapping.bounds import (
    Trims,
    bounded,
    clip,
    decode_json,
    is_plain_sequence,
)

OPERATION = "gen_ai.operation.name"
LLM_REQUEST_TYPE = "llm.request.type"
OPENINFERENCE_KIND = "openinference.span.kind"
AI_PARENT = "posthog.ai.parent_id"
# OpenInference's span kinds (OpenInferenceSpanKindValues) -> the event, when not $ai_span
_OPENINFERENCE_MODEL_CALLS = {"LLM": "$ai_generation", "EMBEDDING": "$ai_embedding"}
_OPENINFERENCE_STEPS = frozenset(
    {
        "CHAIN",
        "TOOL",
        "AGENT",
        "RETRIEVER",
        "RERANKER",
        "GUARDRAIL",
        "EVALUATOR",
        "PROMPT",
        "DECISION",
    }
)
_GENAI_SCOPES = ("openinference.instrumentation.",)
_FIRST_CHUNK_EVENT = "First Token Stream Event"  # OpenInference's OpenAI streams

_GENERATIONS = frozenset({"chat", "text_completion", "generate_content", "completion"})
_EMBEDDINGS = frozenset({"embeddings", "embedding"})
# Read here (or content, which privacy mode must not leak): never passed on as is.
_NAMESPACES = ("gen_ai.", "llm.", "traceloop.", "input.", "output.")
# and OpenInference's, on its spans only (``tool.name`` may be anyone's elsewhere)
_OPENINFERENCE_NAMESPACES = (
    *_NAMESPACES,
    "openinference.",
    "embedding.",
    "retrieval.",
    "reranker.",
    "tool.",
    "tool_call.",
    "message.",
    "session.id",
    "user.id",
)
_MAPPED = frozenset(
    {"error.type", "server.address", "server.port", "http.response.status_code", "http.status_code"}
)
_TRACELOOP_PROPERTIES = "traceloop.association.properties."
_STATUS_IN_MESSAGE = re.compile(r"Error code: (\d{3})\b")  # OpenAI's and Anthropic's SDKs

# property -> the attributes that give it, the first present winning
_PROPERTIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "$ai_model",
        (
            "gen_ai.response.model",
            "gen_ai.request.model",
            "llm.response.model",
            "llm.model_name",  # OpenInference: the response's model when it has one
            "embedding.model_name",
            "reranker.model_name",
        ),
    ),
    ("$ai_provider", ("gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system")),
    (
        "$ai_input_tokens",
        ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt"),
    ),
    (
        "$ai_output_tokens",
        (
            "gen_ai.usage.output_tokens",
            "gen_ai.usage.completion_tokens",
            "llm.token_count.completion",
        ),
    ),
    (
        "$ai_cache_read_input_tokens",
        (
            "gen_ai.usage.cache_read.input_tokens",
            "gen_ai.usage.cache_read_input_tokens",
            "llm.token_count.prompt_details.cache_read",
        ),
    ),
    (
        "$ai_cache_creation_input_tokens",
        (
            "gen_ai.usage.cache_creation.input_tokens",
            "gen_ai.usage.cache_creation_input_tokens",
            "llm.token_count.prompt_details.cache_write",
        ),
    ),
    (
        "$ai_reasoning_tokens",
        (
            "gen_ai.usage.reasoning.output_tokens",
            "llm.token_count.completion_details.reasoning",
        ),
    ),
    ("$ai_session_id", ("gen_ai.conversation.id", "session.id")),
    ("$ai_response_id", ("gen_ai.response.id",)),
    ("$ai_stream", ("gen_ai.request.stream", "llm.is_streaming")),
    ("$ai_time_to_first_token", ("gen_ai.response.time_to_first_chunk",)),
    ("$ai_temperature", ("gen_ai.request.temperature",)),
    ("$ai_max_tokens", ("gen_ai.request.max_tokens", "llm.request.max_tokens")),
    ("$ai_http_status", ("http.response.status_code", "http.status_code")),
    (
        "$ai_stop_reason",
        (
            "gen_ai.response.finish_reasons",
            "llm.response.finish_reason",
            "llm.response.stop_reason",
            "llm.finish_reason",
        ),
    ),
)
# $ai_model_parameters entry -> the attributes that give it
_PARAMETERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("temperature", ("gen_ai.request.temperature",)),
    ("max_tokens", ("gen_ai.request.max_tokens", "llm.request.max_tokens")),
    ("top_p", ("gen_ai.request.top_p",)),
    ("top_k", ("gen_ai.request.top_k", "llm.top_k")),
    ("frequency_penalty", ("gen_ai.request.frequency_penalty", "llm.frequency_penalty")),
    ("presence_penalty", ("gen_ai.request.presence_penalty", "llm.presence_penalty")),
    ("seed", ("gen_ai.request.seed", "gen_ai.openai.request.seed")),
    ("stop", ("gen_ai.request.stop_sequences", "llm.chat.stop_sequences")),
    ("n", ("gen_ai.request.choice.count",)),
    ("stream", ("gen_ai.request.stream", "llm.is_streaming")),
)
# attribute -> where it goes: (True for a property, False for a parameter, name, rank);
# one pass over a span's attributes fills both.
_SOURCES: dict[str, list[tuple[bool, str, int]]] = {}
for _is_property, _table in ((True, _PROPERTIES), (False, _PARAMETERS)):
    for _name, _keys in _table:
        for _rank, _key in enumerate(_keys):
            _SOURCES.setdefault(_key, []).append((_is_property, _name, _rank))
_INDEXED = (
    "gen_ai.prompt.",
    "gen_ai.completion.",
    "llm.request.functions.",
    "llm.input_messages.",
    "llm.output_messages.",
    "llm.tools.",
    "embedding.embeddings.",
)
# llm.invocation_parameters (OpenInference: the request's JSON, less the messages) entry ->
# the $ai_model_parameters entry
_INVOCATION_PARAMETERS = {
    "temperature": "temperature",
    "max_tokens": "max_tokens",
    "max_completion_tokens": "max_tokens",
    "max_output_tokens": "max_tokens",
    "top_p": "top_p",
    "top_k": "top_k",
    "frequency_penalty": "frequency_penalty",
    "presence_penalty": "presence_penalty",
    "seed": "seed",
    "stop": "stop",
    "n": "n",
    "stream": "stream",
}
_PARAMETER_PROPERTIES = {
    "temperature": "$ai_temperature",
    "max_tokens": "$ai_max_tokens",
    "stream": "$ai_stream",
}


GENAI_KEYS = frozenset(
    {
        OPERATION,
        LLM_REQUEST_TYPE,
        OPENINFERENCE_KIND,
        "gen_ai.system",
        "gen_ai.provider.name",
        "gen_ai.request.model",
        "llm.model_name",
        "llm.system",
        "embedding.model_name",
    }
)
"""Attributes only GenAI spans carry, of any convention: a span with one ``is_genai``
(the span hook tests them all in one ``isdisjoint``)."""


def is_genai(attrs: Mapping[str, Any]) -> bool:
    """Whether a span with these attributes is, or looks like, a GenAI span: it becomes
    an LLM analytics event, or (``unmapped``) a counted reason why not. Past the three
    markers, attributes only GenAI spans carry, of any convention (``GENAI_KEYS``)."""
    return not GENAI_KEYS.isdisjoint(attrs)


def unmapped(attrs: Mapping[str, Any]) -> str | None:
    """Why a span ``is_genai`` gives no LLM analytics event, or ``None`` when it gives one:
    ``genai_no_operation`` (a GenAI attribute but no operation or span kind),
    ``genai_unknown_kind`` (an OpenInference span kind we do not know, ``UNKNOWN`` too)."""
    if OPERATION in attrs or LLM_REQUEST_TYPE in attrs:
        return None
    kind = attrs.get(OPENINFERENCE_KIND)
    if kind is None:
        return "genai_no_operation"
    if isinstance(kind, str) and (
        kind in _OPENINFERENCE_MODEL_CALLS or kind in _OPENINFERENCE_STEPS
    ):
        return None
    return "genai_unknown_kind"


def openinference_user(attrs: Mapping[str, Any]) -> str | None:
    """OpenInference's ``user.id`` on its own spans: it names who the LLM call is for,
    before the identity the span inherited."""
    if OPENINFERENCE_KIND not in attrs:
        return None
    user = attrs.get("user.id")
    return user if isinstance(user, str) and user.strip() else None


def is_genai_scope(scope_name: Any) -> bool:
    """Whether every span of this instrumentation scope is a GenAI span, though it may
    say so only as it ends (OpenInference's LangChain tracer sets every attribute then)."""
    return isinstance(scope_name, str) and scope_name.startswith(_GENAI_SCOPES)


def parent_for_children(
    attrs: Mapping[str, Any], span_id: int, trace_id: int, *, genai_scope: bool = False
) -> str | None:
    """``posthog.ai.parent_id`` for spans started under a span with these attributes:
    ``None`` outside GenAI spans (the caller checks ``is_genai`` or the key first).
    ``genai_scope``: the span is of an ``is_genai_scope`` scope, so a GenAI span even
    before its attributes say which (at the top, taken to be the ``$ai_trace``)."""
    if genai_scope and (not is_genai(attrs) or unmapped(attrs) is not None):
        if AI_PARENT in attrs:
            return "%016x" % span_id  # noqa: UP031
        return "%032x" % trace_id  # noqa: UP031
    if is_genai(attrs) and unmapped(attrs) is None:
        if AI_PARENT not in attrs and event_name(attrs) == "$ai_trace":
            return "%032x" % trace_id  # noqa: UP031 - as the mapping formats ids
        return "%016x" % span_id  # noqa: UP031
    inherited = attrs.get(AI_PARENT)
    return inherited if isinstance(inherited, str) else None


def event_name(attrs: Mapping[str, Any]) -> str:
    """The event a mapped GenAI span (``unmapped`` is ``None``) becomes."""
    operation = attrs.get(OPERATION) or attrs.get(LLM_REQUEST_TYPE)
    if operation is None:
        kind = attrs.get(OPENINFERENCE_KIND)
        model_call = _OPENINFERENCE_MODEL_CALLS.get(kind) if isinstance(kind, str) else None
        if model_call:
            return model_call
    elif operation in _GENERATIONS:
        return "$ai_generation"
    if operation in _EMBEDDINGS:
        return "$ai_embedding"
    return "$ai_span" if attrs.get(AI_PARENT) else "$ai_trace"


def genai_event(
    span: ReadableSpan,
    attrs: Mapping[str, Any],
    plain: Mapping[str, Any],
    privacy_mode: bool,
    trims: Trims,
) -> tuple[str, dict[str, Any], int]:
    """The event name, its LLM analytics properties, and its time (the span's start, so
    a trace's events sort in call order). ``plain`` is the span's sendable attributes.

    Each content property is made on its own: one that cannot be (an attribute no
    bound foresaw) is left out and noted in ``trims`` as ``invalid_property``, and the
    event goes without it."""
    ctx = span.context
    trace_hex = "%032x" % ctx.trace_id if ctx else "0" * 32  # noqa: UP031
    name = event_name(attrs)
    props: dict[str, Any] = {
        "$ai_trace_id": trace_hex,
        "$ai_span_id": "%016x" % ctx.span_id if ctx else "0" * 16,  # noqa: UP031
        "$ai_span_name": span.name,
    }
    if name != "$ai_trace":
        parent = attrs.get(AI_PARENT)
        props["$ai_parent_id"] = parent if isinstance(parent, str) and parent else trace_hex
    parameters, indexed = _scan(attrs, props, trims)
    openinference = OPERATION not in attrs and LLM_REQUEST_TYPE not in attrs
    events = _otel.ACCESS.events(span)
    if openinference:
        _openinference(span, attrs, events, props, parameters, trims)
    if span.start_time and span.end_time:
        props["$ai_latency"] = (span.end_time - span.start_time) / 1e9
    _error(span, attrs, props)
    base_url = _base_url(attrs)
    if base_url:
        props["$ai_base_url"] = base_url
    if name in ("$ai_generation", "$ai_embedding"):
        if parameters:
            props["$ai_model_parameters"] = parameters
        try:
            tools = tool_definitions(attrs, trims, indexed=indexed)
            if tools:
                props["$ai_tools"] = bounded(tools)
        except Exception:  # noqa: BLE001 - this property only
            trims.note("invalid_property")
        output = name == "$ai_generation"
        _messages(attrs, events, props, privacy_mode, indexed, output, trims)
    elif not privacy_mode:
        _states(attrs, events, props, indexed, trims)
    namespaces = _OPENINFERENCE_NAMESPACES if openinference else _NAMESPACES
    for key, value in plain.items():
        if key.startswith(_TRACELOOP_PROPERTIES):
            props[key[len(_TRACELOOP_PROPERTIES) :]] = value
        elif not key.startswith(namespaces) and key not in _MAPPED:
            props[key] = value
    return name, props, span.start_time or span.end_time or time.time_ns()


def _scan(
    attrs: Mapping[str, Any], props: dict[str, Any], trims: Trims
) -> tuple[dict[str, Any], bool]:
    """One pass over the attributes: the mapped properties (into ``props``), the model
    parameters (each within the bounds), and whether any indexed (Traceloop) attributes
    are present."""
    parameters: dict[str, Any] = {}
    ranks: dict[tuple[bool, str], int] = {}
    indexed = False
    for key, value in attrs.items():
        targets = _SOURCES.get(key)
        if targets is None:
            indexed = indexed or key.startswith(_INDEXED)
            continue
        if isinstance(value, tuple):
            value = list(value) if is_plain_sequence(value) else clip(value, trims)
        elif isinstance(value, str) and len(value) > MAX_STRING_LENGTH:
            value = clip(value, trims)
        for is_property, name, rank in targets:
            if ranks.get((is_property, name), 99) > rank:
                ranks[is_property, name] = rank
                (props if is_property else parameters)[name] = value
    reason = props.get("$ai_stop_reason")
    if isinstance(reason, list):  # gen_ai.response.finish_reasons: one per choice
        if reason and isinstance(reason[0], str):
            props["$ai_stop_reason"] = reason[0]
        else:
            del props["$ai_stop_reason"]
    return parameters, indexed


def _openinference(
    span: ReadableSpan,
    attrs: Mapping[str, Any],
    events: Sequence[Any] | None,
    props: dict[str, Any],
    parameters: dict[str, Any],
    trims: Trims,
) -> None:
    """What OpenInference records apart: the request's parameters as one JSON attribute,
    and a stream's first token as a span event."""
    raw = attrs.get("llm.invocation_parameters") or attrs.get("embedding.invocation_parameters")
    given = parse_json(raw, trims) if raw is not None else None
    if isinstance(given, dict):
        model = given.get("model")
        if "$ai_model" not in props and isinstance(model, str) and model:
            props["$ai_model"] = clip(model, trims)  # the request's, when no answer named one
        for key, name in _INVOCATION_PARAMETERS.items():
            value = given.get(key)
            if value is not None and name not in parameters:
                parameters[name] = clip(value, trims)
                prop = _PARAMETER_PROPERTIES.get(name)
                if prop and prop not in props:
                    props[prop] = parameters[name]
    if span.start_time:
        for event in events or ():
            if event.name == _FIRST_CHUNK_EVENT and event.timestamp:
                props["$ai_time_to_first_token"] = (event.timestamp - span.start_time) / 1e9
                break


def _messages(
    attrs: Mapping[str, Any],
    events: Any,
    props: dict[str, Any],
    privacy_mode: bool,
    indexed: bool,
    has_output: bool,
    trims: Trims,
) -> None:
    """A model call's messages, and the stop reason when only they carry it."""
    outputs = None
    try:
        outputs = output_messages(attrs, events, trims, indexed=indexed) if has_output else None
        if "$ai_stop_reason" not in props:
            reason = finish_reason(outputs)
            if reason:
                props["$ai_stop_reason"] = reason
        if outputs is not None and not privacy_mode:
            props["$ai_output_choices"] = bounded(without_finish_reasons(outputs))
    except Exception:  # noqa: BLE001 - this property only
        trims.note("invalid_property")
    if privacy_mode:
        return
    try:
        inputs = input_messages(attrs, events, trims, indexed=indexed)
        if inputs is not None:
            props["$ai_input"] = bounded(inputs)
    except Exception:  # noqa: BLE001 - this property only
        trims.note("invalid_property")


def _states(
    attrs: Mapping[str, Any], events: Any, props: dict[str, Any], indexed: bool, trims: Trims
) -> None:
    """What an agent or tool span took in and gave back."""
    _state(
        props,
        "$ai_input_state",
        attrs,
        ("gen_ai.tool.call.arguments", "input.value"),  # ours, then OpenInference's
        lambda: input_messages(attrs, events, trims, indexed=indexed),
        trims,
    )
    _state(
        props,
        "$ai_output_state",
        attrs,
        ("gen_ai.tool.call.result", "output.value"),
        lambda: output_messages(attrs, events, trims, indexed=indexed),
        trims,
    )


def _state(
    props: dict[str, Any],
    name: str,
    attrs: Mapping[str, Any],
    keys: tuple[str, str],
    messages: Callable[[], Any],
    trims: Trims,
) -> None:
    """One side of a step: the first JSON attribute of ``keys`` present, else its messages.
    A value that fails costs this property only."""
    try:
        raw = next((attrs[key] for key in keys if attrs.get(key) is not None), None)
        value = parse_json(raw, trims, any_json=True) if raw is not None else messages()
        if value is not None:
            props[name] = bounded(value)
    except Exception:  # noqa: BLE001 - this property only
        trims.note("invalid_property")


def _error(span: ReadableSpan, attrs: Mapping[str, Any], props: dict[str, Any]) -> None:
    """``$ai_is_error`` and ``$ai_error`` from the status, ``error.type``, the last exception."""
    status = span.status
    error_type = attrs.get("error.type")
    if status.status_code is not StatusCode.ERROR and error_type is None:
        return
    props["$ai_is_error"] = True
    message = status.description
    if not message:
        for event in reversed(_otel.ACCESS.events(span) or ()):
            if event.name == "exception":
                eattrs = _otel.ACCESS.attributes(event)
                message = f"{eattrs.get('exception.type')}: {eattrs.get('exception.message')}"
                break
    props["$ai_error"] = message or str(error_type)
    match = _STATUS_IN_MESSAGE.search(message or "")  # OpenInference: "NotFoundError: Error..."
    if match and "$ai_http_status" not in props:
        props["$ai_http_status"] = int(match.group(1))


def _base_url(attrs: Mapping[str, Any]) -> str | None:
    """Traceloop's recorded base URL, else one from ``server.address`` and ``server.port``
    (the scheme a guess: https on 443 or no port, the OpenAI instrumentation's habit)."""
    explicit = attrs.get("gen_ai.openai.api_base")
    if isinstance(explicit, str) and explicit:
        return explicit
    host = attrs.get("server.address")
    if not isinstance(host, str) or not host:
        return None
    port = attrs.get("server.port")
    return f"https://{host}" if port in (None, 443) else f"http://{host}:{port}"


def _first(attrs: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        value = attrs.get(key)
        if value is not None:
            return list(value) if isinstance(value, tuple) else value
    return None


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
        # OpenInference's besides input.value and output.value
        "llm.input_messages",
        "llm.output_messages",
        "llm.choices",
        "llm.function_call",
        "llm.prompt_template.variables",
        "input.images",
        "output.images",
        "input.documents",
        "output.documents",
        "retrieval.documents",
        "reranker.query",
        "reranker.input_documents",
        "reranker.output_documents",
        "embedding.embeddings",
    }
)
_CONTENT_PREFIXES = (
    "gen_ai.prompt.",
    "gen_ai.completion.",
    "llm.input_messages.",
    "llm.output_messages.",
    "llm.prompts.",
    "llm.choices.",
    "input.images.",
    "output.images.",
    "input.documents.",
    "output.documents.",
    "retrieval.documents.",
    "reranker.input_documents.",
    "reranker.output_documents.",
    "embedding.embeddings.",  # their texts (and vectors, which say as much)
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
    if messages is None and indexed:
        messages = _openinference_messages(attrs, "llm.input_messages.", trims)
    if messages is None and indexed:
        messages = _embedding_texts(attrs)
    if messages is None:
        messages = _plain(attrs.get("gen_ai.prompt"), "user", trims)
    if messages is None and events:
        messages = _from_events(events, trims, output=False)
    if messages is None and OPENINFERENCE_KIND in attrs:
        messages = _plain(attrs.get("input.value"), "user", trims)
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
    if messages is None and indexed:
        messages = _openinference_messages(attrs, "llm.output_messages.", trims)
    if messages is None:
        messages = _plain(attrs.get("gen_ai.completion"), "assistant", trims)
    if messages is None and events:
        messages = _from_events(events, trims, output=True)
    if messages is None and OPENINFERENCE_KIND in attrs:
        messages = _plain(attrs.get("output.value"), "assistant", trims)
    return messages


def tool_definitions(
    attrs: Mapping[str, Any], trims: Trims, *, indexed: bool = True
) -> list[Any] | None:
    """The tools offered to the model: ``gen_ai.tool.definitions``, Traceloop's or
    OpenInference's."""
    tools = parse_json(attrs.get("gen_ai.tool.definitions"), trims)
    if isinstance(tools, list):
        return tools
    if not indexed:
        return None
    schemas: dict[int, Any] = {}
    for key, value in attrs.items():
        if key.startswith("llm.tools.") and key.endswith(".tool.json_schema"):
            number = _index(key[len("llm.tools.") : -len(".tool.json_schema")])
            if number is not None:
                schemas[number] = parse_json(value, trims)
    if schemas:
        return [schemas[i] for i in sorted(schemas)]
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


# -- OpenInference: llm.input_messages.0.message.role, ....tool_calls.1.tool_call.id, ... --


def _openinference_messages(
    attrs: Mapping[str, Any], prefix: str, trims: Trims
) -> list[Any] | None:
    found: dict[int, dict[str, Any]] = {}
    for key, value in attrs.items():
        if not key.startswith(prefix):
            continue
        index, _, field = key[len(prefix) :].partition(".")
        number = _index(index)
        if number is None or not field.startswith("message."):
            trims.note("invalid_property")
            continue
        message = found.setdefault(number, {})
        field = field[len("message.") :]
        group, _, rest = field.partition(".")
        if group in ("contents", "tool_calls") and rest:
            item_index, _, item_field = rest.partition(".")
            item_number = _index(item_index)
            item_field = item_field.partition(".")[2]  # past message_content. / tool_call.
            if item_number is None or not item_field:
                trims.note("invalid_property")
                continue
            message.setdefault(group, {}).setdefault(item_number, {})[item_field] = value
        else:
            message[field] = value
    if not found:
        return None
    return [_openinference_message(found[i], trims) for i in sorted(found)]


def _openinference_message(fields: dict[str, Any], trims: Trims) -> dict[str, Any]:
    calls = fields.get("tool_calls") or {}
    chat: dict[str, Any] = {
        "role": fields.get("role"),
        "content": fields.get("content"),
        "tool_calls": [
            {
                "id": calls[i].get("id"),
                "function": {
                    "name": calls[i].get("function.name"),
                    "arguments": calls[i].get("function.arguments"),
                },
            }
            for i in sorted(calls)
        ],
        "tool_call_id": fields.get("tool_call_id"),
    }
    if fields.get("function_call_name"):  # the legacy function_call
        chat["tool_calls"].append(
            {
                "function": {
                    "name": fields["function_call_name"],
                    "arguments": fields.get("function_call_arguments_json"),
                }
            }
        )
    contents = fields.get("contents")
    if chat["content"] is None and contents:
        items = [_content_item(contents[i]) for i in sorted(contents)]
        one_text = len(items) == 1 and items[0].get("type") == "text"
        chat["content"] = items[0]["text"] if one_text else items
    out = _openai_message(chat, trims)
    if isinstance(fields.get("name"), str):
        out["name"] = fields["name"]
    return out


def _content_item(fields: dict[str, Any]) -> dict[str, Any]:
    kind = fields.get("type")
    if kind == "text":
        return {"type": "text", "text": fields.get("text", "")}
    if kind == "image":
        return {"type": "image", "image": fields.get("image.image.url")}
    return dict(fields)


def _embedding_texts(attrs: Mapping[str, Any]) -> list[Any] | None:
    """``embedding.embeddings.N.embedding.text`` as user messages (never the vectors)."""
    texts: dict[int, Any] = {}
    for key, value in attrs.items():
        if key.startswith("embedding.embeddings.") and key.endswith(".embedding.text"):
            number = _index(key[len("embedding.embeddings.") : -len(".embedding.text")])
            if number is not None:
                texts[number] = value
    if not texts:
        return None
    return [{"role": "user", "content": texts[i]} for i in sorted(texts)]


# -- the older span events ------------------------------------------------------------


def _from_events(events: Iterable[Any], trims: Trims, *, output: bool) -> list[Any] | None:
    messages: list[Any] = []
    for event in events:
        name = event.name
        attrs = _otel.ACCESS.attributes(event)
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
