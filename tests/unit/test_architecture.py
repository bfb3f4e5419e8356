"""The package's shape, checked by reading its source: layers use each other's public faces.

A module may use underscore names it defines itself (``self._lock``, ``other._items``
on its own class); reaching for another module's private attribute is how seams rot,
so it fails here, and so does assigning into another module's objects. OpenTelemetry's
private names live only in ``_otel``. Imports run down the layers ARCHITECTURE.md
draws (``_client`` never imports ``_flags``; no cycle between packages), only
``_config`` reads the environment, and ARCHITECTURE.md's module table names every
module there is, and nothing else.
"""

from __future__ import annotations

import ast
import graphlib
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support import paths

SRC = paths.SRC / "posthog_otel"
MODULES = sorted(p for p in SRC.rglob("*.py"))
# The compatibility module owns every use of OpenTelemetry's private names.
ALLOWED = {SRC / "_otel.py"}


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _defined_here(tree: ast.Module) -> set[str]:
    """Underscore names this module defines: functions, classes, attributes it assigns."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(
            getattr(node, "target", None), ast.Name
        ):
            names.add(node.target.id)  # type: ignore[union-attr]
        elif isinstance(node, ast.ClassDef):
            names.update(t.id for t in ast.walk(node) if isinstance(t, ast.Name))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names.add(node.value)  # __slots__ entries
    return {n for n in names if _private(n)}


def _our_module(package: str | None, name: str) -> bool:
    """``from posthog_otel._x import _y`` where ``_y`` is one of our modules (a private
    module is private to the package, not to a module)."""
    if not package or not package.startswith("posthog_otel"):
        return False
    folder = SRC.joinpath(*package.split(".")[1:])
    return (folder / f"{name}.py").exists() or (folder / name / "__init__.py").exists()


def violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    own = _defined_here(tree)
    where = path.relative_to(SRC) if path.is_relative_to(SRC) else path.name
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr) and node.attr not in own:
            found.append(f"{where}:{node.lineno} uses .{node.attr}")
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if _private(alias.name) and not _our_module(node.module, alias.name):
                    found.append(f"{where}:{node.lineno} imports {alias.name}")
    return found


@pytest.mark.parametrize("path", [p for p in MODULES if p not in ALLOWED], ids=str)
def test_no_module_reaches_into_another_modules_private_names(path):
    assert violations(path) == []


def test_the_check_catches_what_it_should():
    sample = SRC.parent / "_architecture_sample.py"
    sample.write_text(
        textwrap.dedent(
            """
            from opentelemetry.baggage import _BAGGAGE_KEY
            class Mine:
                def __init__(self, other):
                    self._lock = None
                    other._worker.put(1)
            """
        )
    )
    try:
        found = violations(sample)
    finally:
        sample.unlink()
    assert [f.split(" ", 1)[1] for f in found] == ["imports _BAGGAGE_KEY", "uses ._worker"]


# -- no module assigns into another module's objects ----------------------------------


def _declared(tree: ast.Module) -> set[str]:
    """Attributes a module declares on objects of its own: ``self.x =``/``cls.x =``,
    and a class body's annotations, assignments and methods."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for stmt in node.body:
                if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                    names.add(stmt.target.id)
                elif isinstance(stmt, ast.Assign):
                    names.update(t.id for t in stmt.targets if isinstance(t, ast.Name))
                elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    names.add(stmt.name)
        for target in _targets(node):
            if _on_self(target):
                names.add(target.attr)  # type: ignore[attr-defined]
    return names


def _targets(node: ast.AST) -> list[ast.expr]:
    if isinstance(node, ast.Assign):
        found: list[ast.expr] = []
        for target in node.targets:
            found.extend(target.elts if isinstance(target, ast.Tuple) else [target])
        return found
    if isinstance(node, (ast.AugAssign, ast.AnnAssign)):
        return [node.target]
    return []


def _on_self(node: ast.expr) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id in ("self", "cls")
    )


DECLARED = {p: _declared(ast.parse(p.read_text())) for p in MODULES}


