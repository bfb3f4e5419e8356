"""The ``posthog-otel`` command, run as a real subprocess."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from posthog_otel import PostHogClient

COMMAND = shutil.which("posthog-otel", path=str(Path(sys.executable).parent))


@pytest.fixture
def devserver_process(tmp_path):
    flags = tmp_path / "flags.json"
    flags.write_text(json.dumps({"cli-flag": "blue"}))
    process = subprocess.Popen(
        [
            COMMAND,
            "devserver",
            "--port",
            "0",
            "--flags",
            str(flags),
            "--db",
            str(tmp_path / "e.db"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = process.stdout.readline()
    match = re.search(r"http://127\.0\.0\.1:\d+", line)
    assert match, line
    yield match.group(0)
    process.terminate()
    process.wait(timeout=10)


def test_devserver_command_serves_events_and_flags(devserver_process):
    with PostHogClient("phc_cli", devserver_process) as client:
        client.capture("from_cli_test", "u1")
        assert (
            client.feature_flag("cli-flag", "u1", send_feature_flag_event=False).enabled == "blue"
        )
    with urllib.request.urlopen(devserver_process + "/api/events") as response:
        events = json.loads(response.read())
    assert [e["event"] for e in events] == ["from_cli_test"]


def test_help_explains_every_option():
    out = subprocess.run(
        [COMMAND, "devserver", "--help"], capture_output=True, text=True, check=True
    )
    for option in ("--host", "--port", "--db", "--flags", "--api-key"):
        assert option in out.stdout


def test_bad_flags_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "flags.json"
    bad.write_text("{not json")
    out = subprocess.run(
        [COMMAND, "devserver", "--port", "0", "--flags", str(bad)], capture_output=True, text=True
    )
    assert out.returncode == 1
    assert "cannot read flags file" in out.stderr


def read_lines_until(process, wanted: int, timeout: float = 15.0) -> list[str]:
    """Lines from the process's stdout until ``wanted`` arrived or ``timeout`` passed.

    A thread does the reading: ``select`` on a buffered pipe misses lines that an
    earlier ``readline`` already pulled into the buffer."""
    import queue
    import threading

    if not hasattr(process, "lines"):
        process.lines = queue.Queue()

        def pump() -> None:
            for line in process.stdout:
                process.lines.put(line.rstrip("\n"))

        threading.Thread(target=pump, daemon=True).start()
    lines: list[str] = []
    try:
        while len(lines) < wanted:
            lines.append(process.lines.get(timeout=timeout))
    except queue.Empty:
        pass
    return lines


def test_tail_prints_history_then_new_events_as_they_arrive(server):
    with PostHogClient("phc_cli", server.url) as client:
        client.capture("before_tail", "u1", {"n": 1})
        process = subprocess.Popen(
            [COMMAND, "tail", "--url", server.url, "--history", "5", "--interval", "0.1"],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            first = read_lines_until(process, 1)
            client.capture("while_tailing", "u2", {"$feature/beta": True, "plan": "pro"})
            later = read_lines_until(process, 1)
        finally:
            process.terminate()
            process.wait(10)
    assert "before_tail  u1  n=1" in first[0]
    assert 'while_tailing  u2  plan="pro"  [beta=True]' in later[0]


def test_tail_filters_and_prints_json(server):
    with PostHogClient("phc_cli", server.url) as client:
        client.capture("keep", "u1")
        client.capture("skip", "u1")
        process = subprocess.Popen(
            [
                COMMAND,
                "tail",
                "--url",
                server.url,
                "--event",
                "keep",
                "--json",
                "--interval",
                "0.1",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            lines = read_lines_until(process, 1)
        finally:
            process.terminate()
            process.wait(10)
    assert [json.loads(line)["event"] for line in lines] == ["keep"]


def test_tail_help_and_bad_url():
    out = subprocess.run([COMMAND, "tail", "--help"], capture_output=True, text=True, check=True)
    for option in ("--url", "--event", "--distinct-id", "--history", "--interval", "--json"):
        assert option in out.stdout
    bad = subprocess.run(
        [COMMAND, "tail", "--url", "file:///etc/passwd"], capture_output=True, text=True
    )
    assert bad.returncode == 2
    assert "http(s)" in bad.stderr


def test_tail_previews_like_the_viewer_and_follows_one_trace(server):
    with PostHogClient("phc_cli", server.url) as client:
        client.capture("other", "u1", {"$trace_id": "t-other"})
        client.capture(
            "$ai_generation",
            "u1",
            {"$trace_id": "t-1", "$ai_model": "gpt-4o", "$ai_input_tokens": 7, "$ai_latency": 0.5},
        )
        client.capture(
            "page_viewed",
            "0190e7c4",
            {
                "$trace_id": "t-1",
                "service.name": "web",
                "path": "/",
                "$process_person_profile": False,
            },
        )
        process = subprocess.Popen(
            [COMMAND, "tail", "--url", server.url, "--trace", "t-1", "--interval", "0.1"],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            lines = read_lines_until(process, 2)
        finally:
            process.terminate()
            process.wait(10)
    assert lines[0].endswith("$ai_generation  u1  model=gpt-4o  tokens=7 in, ? out  latency=0.50 s")
    assert lines[1].endswith('page_viewed  (anonymous) 0190e7c4  path="/"  service.name="web"')
