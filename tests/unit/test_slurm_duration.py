"""The one Slurm duration parser (`gpupool.slurm.duration`): every form Slurm documents for a time
limit (sbatch(1) --time), with the seconds worked out by hand, and what each failure does."""

from __future__ import annotations

import pytest

from gpupool.errors import GpupoolError
from gpupool.pools.schema import parse_pools_text
from gpupool.slurm import parse
from gpupool.slurm.duration import DurationError, parse_minutes, parse_seconds, seconds_or_none

MIN, HOUR, DAY = 60, 3600, 86400

# (text, seconds): sbatch(1): "minutes", "minutes:seconds", "hours:minutes:seconds", "days-hours",
# "days-hours:minutes" and "days-hours:minutes:seconds"; UNLIMITED/INFINITE mean no limit (None).
FORMS: list[tuple[str | int, int | None]] = [
    ("90", 90 * MIN),                                    # minutes
    ("0", 0),
    ("05:30", 5 * MIN + 30),                             # MM:SS
    ("1:30", 1 * MIN + 30),
    ("02:00:00", 2 * HOUR),                              # HH:MM:SS
    ("12:00:00", 12 * HOUR),                             # twelve hours, not base-60 minutes
    ("1:02:03", 1 * HOUR + 2 * MIN + 3),
    ("2-3", 2 * DAY + 3 * HOUR),                         # D-HH
    ("1-0", DAY),
    ("1-2:30", DAY + 2 * HOUR + 30 * MIN),               # D-HH:MM
    ("1-02:03:04", DAY + 2 * HOUR + 3 * MIN + 4),        # D-HH:MM:SS
    ("2-00:00:00", 2 * DAY),
    (" 7 ", 7 * MIN),                                    # surrounding blanks
    (45, 45 * MIN),                                      # an int is minutes, as Slurm reads a bare number
    ("UNLIMITED", None), ("INFINITE", None), ("unlimited", None),
]


@pytest.mark.parametrize(("text", "seconds"), FORMS)
def test_every_documented_form(text: str | int, seconds: int | None) -> None:
    assert parse_seconds(text) == seconds


@pytest.mark.parametrize(("text", "minutes"), [("90", 90), ("1:30", 2), ("0:01", 1), ("0:00", 0),
                                               ("1-0", 1440), ("INFINITE", None)])
def test_minutes_round_up_as_slurm_rounds_a_limit(text: str, minutes: int | None) -> None:
    assert parse_minutes(text) == minutes


@pytest.mark.parametrize(("text", "seconds"), [("30", 30), ("0", 0), ("1:00", 60), ("1-0", DAY)])
def test_a_bare_number_can_be_seconds_where_slurm_prints_seconds(text: str, seconds: int) -> None:
    assert parse_seconds(text, plain="seconds") == seconds


# Slurm's words for "no value" are not durations, and neither is anything malformed.
BAD = ["", "N/A", "(null)", "NONE", "Partition_Limit", "1:x:3", "-1", "1:2:3:4", "1-", "-", "1.5",
       "1:123", "1-2:3:4:5", "abc", "999999-0", "1e3"]


@pytest.mark.parametrize("text", BAD)
def test_strict_parse_raises_on_everything_else(text: str) -> None:
    with pytest.raises(DurationError):
        parse_seconds(text)


def test_booleans_and_out_of_range_numbers_are_refused() -> None:
    for value in (True, False, -1, 100 * 365 * 24 * 60 + 1):
        with pytest.raises(DurationError):
            parse_seconds(value)


@pytest.mark.parametrize("text", BAD + ["UNLIMITED", "INFINITE", None])
def test_reading_slurm_output_makes_unset_and_unreadable_none(text: str | None) -> None:
    assert seconds_or_none(text) is None


