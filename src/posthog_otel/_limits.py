"""Every bound on what comes from outside, in one place.

Anything we did not make ourselves (an HTTP answer, a flag definition, a header, a span
or log attribute, a regex) is bounded here in bytes, depth, count and time. Each
constant says what happens at its bound; docs/limits.md lists them all, and a test
(tests/integration/test_docs.py) keeps the two in step.
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
# Past any of these, the one flag (or filter) is undecided: asked of PostHog, or its
# default with only_local. Never an exception, and never the other flags.

# Cohorts and their property groups nested deeper than this (counted through every
# cohort a cohort names) make the flags that use them undecided.
FLAG_MAX_NESTING = 32
# Flags depending on flags deeper than this make the flag at the top undecided.
FLAG_MAX_DEPENDENCY_DEPTH = 32
# More than this many conditions, variants, filters (in all its conditions) or entries in
# a dependency chain make a flag undecided; so do cohorts with more entries in all their
# groups, for the flags that use them. (An `exact` filter's list of values is not bounded:
# it is a set, read in constant time.)
FLAG_MAX_ITEMS = 1_000
# A filter value (or a property value) nested deeper than this has no text: undecided.
FLAG_MAX_VALUE_DEPTH = 32
# An integer longer than this (about 3,000 digits; str() refuses 4,300) has no text.
FLAG_MAX_INT_BITS = 10_000
# A payload (a flag's JSON value) nesting deeper than this is unreadable whatever Python's
# json could parse: in a flags answer the fetch fails, in a definition only its flag is undecided.
FLAG_MAX_PAYLOAD_DEPTH = 64
# A relative date (-7d) with a count of more digits than this is not a date: undecided.
FLAG_MAX_DATE_DIGITS = 6
# Flag exposures each thread remembers as already reported (then it asks the shared log,
# under its lock, again): at the bound its memory is emptied and refilled.
FLAG_EXPOSURES_PER_THREAD = 1_000
# Rollout hashes (flag, user, salt) remembered, so a user's repeated reads skip SHA-1
# (about 3 MB at the bound): at the bound the memory is emptied and refilled.
FLAG_HASHES_REMEMBERED = 20_000

# A regex filter's pattern longer than this is not compiled.
REGEX_MAX_PATTERN_CHARS = 1_000
# Groups nested deeper than this in a pattern are not compiled.
REGEX_MAX_NESTING = 32
# A property value longer than this (as text) is not searched by a regex.
REGEX_MAX_VALUE_CHARS = 10_000
# Python's re searches only when the cost model bounds its backtracking by this many
# steps (under 10 ms); dearer searches go to the automaton.
REGEX_RE_COST = 500_000
# The automaton stops after this many state steps (tens of ms): the search is undecided.
REGEX_STEP_BUDGET = 100_000
# A pattern whose automaton (counted repeats unrolled) has more states is not built.
REGEX_MAX_STATES = 2_000

# --- span and log attributes, GenAI content, events ------------------------------------
# Each value cut or dropped at these bounds is counted in ``stats().trimmed`` by reason;
# its event still goes.

# Nesting of a value (a log record's maps, decoded JSON): deeper levels become a marker
# string (``depth``).
MAX_VALUE_DEPTH = 64
# Characters in one string property: the rest is cut, with a marker (``string_length``).
MAX_STRING_LENGTH = 64 * 1024
# Items in one list property or nested list: the rest are left out (``list_length``).
MAX_LIST_ITEMS = 1000
# Characters of an attribute string decoded as JSON (GenAI messages, ``posthog.properties``,
# flag values): a longer one is kept as text, not parsed (``json_length``).
MAX_JSON_LENGTH = 4 * 1024 * 1024
# Exceptions kept in one ``$exception_list`` (outermost first); the rest are left out and
# ``$exception_list_omitted`` says how many (``exception_chain``).
MAX_EXCEPTION_CHAIN = 50
# Frames kept per exception: the first and last halves (``exception_frames``).
MAX_EXCEPTION_FRAMES = 100
# Characters of ``exception.stacktrace`` parsed: only the end (the outermost exception) is
# read (``stacktrace_length``).
MAX_STACKTRACE_LENGTH = 1024 * 1024
# Lines of source kept each side of an in-app frame's line (``pre_context``/``post_context``);
# a file that cannot be read gives a frame without context.
EXCEPTION_CONTEXT_LINES = 5
# Characters kept of one source line (context lines): the rest is cut.
MAX_CONTEXT_LINE_CHARS = 1_000
# Characters of source context in one ``$exception_list`` (all its frames): past it, frames
# (innermost first) get no more context (``source_context`` in ``stats().trimmed``).
MAX_SOURCE_CONTEXT_TOTAL = 200_000
# In-app frames (innermost first) whose locals are sent with ``capture_code_variables``;
# outer frames get none.
MAX_CODE_VARIABLE_FRAMES = 10
# Characters of one variable's ``repr`` (the rest cut, with a marker); longer reprs are not
# built at all (``reprlib`` limits containers and strings first).
MAX_CODE_VARIABLE_CHARS = 1_024
# Characters of every variable of one exception together: past it, no more are added.
MAX_CODE_VARIABLES_TOTAL = 10 * 1024
# Autocaptured exceptions of one type: a burst of this many, then this many more per
# interval (PostHog's SDK's defaults); beyond, they are dropped as ``rate_limited``. The
# default of ``exception_rate_limit``, which an application may set (or turn off).
AUTOCAPTURE_BUCKET_SIZE = 50
AUTOCAPTURE_REFILL = 10
AUTOCAPTURE_REFILL_SECONDS = 10.0
# Exception types with a bucket: past it, the buckets of the quietest types are forgotten.
AUTOCAPTURE_MAX_BUCKETS = 1_000
# Sets of attribute keys whose split (plain, reserved, denied, URL) the mapping remembers,
# per mapper; past it the memory is emptied and rebuilt (spans usually share a few sets).
MAPPING_KEY_SETS = 1_000
# Captures held for one span whose SDK event limit (``SpanLimits.max_events``) is full;
# beyond it a capture is sent at once with what is known then (identity, session, trace).
MAX_HELD_CAPTURES = 10_000

# --- headers -----------------------------------------------------------------------------

# PostHog's tracing headers (X-POSTHOG-DISTINCT-ID, -SESSION-ID, -WINDOW-ID), as
# PostHogPropagator reads them. Characters of one value read: the rest is ignored before
# cleaning (the cleaned value keeps at most 1,000, as PostHog's SDKs do).
MAX_TRACING_HEADER_READ = 8 * 1024
# Values of one such header tried for a usable one; later values are ignored.
MAX_TRACING_HEADER_VALUES = 16

# --- flag definitions shared by a fleet (flag_definition_cache_provider) ----------------

# Definitions read from a shared cache are held to MAX_DEFINITIONS_ANSWER_BYTES too (over
# it: the cache's answer is refused and the process polls for itself). A follower that finds
# the cache empty, with nothing loaded, waits at most this many seconds (or one interval) for
# the leader's first poll, then polls for itself.
FLEET_FIRST_LOAD_WAIT = 5.0
# A follower whose cache can say cheaply whether the definitions changed (ours: a file's
# stat, a small Redis key) asks it this often (or every poll interval, if shorter), so a
# change reaches the fleet within one interval and about this long; it still asks to
# lead, and reads the whole cache, once per interval.
FLEET_CHECK_SECONDS = 1.0

# --- traces and logs to PostHog's OTLP endpoints (send_traces, send_logs) ----------------

# Bytes of one span or log record, encoded as OTLP protobuf (its attribute values are bounded
# only by the SDK's ``SpanLimits``/``LogLimits``): a larger one is dropped as ``too_large``
# (counted in that stream's ``dropped``), never sent.
MAX_OTLP_ITEM_BYTES = 4 * 1024 * 1024
# Bytes of encoded spans or records in one /i/v1/traces or /i/v1/logs request, before
# compression: a batch encoded larger is halved until each request fits (one larger item
# goes alone, up to MAX_OTLP_ITEM_BYTES).
OTLP_BATCH_BYTES = 2 * 1024 * 1024
# Attribute keys (and sets of a span's keys) whose denylist verdict (a credential, or not)
# is remembered for the OTLP streams; past it the memo is emptied and keys are decided
# again (no key is ever sent undecided).
MAX_OTLP_KEY_VERDICTS = 10_000

# --- the devserver's OTLP ingest (/i/v1/traces, /i/v1/logs, /i/v1/metrics) -------------
# Past any of these, the request is refused whole (413 for bytes, 400 otherwise), recorded
# in the request log, and nothing of it is stored.

# Bytes of one OTLP body, as sent and once inflated (posthog-node holds its bodies to it).
OTLP_MAX_BODY_BYTES = 10 * 1024 * 1024
# Levels of an attribute value nested in lists and maps (AnyValue in AnyValue).
OTLP_MAX_DEPTH = 32
# Spans, log records, or metric data points in one request.
OTLP_MAX_ITEMS = 50_000
# Fields and values decoded from one request (protobuf fields, JSON values): bounds the
# memory and time one body costs, whatever its shape.
OTLP_MAX_VALUES = 500_000

# --- the pipeline's queue (spans, log records and captured events waiting to be encoded) --

# At the default ``max_queue_size``, the queue holds items up to this many bytes, estimated
# from their counts of attributes and properties (``_pipeline/worker.item_bytes``): a burst
# of 50,000 ``capture()`` calls of 8 properties fits; past it, ``put`` refuses (``queue_full``).
MAX_QUEUE_BYTES = 96 * 1024 * 1024
# ... and at most this many items, however small (each costs at least ~0.5 KB): past it,
# ``queue_full``. A ``max_queue_size`` given is a count of items alone, as before.
MAX_QUEUE_ITEMS = 100_000
