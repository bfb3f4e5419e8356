"""The README cannot rot: its code blocks run, and its tables cover every setting."""

from __future__ import annotations

import inspect
import json
import os
import re
import select
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from posthog_otel import (
    PostHogClient,
    PostHogFlagProvider,
    PostHogLogExporter,
    PostHogLogProcessor,
    PostHogSpanExporter,
    PostHogSpanProcessor,
)
from posthog_otel._config import ENV_VARIABLES
from posthog_otel.openfeature import PostHogProvider
from tests.support import paths
from tests.support.server import API_KEY

ROOT = paths.ROOT
README = (ROOT / "README.md").read_text()
BIN = str(Path(sys.executable).parent)


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", README, flags=re.M | re.S)


def commands(block: str) -> list[str]:
    joined = block.replace("\\\n", " ")  # shell line continuations
    return [line.split("  #")[0].strip() for line in joined.splitlines() if line.strip()]


def test_the_first_screen_holds_the_two_commands_ci_runs():
    first_screen = "\n".join(README.splitlines()[:20])
    setup = blocks("sh")[0]
    assert setup in first_screen
    assert commands(setup) == ["python3 dev.py quickstart", "python3 dev.py test"]
    ci = (ROOT / ".ci" / "run").read_text()
    for command in commands(setup):
        assert re.search(rf"^{re.escape(command)}$", ci, flags=re.M), f"CI does not run {command!r}"


def test_every_python_block_runs_in_order(server):
    server.set_flags(ROOT / "examples" / "flags.json")
    env = {**os.environ, "POSTHOG_API_KEY": API_KEY, "POSTHOG_HOST": server.url}
    program = "\n\n".join(blocks("python"))
    sys.path.insert(0, str(ROOT / "examples"))
    from fake_openai import FakeOpenAI  # the LLM analytics block's model

    with FakeOpenAI() as model:
        env.update(OPENAI_BASE_URL=model.base_url, OPENAI_API_KEY="sk-readme")
        result = subprocess.run(
            [sys.executable, "-c", program],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 0, result.stderr
    assert re.search(r"sent \d+, dropped \{\}", result.stdout)
    names = {e["event"] for e in server.events()}
    assert {"checkout_completed", "coupon_applied", "$feature_flag_called", "signed_up"} <= names
    assert {"order_placed", "$exception"} <= names  # from the logging block
    assert {"page_view", "click"} <= names
    coupon = server.events("coupon_applied")[0]
    assert coupon["distinct_id"] == "user-42"
    assert coupon["properties"]["discount"] == {"percent": 10}
    (generation,) = server.events("$ai_generation")
    assert generation["distinct_id"] == "user-42"
    assert generation["properties"]["$ai_model"] == "gpt-4o-mini-0613"


def start(command: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["bash", "-c", f"exec {command}"], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
    )


def first_line(process: subprocess.Popen[str], timeout: float = 15.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if select.select([process.stdout], [], [], 0.1)[0]:
            return process.stdout.readline()
    raise AssertionError("no output in time")


def test_every_shell_block_runs(unused_port):
    # The README's port, swapped for a free one: another run may be using 8010.
    port = str(unused_port)

    def block(marker: str, *, without: tuple[str, ...] = ()) -> str:
        (found,) = [b for b in blocks("sh")[1:] if marker in b and not any(w in b for w in without)]
        return commands(found)[0].replace(".venv/bin/", BIN + "/").replace("8010", port)

    logs = block("OTEL_LOGS_EXPORTER=posthog")
    replay = block("OTEL_PROPAGATORS=")
    devserver, tail = block("devserver"), block(" tail ")
    auto = block(
        "opentelemetry-instrument", without=("OTEL_LOGS_EXPORTER=posthog", "OTEL_PROPAGATORS=")
    )
    env = {**os.environ, "PATH": BIN + os.pathsep + os.environ["PATH"]}
    server = start(devserver, env)
    watcher = None
    try:
        assert f"listening on http://127.0.0.1:{port}" in first_line(server)
        watcher = start(tail, env)  # it prints nothing until an event arrives
        auto_env = {
            **env,
            "POSTHOG_API_KEY": "phc_readme",
            "POSTHOG_HOST": f"http://127.0.0.1:{port}",
        }
        result = subprocess.run(
            ["bash", "-c", auto], cwd=ROOT, env=auto_env, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        assert "renewed 2 subscriptions" in result.stdout
        line = first_line(watcher)
        assert "user-7" in line and ("invoice_sent" in line or "subscription_renewed" in line)
        result = subprocess.run(
            ["bash", "-c", logs], cwd=ROOT, env=auto_env, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        events = f"http://127.0.0.1:{port}/api/events?event=renewal_logged"
        with urllib.request.urlopen(events, timeout=10) as response:
            logged = json.loads(response.read())
        assert sorted(e["distinct_id"] for e in logged) == ["user-7", "user-8"]
        result = subprocess.run(
            ["bash", "-c", replay],
            cwd=ROOT,
            env=auto_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        session = result.stdout.split("belong to session ")[1].strip()
        linked_url = f"http://127.0.0.1:{port}/api/events?q={session}"
        with urllib.request.urlopen(linked_url, timeout=10) as response:
            linked = json.loads(response.read())
        assert sorted(e["event"] for e in linked) == ["cart_updated", "item_added"]
        assert {(e["distinct_id"], e["properties"]["$session_id"]) for e in linked} == {
            ("anon-01932c5e", session)
        }
    finally:
        for process in (watcher, server):
            if process is not None:
                process.terminate()
                process.wait(10)


@pytest.mark.parametrize(
    "cls",
    [
        PostHogClient,
        PostHogSpanProcessor,
        PostHogSpanExporter,
        PostHogLogProcessor,
        PostHogLogExporter,
        PostHogFlagProvider,
        PostHogProvider,
    ],
)
def test_every_argument_is_documented(cls):
    configuration = README.split("## Configuration")[1].split("## Delivery guarantees")[0]
    for name, parameter in inspect.signature(cls.__init__).parameters.items():
        if name == "self":
            continue
        shown = f"**{name}" if parameter.kind is parameter.VAR_KEYWORD else name
        assert (
            f"`{shown}`" in configuration
            or f"{shown}`" in configuration
            or f"{name}=" in configuration
        ), name


def test_every_environment_variable_is_documented():
    for variable in ENV_VARIABLES.values():
        assert f"`{variable}`" in README, variable
