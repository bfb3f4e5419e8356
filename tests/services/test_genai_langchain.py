"""A LangChain chain with a tool under both families of LangChain instrumentation
(OpenInference's, Traceloop's OpenLLMetry) becomes one ``$ai_trace``: the chain at the
top, its steps, the model call and the tool under the right parents.

The chain runs in a subprocess (langchain_calls.py): the instrumentations patch
LangChain for the whole process. The chat model is LangChain's own fake.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.support import paths
from tests.support.server import API_KEY

HERE = paths.TESTS / "support"
# (instrumentation, the chain's span, the prompt's, the model's, the tool step's, the tool's)
FAMILIES = [
    (
        "openinference",
        "RunnableSequence",
        "ChatPromptTemplate",
        "GenericFakeChatModel",
        "run_tools",
        "get_weather",
    ),
    (
        "traceloop",
        "RunnableSequence.workflow",
        "execute_task ChatPromptTemplate",
        "GenericFakeChatModel.chat",
        "execute_task run_tools",
        "execute_tool get_weather",
    ),
]


@pytest.mark.parametrize(
    ("family", "chain", "prompt", "model", "step", "tool"), FAMILIES, ids=lambda f: f
)
def test_a_chain_with_a_tool_is_one_trace(server, family, chain, prompt, model, step, tool):
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "POSTHOG_"))}
    environ.update(POSTHOG_API_KEY=API_KEY, POSTHOG_HOST=server.url)
    result = subprocess.run(
        [sys.executable, str(HERE / "langchain_calls.py"), family],
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,  # a hang guard: the run takes a few seconds
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == {"answer": ["sunny, 21C"]}
    events = [e for e in server.events() if e["event"].startswith("$ai_")]
    by_name = {e["properties"]["$ai_span_name"]: e for e in events}
    assert sorted(by_name) == sorted([chain, prompt, model, step, tool]), sorted(by_name)
    assert len(events) == 5
    root = by_name[chain]["properties"]
    trace = root["$ai_trace_id"]
    assert by_name[chain]["event"] == "$ai_trace" and "$ai_parent_id" not in root
    assert by_name[model]["event"] == "$ai_generation"
    assert (
        by_name[prompt]["event"] == by_name[step]["event"] == by_name[tool]["event"] == "$ai_span"
    )
    parents = {
        name: e["properties"]["$ai_parent_id"] for name, e in by_name.items() if name != chain
    }
    assert parents == {
        prompt: trace,
        model: trace,
        step: trace,
        tool: by_name[step]["properties"]["$ai_span_id"],  # the tool runs inside the step
    }
    generation = by_name[model]["properties"]
    assert generation["$ai_input"] == [
        {"role": "system", "content": "You plan trips."},
        {"role": "user", "content": "Weather in Paris?"},
    ]
    (choice,) = generation["$ai_output_choices"]
    (call,) = choice["content"]
    assert call["id"] == "call_1" and call["function"]["name"] == "get_weather"
    assert "sunny, 21C" in json.dumps(by_name[tool]["properties"]["$ai_output_state"])
    for event in events:
        assert event["distinct_id"] == "user-42"
        assert event["properties"]["$ai_trace_id"] == event["properties"]["$trace_id"] == trace
