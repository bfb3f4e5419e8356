#!/usr/bin/env python3
"""Set up and run the project's jobs; needs nothing but Python 3.10+.

    python3 dev.py quickstart   # see spans become PostHog events (local server, no account)
    python3 dev.py test         # lint, format check, type check, then the test suite
    python3 dev.py bench        # the side-by-side benchmarks, one Markdown report (--quick)
    python3 dev.py test-versions  # the fast tests on Python 3.10, 3.12.1 and 3.13 (pyenv's)

Each job creates ``.venv`` on first use, installs what that job needs from
pyproject.toml's dependency groups (the quickstart: the package and the ``examples`` group,
what every command in README.md and docs/ runs with; the tests: ``dev``, which includes
``examples``; the benchmarks: ``bench``), and reinstalls only when pyproject.toml changes.
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
    jobs = {
        "quickstart": (quickstart, {"examples"}),
        "test": (test, {"dev"}),
        "bench": (bench, {"bench"}),
    }
    if job == "test-versions":  # its own environments, one per Python
        return test_versions(rest)
    if job not in jobs:
        print(__doc__)
        return 0 if job in ("help", "-h", "--help") else 2
    run_job, groups = jobs[job]
    ensure_environment(groups)
    return run_job(rest)


def ensure_environment(groups: set[str]) -> None:
    """Create .venv and install the project with the dependency ``groups`` of pyproject.toml
    (PEP 735: development tools, never extras of the library), once per pyproject change."""
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    installed: dict[str, object] = {}
    if STAMP.exists() and PYTHON.exists():
        try:
            installed = json.loads(STAMP.read_text())
        except ValueError:
            installed = {}
    have = set(installed.get("groups", [])) if installed.get("pyproject") == digest else None
    if have is not None and groups <= have:
        return
    if not PYTHON.exists():
        print("creating .venv ...", file=sys.stderr, flush=True)
        run([sys.executable, "-m", "venv", str(VENV)])
    if pip_version() < (25, 1):  # the first pip with --group
        run([str(PYTHON), "-m", "pip", "install", "--quiet", "--upgrade", "pip>=25.1"])
    wanted = sorted(groups | (have or set()))
    # On stderr: `dev.py bench > report.md` keeps the report alone on stdout.
    print(
        f"installing posthog-otel{' with ' + ', '.join(wanted) if wanted else ''} into .venv ...",
        file=sys.stderr,
        flush=True,
    )
    pyproject = ROOT / "pyproject.toml"
    chosen = [arg for group in wanted for arg in ("--group", f"{pyproject}:{group}")]
    run([str(PYTHON), "-m", "pip", "install", "--quiet", "-e", str(ROOT), *chosen])
    STAMP.write_text(json.dumps({"pyproject": digest, "groups": wanted}))


def pip_version() -> tuple[int, ...]:
    command = [str(PYTHON), "-m", "pip", "--version"]
    out = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    words = out.stdout.split()
    version = words[1] if len(words) > 1 else "0"
    return tuple(int(part) for part in version.split(".")[:2] if part.isdigit())


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


# test-versions: each Python with the tests it runs. 3.10 and 3.13 bound the supported range;
# 3.12.1 is one of the releases that refuse to start a thread at interpreter exit.
VERSIONS = {
    "3.10": "fast",
    "3.12.1": "exit",
    "3.13": "fast",
}
# Only what these tests import (and the speed-up extras, each tested with and without):
# .venv-<version> stays small and quick to make.
VERSION_DEPS = [
    *("pytest>=8", "pytest-timeout>=2.3", "hypothesis>=6.100", "trustme>=1.1"),
    *("orjson>=3.9", "isal>=1.6"),
    # send_traces, send_logs, the metric exporter and the devserver's OTLP ingest
    # (the otlp extra; OpenTelemetry's own exporter and logging handler as their clients)
    *("opentelemetry-exporter-otlp-proto-common>=1.27", "opentelemetry-proto>=1.27"),
    "opentelemetry-exporter-otlp-proto-http>=1.27",
    "opentelemetry-instrumentation-logging>=0.61b0",
]
EXIT_TESTS = [
    "tests/test_lifecycle.py",
    "tests/test_source.py",
    "tests/test_processor.py::test_exit_without_shutdown_still_delivers",
]
# Unit tests and the server-backed tests of the client, pipeline and flags: ~1,300 tests in
# about a minute. Left out: the fault marathon (test_faults, ~25 s) and whatever needs the
# frameworks, OpenFeature, PostHog's SDK or OpenTelemetry's instrumentation.
FAST_FILES = """
    architecture batch cache cli client compress config connection context definitions devserver
    events exceptions exporter genai hashing json local_operators local_provider local_table
    hostile_answers hostile_flags hostile_spans fuzz_flags fuzz_spans
    metrics processor properties provider reasons retry spans stats transport values watchdog
    web worker otlp_mapping otlp_streams otlp_decoder devserver_otlp metric_exporter
    session_link
