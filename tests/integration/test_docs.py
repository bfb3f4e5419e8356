"""The README and every page under docs/ cannot rot: what they show runs, as a newcomer runs it.

Each page's ```python blocks run in order, in one subprocess, against the devserver with
its key and host; each ```sh block runs with .venv/bin first on PATH, once with the key
and host set (it must exit 0) and once without (it must exit non-zero, saying what to
set). An HTML comment just before a block steers it, invisible when rendered:

    <!-- docs-test: expects a,b -->   these events must arrive (python: once the page ran)
    <!-- docs-test: background -->    a server or a tail: started, checked, stopped
    <!-- docs-test: skip (why) -->    not run here (the README's two commands: CI runs them)

Static checks: every .venv/bin command and every example's import is installed by what
the README's two commands install (the package and the ``examples`` dependency group);
every constructor argument and POSTHOG_* variable is in docs/configuration.md; every page
is linked from the README; every relative link resolves, anchors included; and
docs/limits.md lists every bound of ``posthog_otel._limits`` (and every MAX_ constant
elsewhere in src/) with its value.
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import inspect
import json
import os
import re
import select
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from posthog_otel import (
    PostHogClient,
    PostHogFlagProvider,
    PostHogLogExporter,
    PostHogLogProcessor,
    PostHogMetricExporter,
    PostHogSpanExporter,
    PostHogSpanProcessor,
)
from posthog_otel._config import ALL_ENV_VARIABLES
from posthog_otel.openfeature import PostHogProvider
from tests.support.paths import ROOT
from tests.support.server import API_KEY, wait_until

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BIN = str(Path(sys.executable).parent)
SETTINGS = ("POSTHOG_API_KEY", "POSTHOG_HOST")
TOKEN = re.compile(r"^```(\w*)\n(.*?)^```|<!-- docs-test: (.*?) -->", re.M | re.S)


@dataclass
class Block:
    language: str
    code: str
    steer: str = ""  # the docs-test comment just before it, if any
    expects: list[str] = field(default_factory=list)

    @property
    def commands(self) -> list[str]:
        joined = self.code.replace("\\\n", " ")  # shell line continuations
        return [line.split("  #")[0].strip() for line in joined.splitlines() if line.strip()]


def blocks(page: Path) -> list[Block]:
    found, steer = [], ""
    for match in TOKEN.finditer(page.read_text()):
        if match.group(3) is not None:
            steer = match.group(3).strip()
            continue
        block = Block(match.group(1), match.group(2), steer)
        if steer.startswith("expects "):
            block.expects = steer.removeprefix("expects ").split(",")
        found.append(block)
        steer = ""
    return found


def name(page: Path) -> str:
    return str(page.relative_to(ROOT))


def runnable(language: str) -> list[Path]:
    return [p for p in PAGES if any(b.language == language for b in blocks(p))]


# --- the README's first screen -------------------------------------------------------------


def test_the_first_screen_holds_the_two_commands_ci_runs():
    readme = (ROOT / "README.md").read_text()
    first_screen = "\n".join(readme.splitlines()[:20])
    setup = next(b for b in blocks(ROOT / "README.md") if b.language == "sh")
    assert setup.code in first_screen
    assert setup.commands == ["python3 dev.py quickstart", "python3 dev.py test"]
    ci = (ROOT / ".ci" / "run").read_text()
    for command in setup.commands:
        assert re.search(rf"^{re.escape(command)}$", ci, flags=re.M), f"CI does not run {command!r}"


# --- python blocks ---------------------------------------------------------------------------


@pytest.mark.parametrize("page", runnable("python"), ids=name)
def test_python_blocks_run_in_order(page, server):
    server.set_flags(ROOT / "examples" / "flags.json")
    page_blocks = [b for b in blocks(page) if b.language == "python" and b.steer != "skip"]
    env = {**os.environ, "POSTHOG_API_KEY": API_KEY, "POSTHOG_HOST": server.url}
    sys.path.insert(0, str(ROOT / "examples"))
    from fake_openai import FakeOpenAI  # the LLM analytics page's model

    with FakeOpenAI() as model:
        env.update(OPENAI_BASE_URL=model.base_url, OPENAI_API_KEY="sk-docs")
        result = subprocess.run(
            [sys.executable, "-c", "\n\n".join(b.code for b in page_blocks)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=90,
        )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    expected = {event for b in blocks(page) if b.language == "python" for event in b.expects}
    quiet = any(b.steer == "sends nothing" for b in page_blocks)
    assert expected or quiet, f"{name(page)}: say which events it sends (docs-test: expects ...)"
    arrived = {e["event"] for e in server.events()}
    assert expected <= arrived, f"missing: {expected - arrived}"
    if "dropped {" in "".join(b.code for b in page_blocks):  # a page that prints its stats
        assert re.search(r"sent \d+, dropped \{\}", result.stdout), result.stdout


# --- sh blocks -------------------------------------------------------------------------------


def start(command: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["bash", "-c", f"exec {command}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def first_line(process: subprocess.Popen[str], timeout: float = 15.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if select.select([process.stdout], [], [], 0.1)[0]:
            return process.stdout.readline()
    raise AssertionError("no output in time")


def shell(command: str, port: int) -> str:
    """As a newcomer types it in the clone, .venv/bin being this interpreter's; the docs'
    port 8010 swapped for a free one (another run may be using it)."""
    return command.replace(".venv/bin/", BIN + "/").replace("8010", str(port))


@pytest.mark.parametrize("page", runnable("sh"), ids=name)
def test_shell_blocks_run_as_written(page, server, unused_port):
    shown = [b for b in blocks(page) if b.language == "sh" and not b.steer.startswith("skip")]
    if not shown:
        pytest.skip(f"{name(page)}: its commands are run by CI")
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("POSTHOG_", "OTEL_"))
    }
    env["PATH"] = BIN + os.pathsep + env["PATH"]
    configured = {**env, "POSTHOG_API_KEY": API_KEY, "POSTHOG_HOST": server.url}
    background: list[subprocess.Popen[str]] = []
    try:
        for block in shown:
            for command in block.commands:
                if block.steer == "background":  # a server, then tails of it
                    background.append(start(shell(command, unused_port), configured))
                    if len(background) == 1:
                        listening = f"listening on http://127.0.0.1:{unused_port}"
                        assert listening in first_line(background[0]), command
                    continue
                ran = subprocess.run(
                    ["bash", "-c", shell(command, unused_port)],
                    cwd=ROOT,
                    env=configured,
                    capture_output=True,
                    text=True,
                    timeout=90,
                )
                assert ran.returncode == 0, f"{command}\n{ran.stderr}"
                for event in block.expects:
                    wait_until(lambda e=event: server.events(e), 10)
                unset = subprocess.run(
                    ["bash", "-c", shell(command, unused_port)],
                    cwd=ROOT,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=90,
                )
                assert unset.returncode != 0, f"without {SETTINGS}, {command!r} exited 0"
                assert all(s in unset.stdout + unset.stderr for s in SETTINGS), unset.stderr
        if background:
            check_background(background, unused_port)
    finally:
        for process in background:
            process.terminate()
            process.wait(10)


def check_background(processes: list[subprocess.Popen[str]], port: int) -> None:
    """An event sent to the devserver (the first) is stored, and reaches each tail."""
    _, *tails = processes
    with PostHogClient(API_KEY, f"http://127.0.0.1:{port}") as client:
        client.capture("docs_tail_checked", "user-9")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/events", timeout=10) as answer:
        assert [e["event"] for e in json.loads(answer.read())] == ["docs_tail_checked"]
    for tail in tails:
        lines = [first_line(tail)]
        while "docs_tail_checked" not in lines[-1]:  # it may say it waits for the server
            assert len(lines) < 5, lines
            lines.append(first_line(tail))
        assert "user-9" in lines[-1], lines


# --- what a newcomer has after the README's two commands ------------------------------------


def canonical(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


def requirement_name(requirement: str) -> str:
    found = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement.strip())
    assert found, requirement
    return canonical(found.group(0))


def installed_by_quickstart() -> set[str]:
    """The distributions `dev.py quickstart` installs: the package's dependencies, its
    ``openfeature`` extra's, and the ``examples`` dependency group, with what they need."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    wanted = [*pyproject["project"]["dependencies"], *pyproject["dependency-groups"]["examples"]]
    assert all(isinstance(r, str) for r in wanted), "examples must not include other groups"
    found: set[str] = {"posthog-otel"}
    todo = [requirement_name(r) for r in wanted]
    while todo:
        dist = todo.pop()
        if dist in found:
            continue
        try:
            requires = importlib.metadata.distribution(dist).requires or ()
        except importlib.metadata.PackageNotFoundError:  # a marker left it out here
            continue
        found.add(dist)
        for requirement in requires:
            if "extra ==" not in requirement:
                todo.append(requirement_name(requirement))
    return found


