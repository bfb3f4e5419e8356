"""Why a flag has its value, in the words OpenFeature and OpenTelemetry share.

OpenTelemetry's ``feature_flag.result.reason`` and OpenFeature's ``Reason`` use one
vocabulary (``static``, ``targeting_match``, ``default``, ``disabled``, ``cached``,
``stale``, ``error``); this module reads PostHog's answer into it, so a span event and
an OpenFeature resolution of the same read say the same thing:

- ``disabled``: the flag is inactive in PostHog (``flag_disabled``).
- ``stale`` / ``cached``: the answer came from the cache (stale during an outage).
- ``static``: local evaluation found that every user gets this value.
- ``targeting_match``: a condition matched (and the user fell inside its rollout).
- ``default``: the flag is off for this user: no condition matched, the user is outside
  the rollout, or a group the flag needs was not given.
- ``error``: there is no flag to read.
"""

from __future__ import annotations

from typing import Literal

from posthog_otel._flags.values import FeatureFlag

__all__ = ["FLAG_DISABLED", "ResultReason", "result_reason"]

ResultReason = Literal[
    "static", "targeting_match", "default", "disabled", "cached", "stale", "error"
]
FLAG_DISABLED = "flag_disabled"  # PostHog's reason code for an inactive flag


def result_reason(flag: FeatureFlag | None, source: str) -> ResultReason:
    """The reason for ``flag`` as read from ``source`` (``fresh``, ``cached``, ``stale``,
    ``local`` or ``unavailable``)."""
    if flag is None:
        return "error"
    if flag.reason_code == FLAG_DISABLED:
        return "disabled"
    if source == "stale":
        return "stale"
    if source == "cached":
        return "cached"
    if flag.static:
        return "static"
    return "targeting_match" if flag.enabled else "default"
