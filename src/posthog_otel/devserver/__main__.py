"""``python -m posthog_otel.devserver [options]``: the same as ``posthog-otel devserver``."""

import sys

from posthog_otel.cli import main

sys.exit(main(["devserver", *sys.argv[1:]]))
