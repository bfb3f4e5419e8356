"""The rollout hash must agree with PostHog's flag service bit for bit."""

from posthog_otel._flags.local.hashing import rollout_hash

# Known answers published with PostHog's SDKs: for "distinct_id_0", "distinct_id_1", ...
# a 45% rollout of "simple-flag" is on (1) or off (0) exactly as below.
SIMPLE_FLAG_45 = "0110100101011010001101001011000111100000"


def test_matches_posthog_known_answers():
    got = "".join(
        "1" if rollout_hash("simple-flag", f"distinct_id_{i}") <= 0.45 else "0"
        for i in range(len(SIMPLE_FLAG_45))
    )
    assert got == SIMPLE_FLAG_45


def test_range_and_salt():
    values = [rollout_hash("flag", f"user-{i}") for i in range(2000)]
    assert all(0 <= v <= 1 for v in values)
    assert 0.45 < sum(values) / len(values) < 0.55
    assert rollout_hash("flag", "u") != rollout_hash("flag", "u", salt="variant")


def test_equal_to_the_first_15_hex_digits_of_sha1():
    import hashlib

    from posthog_otel._flags.local.hashing import holdout_hash

    scale = float(0xFFFFFFFFFFFFFFF)
    for i in range(500):
        text = f"flag-{i}.user-{i * 7}variant"
        want = int(hashlib.sha1(text.encode()).hexdigest()[:15], 16) / scale
        assert rollout_hash(f"flag-{i}", f"user-{i * 7}", "variant") == want
        holdout = int(hashlib.sha1(f"holdout-u{i}".encode()).hexdigest()[:15], 16) / scale
        assert holdout_hash(f"u{i}") == holdout


def test_remembered_hashes_stay_right_and_bounded():
    from posthog_otel._flags.local import hashing
    from posthog_otel._limits import FLAG_HASHES_REMEMBERED

    first = [rollout_hash("flag", f"user-{i}") for i in range(100)]
    for i in range(FLAG_HASHES_REMEMBERED + 10):  # past the bound: emptied, refilled
        rollout_hash("other", f"user-{i}", "variant")
        assert len(hashing._remembered) <= FLAG_HASHES_REMEMBERED
    assert [rollout_hash("flag", f"user-{i}") for i in range(100)] == first
    assert rollout_hash("flag", 42) == rollout_hash("flag", "42")  # not a string: not kept
