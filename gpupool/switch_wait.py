"""How long a multi-node job waits for its fewest leaf switches: the T of Slurm's ``--switches=N@T``.

One rule for the three places that set it: `gpupool submit` (a job whose placement now would
span more leaves than it needs), the job_submit.lua `gpupool pool lua` writes (plain sbatch
jobs), and the simulator's `gpupool`/`slurm-tuned` policies, which model those two.

The wait is a share of the job's time limit (``25%``) or fixed (``300``, ``1:00:00``). A share
scales the hold with what spreading costs: a job's slowdown from extra leaves (and from sharing
oversubscribed uplinks) is paid over its whole run, so a long job can afford a longer wait for a
compact placement than a short one. `DEFAULT` is what docs/simulate.md ("Waiting for a compact
placement") measured across fabrics; a job with no known limit waits `fallback_seconds`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from gpupool.errors import BadRequest

FALLBACK_SECONDS = 3600.0  # a share's wait when the job's time limit is unknown
MAX_SECONDS = 365 * 86400.0  # beyond any Slurm time limit: a typo, not a wait
_DECIMAL = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,6})?")  # ASCII digits only ("٣".isdigit() is True)


@dataclass(frozen=True)
class SwitchWait:
    """`share` of the job's time limit (0 < share <= 1), else a fixed `seconds`; 0 and 0: no wait."""

    share: float = 0.0
    seconds: float = 0.0
    fallback_seconds: float = FALLBACK_SECONDS

    def for_limit(self, limit_s: float | None) -> float:
        """Seconds a job with this time limit (None or <= 0: unknown) may wait for its switch count."""
        if self.share > 0:
            if limit_s is None or not limit_s > 0 or not math.isfinite(limit_s):
                return self.fallback_seconds
            return self.share * limit_s
        return self.seconds

    def __bool__(self) -> bool:
        return self.share > 0 or self.seconds > 0

    def text(self) -> str:
        return f"{self.share * 100:g}%" if self.share > 0 else f"{self.seconds:g}"

    @classmethod
    def parse(cls, text: str, what: str = "--switch-wait") -> SwitchWait:
        """`P%` of the time limit (0 < P <= 100), or seconds / [[H:]M:]S (a bare number is seconds)."""
        raw = text.strip()
        try:
            if raw.endswith("%"):
                number = raw[:-1].strip()
                if not _DECIMAL.fullmatch(number):  # ASCII only: float() also reads "٣0"
                    raise ValueError(raw)
                percent = float(number)
                if not 0 <= percent <= 100:
                    raise ValueError(raw)
                return cls(share=percent / 100.0)
            return cls(seconds=parse_wait_seconds(raw))
        except ValueError:
            raise BadRequest(f"{what} {text!r}: expected P% of the job's time limit (0-100), or seconds or "
                             "[[H:]M:]S, e.g. 25% or 300 or 1:00:00") from None


def parse_wait_seconds(text: str) -> float:
    """Seconds, or [[H:]M:]S (a bare number is seconds, unlike a Slurm time limit); ASCII digits only."""
    parts = text.split(":")
    if len(parts) > 3 or not all(_DECIMAL.fullmatch(p) for p in parts):
        raise ValueError(text)
    total = 0.0
    for p in parts:
        total = total * 60 + float(p)
    if total > MAX_SECONDS:
        raise ValueError(text)
    return total


DEFAULT = SwitchWait(share=0.25)  # what `submit`, `pool lua` and the simulator's gpupool policy use by default
