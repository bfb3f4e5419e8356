#!/usr/bin/env python3
"""Set up and run the project's jobs; needs nothing but Python 3.10+.

    python3 dev.py quickstart   # see spans become PostHog events (local server, no account)
    python3 dev.py test         # lint, format check, type check, then the test suite
    python3 dev.py bench        # the side-by-side benchmarks, one Markdown report (--quick)

Each job creates ``.venv`` on first use, installs what that job needs (the quickstart:
the package; the tests: the package and its dev tools), and reinstalls only when
pyproject.toml changes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
STAMP = VENV / ".installed-from"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")


def main(argv: list[str]) -> int:
    if sys.version_info < (3, 10):  # noqa: UP036 - dev.py runs on whatever python3 is
        print("posthog-otel needs Python 3.10 or newer; this is " + sys.version.split()[0])
        return 1
    job, *rest = argv or ["help"]
    jobs = {"quickstart": (quickstart, set()), "test": (test, {"dev"}), "bench": (bench, {"bench"})}
    if job not in jobs:
        print(__doc__)
        return 0 if job in ("help", "-h", "--help") else 2
    run_job, extras = jobs[job]
    ensure_environment(extras)
    return run_job(rest)


def ensure_environment(extras: set[str]) -> None:
    """Create .venv and install the project with ``extras``, once per pyproject change."""
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    installed: dict[str, object] = {}
    if STAMP.exists() and PYTHON.exists():
        try:
            installed = json.loads(STAMP.read_text())
        except ValueError:
            installed = {}
    have = set(installed.get("extras", [])) if installed.get("pyproject") == digest else None
    if have is not None and extras <= have:
        return
    if not PYTHON.exists():
        print("creating .venv ...", flush=True)
        run([sys.executable, "-m", "venv", str(VENV)])
        run([str(PYTHON), "-m", "pip", "install", "--quiet", "--upgrade", "pip"])
    wanted = sorted(extras | (have or set()))
    target = f"{ROOT}[{','.join(wanted)}]" if wanted else str(ROOT)
    print(f"installing posthog-otel{'[' + ','.join(wanted) + ']' if wanted else ''} into .venv ...")
    run([str(PYTHON), "-m", "pip", "install", "--quiet", "-e", target])
    STAMP.write_text(json.dumps({"pyproject": digest, "extras": wanted}))


def quickstart(args: list[str]) -> int:
    return call([str(PYTHON), str(ROOT / "examples" / "quickstart.py"), *args])


def test(args: list[str]) -> int:
    steps = [
        [str(BIN / "ruff"), "check", "."],
        [str(BIN / "ruff"), "format", "--check", "."],
        [str(BIN / "mypy"), "--strict", "src"],
        [str(PYTHON), "-m", "pytest", *args],
    ]
    for step in steps:
        print("$ " + " ".join(Path(step[0]).name if i == 0 else a for i, a in enumerate(step)))
        code = call(step)
        if code:
            return code
    return 0


def bench(args: list[str]) -> int:
    command = shlex.join(["python3", "dev.py", "bench", *args])  # quoted at the report's top
    return call([str(PYTHON), str(ROOT / "benchmarks" / "run.py"), *args], BENCH_COMMAND=command)


def run(command: list[str]) -> None:
    code = call(command)
    if code:
        raise SystemExit(f"failed ({code}): {' '.join(command)}")


def call(command: list[str], **env: str) -> int:
    environment = {**os.environ, **env} if env else None
    return subprocess.call(command, cwd=ROOT, env=environment)  # noqa: S603 - our own fixed commands


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
