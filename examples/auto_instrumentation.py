"""Zero code change: OTEL_TRACES_EXPORTER=posthog under opentelemetry-instrument.

Starts the devserver, runs examples/auto_instrumented_app.py under
``opentelemetry-instrument`` with our exporter selected by name, then prints what
arrived. The SDK builds PostHogSpanExporter from the POSTHOG_* variables.

    pip install opentelemetry-distro
    python examples/auto_instrumentation.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from posthog_otel.devserver import DevServer

HERE = Path(__file__).resolve().parent


def main() -> None:
    instrument = shutil.which("opentelemetry-instrument", path=str(Path(sys.executable).parent))
    if instrument is None:
        raise SystemExit("needs opentelemetry-distro: pip install opentelemetry-distro")
    with DevServer() as server:
        env = {
            **os.environ,
            "OTEL_TRACES_EXPORTER": "posthog",
            "OTEL_METRICS_EXPORTER": "none",
            "OTEL_LOGS_EXPORTER": "none",
            "OTEL_SERVICE_NAME": "billing",
            "POSTHOG_API_KEY": "phc_example",
            "POSTHOG_HOST": server.url,
        }
        command = [instrument, sys.executable, str(HERE / "auto_instrumented_app.py")]
        print("$ OTEL_TRACES_EXPORTER=posthog opentelemetry-instrument python <the app>")
        subprocess.run(command, env=env, check=True)
        for event in reversed(server.events()):
            props = event["properties"]
            service = props.get("service.name")
            print(f"{event['event']:<22} {event['distinct_id']:<7} service={service}")


if __name__ == "__main__":
    main()
