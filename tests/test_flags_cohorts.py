"""Flag values read exactly (nothing unrecognised turns anything on), and rollout cohorts pinned caller by caller."""

from __future__ import annotations

import pytest

from core import flags

SUBJECTS = [f"user-{index}" for index in range(2000)]

# (flag, subject, bucket): a changed hash, digest slice or modulus moves callers between cohorts and fails here.
KNOWN_BUCKETS = [
    ("FF_X", "", 89.49),
    ("FF_X", "u1", 8.39),
    ("FF_X", "user-1", 27.21),
    ("FF_X", "203.0.113.7", 66.88),
    ("FF_X", "user-378", 0.03),
    ("FF_X", "user-395", 99.81),
    ("FF_CHALLENGES", "", 9.15),
    ("FF_CHALLENGES", "u1", 16.64),
    ("FF_CHALLENGES", "alice", 0.25),
]
LOWEST, HIGHEST = "user-378", "user-395"  # buckets 0.03 and 99.81 of FF_X


def test_flag_names() -> None:
    assert flags.ALL_FLAGS == (
        "FF_GATEKEEPER_V2",
        "FF_CHALLENGES",
        "FF_FIRE_MODE",
        "FF_ENFORCED_MODE",
        "FF_WEBHOOKS",
        "FF_NOTIFICATIONS",
    )
    assert (flags.GATEKEEPER_V2, flags.CHALLENGES, flags.FIRE_MODE, flags.ENFORCED_MODE, flags.WEBHOOKS,
            flags.NOTIFICATIONS) == flags.ALL_FLAGS  # fmt: skip


@pytest.mark.parametrize("value", ["true", "1", "yes", "on", "TRUE", "Yes", "ON", " true ", "\ttrue\n"])
def test_on_values_are_the_whole_rollout(value: str) -> None:
    assert flags.rollout_percent(value) == 100.0
    assert flags.is_enabled("FF_X", value, HIGHEST)
    assert flags.is_enabled("FF_X", value)


@pytest.mark.parametrize(
    "value",
    [None, "", " ", "false", "0", "no", "off", "2", "01", "y", "t", "truee", "true1", "ye s", "1.0", "100",
     "%", "%5", "5%%", "x5%", "5%x", "-5%", "+5%", "5.%", ".5%", "1000%", "1e2%", "0x10%", "五%"],
)  # fmt: skip
def test_unset_or_unrecognised_values_never_enable_anyone(value: str | None) -> None:
    assert flags.rollout_percent(value) == 0.0
    # Not even the callers in the lowest buckets: a stray 1 % would reach them first.
    for subject in (LOWEST, "", *SUBJECTS[:200]):
        assert not flags.is_enabled("FF_X", value, subject)


@pytest.mark.parametrize(
    ("value", "percent"),
    [("0%", 0.0), ("1%", 1.0), ("5 %", 5.0), (" 12.5 % ", 12.5), ("05%", 5.0), ("0.5%", 0.5), ("99%", 99.0),
     ("99.99%", 99.99), ("100%", 100.0), ("100.5%", 100.0), ("250%", 100.0), ("999%", 100.0)],
)  # fmt: skip
def test_percentages_are_read_exactly_and_capped(value: str, percent: float) -> None:
    assert flags.rollout_percent(value) == percent


@pytest.mark.parametrize(("flag", "subject", "expected"), KNOWN_BUCKETS)
def test_known_cohort_buckets(flag: str, subject: str, expected: float) -> None:
    assert flags.bucket(flag, subject) == expected


def test_buckets_are_two_decimal_positions_below_100() -> None:
    buckets = [flags.bucket("FF_X", subject) for subject in SUBJECTS]
    assert all(0 <= value < 100 for value in buckets)
    assert all(round(value, 2) == value for value in buckets)
    assert min(buckets) == 0.03 and max(buckets) == 99.87


def test_the_bucket_boundary_is_exclusive() -> None:
    # u1 sits at 8.39 for FF_X: a rollout of exactly 8.39 % leaves it out, 8.4 % takes it in.
    assert not flags.is_enabled("FF_X", "8.38%", "u1")
    assert not flags.is_enabled("FF_X", "8.39%", "u1")
    assert flags.is_enabled("FF_X", "8.4%", "u1")
    assert not flags.is_enabled("FF_X", "0.03%", LOWEST)
    assert flags.is_enabled("FF_X", "0.04%", LOWEST)
    assert not flags.is_enabled("FF_X", "99.81%", HIGHEST)
    assert flags.is_enabled("FF_X", "99.82%", HIGHEST)


def test_one_percent_and_ninety_nine_percent_rollouts_pick_exactly_these_callers() -> None:
    one = [subject for subject in SUBJECTS if flags.is_enabled("FF_X", "1%", subject)]
    assert len(one) == 27
    assert one[:5] == ["user-76", "user-162", "user-212", "user-320", "user-378"]
    assert all(flags.bucket("FF_X", subject) < 1 for subject in one)
    left_out = [subject for subject in SUBJECTS if not flags.is_enabled("FF_X", "99%", subject)]
    assert len(left_out) == 25
    assert left_out[:5] == ["user-339", "user-344", "user-395", "user-407", "user-666"]
    # Widening a rollout keeps everyone who was in; the flag name is part of the cohort.
    assert all(flags.is_enabled("FF_X", "99%", subject) for subject in one)
    assert [s for s in SUBJECTS if flags.is_enabled("FF_Y", "1%", s)] != one


def test_the_default_subject_is_the_empty_string() -> None:
    # bucket("FF_X", "") is 89.49 (KNOWN_BUCKETS): callers with no id share that position.
    assert not flags.is_enabled("FF_X", "89.49%")
    assert flags.is_enabled("FF_X", "89.5%")


def test_zero_and_full_rollouts_ignore_buckets() -> None:
    assert not flags.is_enabled("FF_X", "0%", LOWEST)
    assert not flags.is_enabled("FF_X", "0.0%", LOWEST)
    assert flags.is_enabled("FF_X", "100%", HIGHEST)
    assert flags.is_enabled("FF_X", "100.0%", HIGHEST)
