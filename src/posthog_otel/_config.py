"""Client settings: one frozen value, validated once, read from arguments or ``POSTHOG_*``.

Precedence, as in OpenTelemetry's exporters: explicit argument > environment
variable > default. A bad value raises ``ConfigurationError`` naming the setting
(or the variable it came from); neither key ever appears in a message or a repr.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from urllib.parse import unquote, urlsplit

from posthog_otel.errors import ConfigurationError

DEFAULT_HOST = "https://us.i.posthog.com"
DEFAULT_FLAGS_PATH = "/decide/?v=4"

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


@dataclass(frozen=True)
class ClientConfig:
    """Everything a ``PostHogClient`` needs to talk to one PostHog project."""

    api_key: str = field(repr=False)
    host: str = DEFAULT_HOST
    timeout: float = 5.0
    retries: int = 3
    retry_delay: float = 1.0
    enabled_capture: bool = True
    gzip: bool = True
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)  # tokens, often
    flags_path: str = DEFAULT_FLAGS_PATH
    flags_timeout: float = 3.0
    ca_bundle: str | None = None
    secret_key: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "api_key", check_key("api_key", self.api_key))
        object.__setattr__(self, "host", _check_host(self.host))
        _check_seconds("timeout", self.timeout, allow_zero=False)
        _check_seconds("flags_timeout", self.flags_timeout, allow_zero=False)
        _check_seconds("retry_delay", self.retry_delay, allow_zero=True)
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            raise ConfigurationError("retries", f"must be an integer >= 0, got {self.retries!r}")
        for name in ("enabled_capture", "gzip"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigurationError(name, "must be True or False")
        if not isinstance(self.flags_path, str) or not self.flags_path.startswith("/"):
            raise ConfigurationError("flags_path", f"must start with '/', got {self.flags_path!r}")
        object.__setattr__(self, "headers", MappingProxyType(check_headers(self.headers)))
        if self.ca_bundle is not None and not os.path.isfile(self.ca_bundle):
            raise ConfigurationError("ca_bundle", f"no such file: {self.ca_bundle!r}")
        if self.secret_key is not None:
            object.__setattr__(self, "secret_key", check_key("secret_key", self.secret_key))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> ClientConfig:
        """Build settings from ``POSTHOG_*`` variables; non-``None`` overrides win."""
        env = os.environ if environ is None else environ
        if not env.get("POSTHOG_SECRET_KEY", "").strip():  # PostHog's SDKs' older name
            env = {**env, "POSTHOG_SECRET_KEY": env.get("POSTHOG_PERSONAL_API_KEY", "")}
        values: dict[str, Any] = {}
        for name, (variable, parse) in _ENV.items():
            raw = env.get(variable, "").strip()
            if raw:
                try:
                    values[name] = parse(raw)
                except ValueError as exc:
                    raise ConfigurationError(variable, str(exc)) from None
        from_env = set(values)
        given = {k: v for k, v in overrides.items() if v is not None}
        values.update(given)
        if "api_key" not in values:
            raise ConfigurationError(
                "api_key",
                "not given and POSTHOG_API_KEY is not set (find it in PostHog's project settings)",
            )
        try:
            return cls(**values)
        except ConfigurationError as exc:
            if exc.setting in from_env and exc.setting not in given:
                problem = str(exc).partition(": ")[2]
                raise ConfigurationError(_ENV[exc.setting][0], problem) from None
            raise


def check_key(setting: str, key: object) -> str:
    """An API key (``api_key``) or a secret or personal key (``secret_key``), stripped of
    the whitespace around it (a newline from a secrets file, say); ``ConfigurationError``
    if it is empty or holds anything but printable ASCII without spaces. The message
    says what is wrong and where, never the key."""
    what = "project API key" if setting == "api_key" else "secret API key or personal API key"
    if not isinstance(key, str):
        raise ConfigurationError(setting, f"must be a {what} (a string), got {type(key).__name__}")
    stripped = key.strip()
    if not stripped:
        raise ConfigurationError(setting, f"a non-empty {what} is required")
    for position, char in enumerate(stripped):
        if not (char.isascii() and char.isprintable()) or char.isspace():
            kind = "whitespace" if char.isspace() else "a control or non-ASCII character"
            raise ConfigurationError(
                setting,
                f"the key holds {kind} at position {position} of {len(stripped)} (only "
                "surrounding whitespace is removed); copy the key again",
            )
    return stripped


def _check_host(host: object) -> str:
    if not isinstance(host, str):
        raise ConfigurationError("host", f"must be a string URL, got {type(host).__name__}")
    parts = urlsplit(host.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError("host", f"must be an http(s) URL such as {DEFAULT_HOST!r}")
    if parts.query or parts.fragment:
        raise ConfigurationError("host", "must not have a query string or fragment")
    if parts.username is not None or parts.password is not None:
        # Never echo the URL: the user info is a credential, and it would go to every proxy
        # and log line that sees the URL. PostHog authenticates by the API key alone.
        raise ConfigurationError(
            "host", "must not contain a user name or password (user:pass@); remove them"
        )
    try:
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise ConfigurationError("host", "has an invalid port") from None
    return host.strip().rstrip("/")


def _check_seconds(name: str, value: object, *, allow_zero: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigurationError(name, f"must be a number of seconds, got {type(value).__name__}")
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigurationError(name, f"must be a finite number of seconds {bound}, got {value}")


def check_headers(headers: object) -> dict[str, str]:
    if not isinstance(headers, Mapping):
        raise ConfigurationError("headers", "must be a mapping of header names to values")
    checked: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise ConfigurationError("headers", "names and values must be strings")
        if not name or any(c in name for c in "\r\n: ") or "\r" in value or "\n" in value:
            raise ConfigurationError("headers", f"invalid header {name!r}")
        checked[name] = value
    return checked


def bool_from_env(variable: str, default: bool, environ: Mapping[str, str] | None = None) -> bool:
    """A true/false switch from the environment (``true``/``false``, ``1``/``0``, ...);
    unset or empty gives ``default``, anything else raises ``ConfigurationError``."""
    raw = (os.environ if environ is None else environ).get(variable, "").strip()
    if not raw:
        return default
    try:
        return parse_bool(raw)
    except ValueError as exc:
        raise ConfigurationError(variable, str(exc)) from None


def parse_bool(raw: str) -> bool:
    """``true``/``false`` in the spellings environment variables use (``1``, ``yes``, ``on``...)."""
    lowered = raw.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"expected true or false, got {raw!r}")


def _parse_headers(raw: str) -> dict[str, str]:
    """``name=value,name2=value2`` with URL-encoded values, as ``OTEL_EXPORTER_OTLP_HEADERS``."""
    headers: dict[str, str] = {}
    for item in raw.split(","):
        if not item.strip():
            continue
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ValueError("expected name=value pairs separated by commas")
        headers[unquote(name.strip())] = unquote(value.strip())
    return headers


def parse_seconds(raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"expected a number of seconds, got {raw!r}") from None


def _parse_int(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"expected an integer, got {raw!r}") from None


def _keep(raw: str) -> str:
    return raw


_ENV: dict[str, tuple[str, Callable[[str], Any]]] = {
    "api_key": ("POSTHOG_API_KEY", _keep),
    "host": ("POSTHOG_HOST", _keep),
    "timeout": ("POSTHOG_TIMEOUT", parse_seconds),
    "retries": ("POSTHOG_RETRIES", _parse_int),
    "retry_delay": ("POSTHOG_RETRY_DELAY", parse_seconds),
    "enabled_capture": ("POSTHOG_ENABLED_CAPTURE", parse_bool),
    "gzip": ("POSTHOG_GZIP", parse_bool),
    "headers": ("POSTHOG_HEADERS", _parse_headers),
    "flags_path": ("POSTHOG_FLAGS_PATH", _keep),
    "flags_timeout": ("POSTHOG_FLAGS_TIMEOUT", parse_seconds),
    "ca_bundle": ("POSTHOG_CA_BUNDLE", _keep),
    "secret_key": ("POSTHOG_SECRET_KEY", _keep),
}
ENV_VARIABLES: Mapping[str, str] = MappingProxyType({k: v for k, (v, _) in _ENV.items()})
