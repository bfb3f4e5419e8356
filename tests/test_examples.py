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


def test_feature_flags_example():
    out = run("feature_flags.py")
    decisions = out.split("\n\n")[0].splitlines()
    assert len(decisions) == 4
    assert decisions[0] == decisions[3]  # the same user sees the same variant
    orders = [line for line in out.splitlines() if line.startswith("order_placed by")]
    assert len(orders) == 4
    assert all(
        "'$feature/new-checkout'" in line and "'$feature/free-shipping'" in line for line in orders
    )
    assert "$feature_flag_called events: 6" in out  # 3 users x 2 flags, the repeat deduplicated
    assert "flag requests to PostHog: 3" in out  # the repeat came from the cache


def test_openfeature_example():
    out = run("openfeature_provider.py")
    lines = {line[:20].strip(): line[20:] for line in out.splitlines()}
    assert "value=True" in lines["dark-mode"] and "reason=TARGETING_MATCH" in lines["dark-mode"]
    assert "value='bm25'" in lines["search-ranking"] or "value='vector'" in lines["search-ranking"]
    assert "value=250" in lines["upload-limit-mb"]
    assert "value=False" in lines["org-beta (no group)"]
    assert "value=True" in lines["org-beta (acme)"]
    assert "reason=CACHED" in lines["dark-mode again"]
    assert "error=FLAG_NOT_FOUND" in lines["no-such-flag"]
