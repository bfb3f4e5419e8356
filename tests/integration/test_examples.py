"""Every example runs as a real subprocess against the devserver; its output is checked."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.support import paths

EXAMPLES = paths.EXAMPLES


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


def test_logging_example():
    out = run("logging_events.py")
    placed, error, stats = out.splitlines()
    assert placed.split()[:2] == ["order_placed", "user-42"] and "total=30.0" in placed
    assert error.split()[:2] == ["$exception", "user-43"]
    assert "'payment failed' PaymentDeclinedError: card limit is 100" in error
    assert error.endswith("(in charge)")
    assert stats == "records logged: 4, events sent: 2"  # the untagged records stayed lines


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


def test_local_flags_example():
    out = run("local_flags.py")
    lines = {line.split()[0]: line for line in out.splitlines()[1:6]}
    assert out.startswith("definitions loaded: True")
    for user in ("ana", "dev"):  # plan pro or team: the first condition, and a variant
        assert lines[user].split()[1] in ("one-click", "classic"), lines[user]
        assert "Evaluated locally: matched condition set 1" in lines[user]
    one_click = [line for line in lines.values() if line.split()[1] == "one-click"]
    assert all("payload={'button': 'Buy now'}" in line for line in one_click)
    assert lines["cleo"].split()[1] == "False" and "locally: no condition" in lines["cleo"]
    assert "locally" not in lines["eve"]  # no plan given: PostHog decided
    assert "lookups decided locally: 4, asked of PostHog: 1" in out
    assert "flag requests to PostHog: 1" in out
    assert "definition requests: 1" in out


def test_openfeature_example():
    out = run("openfeature_provider.py")
    lines = {line[:20].strip(): line[20:] for line in out.splitlines()}
    assert "value=True" in lines["dark-mode"] and "reason=TARGETING_MATCH" in lines["dark-mode"]
    assert "value='bm25'" in lines["search-ranking"] or "value='vector'" in lines["search-ranking"]
    assert "value=250" in lines["upload-limit-mb"]
    assert "value=False" in lines["org-beta (no group)"]
    assert "value=False" in lines["org-beta (carol)"]
    assert "reason=DEFAULT" in lines["org-beta (carol)"]  # off for her, not an error
    assert "value=True" in lines["org-beta (acme)"]
    assert "reason=CACHED" in lines["dark-mode again"]
    assert "error=FLAG_NOT_FOUND" in lines["no-such-flag"]
    assert "reason=TARGETING_MATCH" in lines["async (bob)"]
    tracked = lines["tracked"]
    assert "'value': 12.5" in tracked and "'$feature/dark-mode': True" in tracked
    assert "$feature/search-ranking" in tracked and "org-beta" in tracked  # alice's reads


def test_client_example():
    out = run("client.py")
    assert (
        "feature_flags: {'new-dashboard': True, 'pricing-test': 'variant-a', 'team-tools': True}"
        in out
    )
    assert "pricing-test: enabled='variant-a' payload={'price': 99, 'period': 'monthly'}" in out
    assert "APIError: status 401" in out
    assert (
        "stored: ['page_view', 'purchase', 'login', 'page_view', 'click', "
        "'$feature_flag_called', '$feature_flag_called']" in out
    )


def test_web_app_example_carries_identity_across_services():
    out = run("web_app.py")
    events = [
        line.split()
        for line in out.splitlines()
        if line.startswith(("stock_reserved", "checkout_started"))
    ]
    assert len(events) == 4
    by_user = {}
    for name, user, _, trace_id, flag, path in events:
        assert user in ("alice", "bob")
        assert path == ("/reserve" if name == "stock_reserved" else "/checkout")
        by_user.setdefault(user, set()).add((trace_id, flag))
    assert all(len(seen) == 1 for seen in by_user.values())  # one trace, one variant per user
    assert "GET /checkout as alice: {'steps':" in out


def test_auto_instrumentation_example():
    out = run("auto_instrumentation.py")
    lines = [
        line.split()
        for line in out.splitlines()
        if line.startswith(("invoice_sent", "subscription_renewed"))
    ]
    assert sorted((name, user) for name, user, _ in lines) == [
        ("invoice_sent", "user-7"),
        ("invoice_sent", "user-8"),
        ("subscription_renewed", "user-7"),
        ("subscription_renewed", "user-8"),
    ]
    assert all(service == "service=billing" for _, _, service in lines)


def test_quickstart_against_the_bundled_server():
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTHOG_")}
    out = run("quickstart.py", env=env)
    assert "using the local PostHog-compatible server" in out
    assert "Sent 9 events, dropped 0." in out
    rows = [line.split()[:2] for line in out.splitlines()[4:13]]
    assert ["cart_reviewed", "bob"] in rows and ["cart_reviewed", "carol"] in rows
    assert ["$exception", "carol"] in rows and ["$exception", "bob"] not in rows
    assert "steps=1" in next(
        line for line in out.splitlines() if line.startswith("cart_reviewed") and "bob" in line
    )
    assert "new-checkout=classic" in out and "new-checkout=one-click" in out
    assert "9 events stored" in out


def test_quickstart_sends_to_a_real_project_when_configured(server):
    server.set_flags(EXAMPLES / "flags.json")  # the project has the quickstart's flags
    env = {**os.environ, "POSTHOG_API_KEY": "phc_real_project", "POSTHOG_HOST": server.url}
    out = run("quickstart.py", env=env)
    assert f"Sending to your PostHog project at {server.url}" in out
    assert "Activity page" in out
    assert len(server.events()) == 9


def test_llm_analytics_example():
    out = run("llm_analytics.py")
    rows = [line.split() for line in out.splitlines() if line.startswith("$ai_generation")]
    assert [row[:3] for row in rows] == [
        ["$ai_generation", "user-42", "gpt-4o-mini-0613"],
        ["$ai_generation", "user-7", "gpt-4o-mini-0613"],
    ]
    assert all(row[3] == "tokens=11->8" and row[4].startswith("latency=") for row in rows)
    assert "'content': 'A gift for someone who likes chess'}]" in out
    assert (
        "output: [{'role': 'assistant', 'content': 'echo: A gift for someone who likes climbing'}]"
        in out
    )
