"""Local flag evaluation: PostHog's flag definitions, polled, and matched in process.

::

    poller        polls the definitions (ETag, jitter, fork-safe) and says what changed
    definitions   the definitions document, parsed and checked
    evaluator     every flag of one document, compiled; a decision per user, or "undecided"
    matcher       one compiled flag: holdout, conditions in order, rollout, variants
    filters       a filter by its type: property, cohort (nested groups) or flag dependency
    properties    property operators; regex, dates and semver in modules of their own
    backtrack     when Python's re is provably cheap for a pattern; else the automaton,
    automaton     a linear-time regex search with a step budget
    predicate     the contract of a compiled filter, and the "inconclusive" answers

Everything but the poller is pure: definitions and the caller's identity, properties
and groups in; a value, or the reason local evaluation cannot decide, out.
"""
