"""Slurm durations (time limits, PreemptExemptTime, GraceTime): the one parser.

Slurm's documented forms (sbatch --time, slurm.conf, sacctmgr): ``minutes``, ``MM:SS``,
``HH:MM:SS``, ``D-HH``, ``D-HH:MM``, ``D-HH:MM:SS`` and ``UNLIMITED`` / ``INFINITE``.
`parse_seconds` is strict: a duration in seconds, `None` for unlimited, `DurationError` for
anything else. What Slurm prints where no value is set (``N/A``, ``(null)``, ``NONE``,
``Partition_Limit``, empty) is a different thing from unlimited and is also an error there; a
reader of Slurm's output that wants to treat it as "not set" says so with `seconds_or_none`.
"""

from __future__ import annotations

import re
from typing import Literal

# 100 years, in minutes: more than any real limit, small enough for every Slurm integer field.
MAX_MINUTES = 100 * 365 * 24 * 60
UNLIMITED_WORDS = frozenset({"UNLIMITED", "INFINITE"})
# What Slurm prints for "no value here" (squeue's TimeLimit without a job limit is Partition_Limit).
UNSET_WORDS = frozenset({"", "N/A", "(NULL)", "NONE", "PARTITION_LIMIT"})
EXAMPLES = "e.g. 2-00:00:00, 12:00:00 or 90"

# [D-]A[:B[:C]]: days up to 5 digits, the first field up to 9 (plain minutes), the others 2 (fullmatch).
_DURATION_RE = re.compile(r"(?:([0-9]{1,5})-)?([0-9]{1,9})(?::([0-9]{1,2}))?(?::([0-9]{1,2}))?")


class DurationError(ValueError):
    """Text that is not a Slurm duration; the message says what was wrong (no file or key: the caller adds them)."""


def parse_seconds(value: str | int | float, *, plain: Literal["minutes", "seconds"] = "minutes") -> int | None:
    """A Slurm duration -> seconds; None for UNLIMITED/INFINITE; DurationError for anything else.

    A bare number is minutes, as Slurm reads a time limit (`plain="seconds"` for sacctmgr's GraceTime,
    which it prints as plain seconds). An int is that bare number."""
    if isinstance(value, bool):
        raise DurationError(f"expected a Slurm duration ({EXAMPLES})")
    if isinstance(value, int):
        return _bounded(value * (60 if plain == "minutes" else 1))
    text = repr(value) if isinstance(value, float) else str(value).strip()
    if text.upper() in UNLIMITED_WORDS:
        return None
    if text.upper() in UNSET_WORDS:
        raise DurationError(f"{text!r} is Slurm's word for no value set, not a duration ({EXAMPLES})")
    match = _DURATION_RE.fullmatch(text)
    if not match:
        raise DurationError(f"{text!r} is not a Slurm time limit ({EXAMPLES})")
    days_text, first, second, third = match.groups()
    fields = [int(x) for x in (first, second, third) if x is not None]
    if days_text is not None:  # D-HH[:MM[:SS]]
        hours, minutes, seconds = (fields + [0, 0])[:3]
    elif len(fields) == 1:  # a bare number
        return _bounded(fields[0] * (60 if plain == "minutes" else 1))
    elif len(fields) == 2:  # MM:SS
        hours, (minutes, seconds) = 0, fields
    else:  # HH:MM:SS
        hours, minutes, seconds = fields
    return _bounded(((int(days_text or 0) * 24 + hours) * 60 + minutes) * 60 + seconds)


def parse_minutes(value: str | int | float) -> int | None:
    """A Slurm duration -> whole minutes, rounded up as Slurm rounds a time limit; None for unlimited."""
    seconds = parse_seconds(value)
    return None if seconds is None else (seconds + 59) // 60


def seconds_or_none(text: str | None) -> int | None:
    """Slurm's own output -> seconds, or None where there is no finite duration to read: unset
    (N/A, (null), NONE, Partition_Limit, empty), UNLIMITED/INFINITE, or text that is no duration.
    For values gpupool only reads (preemption settings), where not knowing means "no exemption"."""
    try:
        return parse_seconds(text or "")
    except DurationError:
        return None


def _bounded(seconds: int) -> int:
    if not 0 <= seconds <= MAX_MINUTES * 60:
        raise DurationError(f"time limit must be between 0 and {MAX_MINUTES} minutes")
    return seconds


def format_seconds(seconds: float) -> str:
    """Seconds as Slurm's ``[D-]HH:MM:SS`` (rounded up to whole seconds), what --time and --switches=N@T take."""
    total = max(0, int(-(-seconds // 1)))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}-{clock}" if days else clock
