"""Settings: the client's frozen value, and every ``POSTHOG_*`` variable the package reads.

``ClientConfig`` (here) and ``PipelineOptions`` (``_pipeline.pipeline``) are each one
frozen value validated once; both read the environment through ``env_settings``, the
one table of variables below, so no other module reads ``os.environ``.

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
from typing import Any, TypeVar
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
        values = env_settings("client", environ)
        given = {k: v for k, v in overrides.items() if v is not None}
        if "api_key" not in values and "api_key" not in given:
            raise ConfigurationError(
                "api_key",
                "not given and POSTHOG_API_KEY is not set (find it in PostHog's project settings)",
            )
        return settle(cls, values, given)


def env_settings(group: str, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The settings of ``group`` (``"client"`` or ``"pipeline"``) that ``POSTHOG_*``
    variables set, parsed; ``ConfigurationError`` naming the variable if one cannot be
    read. Unset or empty variables are left out. This is the one reader of the
    environment for the package's settings."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for setting, (variable, parse, owner) in _ENV.items():
        if owner != group:
            continue
        raw = env.get(variable, "").strip()
        if not raw and variable in _OLDER_NAMES:
            raw = env.get(_OLDER_NAMES[variable], "").strip()
        if raw:
            try:
                values[setting] = parse(raw)
            except ValueError as exc:
                raise ConfigurationError(variable, str(exc)) from None
    return values


_T = TypeVar("_T")


def settle(cls: Callable[..., _T], from_env: dict[str, Any], given: Mapping[str, Any]) -> _T:
    """``cls(**settings)``, arguments (``given``) over the environment's values over the
    defaults; a value the environment gave that ``cls`` refuses is named by its variable
    (the user set the variable, not the setting)."""
    try:
        return cls(**{**from_env, **given})
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


_LEVEL_NAMES = {"NOTSET": 0, "DEBUG": 10, "INFO": 20, "WARNING": 30, "WARN": 30, "ERROR": 40}
_LEVEL_NAMES.update({"CRITICAL": 50, "FATAL": 50})


def parse_level(raw: str) -> int:
    """A ``logging`` level by name (``INFO``, ``warning``) or number (``20``)."""
    name = raw.strip().upper()
    if name in _LEVEL_NAMES:
        return _LEVEL_NAMES[name]
    try:
        return int(name)
    except ValueError:
        names = ", ".join(n for n in _LEVEL_NAMES if n not in ("WARN", "FATAL"))
        raise ValueError(f"expected a level name ({names}) or number, got {raw!r}") from None


# Every ``POSTHOG_*`` variable the package reads: setting -> (variable, parser, group).
# "client" settings are ``ClientConfig``'s, "pipeline" ones ``PipelineOptions``'.
_ENV: dict[str, tuple[str, Callable[[str], Any], str]] = {
    "api_key": ("POSTHOG_API_KEY", _keep, "client"),
    "host": ("POSTHOG_HOST", _keep, "client"),
    "timeout": ("POSTHOG_TIMEOUT", parse_seconds, "client"),
    "retries": ("POSTHOG_RETRIES", _parse_int, "client"),
    "retry_delay": ("POSTHOG_RETRY_DELAY", parse_seconds, "client"),
    "enabled_capture": ("POSTHOG_ENABLED_CAPTURE", parse_bool, "client"),
    "gzip": ("POSTHOG_GZIP", parse_bool, "client"),
    "headers": ("POSTHOG_HEADERS", _parse_headers, "client"),
    "flags_path": ("POSTHOG_FLAGS_PATH", _keep, "client"),
    "flags_timeout": ("POSTHOG_FLAGS_TIMEOUT", parse_seconds, "client"),
    "ca_bundle": ("POSTHOG_CA_BUNDLE", _keep, "client"),
    "secret_key": ("POSTHOG_SECRET_KEY", _keep, "client"),
    "flush_on_sigterm": ("POSTHOG_FLUSH_ON_SIGTERM", parse_bool, "pipeline"),
    "sigterm_timeout": ("POSTHOG_SIGTERM_TIMEOUT", parse_seconds, "pipeline"),
    "llm_analytics": ("POSTHOG_LLM_ANALYTICS", parse_bool, "pipeline"),
    "capture_exceptions": ("POSTHOG_CAPTURE_EXCEPTIONS", parse_bool, "pipeline"),
    "exception_autocapture": ("POSTHOG_EXCEPTION_AUTOCAPTURE", parse_bool, "pipeline"),
    "send_traces": ("POSTHOG_SEND_TRACES", parse_bool, "pipeline"),
    "send_logs": ("POSTHOG_SEND_LOGS", parse_bool, "pipeline"),
    "logs_min_level": ("POSTHOG_LOGS_MIN_LEVEL", parse_level, "pipeline"),
}
# Read when the newer name is unset: PostHog's SDKs' older name for the secret key.
_OLDER_NAMES = {"POSTHOG_SECRET_KEY": "POSTHOG_PERSONAL_API_KEY"}


def _table(group: str) -> Mapping[str, str]:
    return MappingProxyType({k: v for k, (v, _, g) in _ENV.items() if g == group})


# ``ClientConfig``'s settings and their variables.
ENV_VARIABLES: Mapping[str, str] = _table("client")
# ``PipelineOptions``' settings (the processors' and exporters') and their variables.
PIPELINE_ENV_VARIABLES: Mapping[str, str] = _table("pipeline")
# Every variable read, older names included (what the documentation must list).
ALL_ENV_VARIABLES: tuple[str, ...] = (
    *(variable for variable, _, _ in _ENV.values()),
    *_OLDER_NAMES.values(),
)
