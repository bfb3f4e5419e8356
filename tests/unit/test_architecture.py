"""The package's shape, checked by reading its source: layers use each other's public faces.

A module may use underscore names it defines itself (``self._lock``, ``other._items``
on its own class); reaching for another module's private attribute is how seams rot,
so it fails here. OpenTelemetry's private names live only in ``_otel``.
"""

from __future__ import annotations

import ast
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


def test_modules_stay_small_and_folders_few():
    too_long = {
        str(p.relative_to(SRC)): n for p in MODULES if (n := len(p.read_text().splitlines())) > 400
    }
    assert too_long == {}
    for folder in {p.parent for p in MODULES}:
        assert len(list(folder.glob("*.py"))) <= 15, folder


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
