"""The exceptions posthog-otel raises.

Only the synchronous API raises (``PostHogClient`` and the helpers' argument
checks); background threads turn failures into counters and one log line.

::

    PostHogError
     ├── ConfigurationError      (also a ValueError) a setting is missing or invalid
     ├── APIError                PostHog answered with a non-2xx status after retries
     └── TransportError          the request never got an answer (network, TLS, timeout)
          ├── NoAnswerError          one attempt got no answer (``retryable`` says if another may)
          └── ResponseTooLargeError  the answer was over its size limit, so it was not read
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "APIError",
    "ConfigurationError",
    "NoAnswerError",
    "PostHogError",
    "ResponseTooLargeError",
    "TransportError",
]


class PostHogError(Exception):
    """Root of every error raised by posthog-otel.

    Attributes:
        sent: for ``PostHogClient.batch``, how many leading events PostHog had
            already accepted (in earlier requests) when this error was raised.
    """

    sent: int = 0

    def __init__(self, message: str) -> None:
        super().__init__(message)

    def with_sent(self, sent: int) -> PostHogError:
        """This error, noting that ``sent`` leading events were accepted before it."""
        self.sent = sent
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle (for multiprocessing, say) without calling a subclass's ``__init__``,
        whose arguments differ from ``args``: the message and the attributes."""
        return _rebuild, (type(self), self.args, self.__dict__)


class ConfigurationError(PostHogError, ValueError):
    """A setting is missing or invalid; the message names the setting, never the API key."""

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"{setting}: {problem}")
        self.setting = setting


class APIError(PostHogError):
    """PostHog answered with a non-2xx status (after any retries).

    Attributes:
        status: the HTTP status code.
        body: the parsed JSON body, the text when it is not JSON, or ``None``.
        headers: the response headers (lower-cased names), e.g. ``retry-after``; a
            credential-like header, or one holding a configured key, is ``[redacted]``.
    """

    def __init__(
        self,
        status: int,
        body: Any,
        *,
        url_path: str = "",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        where = f" from {url_path}" if url_path else ""
        super().__init__(f"PostHog answered HTTP {status}{where}: {_short(body)}")
        self.status = status
        self.body = body
        self.headers: Mapping[str, str] = dict(headers or {})


class TransportError(PostHogError):
    """The request got no answer: connection refused or reset, TLS failure, timeout.

    The underlying exception is chained as ``__cause__``.
    """


class NoAnswerError(TransportError):
    """A request that got no answer; ``retryable`` says whether trying again can help.

    The transport raises it per attempt; what reaches a caller after the retries is
    this, or a ``TransportError`` that chains it.
    """

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class ResponseTooLargeError(TransportError):
    """The answer was larger than its limit (as received, or once inflated), so it was
    cut off unread and the request failed; it is not retried.

    Attributes:
        limit: the limit in bytes that the answer passed.
        url_path: the path asked (no query string).
    """

    def __init__(self, message: str, *, limit: int, url_path: str = "") -> None:
        super().__init__(message)
        self.limit = limit
        self.url_path = url_path


def _rebuild(cls: type[PostHogError], args: tuple[Any, ...], attrs: dict[str, Any]) -> Any:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(attrs)
    return error


def _short(body: Any, limit: int = 200) -> str:
    text = repr(body) if not isinstance(body, str) else body
    return text if len(text) <= limit else text[:limit] + "..."
