"""Real web services for tests: the apps in tests/apps run as subprocesses, as users run
them, exporting to the test devserver.

    service = start_flask(devserver.url)            # opentelemetry-instrument, exporter
    service = start_fastapi(devserver.url)          # uvicorn, PostHogSpanProcessor
    requests.get(service.url + "/items/1?page=2")   # tags its server span: item_viewed
    stopped = service.stop(signal.SIGTERM)          # -> Stopped(returncode, output)
    redis = start_redis()                           # redis-server on a free port, no disk
    worker = start_celery(devserver.url, broker)    # tests/apps/celery_app.py, prefork -c 2

Each app serves ``GET /items/<n>``, which tags its instrumented server span with
``posthog.event = item_viewed`` and ``item = n`` (inside ``identify(user)`` with
``?user=``, adding ``capture(name)`` with ``?capture=name``; Flask also logs a record
tagged ``posthog.event = name`` with ``?log=name``), and, when
``DOWNSTREAM_URL`` is set, calls the same path and query there with ``requests`` (one
trace across two services). Pass ``env`` to add or override variables
(``OTEL_SEMCONV_STABILITY_OPT_IN``, ``OTEL_BSP_SCHEDULE_DELAY``, ``DOWNSTREAM_URL``,
``OTEL_PROPAGATORS``; ``APP_PROPAGATORS`` to set propagators in code, ...). The ``services`` fixture in
conftest stops whatever a test left running.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.support.server import API_KEY

APPS = Path(__file__).resolve().parent / "apps"
BIN = Path(sys.executable).parent
# Generous: importing Flask or FastAPI with every instrumentation takes seconds on a
# loaded 2-core machine. A hang guard, not a performance claim.
READY_TIMEOUT = 60.0


@dataclass(frozen=True)
class Stopped:
    """How a service ended: its exit status (negative: killed by that signal) and what
    it printed, stdout and stderr interleaved."""

    returncode: int
    output: str


class Service:
    """One running app: its base URL and its process."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self._log = tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            argv,
            env=dict(env),
            cwd=APPS,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C at the terminal stops pytest, not this
        )
        self._port = port
        self._stopped: Stopped | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def port(self) -> int:
        return self._port

    def output(self) -> str:
        """What it has printed so far."""
        self._log.flush()
        self._log.seek(0)
        return self._log.read()

    def wait_printed(self, text: str, timeout: float = READY_TIMEOUT) -> Service:
        """Poll the output until it contains ``text`` (a service with no port of its own,
        as a Celery worker); fail with the output if the process exits or time runs out."""
        deadline = time.monotonic() + timeout
        while text not in self.output():
            if self.process.poll() is not None:
                stopped = self.stop()
                raise AssertionError(f"service exited ({stopped.returncode}):\n{stopped.output}")
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{text!r} not printed within {timeout} s:\n{self.stop().output}"
                )
            time.sleep(0.05)
        return self

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> Service:
        """Poll until the port accepts connections; fail with the output if the process
        exits or the timeout passes. Connecting makes no request, hence no span."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                stopped = self.stop()
                raise AssertionError(f"service exited ({stopped.returncode}):\n{stopped.output}")
            try:
                socket.create_connection(("127.0.0.1", self._port), timeout=1).close()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"service not listening within {timeout} s:\n{self.stop().output}"
                    ) from None
                time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> Stopped:
        """Send ``sig`` (if still running), wait for the exit, and return how it ended.
        Past ``timeout`` (a hang guard) the process is killed and the test fails."""
        if self._stopped is not None:
            return self._stopped
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(
                f"service ignored signal {sig} for {timeout} s:\n{self.output()}"
            ) from None
        self._stopped = Stopped(self.process.returncode, self.output())
        self._log.close()
        return self._stopped

    def kill(self) -> None:
        """Stop it now, whatever state it is in (fixture teardown)."""
        if self._stopped is None:
            self.stop(signal.SIGKILL)


def free_port() -> int:
    """A loopback port nothing listens on now (the OS may hand it out again later)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def service_env(posthog_url: str, service_name: str, **extra: str) -> dict[str, str]:
    """This process's environment minus any OpenTelemetry or PostHog settings, plus the
    devserver, a service name, and no metrics or logs exporters (none are installed)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "POSTHOG_"))}
    env.update(
        POSTHOG_API_KEY=API_KEY,
        POSTHOG_HOST=posthog_url,
        OTEL_SERVICE_NAME=service_name,
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        NO_PROXY="127.0.0.1,localhost",
        # openai-v2 2.3b0 fails to instrument with wrapt 2 and, raising, stops
        # opentelemetry-instrument from loading the instrumentations after it (Flask's).
        OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="openai",
        PYTHONUNBUFFERED="1",
        **extra,
    )
    return env


class Services:
    """Starts apps exporting to one devserver and kills what is left on ``close()``."""

    def __init__(self, posthog_url: str) -> None:
        self.posthog_url = posthog_url
        self.started: list[Service] = []

    def flask(
        self, *, telemetry: str = "exporter", env: Mapping[str, str] | None = None
    ) -> Service:
        """See ``start_flask``."""
        return self._track(lambda: start_flask(self.posthog_url, telemetry=telemetry, env=env))

    def fastapi(self, *, env: Mapping[str, str] | None = None) -> Service:
        """See ``start_fastapi``."""
        return self._track(lambda: start_fastapi(self.posthog_url, env=env))

    def celery(self, broker: str, *options: str, env: Mapping[str, str] | None = None) -> Service:
        """See ``start_celery``."""
        return self._track(lambda: start_celery(self.posthog_url, broker, *options, env=env))

    def _track(self, start: Callable[[], Service]) -> Service:
        service = start()
        self.started.append(service)
        return service

    def close(self) -> None:
        for service in self.started:
            service.kill()


def start_flask(
    posthog_url: str, *, telemetry: str = "exporter", env: Mapping[str, str] | None = None
) -> Service:
    """Flask's development server under ``opentelemetry-instrument``; with
    ``telemetry="exporter"`` spans leave through ``OTEL_TRACES_EXPORTER=posthog``, with
    ``"processor"`` through a ``PostHogSpanProcessor`` the app adds in code."""
    port = free_port()
    exporter = "posthog" if telemetry == "exporter" else "none"
    variables = service_env(
        posthog_url, "flask-app", OTEL_TRACES_EXPORTER=exporter, APP_TELEMETRY=telemetry
    )
    variables.update(env or {}, PORT=str(port))
    argv = [str(BIN / "opentelemetry-instrument"), sys.executable, str(APPS / "flask_app.py")]
    return Service(argv, variables, port).wait_ready()


def start_fastapi(posthog_url: str, *, env: Mapping[str, str] | None = None) -> Service:
    """FastAPI under uvicorn's command line, with a ``PostHogSpanProcessor`` in code."""
    port = free_port()
    variables = service_env(posthog_url, "fastapi-app", APP_TELEMETRY="processor")
    variables.update(env or {})
    argv = [sys.executable, "-m", "uvicorn", "fastapi_app:app", "--app-dir", str(APPS)]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
    return Service(argv, variables, port).wait_ready()


