"""SIGTERM delivers: real services, stopped the way docker, Kubernetes and systemd stop
them, lose nothing and still end "killed by SIGTERM"."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import requests

from tests.support.server import API_KEY


def burst(url: str, n: int) -> None:
    with requests.Session() as session:
        for i in range(n):
            session.get(f"{url}/items/{i}", timeout=10).raise_for_status()


def test_flask_under_opentelemetry_instrument_delivers_on_sigterm(server, services):
    # The realistic default: the SDK's 5 s batch delay, so events wait in queues at SIGTERM.
    app = services.flask(telemetry="exporter")
    burst(app.url, 20)
    stopped = app.stop(signal.SIGTERM)
    assert stopped.returncode == -signal.SIGTERM, stopped.output
    events = server.wait_for_events(20, event="item_viewed", timeout=10)
    assert sorted(e["properties"]["item"] for e in events) == list(range(20))
    assert server.repeats() == {}  # the exporter skipped what its attached processor took


def test_uvicorn_restoring_and_reraising_still_delivers(server, services):
    # uvicorn installs its handler before loading the app, restores the previous one at
    # exit and raises SIGTERM again: our handler wraps its own and holds that re-raise.
    app = services.fastapi()
    burst(app.url, 300)
    stopped = app.stop(signal.SIGTERM)
    assert stopped.returncode == -signal.SIGTERM, stopped.output
    events = server.wait_for_events(300, event="item_viewed", timeout=10)
    assert len({e["uuid"] for e in events}) == 300
    assert server.repeats() == {}  # drained once: not by both the handler and the exit hook


SCRIPT = """
import os, signal, sys, time
from opentelemetry.sdk.trace import TracerProvider
from posthog_otel import PostHogClient, PostHogSpanProcessor

provider = TracerProvider()
processor = PostHogSpanProcessor(PostHogClient({key!r}, {url!r}), flush_interval=60)
provider.add_span_processor(processor)
tracer = provider.get_tracer("t")
print("handler:", "ours" if signal.getsignal(signal.SIGTERM) != signal.SIG_DFL else "default")
for i in range(100):
    with tracer.start_as_current_span("s", attributes={{"posthog.event": "queued", "n": i}}):
        pass
sys.stdout.flush()
os.kill(os.getpid(), signal.SIGTERM)
time.sleep(30)
print("not reached")
"""


def run(url: str, **env: str) -> subprocess.CompletedProcess[str]:
    import os

    script = textwrap.dedent(SCRIPT.format(key=API_KEY, url=url))
    environment = {k: v for k, v in os.environ.items() if not k.startswith("POSTHOG_")}
    return subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={**environment, **env},
    )


def test_a_script_killed_by_sigterm_delivers_what_it_queued(server):
    result = run(server.url)
    assert result.returncode == -signal.SIGTERM, result.stderr
    assert "handler: ours" in result.stdout and "not reached" not in result.stdout
    assert server.store.count(event="queued") == 100


def test_flush_on_sigterm_can_be_turned_off(server):
    result = run(server.url, POSTHOG_FLUSH_ON_SIGTERM="false")
    assert result.returncode == -signal.SIGTERM
    assert "handler: default" in result.stdout
    assert server.store.count(event="queued") == 0  # flush_interval=60: nothing sent yet


def test_a_bad_setting_is_refused_naming_the_variable(server):
    result = run(server.url, POSTHOG_SIGTERM_TIMEOUT="soon")
    assert result.returncode == 1
    assert "ConfigurationError: POSTHOG_SIGTERM_TIMEOUT" in result.stderr
