"""Web properties PostHog understands (``$current_url``, ``$host``, ``$pathname``, ...),
read from the attributes of a server span, and URLs with their credentials redacted.
Pure: no I/O.

Instrumentations name the request in two generations of semantic conventions, and WSGI
ones (Flask, Django) never set a full URL: ``$current_url`` is then rebuilt from its
parts. Query parameters named like credentials (by the same denylist that drops
attributes) and any ``user:password@`` keep their name and lose their value, in
``$current_url`` and in every URL-bearing attribute sent as a property.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote_plus

from posthog_otel._mapping.convention import normalise_key

REDACTED = "REDACTED"  # what OpenTelemetry's conventions put in place of URL credentials

# Attributes holding a URL, a request target or a query string: redacted when sent.
URL_ATTRIBUTES = frozenset({"url.full", "http.url", "url.original", "http.target", "url.query"})

_FULL_URL = ("url.full", "http.url")
_SCHEME = ("url.scheme", "http.scheme")
# (host, its port) in order of preference; the Host header (``http.host``) has its own port.
_HOST = (
    ("server.address", "server.port"),
    ("http.host", None),
    ("net.host.name", "net.host.port"),
    ("http.server_name", "net.host.port"),
)
# scheme://authority/path, without raising on malformed URLs as urlsplit may.
_ABSOLUTE = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<authority>[^/?#]*)(?P<path>[^?#]*)"
)
_DEFAULT_PORTS = {"http": "80", "https": "443", "ws": "80", "wss": "443"}
_OTHERS = (
    ("$raw_user_agent", ("user_agent.original", "http.user_agent")),
    ("$ip", ("client.address", "http.client_ip", "net.peer.ip")),
)


def web_properties(
    attrs: Mapping[str, Any], denylist: re.Pattern[str] | None = None
) -> dict[str, Any]:
    """``$current_url`` (given or rebuilt, redacted), ``$host``, ``$pathname``,
    ``$raw_user_agent`` and ``$ip`` from either generation of HTTP attribute names."""
    found: dict[str, Any] = {}
    target = _target(attrs)
    # A full URL, else an absolute-form target (as proxies receive), else rebuilt.
    url = _text(attrs, _FULL_URL) or (target if _ABSOLUTE.match(target) else "")
    parts = _ABSOLUTE.match(url) if url else None
    if parts:
        host = parts["authority"].rpartition("@")[2]
    else:
        scheme = _text(attrs, _SCHEME).lower()
        host = _host(attrs, scheme)
        if not url and scheme and host and target.startswith("/"):
            url = f"{scheme}://{host}{target}"
    if url:
        found["$current_url"] = redact_url(url, denylist)
    if host:
        found["$host"] = host
    path = _text(attrs, ("url.path",)) or target.partition("?")[0]
    if not path.startswith("/"):
        path = (parts["path"] or "/") if parts else ""
    if path:
        found["$pathname"] = path
    for name, keys in _OTHERS:
        value = _text(attrs, keys)
        if value:
            found[name] = value
    return found


def redact_attribute(key: str, value: Any, denylist: re.Pattern[str] | None) -> Any:
    """A URL-bearing attribute's value (see ``URL_ATTRIBUTES``) with credentials redacted."""
    if not isinstance(value, str):
        return value
    return redact_query(value, denylist) if key == "url.query" else redact_url(value, denylist)


def redact_url(url: str, denylist: re.Pattern[str] | None) -> str:
    """``url`` (absolute, or a path with a query) with ``user:password@`` and the values
    of query parameters named like credentials replaced by ``REDACTED``."""
    if denylist is None or ("?" not in url and "@" not in url):
        return url
    before, hash_mark, fragment = url.partition("#")
    absolute = _ABSOLUTE.match(before)
    if absolute and "@" in absolute["authority"]:
        user_info, _, host = absolute["authority"].rpartition("@")
        user_info = f"{REDACTED}:{REDACTED}" if ":" in user_info else REDACTED
        start, end = absolute.span("authority")
        before = f"{before[:start]}{user_info}@{host}{before[end:]}"
    path, mark, query = before.partition("?")
    if mark:
        before = path + mark + redact_query(query, denylist)
    return before + hash_mark + fragment


def redact_query(query: str, denylist: re.Pattern[str] | None) -> str:
    """A query string with each credential-named parameter's value replaced by
    ``REDACTED``; everything else (order, encoding, separators) as it was."""
    if denylist is None or "=" not in query:
        return query
    parts = query.split("&")
    for index, part in enumerate(parts):
        name, equals, value = part.partition("=")
        if value and _is_credential(name, denylist):
            parts[index] = name + equals + REDACTED
    return "&".join(parts)


@functools.lru_cache(maxsize=4096)  # parameter names repeat: decide each once
def _is_credential(name: str, denylist: re.Pattern[str]) -> bool:
    """``access_token``, ``apiKey``, ``user[password]`` (any encoding) are credentials."""
    words = re.sub(r"[\[\]]+", ".", unquote_plus(name)).strip(".")
    return denylist.search(normalise_key(words)) is not None


def _text(attrs: Mapping[str, Any], keys: tuple[str, ...]) -> str:
    """The first of ``keys`` holding a non-empty string, else ``""``."""
    for key in keys:
        value = attrs.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


def _target(attrs: Mapping[str, Any]) -> str:
    """The request target, path and query: ``url.path`` + ``url.query``, or ``http.target``."""
    path = _text(attrs, ("url.path",))
    if not path:
        return _text(attrs, ("http.target",))
    query = _text(attrs, ("url.query",))
    return f"{path}?{query}" if query else path


def _host(attrs: Mapping[str, Any], scheme: str) -> str:
    """``host[:port]`` as a browser shows it: the default port for ``scheme`` omitted,
    IPv6 in brackets, and a port not repeated when the address already carries it (as
    the WSGI and ASGI instrumentations' ``server.address`` and ``net.host.name`` do)."""
    for host_key, port_key in _HOST:
        address = _text(attrs, (host_key,))
        if not address:
            continue
        host, port = _split_port(address)
        if port is None and port_key is not None:
            given = attrs.get(port_key)
            port = str(given) if isinstance(given, (int, str)) else None
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return host if port in (None, "", _DEFAULT_PORTS.get(scheme)) else f"{host}:{port}"
    return ""


def _split_port(address: str) -> tuple[str, str | None]:
    """``("example.com", "8080")`` from ``example.com:8080``; IPv6 with or without brackets."""
    if address.startswith("["):
        host, _, rest = address.partition("]")
        port = rest[1:] if rest.startswith(":") and rest[1:].isdigit() else None
        return host + "]", port
    host, colon, port = address.rpartition(":")
    if colon and ":" not in host and port.isdigit():
        return host, port
    return address, None
