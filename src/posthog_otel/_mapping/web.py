"""Web properties PostHog understands (``$current_url``, ``$pathname``, ...), read from
the attributes of a server span. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

# Request context PostHog understands, read from server spans (both generations of names).
WEB_PROPERTIES = (
    ("$current_url", ("url.full", "http.url")),
    ("$pathname", ("url.path", "http.target")),
    ("$raw_user_agent", ("user_agent.original", "http.user_agent")),
    ("$ip", ("client.address", "http.client_ip", "net.peer.ip")),
)


def web_properties(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """``$current_url``, ``$pathname``, ``$raw_user_agent`` and ``$ip`` from either
    generation of HTTP semantic-convention names."""
    found: dict[str, Any] = {}
    for name, keys in WEB_PROPERTIES:
        for key in keys:
            value = attrs.get(key)
            if isinstance(value, str) and value:
                found[name] = value.split("?", 1)[0] if name == "$pathname" else value
                break
    if "$pathname" not in found and "$current_url" in found:
        found["$pathname"] = urlsplit(found["$current_url"]).path or "/"
    return found
