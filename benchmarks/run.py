"""Run every benchmark and print one Markdown report (``python3 dev.py bench``).

    python3 dev.py bench > report.md 2> bench.log           # everything, 15-20 minutes
    python3 dev.py bench --quick > report.md 2> bench.log   # fewer rounds and events: minutes
    python3 dev.py bench --only service,flags               # some of them

The report opens with the exact command, the machine and the versions, then the
targets (met or missed, judged in ``targets.py`` from the figures each script records),
then each benchmark's own tables. Progress and the peers' logging (posthog-python logs
every dropped event) go to stderr. Each script also runs on its own, with its own flags.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

from _common import table
from targets import TARGETS

HERE = Path(__file__).resolve().parent
# name: (heading, script, arguments in quick mode)
BENCHMARKS = {
    "service": ("Service under load", "service.py", ["--quick"]),
    "caller_cost": ("Caller cost", "caller_cost.py",
                    ["--spans", "5000", "--repetitions", "3", "--pairs", "20"]),
    "serialisation": ("Serialisation", "serialisation.py", ["--events", "5000"]),
    "e2e": ("End to end", "e2e.py", ["--events", "20000", "--repetitions", "1"]),
    "flags": ("Flags", "flags.py", ["--lookups", "2000", "--users", "20"]),  # 100 per user
    "local_flags": ("Local flag evaluation", "local_flags.py", ["--lookups", "2000", "--rounds", "3"]),
    "fleet": ("Fleet", "fleet.py", ["--intervals", "5"]),
    "logs": ("Logs", "logs.py", ["--records", "5000", "--repetitions", "3", "--pairs", "20"]),
    "genai": ("LLM analytics", "genai.py", ["--spans", "1000", "--repetitions", "3"]),
    "traces": ("Traces (send_traces)", "traces.py", ["--spans", "5000", "--repetitions", "3"]),
}  # fmt: skip
PACKAGES = ["posthog-otel", "opentelemetry-sdk", "opentelemetry-exporter-otlp-proto-http",
            "opentelemetry-instrumentation-flask", "flask", "gunicorn", "posthog", "orjson", "isal"]  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer rounds and events")
    parser.add_argument("--only", help=f"comma-separated, of: {', '.join(BENCHMARKS)}")
    args = parser.parse_args()
    chosen = args.only.split(",") if args.only else list(BENCHMARKS)
    unknown = sorted(set(chosen) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    command = os.environ.get("BENCH_COMMAND") or shlex.join(
        ["python", "benchmarks/run.py", *sys.argv[1:]]
    )
    started, load_before = time.time(), os.getloadavg()
    sections, failed = [], 0
    with tempfile.TemporaryDirectory() as folder:
        records = Path(folder) / "figures.jsonl"
        env = {**os.environ, "BENCH_RECORD": str(records)}
        for name in chosen:
            heading, script, quick = BENCHMARKS[name]
            print(f"running {script} ...", file=sys.stderr, flush=True)
            began = time.monotonic()
            argv = [sys.executable, str(HERE / script), *(quick if args.quick else [])]
            done = subprocess.run(argv, cwd=HERE, env=env, stdout=subprocess.PIPE, text=True)
            took = time.monotonic() - began
            body = done.stdout.strip()
            if done.returncode:
                failed += 1
                body += f"\n\n**{script} failed (exit status {done.returncode}); see stderr.**"
            sections.append(f"## {heading}\n\n`{script}`, {took:.0f} s.\n\n{body}\n")
        figures: dict[str, float] = {}
        if records.exists():
            for line in records.read_text().splitlines():
                figures.update(json.loads(line))
    print(header(command, args.quick, started, load_before))
    print("## Against the targets\n")
    rows = [target.row(figures) for target in TARGETS if target.benchmark in chosen]
    print(table(["target", "result", ""], rows) + "\n")
    print("\n".join(sections))
    return 1 if failed else 0


def header(command: str, quick: bool, started: float, load_before: tuple[float, ...]) -> str:
    """The command, when, the machine and the versions: what a reader needs to compare runs."""
    versions = []
    for package in PACKAGES:
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{package} (not installed)")
    when = datetime.datetime.fromtimestamp(started, datetime.timezone.utc)
    load_after = os.getloadavg()
    mode = "quick (fewer rounds and events: a first look)" if quick else "full"
    return (
        "# posthog-otel benchmarks\n\n"
        f"```sh\n{command}\n```\n\n"
        f"- When: {when:%Y-%m-%d %H:%M} UTC, {(time.time() - started) / 60:.1f} minutes, "
        f"{mode}; commit {commit()}\n"
        f"- Machine: {cpu_model()}, {os.cpu_count()} cores, {memory_gib():.0f} GiB; "
        f"{platform.system()} {platform.release()}\n"
        f"- Load average (1 minute): {load_before[0]:.2f} before, {load_after[0]:.2f} after "
        "(other processes' work widens every spread below)\n"
        f"- Python {platform.python_version()} ({platform.python_implementation()}); "
        f"{', '.join(versions)}\n"
    )


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return 0.0


def commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=HERE, capture_output=True, text=True
        ).stdout.strip()

    sha = git("rev-parse", "--short", "HEAD") or "unknown"
    return sha + (" with uncommitted changes" if git("status", "--porcelain") else "")


if __name__ == "__main__":
    sys.exit(main())
