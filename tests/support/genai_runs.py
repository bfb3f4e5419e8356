"""Run a GenAI calls script (``genai_calls.py``, ``openinference_calls.py``) against the
devserver as its own process, as the instrumentations read their settings at start-up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

from tests.support import paths
from tests.support.server import API_KEY

# The flag the scripts read, so events carry the user's $feature/<key>.
FLAGS = {"answer-style": {"variants": {"short": 50, "long": 50}}}


def run_calls(
    server, script: str, env: Mapping[str, str], *args: str
) -> tuple[dict[str, Any], list[dict]]:
    """What ``script`` saw (its last line, JSON) and the ``$ai_*`` events, in call order."""
    server.set_flags(FLAGS)
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "POSTHOG_"))}
    environ.update(env, POSTHOG_API_KEY=API_KEY, POSTHOG_HOST=server.url)
    result = subprocess.run(
        [sys.executable, str(paths.TESTS / "support" / script), *args],
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,  # a hang guard: the run takes a few seconds
        check=False,
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.splitlines()[-1])
    events = [e for e in server.events() if e["event"].startswith("$ai_")]
    return seen, sorted(events, key=lambda e: e["timestamp"])


def ai_properties(event: dict, volatile: tuple[str, ...]) -> dict[str, Any]:
    """The event's ``$ai_*`` properties, less ``volatile`` (those that differ by run)."""
    props = event["properties"]
    return {k: v for k, v in props.items() if k.startswith("$ai_") and k not in volatile}
