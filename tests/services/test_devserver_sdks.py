"""PostHog's own SDKs against the devserver: every route they call is spoken.

posthog-python is a dev dependency; posthog-node runs in a real ``node`` process,
installed once into a cache outside the repository (CI installs Debian's nodejs and
npm; elsewhere the test is skipped without them).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import posthog
import pytest

from tests.support.server import API_KEY

FLAGS = {
    "new-checkout": {"variants": {"control": 50, "test": 50}},
    "banner": {"payload": {"color": "green"}},
}
SECRET = "phx_test_personal_key"


def not_spoken(server) -> dict[str, int]:
    return server.requests.summary()["not_spoken"]


@pytest.fixture
def sdk_client(server):
    made = []

    def make(**options):
        options = {"enable_local_evaluation": False, "sync_mode": True, **options}
        client = posthog.Posthog(API_KEY, host=server.url, **options)
        made.append(client)
        return client

    yield make
    for client in made:
        client.shutdown()


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"gzip": True},
        {"capture_mode": "v1"},
        {"capture_mode": "v1", "capture_compression": "gzip"},
        {"capture_mode": "v1", "capture_compression": "deflate"},
    ],
    ids=["v0", "v0-gzip", "v1", "v1-gzip", "v1-deflate"],
)
def test_posthog_python_captures_in_every_mode(server, sdk_client, options):
    client = sdk_client(**options)
    client.capture(
        "signed_up",
        distinct_id="alice",
        properties={"plan": "pro", "$session_id": "s-1"},
        groups={"company": "acme"},
    )
    client.capture(
        "page_viewed", distinct_id="visitor-1", properties={"$process_person_profile": False}
    )
    events = {e["event"]: e for e in server.wait_for_events(2)}
    signed_up = events["signed_up"]["properties"]
    assert events["signed_up"]["distinct_id"] == "alice"
    assert signed_up["plan"] == "pro"
    assert signed_up["$session_id"] == "s-1"
    assert signed_up["$groups"] == {"company": "acme"}
    assert signed_up["$lib"] == "posthog-python"
    assert signed_up["$lib_version"] == posthog.VERSION
    assert events["page_viewed"]["properties"]["$process_person_profile"] is False
    assert not_spoken(server) == {}


def test_posthog_python_flags_payloads_and_remote_config(server, sdk_client):
    server.set_flags(FLAGS)
    client = sdk_client(secret_key=SECRET)
    flags = client.evaluate_flags("alice")
    assert flags.get_flag("new-checkout") in ("control", "test")
    assert flags.get_flag("banner") is True
    assert flags.get_flag_payload("banner") == {"color": "green"}
    # A remote config flag's payload comes back as PostHog stores it: JSON text.
    assert json.loads(client.get_remote_config_payload("banner")) == {"color": "green"}
    assert client.get_remote_config_payload("missing") is None  # a 404, logged by the SDK
    # With a secret key the SDK loads the flag definitions and decides flags locally.
    assert not_spoken(server) == {}
    definitions = server.requests.matching("/flags/definitions")
    assert definitions and all(r.status in (200, 304) for r in definitions)
    assert all(r.status == 200 for r in server.requests.matching("/flags/?v=4"))
    assert [r.status for r in server.requests.matching("/api/projects")] == [200, 404]


def test_posthog_python_ai_lane_exceptions_and_traces(server, sdk_client):
    client = sdk_client(traces={"service_name": "checkout-api"})
    client.capture_ai(
        "$ai_generation",
        distinct_id="alice",
        properties={"$ai_model": "gpt-4o", "$ai_input": "x" * 1_500_000},  # over 1 MB
    )
    try:
        raise ValueError("cart is empty")
    except ValueError as error:
        client.capture_exception(error, distinct_id="alice")
    with client.start_span("POST /checkout"):
        pass
    client.flush()
    events = {e["event"]: e for e in server.wait_for_events(2)}
    assert events["$ai_generation"]["properties"]["$ai_model"] == "gpt-4o"
    exception = events["$exception"]["properties"]["$exception_list"][0]
    assert (exception["type"], exception["value"]) == ("ValueError", "cart is empty")
    assert [r.status for r in server.requests.matching("/i/v0/ai/batch")] == [200]
    traces = server.requests.matching("/i/v1/traces")
    assert [r.status for r in traces] == [200]
    assert "POST /checkout" in traces[0].body.decode()
    assert [s["name"] for s in server.spans()] == ["POST /checkout"]  # PostHog's OTLP JSON
    assert not_spoken(server) == {}


NODE = shutil.which("node")
NPM = shutil.which("npm")
NODE_SCRIPT = """
import { PostHog } from 'posthog-node'
const client = new PostHog(process.env.KEY, {
  host: process.env.HOST, personalApiKey: process.env.SECRET, enableLocalEvaluation: false,
  flushAt: 1, flushInterval: 0,
})
client.capture({ distinctId: 'nora', event: 'node_event', properties: { plan: 'team' } })
client.capture({ distinctId: 'nora', event: '$ai_generation', properties: { $ai_model: 'gpt-4o' } })
const flag = await client.getFeatureFlag('new-checkout', 'nora')
const payload = await client.getRemoteConfigPayload('banner')
client.captureException(new Error('node failed'), 'nora')
await client.shutdown()
console.log(JSON.stringify({ flag, payload }))
"""


@pytest.fixture(scope="module")
def posthog_node() -> Path:
    """A folder where ``import 'posthog-node'`` works: installed once, outside the repo."""
    if not (NODE and NPM):
        if os.environ.get("CI"):
            raise RuntimeError("CI must run the posthog-node test: install Debian's nodejs and npm")
        pytest.skip("needs node and npm (apt-get install nodejs npm)")
    version = subprocess.run([NODE, "--version"], capture_output=True, text=True, check=True)
    if int(version.stdout.strip().lstrip("v").split(".")[0]) < 20:
        pytest.skip(f"posthog-node 5 needs Node.js 20 or newer, this is {version.stdout.strip()}")
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    folder = cache / "posthog-otel-tests" / "posthog-node-5"
    if not (folder / "node_modules" / "posthog-node").is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "package.json").write_text('{"private": true, "type": "module"}')
        done = subprocess.run(
            [NPM, "install", "--no-audit", "--no-fund", "posthog-node@5"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0:
            if os.environ.get("CI"):
                raise RuntimeError(f"npm install posthog-node failed: {done.stderr[-2000:]}")
            pytest.skip("cannot install posthog-node from the npm registry")
    return folder


@pytest.mark.parametrize("mode", ["v0", "v1"])
def test_posthog_node_captures_flags_and_remote_config(server, posthog_node, mode):
    server.set_flags(FLAGS)
    script = posthog_node / "probe.mjs"
    script.write_text(NODE_SCRIPT)
    env = {
        **os.environ,
        "HOST": server.url,
        "KEY": API_KEY,
        "SECRET": SECRET,
        "POSTHOG_CAPTURE_MODE": mode,
    }
    done = subprocess.run(
        [NODE, str(script)], cwd=posthog_node, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    answers = json.loads(done.stdout.strip().splitlines()[-1])
    assert answers["flag"] in ("control", "test")
    assert answers["payload"] == {"color": "green"}
    events = {e["event"]: e for e in server.wait_for_events(4)}
    assert events["node_event"]["properties"]["plan"] == "team"
    assert events["node_event"]["properties"]["$lib"] == "posthog-node"
    assert events["$ai_generation"]["properties"]["$ai_model"] == "gpt-4o"
    assert events["$exception"]["properties"]["$exception_list"][0]["value"] == "node failed"
    assert "$feature_flag_called" in events
    capture_route = "/i/v1/analytics/events" if mode == "v1" else "/batch"
    assert server.requests.matching(capture_route)
    assert not_spoken(server) == {}
