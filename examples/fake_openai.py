"""A tiny OpenAI-compatible server on 127.0.0.1, so GenAI examples and tests need no key
and no network. Standard library only; answers are deterministic.

- ``POST /v1/chat/completions``: echoes the last user message ("echo: ..."); with
  ``tools`` and no tool result yet, it calls the first tool instead; ``stream: true``
  answers in server-sent events (usage last when ``stream_options.include_usage``).
- ``POST /v1/embeddings``: one small vector per input.
- any model named ``missing-model``: HTTP 404, as OpenAI answers an unknown model.

Token counts are words: a prompt of five words is five input tokens.

    python examples/fake_openai.py   # serve on a free port until Ctrl-C
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MISSING_MODEL = "missing-model"
CREATED = 1_700_000_000


class FakeOpenAI:
    """The server in a background thread; ``base_url`` is what ``OpenAI(base_url=)`` takes."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._httpd = ThreadingHTTPServer((host, port), _Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self.requests: list[dict[str, Any]] = []
        self._httpd.requests = self.requests  # type: ignore[attr-defined]

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)


def _words(value: Any) -> int:
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, list):
        return sum(_words(item) for item in value)
    if isinstance(value, dict):
        return _words(value.get("content") or value.get("text") or "")
    return 0


def chat_answer(request: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The assistant message and finish reason the fake model gives for a request."""
    messages = request.get("messages", [])
    tools = request.get("tools") or []
    answered = any(m.get("role") == "tool" for m in messages)
    if tools and not answered:
        function = tools[0]["function"]
        arguments = json.dumps({"city": "Paris"}) if "city" in json.dumps(function) else "{}"
        call = {
            "id": "call_1",
            "type": "function",
            "function": {"name": function["name"], "arguments": arguments},
        }
        return {"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls"
    users = [m for m in messages if m.get("role") in ("user", "tool")]
    last = users[-1].get("content", "") if users else ""
    text = last if isinstance(last, str) else " ".join(p.get("text", "") for p in last)
    return {"role": "assistant", "content": f"echo: {text}"}, "stop"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        request = json.loads(self.rfile.read(length) or b"{}")
        self.server.requests.append({"path": self.path, "body": request})  # type: ignore[attr-defined]
        model = request.get("model", "")
        if model == MISSING_MODEL:
            self._json(
                404,
                {
                    "error": {
                        "message": f"The model `{model}` does not exist",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": "model_not_found",
                    }
                },
            )
        elif self.path.endswith("/chat/completions"):
            self._chat(request)
        elif self.path.endswith("/embeddings"):
            self._embeddings(request)
        else:
            self._json(404, {"error": {"message": "unknown path", "type": "not_found"}})

    def _chat(self, request: dict[str, Any]) -> None:
        message, finish = chat_answer(request)
        usage = {
            "prompt_tokens": _words(request.get("messages", [])),
            "completion_tokens": _words(message.get("content") or "") or 1,
        }
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        base = {"id": "chatcmpl-1", "created": CREATED, "model": request["model"] + "-0613"}
        if not request.get("stream"):
            choice = {"index": 0, "message": message, "finish_reason": finish, "logprobs": None}
            self._json(
                200, {**base, "object": "chat.completion", "choices": [choice], "usage": usage}
            )
            return
        chunks = [{"index": 0, "delta": {"role": "assistant", "content": ""}}]
        for word in (message.get("content") or "").split(" "):
            chunks.append({"index": 0, "delta": {"content": word + " "}})
        if message.get("tool_calls"):
            calls = [{"index": 0, **message["tool_calls"][0]}]
            chunks.append({"index": 0, "delta": {"tool_calls": calls}})
        chunks.append({"index": 0, "delta": {}, "finish_reason": finish})
        events = [{**base, "object": "chat.completion.chunk", "choices": [c]} for c in chunks]
        if (request.get("stream_options") or {}).get("include_usage"):
            events.append(
                {**base, "object": "chat.completion.chunk", "choices": [], "usage": usage}
            )
        body = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)
        self._send(200, "text/event-stream", body + b"data: [DONE]\n\n")

    def _embeddings(self, request: dict[str, Any]) -> None:
        inputs = request.get("input", "")
        inputs = inputs if isinstance(inputs, list) else [inputs]
        data = [
            {"object": "embedding", "index": i, "embedding": [0.1 * (i + 1), 0.2, 0.3]}
            for i in range(len(inputs))
        ]
        tokens = _words(inputs)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        self._json(200, {"object": "list", "data": data, "model": request["model"], "usage": usage})

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        self._send(status, "application/json", json.dumps(payload).encode())

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


if __name__ == "__main__":
    import time

    with FakeOpenAI() as server:
        print(f"OpenAI-compatible server on {server.base_url}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
