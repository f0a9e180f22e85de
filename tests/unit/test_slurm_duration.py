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