def test_every_venv_command_in_the_docs_is_installed_by_the_quickstart():
    scripts = {"python", "python3"}
    for dist in installed_by_quickstart():
        entry_points = importlib.metadata.distribution(dist).entry_points
        scripts |= {ep.name for ep in entry_points if ep.group == "console_scripts"}
    used = {
        (name(page), word.removeprefix(".venv/bin/"))
        for page in PAGES
        for block in blocks(page)
        if block.language == "sh"
        for word in block.code.split()
        if word.startswith(".venv/bin/")
    }
    assert used, "the docs run nothing from .venv/bin?"
    assert {(page, command) for page, command in used if command not in scripts} == set()


def test_every_example_imports_only_what_the_quickstart_installs():
    provides = importlib.metadata.packages_distributions()
    local = {p.stem for p in (ROOT / "examples").glob("*.py")} | {"posthog_otel"}
    installed = installed_by_quickstart()
    missing = set()
    for example in sorted((ROOT / "examples").glob("*.py")):
        for node in ast.walk(ast.parse(example.read_text())):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                modules = [node.module or ""]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top in sys.stdlib_module_names or top in local or top == "__future__":
                    continue
                dists = {canonical(d) for d in provides.get(top, [])}
                if not dists & installed:
                    missing.add((example.name, module))
    assert missing == set()


