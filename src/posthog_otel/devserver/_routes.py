"""Every route the devserver speaks, in one table: PostHog's, then its own.

A route is a method, a path pattern (a regular expression matched against the whole
path, trailing slashes removed, its groups handed to the route as ``params``), the
function that answers, and how the handler treats it: the body limit, whether
browsers on other origins may call it, and whether it is the devserver's own
(same origin only, never recorded, never given a fault). To speak a new route, add
one entry here.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from posthog_otel._limits import OTLP_MAX_BODY_BYTES
from posthog_otel.devserver import _api, _definitions, _posthog
from posthog_otel.devserver._wire import Answer, Request

if TYPE_CHECKING:
    from posthog_otel.devserver import DevServer

BATCH_LIMIT = 20 * 1024 * 1024  # decompressed bytes, as PostHog's capture service
SINGLE_LIMIT = 2 * 1024 * 1024
OTLP_LIMIT = OTLP_MAX_BODY_BYTES

RouteFunction = Callable[["DevServer", Request], Answer]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: str
    answer: RouteFunction
    limit: int = SINGLE_LIMIT
    cors: bool = False
    devserver_only: bool = False

    def match(self, path: str) -> re.Match[str] | None:
        return _compiled(self.pattern).fullmatch(path)


ROUTES: tuple[Route, ...] = (
    # Capture, legacy (v0): any origin, as posthog-js calls it from web pages.
    Route("POST", "/batch", _posthog.capture, BATCH_LIMIT, cors=True),
    Route("POST", "/(?:capture|track|e|i/v0/e)", _posthog.capture, cors=True),
    Route("POST", "/i/v0/ai/batch", _posthog.capture_ai, BATCH_LIMIT),
    # Capture v1 (POSTHOG_CAPTURE_MODE=v1 in posthog-python and posthog-node).
    Route("POST", "/i/v1/analytics/events", _posthog.capture_v1, BATCH_LIMIT),
    # Flags, remote evaluation and a remote config flag's payload.
    Route("POST", "/(?:flags|decide)", _posthog.flags, cors=True),
    # Flag definitions for local evaluation (server SDKs, with a secret key).
    Route(
        "GET", "/(?:flags/definitions|api/feature_flag/local_evaluation)", _definitions.definitions
    ),
    Route(
        "GET",
        "/api/(?:projects|environments)/([^/]+)/feature_flags/([^/]+)/remote_config",
        _posthog.remote_config,
    ),
    # OpenTelemetry data: traces, logs and metrics stored (LLM spans: checked and recorded).
    Route("POST", "/i/v1/(logs|traces|metrics)", _posthog.otlp, OTLP_LIMIT),
    Route("POST", "/i/v0/ai/otel", _posthog.otlp, OTLP_LIMIT),
    # The devserver's own: the viewer and what it reads.
    Route("GET", "/", _api.viewer, devserver_only=True),
    Route(
        "GET",
        "/(viewer\\.js|viewer\\.css|favicon\\.svg|favicon\\.ico)",
        _api.asset,
        devserver_only=True,
    ),
    Route("GET", "/api/events", _api.events, devserver_only=True),
    Route("GET", "/api/requests", _api.requests, devserver_only=True),
    Route("GET", "/api/spans", _api.spans, devserver_only=True),
    Route("GET", "/api/logs", _api.logs, devserver_only=True),
    Route("GET", "/api/metrics", _api.metrics, devserver_only=True),
)


def find(method: str, path: str) -> tuple[Route | None, tuple[str, ...], list[str]]:
    """The route for this request and its pattern's groups; when none, the methods
    that the path does answer (empty when no route has this path at all)."""
    path = path.rstrip("/") or "/"
    allowed: list[str] = []
    for route in ROUTES:
        found = route.match(path)
        if found is None:
            continue
        if route.method == method:
            return route, found.groups(), []
        allowed.append(route.method)
    return None, (), allowed


@functools.cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)