def assignments_into_others(path: Path, declared_elsewhere: set[str]) -> list[str]:
    """``x.attr = ...`` (or ``x.attr[k] = ...``) where ``x`` is not ``self``/``cls`` and
    is a call or a chain (``f().a =``, ``a.b.c =``), or ``attr`` is declared by another
    module of ours and not by this one. Objects of the standard library and of
    OpenTelemetry, and this module's own, may be set."""
    tree = ast.parse(path.read_text())
    mine = _declared(tree)
    where = path.relative_to(SRC) if path.is_relative_to(SRC) else path.name
    found = []
    for node in ast.walk(tree):
        for target in _targets(node):
            if isinstance(target, ast.Subscript):
                target = target.value
            if not isinstance(target, ast.Attribute) or _on_self(target):
                continue
            base = target.value
            if isinstance(base, ast.Call) or (
                isinstance(base, ast.Attribute) and not _on_self(base)
            ):
                found.append(f"{where}:{node.lineno} assigns through a chain to .{target.attr}")
            elif target.attr not in mine and target.attr in declared_elsewhere:
                found.append(f"{where}:{node.lineno} assigns another module's .{target.attr}")
    return found


@pytest.mark.parametrize("path", MODULES, ids=str)
def test_no_module_assigns_into_another_modules_objects(path):
    elsewhere = set().union(*(names for other, names in DECLARED.items() if other != path))
    assert assignments_into_others(path, elsewhere) == []


def test_the_assignment_check_catches_what_it_should():
    sample = SRC.parent / "_assignment_sample.py"
    sample.write_text(
        textwrap.dedent(
            """
            import threading
            class Mine:
                def __init__(self, exporter, pipeline_of, error, other):
                    self.taken = None
                    other.taken = 1              # ours: allowed
                    pipeline_of(exporter).taken = 2
                    exporter.pipeline.stats = 3
                    error.sent = 4               # declared by errors.py, not here
                    flag.results["k"] = 5        # declared by the flags' matcher
                    threading.current_thread().name = "x"
            """
        )
    )
    try:
        found = assignments_into_others(sample, {"sent", "results", "stats"})
    finally:
        sample.unlink()
    assert [f.split(" ", 1)[1] for f in found] == [
        "assigns through a chain to .taken",
        "assigns through a chain to .stats",
        "assigns another module's .sent",
        "assigns another module's .results",
        "assigns through a chain to .name",
    ]


# -- imports run down the layers -------------------------------------------------------

PACKAGES = ("_client", "_mapping", "_pipeline", "_flags/local", "_flags/openfeature", "_flags")
PACKAGES += ("devserver",)
# The documented order (ARCHITECTURE.md), lowest first: a node imports only from its
# own layer or below. Root modules are nodes of their own; so is each package.
LAYERS = [
    {"errors", "_version", "_limits", "_json", "_forksafe", "_otel", "_config", "_flagdata"},
    {"_client"},
    {"_mapping"},
    {"_pipeline"},
    {"_context"},
    {"_flags.local"},
    {"_flags"},
    {"_flags.openfeature"},
    {"devserver"},
    {"posthog_otel", "openfeature", "cli", "devserver/__main__"},
]


def node_of(path: Path) -> str:
    rel = path.relative_to(SRC).with_suffix("").as_posix()
    if path.name == "__main__.py":  # a command, at the top whatever its folder
        return rel
    for package in PACKAGES:
        if rel.startswith(package + "/"):
            return package.replace("/", ".")
    return "posthog_otel" if rel == "__init__" else rel


def _file_of(dotted: str) -> Path | None:
    parts = dotted.split(".")[1:]
    if not parts:
        return SRC / "__init__.py"
    for candidate in (SRC.joinpath(*parts).with_suffix(".py"), SRC.joinpath(*parts, "__init__.py")):
        if candidate.exists():
            return candidate
    return None


def import_edges() -> dict[tuple[str, str], str]:
    """(importer, imported) between nodes, with the first place each is seen; imports
    inside functions and under ``TYPE_CHECKING`` count too."""
    edges: dict[tuple[str, str], str] = {}
    for path in MODULES:
        here = node_of(path)
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("posthog_otel"):
                module = node.module or ""
                for alias in node.names:  # a module imported by name, or a name in one
                    names.append(
                        f"{module}.{alias.name}" if _file_of(f"{module}.{alias.name}") else module
                    )
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names if a.name.split(".")[0] == "posthog_otel"]
            for name in names:
                file = _file_of(name)
                assert file is not None, (path, name)
                there = node_of(file)
                if there != here:
                    edges.setdefault((here, there), f"{path.relative_to(SRC)}:{node.lineno}")
    return edges


def test_client_never_imports_flags():
    up = {w: b for (a, b), w in import_edges().items() if a == "_client" and b.startswith("_flags")}
    assert up == {}