# --- configuration, links, limits ------------------------------------------------------------


@pytest.mark.parametrize(
    "cls",
    [
        PostHogClient,
        PostHogSpanProcessor,
        PostHogSpanExporter,
        PostHogLogProcessor,
        PostHogLogExporter,
        PostHogMetricExporter,
        PostHogFlagProvider,
        PostHogProvider,
    ],
)
def test_every_argument_is_documented(cls):
    configuration = (ROOT / "docs" / "configuration.md").read_text()
    for argument, parameter in inspect.signature(cls.__init__).parameters.items():
        if argument == "self":
            continue
        shown = f"**{argument}" if parameter.kind is parameter.VAR_KEYWORD else argument
        assert (
            f"`{shown}`" in configuration
            or f"{shown}`" in configuration
            or f"{argument}=" in configuration
        ), argument


def test_every_environment_variable_is_documented():
    configuration = (ROOT / "docs" / "configuration.md").read_text()
    for variable in ALL_ENV_VARIABLES:
        assert f"`{variable}`" in configuration, variable


def test_every_page_is_linked_from_the_readme():
    readme = (ROOT / "README.md").read_text()
    pages = sorted(p.name for p in (ROOT / "docs").glob("*.md"))
    assert pages, "no docs pages?"
    assert [p for p in pages if f"](docs/{p})" not in readme] == []


def anchors(page: Path) -> set[str]:
    """GitHub's anchors for a page's headings."""
    headings = re.findall(
        r"^#+ (.+)$", re.sub(r"^```.*?^```", "", page.read_text(), flags=re.M | re.S), re.M
    )
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("page", PAGES, ids=name)
def test_relative_links_resolve(page):
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.M | re.S)
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists() or (
            anchor and linked.suffix == ".md" and anchor not in anchors(linked)
        ):
            broken.append(target)
    assert broken == []


# --- docs/limits.md ----------------------------------------------------------------------------


def limit_rows() -> dict[str, list[tuple[str | None, str]]]:
    """docs/limits.md's table rows: constant -> [(module it says, value cell)]."""
    rows: dict[str, list[tuple[str | None, str]]] = {}
    for line in (ROOT / "docs" / "limits.md").read_text().splitlines():
        found = re.match(r"\| `(\w+)`(?: \(in `([\w/]+)\.py`\))? \| ([^|]+) \|", line)
        if found:
            rows.setdefault(found.group(1), []).append((found.group(2), found.group(3).strip()))
    return rows


def stated(cell: str) -> float:
    """The value a cell states first: ``20,971,520 (20 MiB)`` is 20971520."""
    return float(cell.split()[0].replace(",", ""))


def constants(path: Path) -> list[str]:
    """Module-level constants: every name in _limits.py, elsewhere the MAX_ ones."""
    names = []
    for node in ast.parse(path.read_text()).body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, ast.AnnAssign):
            targets = [node.target]
        for target in targets:
            if not (isinstance(target, ast.Name) and target.id.isupper()):
                continue
            if path.name == "_limits.py" or re.match(r"_?MAX_", target.id):
                names.append(target.id)
    return names


def test_the_limits_page_lists_every_bound_with_its_value():
    limits = importlib.import_module("posthog_otel._limits")
    rows = limit_rows()
    problems = []
    for constant in constants(Path(limits.__file__)):
        value = getattr(limits, constant)
        cells = [cell for module, cell in rows.get(constant, []) if module is None]
        if not cells:
            problems.append(f"{constant} = {value!r} is not in docs/limits.md")
        elif stated(cells[0]) != value:
            problems.append(f"{constant} is {value!r}, docs/limits.md says {cells[0]}")
    src = ROOT / "src"
    for path in sorted((src / "posthog_otel").rglob("*.py")):
        if path.name == "_limits.py":
            continue
        module_path = str(path.relative_to(src / "posthog_otel").with_suffix(""))
        dotted = "posthog_otel." + module_path.replace("/", ".").removesuffix(".__init__")
        for constant in constants(path):
            value = getattr(importlib.import_module(dotted), constant)
            cells = [cell for module, cell in rows.get(constant, []) if module == module_path]
            if not cells:
                problems.append(f"{constant} ({module_path}) = {value!r} is not in docs/limits.md")
            elif stated(cells[0]) != value:
                problems.append(
                    f"{constant} ({module_path}) is {value!r}, the page says {cells[0]}"
                )
    for constant, places in rows.items():  # no row for a bound that moved or went
        for module, _ in places:
            path = src / "posthog_otel" / f"{module}.py" if module else Path(limits.__file__)
            if not path.exists() or constant not in constants(path):
                problems.append(f"docs/limits.md lists {constant} in {module or '_limits'}")
    assert problems == []
