"""Source files every supported Python can compile: strict UTF-8, no lone surrogate in a
docstring (Python 3.13 cleans docstrings at compile time and cannot encode one, so a
``"\\udc80"`` escape in a non-raw docstring made the package fail to import there)."""

from __future__ import annotations

import ast

import pytest

from tests.support import paths

ROOT = paths.ROOT
FOLDERS = ("src", "tests", "benchmarks", "examples")
FILES = [ROOT / "dev.py", *sorted(p for f in FOLDERS for p in (ROOT / f).rglob("*.py"))]


def _docstrings(tree: ast.Module) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                found.append((body[0].lineno, body[0].value.value))
    return found


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_source_file_is_utf8_with_no_surrogate_in_a_docstring(path):
    data = path.read_bytes()
    text = data.decode("utf-8")  # strict: raises on any byte sequence that is not UTF-8
    for line, doc in _docstrings(ast.parse(text)):
        try:
            doc.encode("utf-8")
        except UnicodeEncodeError as exc:
            pytest.fail(f"{path.name}:{line}: a docstring holds a lone surrogate ({exc})")


def test_the_check_sees_an_escaped_surrogate_in_a_docstring():
    tree = ast.parse('def f():\n    """a \\udc80 b"""\n')
    ((_, doc),) = _docstrings(tree)
    with pytest.raises(UnicodeEncodeError):
        doc.encode("utf-8")
