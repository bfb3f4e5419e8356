"""Every bound on what comes from outside, in one place.

Anything we did not make ourselves (an HTTP answer, a flag definition, a header, a span
or log attribute, a regex) is bounded here in bytes, depth, count and time. Each
constant says what happens at its bound; the README's "Limits" section lists them all,
and a test keeps the two in step.
"""

from __future__ import annotations

# --- HTTP answers (read by the transport, compressed and inflated) -------------------

# An answer is streamed and held to its limit twice: in bytes as received, and in bytes once
# inflated (gzip or deflate, inflated by us a bounded piece at a time; any other encoding is
# kept as it came, and fails as JSON). Past its limit the request fails with
# ``ResponseTooLargeError`` (not retried) and the connection is closed.

# /flags/definitions (local evaluation): over it, the poll fails, is counted, and the last
# definitions stay in use (the failure is logged once per run of failed polls).
MAX_DEFINITIONS_ANSWER_BYTES = 20 * 1024 * 1024
# Every other answer (/flags, /decide, /batch/, /capture/, error answers): over it, that
# request fails (a flag lookup falls back as on an outage; a batch is dropped as "network").
MAX_ANSWER_BYTES = 2 * 1024 * 1024
# Pieces the body is read and inflated in; the most inflated output held beyond the limit.
ANSWER_READ_CHUNK = 64 * 1024
# Answer headers are bounded by http.client, under urllib3: at most 100 header lines (more:
# the request fails, "got more than 100 headers") of at most 65,536 bytes each (longer: it
# fails, "header line too long"). Stated here, checked against http.client by a test.
HTTP_CLIENT_MAX_HEADERS = 100
HTTP_CLIENT_MAX_LINE = 65_536
# Header values kept in an ``APIError`` or a ``Response``: longer ones are cut to this many
# characters (after any secret in them is redacted); a longer definitions ETag is not kept
# (the next poll asks without If-None-Match).
MAX_KEPT_HEADER_CHARS = 1_000

# --- flag definitions and local evaluation --------------------------------------------

# --- span and log attributes, GenAI content, events ------------------------------------

# --- headers -----------------------------------------------------------------------------
