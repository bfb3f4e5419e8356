"""The local evaluation table (``local_cases``): each case decided by the pure evaluator,
then through a flag provider against the devserver, counting the requests it makes."""

from __future__ import annotations

import pytest

from posthog_otel import PostHogClient, PostHogFlagProvider
from posthog_otel._flagdata import parse_definitions
from posthog_otel._flags.local.evaluator import Decision, LocalFlags, Undecided
from posthog_otel.devserver import DevServer
from tests.support.local_cases import ASK, CASES, PAYLOADS, Case, document
from tests.support.server import API_KEY

SECRET = "phs_table_secret"
ASKED = [case for case in CASES if case.expected == ASK]


@pytest.fixture(scope="module")
def local() -> LocalFlags:
    return LocalFlags(parse_definitions(document()))


@pytest.fixture(scope="module")
def table_server():
    with DevServer(flags=document()) as server:
        yield server


@pytest.fixture(scope="module")
def providers(table_server):
    """A provider that may ask PostHog (with no cache, so each ask is one request), and
    one that never does."""
    client = PostHogClient(API_KEY, table_server.url, secret_key=SECRET, retry_delay=0.01)
    asking = PostHogFlagProvider(client, cache_ttl=0, send_feature_flag_events=False)
    never = PostHogFlagProvider(client, only_local=True, send_feature_flag_events=False)
    assert asking.load_definitions(10) and never.load_definitions(10)
    yield asking, never
    asking.shutdown()
    never.shutdown()
    client.close()


def decide(local: LocalFlags, case: Case) -> Decision | Undecided | None:
    subject = local.subject(case.distinct_id, case.person, case.groups, case.group_properties)
    return local.decide(case.name, subject)


def same(value, expected) -> bool:
    return value == expected and type(value) is type(expected)


def flag_requests(server: DevServer) -> int:
    return len(server.requests.matching("/decide"))


def test_the_table_is_large_and_covers_every_operator():
    assert len(CASES) >= 150
    operators = {
        prop.get("operator", "exact")
        for case in CASES
        for condition in case.conditions
        for prop in condition["properties"]
        if prop.get("type") == "person"
    }
    every = {"exact", "is_not", "is_set", "is_not_set", "icontains", "not_icontains", "regex"}
    every |= {"not_regex", "starts_with", "not_starts_with", "ends_with", "not_ends_with"}
    every |= {"gt", "gte", "lt", "lte", "is_date_before", "is_date_after", "semver_eq"}
    every |= {"semver_neq", "semver_gt", "semver_gte", "semver_lt", "semver_lte", "semver_tilde"}
    every |= {"semver_caret", "semver_wildcard"}
    assert every <= operators
    assert 20 <= len(ASKED) <= len(CASES) - 100


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_decided_locally(case: Case, local: LocalFlags):
    decision = decide(local, case)
    if case.expected == ASK:
        assert isinstance(decision, Undecided), decision
    else:
        assert isinstance(decision, Decision), decision
        assert same(decision.value, case.expected), decision


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_through_the_provider_with_its_requests(case: Case, providers, table_server):
    asking, _ = providers
    before = flag_requests(table_server)
    flag = asking.get_flag(
        case.name,
        case.distinct_id,
        groups=case.groups or None,
        person_properties=case.person or None,
        group_properties=case.group_properties or None,
    )
    assert flag_requests(table_server) - before == case.requests
    assert flag is not None
    if case.expected == ASK:
        assert same(flag.enabled, case.server), flag  # as the flag service decides it
        assert not (flag.reason or "").startswith("Evaluated locally")
    else:
        assert same(flag.enabled, case.expected), flag
        assert flag.reason.startswith("Evaluated locally"), flag
        assert (flag.id, flag.version) == (1, 3)


@pytest.mark.parametrize("case", ASKED, ids=lambda c: c.name)
def test_only_local_never_asks(case: Case, providers, table_server):
    _, never = providers
    before = flag_requests(table_server)
    context = {
        "groups": case.groups or None,
        "person_properties": case.person or None,
        "group_properties": case.group_properties or None,
    }
    assert never.get_flag(case.name, case.distinct_id, **context) is None
    assert never.is_enabled(case.name, case.distinct_id, **context, default=True) is True
    assert flag_requests(table_server) == before


def test_the_devserver_answers_what_local_evaluation_decides(table_server, local):
    """Remote and local agree: the same definitions, the same evaluator."""
    with PostHogClient(API_KEY, table_server.url, flags_path="/flags/?v=2") as client:
        for case in CASES:
            if case.expected == ASK:
                continue
            answer = client.feature_flags(
                case.distinct_id,
                groups=case.groups or None,
                person_properties=case.person or None,
                group_properties=case.group_properties or None,
            )
            assert same(answer.flags[case.name].enabled, case.expected), case.name


@pytest.mark.parametrize("name", list(PAYLOADS))
def test_payloads_are_decoded_for_the_value(name: str, local: LocalFlags, providers):
    expected = PAYLOADS[name][2]
    case = next(c for c in CASES if c.name == name)
    decision = decide(local, case)
    assert isinstance(decision, Decision)
    assert local.flags[name].payload(decision.value) == expected
    assert providers[0].get_payload(name, case.distinct_id) == expected


@pytest.mark.parametrize(
    ("version", "given", "expected"),
    [(1, "anything", True), (2, "anything", False), (2, "FALSE", True), (1, False, True)],
)
def test_matching_version_2_reads_true_and_false_as_text(version, given, expected):
    body = {
        "flags": [{"key": "f", "active": True, "filters": {"groups": [
            {"properties": [{"key": "p", "type": "person", "value": "false"}], "rollout_percentage": 100}
        ]}}],
        "property_matching_version": version,
    }  # fmt: skip
    local = LocalFlags(parse_definitions(body))
    decision = local.decide("f", local.subject("u", {"p": given}))
    assert isinstance(decision, Decision)
    assert decision.value is expected