def start_celery(
    posthog_url: str, broker: str, *options: str, env: Mapping[str, str] | None = None
) -> Service:
    """A Celery prefork worker (``-c 2`` and ``options``) for ``tests/apps/celery_app.py``,
    under ``opentelemetry-instrument`` with ``OTEL_TRACES_EXPORTER=posthog`` (``env`` may
    turn that to ``none`` and set ``APP_FLUSH_INTERVAL``). Ready once it logs that it is;
    ``stop(SIGTERM)`` is a warm shutdown."""
    variables = service_env(
        posthog_url, "celery-worker", OTEL_TRACES_EXPORTER="posthog", CELERY_BROKER_URL=broker
    )
    variables.update(env or {})
    argv = [str(BIN / "opentelemetry-instrument"), str(BIN / "celery"), "-A", "celery_app"]
    argv += ["worker", "--pool", "prefork", "-c", "2", "--loglevel", "INFO"]
    argv += ["--without-gossip", "--without-mingle", "--without-heartbeat", *options]
    return Service(argv, variables, 0).wait_printed(" ready.")


def start_redis() -> Service:
    """Debian's ``redis-server`` on a free loopback port, with no persistence (nothing
    written to disk); its URL is ``redis://127.0.0.1:<port>/0``."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise FileNotFoundError("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    argv = [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly"]
    argv += ["no", "--dir", tempfile.gettempdir()]
    return Service(argv, {"PATH": os.environ.get("PATH", "")}, port).wait_ready()