def test_no_cycle_between_packages_and_imports_follow_the_documented_order():
    edges = import_edges()
    graph: dict[str, set[str]] = {}
    for importer, imported in edges:
        graph.setdefault(importer, set()).add(imported)
    list(graphlib.TopologicalSorter(graph).static_order())  # CycleError names the cycle
    layer = {node: i for i, nodes in enumerate(LAYERS) for node in nodes}
    assert set(layer) >= {node_of(p) for p in MODULES}, "a node missing from LAYERS"
    upward = {w: f"{a} -> {b}" for (a, b), w in edges.items() if layer[b] > layer[a]}
    assert upward == {}


# -- one reader of the environment -----------------------------------------------------


def reads_environment(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
            and node.attr in ("environ", "getenv", "environb")
        ):
            found.append(f"{node.lineno} os.{node.attr}")
        if isinstance(node, ast.ImportFrom) and node.module == "os":
            found += [f"{node.lineno} {a.name}" for a in node.names if "env" in a.name]
    return found


@pytest.mark.parametrize("path", [p for p in MODULES if p != SRC / "_config.py"], ids=str)
def test_only_config_reads_the_environment(path):
    assert reads_environment(path) == []


# -- ARCHITECTURE.md lists every module --------------------------------------------------


def documented_modules() -> set[str]:
    """The modules named in the first column of ARCHITECTURE.md's ``| module | owns |``
    table: ``_client/retry``, then bare names in the same cell are in the same folder;
    a bare name first in its cell is a root module."""
    text = (paths.ROOT / "ARCHITECTURE.md").read_text()
    table = text.split("| module | owns |", 1)[1].split("\n\n", 1)[0]
    names: set[str] = set()
    for row in table.splitlines()[2:]:
        cell = row.split("|")[1]
        folder = ""
        for name in re.findall(r"`([^`]+)`", cell):
            if "/" in name:
                folder, _, name = name.rpartition("/")
                folder += "/"
            names.add(folder + name)
    return names


def listed_modules() -> set[str]:
    """Every module under ``src/``; a package's ``__init__`` only when it defines
    something (a class or function), not when it only re-exports."""
    found = set()
    for path in MODULES:
        rel = path.relative_to(SRC).with_suffix("").as_posix()
        if path.name == "__init__.py":
            body = ast.parse(path.read_text()).body
            if not any(isinstance(n, (ast.ClassDef, ast.FunctionDef)) for n in body):
                continue
        found.add(rel)
    return found


def test_architecture_md_names_every_module_and_only_those():
    documented, real = documented_modules(), listed_modules()
    assert sorted(real - documented) == [], "modules ARCHITECTURE.md does not list"
    assert sorted(documented - real) == [], "ARCHITECTURE.md lists modules that do not exist"


FORCED_FALLBACKS = """
import sys, types, importlib

# The SDK itself uses these names: load it first, with the real modules.
import opentelemetry.sdk.trace, opentelemetry.sdk.trace.export, opentelemetry.sdk.resources

# Hide every OpenTelemetry private name we use, as a future SDK might rename them.
for module_name, names in {
    "opentelemetry.context": ["_RUNTIME_CONTEXT", "_SUPPRESS_INSTRUMENTATION_KEY"],
    "opentelemetry.trace.propagation": ["_SPAN_KEY"],
    "opentelemetry.baggage": ["_BAGGAGE_KEY"],
}.items():
    real = importlib.import_module(module_name)
    proxy = types.ModuleType(module_name)
    proxy.__dict__.update({k: v for k, v in vars(real).items() if k not in names})
    sys.modules[module_name] = proxy
    parent, _, child = module_name.rpartition(".")
    setattr(importlib.import_module(parent), child, proxy)

import posthog_otel
from posthog_otel import _otel
_otel.use_public_api()  # and the per-span fast paths (_attributes._dict, _events)

from opentelemetry.sdk.trace import TracerProvider
from posthog_otel import PostHogClient, PostHogFlagProvider, PostHogSpanProcessor, identify
from posthog_otel.devserver import DevServer

with DevServer(flags={"beta": True}) as server:
    client = PostHogClient("phc_test", server.url, retry_delay=0.01)
    processor = PostHogSpanProcessor(client)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("t")
    flags = PostHogFlagProvider(client, processor=processor)
    with identify("user-7"), tracer.start_as_current_span("request"):
        assert flags.is_enabled("beta")
        with tracer.start_as_current_span("child", attributes={"posthog.event": "done"}):
            pass
    provider.shutdown()
    flags.shutdown()
    (event,) = server.wait_for_events(1, event="done")
    assert event["distinct_id"] == "user-7", event
    assert event["properties"]["$feature/beta"] is True, event
print("ok")
"""


def test_the_pipeline_works_with_every_opentelemetry_private_name_unavailable():
    result = subprocess.run(
        [sys.executable, "-c", FORCED_FALLBACKS], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
