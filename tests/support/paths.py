"""Where things are in the repository, for tests in any folder."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
EXAMPLES = ROOT / "examples"
TESTS = ROOT / "tests"
