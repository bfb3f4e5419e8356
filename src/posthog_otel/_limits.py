"""Every bound on what comes from outside, in one place.

Anything we did not make ourselves (an HTTP answer, a flag definition, a header, a span
or log attribute, a regex) is bounded here in bytes, depth, count and time. Each
constant says what happens at its bound; the README's "Limits" section lists them all,
and a test keeps the two in step.
"""

from __future__ import annotations

# --- HTTP answers (read by the transport, compressed and inflated) -------------------

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
# A relative date (-7d) with a count of more digits than this is not a date: undecided.
FLAG_MAX_DATE_DIGITS = 6

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

# --- headers -----------------------------------------------------------------------------