@pytest.mark.parametrize(("text", "seconds"), FORMS)
def test_both_callers_read_with_the_same_parser(text: str | int, seconds: int | None) -> None:
    # slurm.parse reads Slurm's output (lenient); the pools file reads a user's max_time (strict, minutes).
    if isinstance(text, str):
        assert parse.duration_seconds(text) == seconds
    base = "pools:\n  vision:\n    nodes: [gpu001]\n    owners: [vision]\n    max_time: {}\naccounts:\n  vision: {{shares: 10}}\n"
    spec = parse_pools_text(base.format(f'"{text}"' if isinstance(text, str) else text))
    assert spec.pools["vision"].max_time == (None if seconds is None else -(-seconds // 60))


def test_the_pools_file_names_key_and_reason_for_a_bad_duration() -> None:
    base = "pools:\n  vision:\n    nodes: [gpu001]\n    owners: [vision]\n    max_time: \"1:x\"\naccounts:\n  vision: {shares: 10}\n"
    with pytest.raises(GpupoolError) as info:
        parse_pools_text(base)
    assert "max_time" in info.value.message and "'1:x' is not a Slurm time limit" in info.value.message


# -- issue 29 (mutation survivors): the bounds and the message of each refusal, worked out by hand ---------

HUNDRED_YEARS_MIN = 100 * 365 * 24 * 60  # 52,560,000 minutes, the most any duration may say


@pytest.mark.parametrize(("text", "seconds"), [
    (str(HUNDRED_YEARS_MIN), HUNDRED_YEARS_MIN * 60),     # exactly 100 years of minutes: still accepted
    ("36500-0", 36500 * DAY),                              # the same bound as days
    ("0:0", 0), ("00:00:00", 0), ("0-0", 0),
    ("9:59", 9 * MIN + 59), ("0:99", 99),                  # the last fields take two digits, as printed
    ("1-2:3", DAY + 2 * HOUR + 3 * MIN), ("10-00:00:01", 10 * DAY + 1),
])
def test_bounds_and_small_forms(text: str, seconds: int) -> None:
    assert parse_seconds(text) == seconds
    assert seconds_or_none(text) == seconds


@pytest.mark.parametrize(("value", "message"), [
    # Past 100 years: the range message (the text was a duration).
    (str(HUNDRED_YEARS_MIN + 1), "time limit must be between 0 and 52560000 minutes"),
    ("36500-0:0:1", "time limit must be between 0 and 52560000 minutes"),
    ("99999-0", "time limit must be between 0 and 52560000 minutes"),   # five digits of days: read, too long
    ("999999999", "time limit must be between 0 and 52560000 minutes"),  # nine digits of minutes: read
    (HUNDRED_YEARS_MIN + 1, "time limit must be between 0 and 52560000 minutes"),
    (-1, "time limit must be between 0 and 52560000 minutes"),
    # Past what the pattern reads (six digits of days, ten of minutes, three of seconds): not a duration.
    ("100000-0", "'100000-0' is not a Slurm time limit (e.g. 2-00:00:00, 12:00:00 or 90)"),
    ("1000000000", "'1000000000' is not a Slurm time limit (e.g. 2-00:00:00, 12:00:00 or 90)"),
    ("1:100", "'1:100' is not a Slurm time limit (e.g. 2-00:00:00, 12:00:00 or 90)"),
    (1.5, "'1.5' is not a Slurm time limit (e.g. 2-00:00:00, 12:00:00 or 90)"),
    (90.0, "'90.0' is not a Slurm time limit (e.g. 2-00:00:00, 12:00:00 or 90)"),  # a float is no bare number
    # Slurm's words for "not set", each named as such (not as malformed text).
    ("", "'' is Slurm's word for no value set, not a duration (e.g. 2-00:00:00, 12:00:00 or 90)"),
    ("N/A", "'N/A' is Slurm's word for no value set, not a duration (e.g. 2-00:00:00, 12:00:00 or 90)"),
    ("(null)", "'(null)' is Slurm's word for no value set, not a duration (e.g. 2-00:00:00, 12:00:00 or 90)"),
    ("None", "'None' is Slurm's word for no value set, not a duration (e.g. 2-00:00:00, 12:00:00 or 90)"),
    ("Partition_Limit",
     "'Partition_Limit' is Slurm's word for no value set, not a duration (e.g. 2-00:00:00, 12:00:00 or 90)"),
    (True, "expected a Slurm duration (e.g. 2-00:00:00, 12:00:00 or 90)"),
])
def test_each_refusal_says_why(value: str | int | float, message: str) -> None:
    with pytest.raises(DurationError) as info:
        parse_seconds(value)
    assert str(info.value) == message


@pytest.mark.parametrize(("value", "seconds"), [
    (30, 30), ("30", 30), (0, 0), ("2:00", 120), ("1-0", DAY), ("UNLIMITED", None),
    (HUNDRED_YEARS_MIN * 60, HUNDRED_YEARS_MIN * 60),  # the bound is the same in seconds
])
def test_plain_seconds_for_ints_and_text(value: str | int, seconds: int | None) -> None:
    assert parse_seconds(value, plain="seconds") == seconds


def test_plain_seconds_bound() -> None:
    with pytest.raises(DurationError, match="between 0 and 52560000 minutes"):
        parse_seconds(HUNDRED_YEARS_MIN * 60 + 1, plain="seconds")
    # As text, nine digits is the most a bare number has: 999,999,999 s (31.7 years) is within the bound.
    assert parse_seconds("999999999", plain="seconds") == 999_999_999


@pytest.mark.parametrize(("value", "minutes"), [
    (0, 0), (7, 7), ("0:59", 1), ("1:01", 2), ("2:00", 2), ("1:00:00", 60), ("UNLIMITED", None),
    (str(HUNDRED_YEARS_MIN), HUNDRED_YEARS_MIN),
])
def test_minutes_of_ints_and_text(value: str | int, minutes: int | None) -> None:
    assert parse_minutes(value) == minutes
