"""Slurm hostlists, the one place gpupool expands and folds them (on ClusterShell's NodeSet).

    expand("gpu[001-003],login1")        -> ["gpu001", "gpu002", "gpu003", "login1"]
    fold(["r1-n1", "r1-n2", "r2-n1"])    -> "r1-n[1-2],r2-n1"

One folding rule everywhere: ranges only on the last number of a name (ClusterShell's
``fold_axis=(-1,)``), so ``r1-n[1-3],r2-n[1-3]`` and never ``r[1-2]-n[1-3]``. Every Slurm release
and every script that splits a nodelist at commas reads the last-axis form; multi-bracket names
are accepted on input.

Expansion is capped (`GPUPOOL_HOSTLIST_LIMIT`, default 200,000 names) before anything is
materialised, so a hostile ``n[1-999999999]`` is an `BadInput`, not an exhausted machine.
ClusterShell node groups (``@name``) are refused, never resolved: a hostlist never runs a group command.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

from ClusterShell.NodeSet import RESOLVER_NOGROUP, NodeSet, NodeSetException

from gpupool.errors import BadInput

# 200,000 names: 10x the largest Slurm clusters, expanded in well under a second and ~15 MB.
DEFAULT_LIMIT = 200_000
LIMIT_ENV = "GPUPOOL_HOSTLIST_LIMIT"
NULL_VALUES = ("", "(null)", "none", "n/a")

_BRACKET = re.compile(r"\[([^\[\]]*)\]")
# ASCII digits, at most 18 (int() of 5,000 digits raises; "\d" would also take Arabic-Indic digits).
_RANGE = re.compile(r"\s*([0-9]{1,18})\s*(?:-\s*([0-9]{1,18})\s*(?:/\s*([0-9]{1,18})\s*)?)?")


def limit() -> int:
    """Most names one hostlist may expand to (`GPUPOOL_HOSTLIST_LIMIT`, default 200,000)."""
    text = os.environ.get(LIMIT_ENV, "")
    try:
        value = int(text) if text.strip() else DEFAULT_LIMIT
    except ValueError:
        raise BadInput(f"{LIMIT_ENV}={text!r} is not a whole number") from None
    return max(1, value)


def _top_level_pieces(text: str) -> list[str]:
    """Split at commas (and NodeSet operators) outside brackets."""
    pieces, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        elif depth == 0 and char in ",!&^ ":
            pieces.append(text[start:i])
            start = i + 1
    pieces.append(text[start:])
    return [p for p in pieces if p]


def size_bound(text: str) -> int:
    """An upper bound of the names `text` expands to, computed without expanding it."""
    total = 0
    for piece in _top_level_pieces(text):
        size = 1
        for group in _BRACKET.findall(piece):
            count = 0
            for item in group.split(","):
                match = _RANGE.fullmatch(item)
                if match is None:
                    raise BadInput(f"{_shown(text)} is not a valid Slurm hostlist: bad range {item!r} in [{group}]")
                lo, hi, step = int(match[1]), int(match[2] or match[1]), int(match[3] or 1)
                if hi < lo or step < 1:
                    raise BadInput(f"{_shown(text)} is not a valid Slurm hostlist: bad range {item!r} in [{group}]")
                count += (hi - lo) // step + 1
            size *= count
        total += size
    return total


def expand(text: str | None) -> list[str]:
    """Slurm hostlist -> host names, sorted as Slurm sorts them; "" and "(null)" are no hosts.

    BadInput names the text at fault when it does not parse or expands past `limit()`.
    """
    if text is None:
        return []
    if not isinstance(text, str):
        raise BadInput(f"{_shown(text)} is not a valid Slurm hostlist: not text")
    if text.strip().lower() in NULL_VALUES:
        return []
    text = text.strip()
    if "@" in text:
        raise BadInput(f"{_shown(text)} is not a valid Slurm hostlist: node groups (@name) are not hostlists")
    cap = limit()
    bound = size_bound(text)
    if bound > cap:
        raise BadInput(f"hostlist {_shown(text)} expands to {bound} names, more than the limit of {cap} "
                         f"(set {LIMIT_ENV} to raise it)")
    try:
        return list(NodeSet(text, resolver=RESOLVER_NOGROUP))
    except (NodeSetException, ValueError, IndexError, TypeError) as exc:  # ClusterShell raises all of these
        raise BadInput(f"{_shown(text)} is not a valid Slurm hostlist: {exc}") from None


def _shown(text: object) -> str:
    """`text` for an error line: repr, cut at 200 characters (a hostile hostlist may be megabytes)."""
    shown = repr(text)
    return shown if len(shown) <= 200 else shown[:200] + "..."


def expand_all(texts: Iterable[str]) -> list[str]:
    """Several hostlists -> their names, first occurrence kept, in order."""
    return list(dict.fromkeys(name for text in texts for name in expand(text)))


def fold(hosts: Iterable[str]) -> str:
    """Host names -> a Slurm hostlist with ranges on the last number only ("" for no hosts)."""
    names = list(dict.fromkeys(hosts))
    if not names:
        return ""
    try:
        nodeset = NodeSet.fromlist(names, resolver=RESOLVER_NOGROUP)
    except (NodeSetException, ValueError) as exc:
        raise BadInput(f"cannot fold host names into a hostlist: {exc}") from None
    nodeset.fold_axis = (-1,)
    return str(nodeset)
