"""Parse Slurm GRES / TRES strings into GPU counts.

Forms seen in Slurm 22.05 .. 24.x output:

- node Gres:        ``gpu:h100:8``, ``gpu:8``, ``gpu:h100:8(S:0-1)``, ``gpu:a100:2,gpu:h100:4(S:0)``
- node GresUsed:    ``gpu:h100:2(IDX:0-1)``, ``gpu:0``, ``gpu:h100:0(IDX:N/A)``, ``N/A``
- job gres_detail:  ``gpu:h100:3(IDX:0-2)`` (one entry per allocated node)
- job tres_per_node:``gres:gpu:3`` (22.05), ``gres/gpu:3`` (23.02+), ``gres:gpu:h100:2``
- TRES strings:     ``cpu=2,mem=1000M,gres/gpu=8,gres/gpu:h100=8``
"""

from __future__ import annotations

import re
from functools import lru_cache

NULL_VALUES = frozenset({"", "n/a", "(null)", "none"})

# Parenthesised suffixes like (S:0-1) or (IDX:0-3,5) never contain the separators we split on
# except commas, so strip them before splitting.
_PAREN = re.compile(r"\([^)]*\)")


def _entries(text: str | None) -> list[str]:
    if text is None:
        return []
    text = text.strip()
    if text.lower() in NULL_VALUES:
        return []
    return [part.strip() for part in _PAREN.sub("", text).split(",") if part.strip()]


def parse_gres(text: str | None, name: str = "gpu") -> dict[str, int]:
    """GRES string -> {type: count} for resource `name` (untyped entries use type "")."""
    counts: dict[str, int] = {}
    for entry in _entries(text):
        fields = entry.split(":")
        # Tolerate the TRES-per-node prefixes "gres:" (22.05) and "gres/" (23.02+).
        if fields[0] == "gres":
            fields = fields[1:]
        elif fields[0].startswith("gres/"):
            fields = [fields[0][5:], *fields[1:]]
        if not fields or fields[0] != name:
            continue
        gres_type, count = "", 1
        if len(fields) == 2:
            if fields[1].isascii() and fields[1].isdigit() and len(fields[1]) <= 12:
                count = int(fields[1])
            else:
                gres_type = fields[1]
        elif len(fields) >= 3:
            gres_type = fields[1]
            count = _count(fields[2])
        counts[gres_type] = counts.get(gres_type, 0) + count
    return counts


def _count(text: str) -> int:
    match = re.match(r"([0-9]{1,12})([kKmMgG]?)", text)
    if not match:
        return 0
    scale = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[match.group(2).lower()]
    return int(match.group(1)) * scale


@lru_cache(maxsize=4096)
def _gpu_summary(text: str | None) -> tuple[int, tuple[str, ...]]:
    # Thousands of nodes share a handful of GRES strings (`gpu:8`, `gpu:h100:3(IDX:0-2)`): parse each once.
    counts = parse_gres(text, "gpu")
    return sum(counts.values()), tuple(t for t in counts if t)


def gpu_count(text: str | None) -> int:
    """Total GPUs in a GRES / tres-per-node string (all types summed)."""
    if text is None or isinstance(text, str):
        return _gpu_summary(text)[0]
    return sum(parse_gres(text, "gpu").values())


def gpu_types(text: str | None) -> list[str]:
    """GPU types named in a GRES string, in order, without the untyped entry."""
    if text is None or isinstance(text, str):
        return list(_gpu_summary(text)[1])
    return [t for t in parse_gres(text, "gpu") if t]


def tres_gpu_count(tres: str | None) -> int:
    """GPUs in a TRES string like ``cpu=2,gres/gpu=8,gres/gpu:h100=8`` (untyped total wins)."""
    if not tres or tres.strip().lower() in NULL_VALUES:
        return 0
    untyped = 0
    typed = 0
    for item in tres.split(","):
        key, _, value = item.partition("=")
        key = key.strip()
        if key == "gres/gpu":
            untyped += _count(value)
        elif key.startswith("gres/gpu:"):
            typed += _count(value)
    return untyped or typed


def tres_value(tres: str | None, key: str) -> str | None:
    """The raw value of `key` in a TRES string (``cpu=2,mem=1000M`` -> tres_value(.., 'mem') = '1000M')."""
    if not tres:
        return None
    for item in tres.split(","):
        name, _, value = item.partition("=")
        if name.strip() == key:
            return value.strip()
    return None


MAX_MEMORY_MB = 1024**5  # 1 ZiB in MiB: far above any node, far below float overflow


def memory_mb(text: str | None) -> int:
    """Slurm memory size (``1000M``, ``62.50G``, ``64000``) in MiB."""
    if text is None:
        return 0
    match = re.fullmatch(r"\s*([\d.]+)\s*([KMGTP]?)B?\s*", str(text), re.IGNORECASE)
    if not match:
        return 0
    try:
        value = float(match.group(1))
    except ValueError:  # "1.2.3" matches the character class but is no number
        return 0
    unit = match.group(2).upper() or "M"
    factor = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024**2, "P": 1024**3}[unit]
    mib = value * factor
    # A size past what any node has (or inf from a 400-digit string) is unreadable, not a crash.
    return int(round(mib)) if mib < MAX_MEMORY_MB else 0
