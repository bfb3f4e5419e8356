"""Every example runs as a real subprocess against the devserver; its output is checked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run(name: str, *args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_span_pipeline_example():
    out = run("span_pipeline.py")
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["coupon_applied", "user-42"]
    assert "'discount': {'percent': 10}" in lines[0]
    assert lines[1].split()[:2] == ["$exception", "user-42"]
    assert "'type': 'TimeoutError'" in lines[1] and "'handled': True" in lines[1]
    assert lines[2].split()[:2] == ["checkout_completed", "user-42"]
    assert "events_sent=3" in out and "dropped=mappingproxy({})" in out
