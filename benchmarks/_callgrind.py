"""Instructions per call, counted under ``valgrind --tool=callgrind``: unlike wall time,
they do not depend on what else the machine is running.

A script offers a loop as a child mode (``script.py --child NAME N``: set up, then run
``NAME`` ``N`` times); ``per_call`` runs it under callgrind for two ``N`` and subtracts,
so start-up and set-up cancel, and reports instructions per iteration on the calling
(main) thread and on all the others (our encoder and sender), each thread counted by
callgrind on its own (``--separate-threads=yes``). Valgrind runs one thread at a time,
so the background threads' share is what they did, not what they made the caller wait.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Count:
    """Instructions per iteration: the calling thread's, and every other thread's."""

    caller: float
    others: float

    def __sub__(self, other: Count) -> Count:
        return Count(self.caller - other.caller, self.others - other.others)


def available() -> bool:
    return shutil.which("valgrind") is not None


def _run(script: Path, name: str, n: int) -> tuple[int, int]:
    """Instructions of one child run: (main thread, all other threads)."""
    with tempfile.TemporaryDirectory() as folder:
        out = os.path.join(folder, "cg.out")
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                "--separate-threads=yes",
                f"--callgrind-out-file={out}",
                sys.executable,
                str(script),
                "--child",
                name,
                str(n),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "PYTHONHASHSEED": "0"},  # the same dict probes every run
        )
        totals: dict[int, int] = {}
        for path in glob.glob(out + "-*"):
            thread = int(path.rsplit("-", 1)[1])
            with open(path, encoding="utf-8") as f:
                for line in f:
                    if line.startswith("totals:"):
                        totals[thread] = int(line.split()[1])
        main = totals.pop(1)
        return main, sum(totals.values())


def per_call(script: Path, name: str, low: int = 200, high: int = 1200) -> Count:
    """Instructions per iteration of ``script``'s child loop ``name``."""
    a, b = _run(script, name, low), _run(script, name, high)
    n = high - low
    return Count((b[0] - a[0]) / n, (b[1] - a[1]) / n)


def beyond_noop(script: Path, unit: str, url: str) -> tuple[str, dict[str, float]]:
    """Instructions per ``unit`` (span, record) beyond a no-op processor's, on the caller's
    thread and on our threads, for ``script``'s child loops ``noop``, ``untagged`` and
    ``tagged`` sending to ``url``: a table, and the caller's share per loop."""
    from _common import table

    os.environ["BENCH_SINK"] = url
    noop = per_call(script, "noop")
    rows, figures = [], {}
    for name in ("untagged", "tagged"):
        extra = per_call(script, name) - noop
        figures[name] = extra.caller / noop.caller
        share = f"{extra.caller / noop.caller:.1%}"
        rows.append([name, f"{extra.caller:,.0f}", share, f"{extra.others:,.0f}"])
    header = [f"{unit}s", "caller's thread", f"of a {unit}", "our threads (encoder, sender)"]
    text = (
        f"\nInstructions per {unit} beyond a no-op processor's ({noop.caller:,.0f} on the "
        f"caller's thread), callgrind, 1,000 {unit}s:\n\n" + table(header, rows)
    )
    return text, figures
