"""Local evaluation against PostHog's own evaluator, on generated definitions and subjects.

Both must give the same value (and payload) on every case, or both find it
undecided. CI runs at least 10,000 cases with a fixed seed; for a longer run:

    POSTHOG_OTEL_DIFFERENTIAL_CASES=500000 POSTHOG_OTEL_DIFFERENTIAL_SEED=7 \\
        .venv/bin/python -m pytest -q tests/conformance/test_local_differential.py
"""

from __future__ import annotations

import ast
import collections
import json
import math
import os

import pytest

from posthog_otel._flagdata import parse_definitions
from posthog_otel._flags.local.evaluator import Decision, LocalFlags
from tests.support import paths
from tests.support.flag_cases import Oracle, documents

CASES = int(os.environ.get("POSTHOG_OTEL_DIFFERENTIAL_CASES", "12000"))
SEED = int(os.environ.get("POSTHOG_OTEL_DIFFERENTIAL_SEED", "20261126"))
FLAGS, SUBJECTS = 12, 25
SRC = paths.SRC


@pytest.fixture(scope="module")
def oracle():
    pytest.importorskip("posthog")
    found = Oracle()
    yield found
    found.close()


@pytest.mark.timeout(3600)  # long runs are asked for; CI's default takes a few seconds
def test_every_case_agrees_with_posthogs_evaluator(oracle):
    outcomes: collections.Counter[str] = collections.Counter()
    disagreements = []
    for doc in documents(SEED, math.ceil(CASES / (FLAGS * SUBJECTS)), FLAGS, SUBJECTS):
        oracle.load(doc.body)
        local = LocalFlags(parse_definitions(doc.body))
        for who in doc.subjects:
            theirs = oracle.evaluate(who, doc.keys)
            subject = local.subject(
                who.distinct_id,
                who.person_properties,
                who.groups,
                who.group_properties,
                who.device_id,
            )
            for key in doc.keys:
                ours = local.decide(key, subject)
                value, payload = theirs[key]
                if isinstance(ours, Decision):
                    outcomes[type(ours.value).__name__ + ("" if ours.value else ":false")] += 1
                    agree = ours.value == value and type(ours.value) is type(value)
                    agree = agree and local.flags[key].payload(ours.value) == payload
                else:
                    outcomes["undecided"] += 1
                    agree = value is None
                if not agree:
                    disagreements.append((doc, who, key, ours, value, payload))
    total = sum(outcomes.values())
    assert total >= CASES
    if disagreements:
        doc, who, key, ours, value, payload = disagreements[0]
        flag = next(f for f in doc.body["flags"] if f["key"] == key)
        pytest.fail(
            f"{len(disagreements)} of {total} cases disagree; the first: {key} for {who}: "
            f"ours {ours}, PostHog's {value!r} (payload {payload!r})\n"
            f"flag: {json.dumps(flag, default=str)}\ncohorts: {json.dumps(doc.body['cohorts'])}"
        )
    # The cases exercise every kind of answer, not one of them mostly.
    assert outcomes["bool"] > total * 0.03 and outcomes["str"] > total * 0.03
    assert outcomes["bool:false"] > total * 0.2 and outcomes["undecided"] > total * 0.1
    print(f"\n{total} cases, all agree with posthog's evaluator: {dict(outcomes)}")


def test_the_library_never_imports_posthogs_sdk():
    """The oracle is a development dependency only."""
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not any(n == "posthog" or n.startswith("posthog.") for n in names), path
