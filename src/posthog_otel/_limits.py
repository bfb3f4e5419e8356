"""Every bound on what comes from outside, in one place.

Anything we did not make ourselves (an HTTP answer, a flag definition, a header, a span
or log attribute, a regex) is bounded here in bytes, depth, count and time. Each
constant says what happens at its bound; the README's "Limits" section lists them all,
and a test keeps the two in step.
"""

from __future__ import annotations

# --- HTTP answers (read by the transport, compressed and inflated) -------------------

# --- flag definitions and local evaluation --------------------------------------------

# --- span and log attributes, GenAI content, events ------------------------------------

# --- headers -----------------------------------------------------------------------------
