"""What we would publish: the sdist and wheel hatchling builds from this tree.

The license travels with the code (PEP 639), only the library's own extras are published
(the development tools are dependency groups, PEP 735), the type marker ships, and the
tests stay out of the wheel.
"""

from __future__ import annotations

import email.parser
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.support.paths import ROOT

BUILD = """
import sys
import hatchling.build as backend
print(backend.build_sdist(sys.argv[1]))
print(backend.build_wheel(sys.argv[1]))
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    pytest.importorskip("hatchling", reason="hatchling is in the dev dependency group")
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [sys.executable, "-c", BUILD, str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    sdist, wheel = (out / name for name in result.stdout.split())
    return sdist, wheel


def metadata(text: str) -> email.message.Message:
    return email.parser.Parser().parsestr(text)


def wheel_files(wheel: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(wheel) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def sdist_files(sdist: Path) -> dict[str, bytes]:
    with tarfile.open(sdist) as archive:
        return {
            member.name.split("/", 1)[1]: archive.extractfile(member).read()
            for member in archive.getmembers()
            if member.isfile()
        }


def test_the_license_text_ships_in_both(built):
    sdist, wheel = built
    license_text = (ROOT / "LICENSE").read_bytes()
    assert b"MIT License" in license_text and b"posthog-otel developers" in license_text
    assert sdist_files(sdist)["LICENSE"] == license_text
    files = wheel_files(wheel)
    (licenses,) = [name for name in files if name.endswith(".dist-info/licenses/LICENSE")]
    assert files[licenses] == license_text
    for text in (sdist_files(sdist)["PKG-INFO"], files[metadata_name(files)]):
        fields = metadata(text.decode())
        assert fields["License-Expression"] == "MIT"
        assert fields.get_all("License-File") == ["LICENSE"]


def metadata_name(files: dict[str, bytes]) -> str:
    (name,) = [name for name in files if name.endswith(".dist-info/METADATA")]
    return name


def test_only_the_library_extras_are_published(built):
    _, wheel = built
    files = wheel_files(wheel)
    fields = metadata(files[metadata_name(files)].decode())
    assert sorted(fields.get_all("Provides-Extra")) == [
        "isal",
        "openfeature",
        "orjson",
        "otlp",
        "redis",
    ]
    required = fields.get_all("Requires-Dist")
    assert sorted(r for r in required if "extra ==" not in r) == [
        "opentelemetry-api>=1.27",
        "opentelemetry-sdk>=1.27",
        "urllib3>=2",
    ]
    assert not any(tool in " ".join(required) for tool in ("pytest", "ruff", "mypy", "hatchling"))


def test_the_wheel_has_the_type_marker_and_no_tests(built):
    _, wheel = built
    names = list(wheel_files(wheel))
    assert "posthog_otel/py.typed" in names
    assert "posthog_otel/__init__.py" in names
    assert [n for n in names if n.startswith(("tests/", "examples/", "docs/", "benchmarks/"))] == []
    assert all(n.startswith(("posthog_otel/", "posthog_otel-")) for n in names), names


def test_the_sdist_holds_the_pages_the_readme_links_to(built):
    sdist, _ = built
    names = set(sdist_files(sdist))
    assert {"README.md", "pyproject.toml", "src/posthog_otel/py.typed"} <= names
    pages = {f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")}
    assert pages and pages <= names  # README.md links to them
    assert not [n for n in names if n.startswith((".venv", "dist/")) or "__pycache__" in n]
