"""The devserver's own routes: the event viewer, its files, and the JSON it reads
(``/api/events``, ``/api/spans``, ``/api/logs``, ``/api/metrics``, ``/api/requests``).
Same origin only: no CORS headers, and a content security policy that lets the page
run nothing but its own script (every
answer, these included, says ``X-Content-Type-Options: nosniff``: see ``_handler``)."""

from __future__ import annotations

import functools
from importlib import resources
from typing import TYPE_CHECKING

from posthog_otel.devserver._store import Filters
from posthog_otel.devserver._wire import Answer, Request, not_found

if TYPE_CHECKING:
    from posthog_otel.devserver import DevServer

MAX_LIMIT = 10_000
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_ASSETS = {
    "viewer.html": "text/html; charset=utf-8",
    "viewer.js": "text/javascript; charset=utf-8",
    "viewer.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}


def viewer(app: DevServer, request: Request) -> Answer:
    return _file("viewer.html")


def asset(app: DevServer, request: Request) -> Answer:
    name = request.params[0].replace("favicon.ico", "favicon.svg")
    if name not in _ASSETS:
        raise not_found()
    return _file(name)


def events(app: DevServer, request: Request) -> Answer:
    """Stored events, newest first by arrival (``order=time``: by event time), filtered
    (see ``Filters``); ``X-Total-Count`` says how many match in all."""
    limit = _limit(request)
    filters = Filters(
        event=request.arg("event"),
        distinct_id=request.arg("distinct_id"),
        event_contains=request.arg("event_contains"),
        distinct_id_contains=request.arg("distinct_id_contains"),
        text=request.arg("q"),
        trace_id=request.arg("trace_id"),
        after=request.arg("after"),
    )
    by_time = request.arg("order") == "time"
    found = app.store.query(filters=filters, limit=limit, order="time" if by_time else "arrival")
    total = len(found) if len(found) < limit else app.store.count(filters=filters)
    return Answer(200, found, headers={"X-Total-Count": str(total)})


def spans(app: DevServer, request: Request) -> Answer:
    """Stored spans, newest first (``?trace_id=``, ``?distinct_id=``, ``?limit=``)."""
    return _otel(app, request, "spans", ("trace_id", "distinct_id"))


def logs(app: DevServer, request: Request) -> Answer:
    """Stored log records, newest first (``?distinct_id=``, ``?session_id=``, ``?trace_id=``)."""
    return _otel(app, request, "logs", ("distinct_id", "session_id", "trace_id"))


def metrics(app: DevServer, request: Request) -> Answer:
    """Stored metrics, newest first (``?name=``)."""
    return _otel(app, request, "metrics", ("name",))


def _otel(app: DevServer, request: Request, table: str, names: tuple[str, ...]) -> Answer:
    """As ``/api/events``: a list, newest first, and ``X-Total-Count`` (for metrics: of
    data points)."""
    limit = _limit(request)
    filters = {name: request.arg(name) for name in names}
    found = app.store.otel(table, filters, limit)
    if len(found) < limit and table != "metrics":
        total = len(found)
    else:
        total = app.store.otel_count(table, filters)
    return Answer(200, found, headers={"X-Total-Count": str(total)})


def _limit(request: Request) -> int:
    try:
        return max(0, min(int(request.arg("limit") or 100), MAX_LIMIT))
    except ValueError:
        return 100


def requests(app: DevServer, request: Request) -> Answer:
    """The request log's summary, and ``repeated_events``: events that arrived again
    after they were stored (a batch retried because its answer was lost), not stored twice."""
    return Answer(200, {**app.requests.summary(), "repeated_events": app.store.repeated()})


def _file(name: str) -> Answer:
    return Answer(200, page(name), _ASSETS[name], _PAGE_HEADERS)


@functools.cache
def page(name: str) -> bytes:
    """One of the viewer's files, as shipped in the package."""
    return resources.files(__package__).joinpath(name).read_bytes()
