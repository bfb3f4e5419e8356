"""FileFlagDefinitionCache's lease and data, called directly (no server): one leader,
renewed by its owner, released only by it, taken when it lapses or is damaged, never
inherited by a forked child; the data whole, with its ETag."""

from __future__ import annotations

import json
import os

import pytest

from posthog_otel import FileFlagDefinitionCache, FlagDefinitions
from posthog_otel._flags.local.fleet import cache_data, definitions_from
from tests.support.server import wait_until


@pytest.fixture
def path(tmp_path):
    return tmp_path / "definitions.json"


def test_one_leader_renewed_by_itself_and_released_only_by_it(path):
    a = FileFlagDefinitionCache(path, poll_interval=60)
    b = FileFlagDefinitionCache(path, poll_interval=60)
    assert a.should_fetch_flag_definitions()
    assert not b.should_fetch_flag_definitions()
    assert a.should_fetch_flag_definitions()  # the owner renews
    b.shutdown()  # not b's to release
    assert not b.should_fetch_flag_definitions()
    a.shutdown()
    assert b.should_fetch_flag_definitions()
    assert not a.should_fetch_flag_definitions()


def test_a_lapsed_lease_is_taken(path):
    a = FileFlagDefinitionCache(path, poll_interval=0.05)
    b = FileFlagDefinitionCache(path, poll_interval=0.05)
    assert a.should_fetch_flag_definitions()
    wait_until(b.should_fetch_flag_definitions, timeout=5)
    assert not a.should_fetch_flag_definitions()


def test_a_damaged_lease_is_a_free_one(path):
    path.with_name(path.name + ".lock").write_text("garbage and more garbage\n")
    assert FileFlagDefinitionCache(path).should_fetch_flag_definitions()


def test_a_forked_child_is_not_its_parents_leader(path):
    cache = FileFlagDefinitionCache(path, poll_interval=60)
    assert cache.should_fetch_flag_definitions()
    pid = os.fork()
    if pid == 0:  # the child: the same object, another process
        os._exit(0 if not cache.should_fetch_flag_definitions() else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_definitions_and_etag_round_trip_whole(path):
    definitions = FlagDefinitions(
        flags={"beta": {"key": "beta", "active": True, "filters": {}}},
        group_type_mapping={"0": "company"},
        cohorts={"3": {"type": "AND", "values": []}},
        property_matching_version=2,
        etag='W/"abc"',
    )
    cache = FileFlagDefinitionCache(path)
    assert cache.get_flag_definitions() is None
    cache.on_flag_definitions_received(cache_data(definitions))
    data = cache.get_flag_definitions()
    assert isinstance(data["flags"], list) and data["etag"] == 'W/"abc"'  # PostHog's shape
    back = definitions_from(data)
    assert back == definitions
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_a_damaged_definitions_file_raises_so_the_process_fetches(path):
    path.write_text("{not json")
    with pytest.raises(json.JSONDecodeError, match="property name"):
        FileFlagDefinitionCache(path).get_flag_definitions()
