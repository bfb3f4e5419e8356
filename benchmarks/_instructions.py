"""Instructions per call, counted by valgrind's callgrind: repeatable on a loaded machine,
where wall time is not.

A script measures its rows twice: timed in its own process, and counted in a copy of
itself run under ``valgrind --tool=callgrind --instr-atstart=no`` with
``BENCH_CALLGRIND`` set. The copy builds the same objects, warms them, and for each
row starts collecting (``callgrind_control -i on``), makes the calls, stops, dumps,
and reads the dump's ``totals:``; the switching costs of an empty loop are counted
the same way and subtracted. The copy prints its counts as one JSON line.

Without valgrind (or ``callgrind_control``), ``counted()`` is ``None`` and the row
says so; nothing else changes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ENV = "BENCH_CALLGRIND"  # the folder for dumps: set in the copy under valgrind


def available() -> bool:
    """Whether this machine can count instructions (valgrind and callgrind_control)."""
    return shutil.which("valgrind") is not None and shutil.which("callgrind_control") is not None


def counting() -> bool:
    """Whether this process is the copy under callgrind."""
    return bool(os.environ.get(ENV))


def per_call(fn: Callable[[int], object], calls: int) -> float:
    """Instructions per call of ``fn(i)`` (in the copy under callgrind only)."""
    empty = _collected(lambda i: None, calls)
    return (_collected(fn, calls) - empty) / calls


def report(counts: dict[str, float]) -> None:
    """Hand the copy's counts to the parent (one JSON line on stdout)."""
    print(json.dumps(counts), flush=True)


def counted(script: str, arguments: list[str], timeout: float = 900.0) -> dict[str, float] | None:
    """Run ``script`` under callgrind (it calls ``per_call`` and ``report``); its counts,
    or ``None`` when valgrind is missing or the run failed (said on stderr)."""
    if not available():
        print("instruction counts skipped: valgrind is not installed", file=sys.stderr)
        return None
    with tempfile.TemporaryDirectory() as folder:
        command = [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            f"--callgrind-out-file={folder}/callgrind.out",
            sys.executable,
            script,
            *arguments,
        ]
        env = {**os.environ, ENV: folder}
        try:
            done = subprocess.run(
                command, env=env, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            print(f"instruction counts skipped: callgrind over {timeout:.0f} s", file=sys.stderr)
            return None
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if done.returncode != 0 or not lines:
            print(f"instruction counts failed:\n{done.stderr[-2000:]}", file=sys.stderr)
            return None
        counts: dict[str, float] = json.loads(lines[-1])
        return counts


def _collected(fn: Callable[[int], object], calls: int) -> int:
    """Instructions collected while making ``calls`` calls (and switching collection)."""
    folder = Path(os.environ[ENV])
    before = set(folder.iterdir())
    _control("-i", "on")
    for i in range(calls):
        fn(i)
    _control("-i", "off")
    _control("-d")
    _control("-z")
    fresh = sorted(set(folder.iterdir()) - before)
    total = 0
    for path in fresh:
        for line in path.read_text().splitlines():
            if line.startswith("totals:"):
                total += int(line.split()[1])
        path.unlink()
    return total


def _control(*arguments: str) -> None:
    subprocess.run(
        ["callgrind_control", *arguments, str(os.getpid())],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
