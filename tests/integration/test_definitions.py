"""Flag definitions on the wire: ``PostHogClient.flag_definitions`` and the devserver's
definitions routes, and PostHog's own SDK polling them."""

from __future__ import annotations

import json
import logging

import pytest

from posthog_otel import APIError, ConfigurationError, PostHogClient
from posthog_otel.devserver import DevServer
from tests.integration.test_devserver import request
from tests.support.flag_cases import documents
from tests.support.server import API_KEY

SECRET = "phx_personal_Secret_42"
FLAGS = {
    "flags": [{"key": "on", "active": True, "filters": {"groups": [{"rollout_percentage": 100}]}}]
}


@pytest.fixture
def secret_client(server):
    with PostHogClient(API_KEY, server.url, secret_key=SECRET, retry_delay=0.01) as client:
        yield client


def test_definitions_come_with_an_etag_and_then_not_modified(server, secret_client):
    server.set_flags(FLAGS)
    definitions = secret_client.flag_definitions()
    assert list(definitions.flags) == ["on"]
    assert definitions.etag == server.flags.etag
    assert secret_client.flag_definitions(definitions.etag) is None
    server.set_flags({"other": True})  # the rules format, served as definitions
    changed = secret_client.flag_definitions(definitions.etag)
    assert list(changed.flags) == ["other"] and changed.etag != definitions.etag
    assert changed.changed_keys(definitions) == {"on", "other"}


def test_a_secret_key_is_needed_and_never_shown(server, secret_client, all_logs):
    with (
        PostHogClient(API_KEY, server.url) as plain,
        pytest.raises(ConfigurationError, match="secret_key"),
    ):
        plain.flag_definitions()
    server.secret_key = "phs_the_right_key"
    with pytest.raises(APIError) as refused:
        secret_client.flag_definitions()
    assert refused.value.status == 401
    shown = [str(refused.value), repr(secret_client)]
    shown += [r.getMessage() for r in all_logs.records]
    assert all(SECRET not in text for text in shown)
    (sent,) = server.requests.matching("/flags/definitions")
    assert sent.headers["Authorization"] == f"Bearer {SECRET}"


def test_older_posthog_is_asked_at_its_older_route(server, secret_client):
    server.set_flags(FLAGS)
    server.faults.respond(404, paths="/flags/definitions")
    assert list(secret_client.flag_definitions().flags) == ["on"]
    assert list(secret_client.flag_definitions().flags) == ["on"]
    paths = [r.path.partition("?")[0] for r in server.requests.matching("/")]
    assert paths == ["/flags/definitions", "/api/feature_flag/local_evaluation/"] * 1 + [
        "/api/feature_flag/local_evaluation/"
    ]


def test_the_key_goes_to_the_configured_host_only(server, secret_client):
    with DevServer() as elsewhere:
        location = elsewhere.url + "/flags/definitions"
        server.faults.respond(302, headers={"Location": location}, paths="/flags/definitions")
        with pytest.raises(APIError) as redirected:
            secret_client.flag_definitions()
        assert redirected.value.status == 302
        assert elsewhere.requests.matching("/") == []


@pytest.mark.parametrize(
    ("headers", "query", "status"),
    [
        ({"Authorization": "Bearer phs_any"}, "?token=phc_x&send_cohorts", 200),
        ({"Authorization": "Bearer phx_any"}, "?token=phc_x", 200),
        ({"Authorization": "bearer phx_any"}, "?token=phc_x", 200),
        ({"Authorization": "Bearer phc_public"}, "?token=phc_x", 401),
        ({"Authorization": "Basic phs_any"}, "?token=phc_x", 401),
        ({}, "?token=phc_x", 401),
        ({"Authorization": "Bearer phs_any"}, "", 401),
    ],
)
def test_the_devserver_asks_for_a_secret_key_and_a_token(server, headers, query, status):
    for path in ("/flags/definitions", "/api/feature_flag/local_evaluation/"):
        answer_status, body = request(server, "GET", path + query, headers=headers)
        assert answer_status == status
        assert ("flags" in body) == (status == 200)