"""
FAST_TESTS = [*EXIT_TESTS[:2], *(f"tests/test_{name}.py" for name in FAST_FILES.split())]


def located(test: str) -> str:
    """``tests/test_x.py[::name]`` as it is found in its kind's folder (tests/unit, ...)."""
    path, sep, name = test.partition("::")
    found = sorted(ROOT.glob(f"tests/*/{Path(path).name}"))
    return (str(found[0].relative_to(ROOT)) if found else path) + sep + name


FAST_DESELECT = [  # these need a package only the dev group installs
    "tests/test_exporter.py::test_under_opentelemetry_instrument_identity_crosses_services",
    "tests/test_exporter.py::test_under_opentelemetry_instrument_a_burst_of_50000_loses_nothing",
    "tests/test_local_provider.py::test_openfeature_resolves_from_local_evaluation",
    "tests/test_processor.py::test_our_own_http_makes_no_spans",
    "tests/test_metric_exporter.py::test_otel_metrics_exporter_posthog_under_opentelemetry_instrument",
]


def test_versions(args: list[str]) -> int:
    """Run the fast tests (or the exit tests) on each Python of ``VERSIONS`` that pyenv has,
    each in its own ``.venv-<version>``; a version that is not installed is skipped, loudly."""
    failed = []
    for version, kind in VERSIONS.items():
        python = find_python(version)
        if python is None:
            print(
                f"test-versions: SKIPPED Python {version}: not found under {pyenv_root()}"
                f"/versions (install it with `pyenv install {version}`)",
                flush=True,
            )
            continue
        venv = ROOT / f".venv-{version}"
        venv_python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
        stamp = venv / ".installed-from"
        want = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + repr(VERSION_DEPS).encode())
        if not (venv_python.exists() and stamp.exists() and stamp.read_text() == want.hexdigest()):
            print(f"test-versions: making {venv.name} with {python} ...", flush=True)
            run([str(python), "-m", "venv", "--clear", str(venv)])
            run(
                [
                    str(venv_python),
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "-e",
                    str(ROOT),
                    *VERSION_DEPS,
                ]
            )
            stamp.write_text(want.hexdigest())
        tests = [located(t) for t in (FAST_TESTS if kind == "fast" else EXIT_TESTS)]
        deselect = (
            [f"--deselect={located(node)}" for node in FAST_DESELECT] if kind == "fast" else []
        )
        command = [str(venv_python), "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        print(f"$ Python {version}: pytest ({kind} tests)", flush=True)
        if call([*command, *deselect, *tests, *args]):
            failed.append(version)
    if failed:
        print("test-versions: FAILED on Python " + ", ".join(failed))
        return 1
    return 0


def pyenv_root() -> Path:
    try:
        out = subprocess.run(["pyenv", "root"], capture_output=True, text=True, check=True)  # noqa: S607
        return Path(out.stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        return Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")


def find_python(version: str) -> Path | None:
    """pyenv's newest ``version`` (``3.10``: the newest 3.10.x; ``3.12.1``: exactly it)."""
    found = []
    versions = pyenv_root() / "versions"
    for path in versions.iterdir() if versions.is_dir() else ():
        name = path.name
        if (name == version or name.startswith(version + ".")) and name.replace(".", "").isdigit():
            python = path / "bin" / "python3"
            if python.exists():
                found.append((tuple(int(part) for part in name.split(".")), python))
    return max(found)[1] if found else None


def run(command: list[str]) -> None:
    code = call(command)
    if code:
        raise SystemExit(f"failed ({code}): {' '.join(command)}")


def call(command: list[str], **env: str) -> int:
    environment = {**os.environ, **env} if env else None
    return subprocess.call(command, cwd=ROOT, env=environment)  # noqa: S603 - our own fixed commands


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
