"""Run every benchmark and print one Markdown report (python3 dev.py bench).

The peers log to stderr (posthog-python logs every dropped event); send it elsewhere:
    python3 dev.py bench 2> bench.log
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = [
    "caller_cost.py",
    "e2e.py",
    "flags.py",
    "local_flags.py",
    "logs.py",
    "serialisation.py",
    "genai.py",
]


def main() -> int:
    for script in SCRIPTS:
        print(f"\n## {script}\n", flush=True)
        code = subprocess.call([sys.executable, str(HERE / script), *sys.argv[1:]], cwd=HERE)
        if code:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