def test_the_devserver_can_require_one_secret_key_and_one_project(server):
    server.secret_key, server.api_key = "phs_only_this", "phc_only_this"
    for key, token, status in [
        ("phs_only_this", "phc_only_this", 200),
        ("phs_another", "phc_only_this", 401),
        ("phs_only_this", "phc_another", 401),
    ]:
        path = f"/flags/definitions?token={token}"
        assert request(server, "GET", path, headers={"Authorization": f"Bearer {key}"})[0] == status


def test_if_none_match_takes_a_list(server):
    server.set_flags(FLAGS)
    auth = {"Authorization": "Bearer phs_x"}
    etag = server.flags.etag
    for tags, status in [(etag, 304), (f'"older", {etag}', 304), ('"older"', 200)]:
        got, _ = request(
            server, "GET", "/flags/definitions?token=t", headers={**auth, "If-None-Match": tags}
        )
        assert got == status


def test_a_definitions_file_answers_remote_flags_too(tmp_path, server):
    body = {
        "flags": [
            {"id": 3, "key": "pro", "version": 2, "active": True, "filters": {"groups": [
                {"properties": [{"key": "plan", "value": "pro", "type": "person"}], "rollout_percentage": 100}
            ], "payloads": {"true": json.dumps({"seats": 10})}}},
        ],
        "group_type_mapping": {},
        "cohorts": {},
    }  # fmt: skip
    path = tmp_path / "definitions.json"
    path.write_text(json.dumps(body))
    server.set_flags(path)
    with PostHogClient(API_KEY, server.url) as client:
        pro = client.feature_flag("pro", "u1", person_properties={"plan": "pro"})
        assert (pro.enabled, pro.payload, pro.id, pro.version) == (True, {"seats": 10}, 3, 2)
        assert client.feature_flag("pro", "u2", person_properties={"plan": "free"}).enabled is False
        assert client.feature_flag("pro", "u3").enabled is False  # absent: not matching
    status, served = request(
        server, "GET", "/flags/definitions?token=t", headers={"Authorization": "Bearer phs_x"}
    )
    assert status == 200 and served == body


def test_posthogs_own_sdk_polls_the_devserver_and_agrees(server, caplog):
    """PostHog's Python SDK, with a secret key, loads the devserver's definitions and
    decides as our evaluator does; it logs no error on the way."""
    posthog = pytest.importorskip("posthog")
    from posthog_otel._flagdata import parse_definitions
    from posthog_otel._flags.local.evaluator import Decision, LocalFlags

    doc = next(documents(seed=3, count=1, flags=12, subjects=40))
    server.set_flags(doc.body)
    local = LocalFlags(parse_definitions(doc.body))
    caplog.set_level(logging.INFO, logger="posthog")
    sdk = posthog.Client(
        API_KEY, host=server.url, secret_key=SECRET, sync_mode=True, poll_interval=3600
    )
    try:
        sdk.load_feature_flags()
        agreed = 0
        for who in doc.subjects:
            for key in doc.keys:
                result = sdk.get_feature_flag_result(
                    key,
                    who.distinct_id,
                    person_properties=who.person_properties,
                    groups=who.groups,
                    group_properties=who.group_properties,
                    only_evaluate_locally=True,
                    send_feature_flag_events=False,
                )
                theirs = None if result is None else result.get_value()
                subject = local.subject(
                    who.distinct_id, who.person_properties, who.groups, who.group_properties
                )
                ours = local.decide(key, subject)
                assert theirs == (ours.value if isinstance(ours, Decision) else None)
                agreed += theirs is not None
        assert agreed > 100
    finally:
        sdk.shutdown()
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    polled = server.requests.matching("/flags/definitions")
    assert polled and polled[0].status == 200
    assert polled[0].headers["Authorization"] == f"Bearer {SECRET}"
