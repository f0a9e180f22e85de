"""Exhaustive optimum for tiny instances: the independent yardstick for tests and benchmarks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from gpupool.placement.engine import host_units
from gpupool.placement.model import FreeState, Request

if TYPE_CHECKING:
    from gpupool.fabric.compiled import CompiledFabric


def brute_force(compiled: CompiledFabric, free: FreeState, request: Request,
                max_candidates: int = 2_000_000) -> tuple[int, int] | None:
    """(least pair_hops_sum, least leaf switches at that cost) over every allocation, None if infeasible.

    Enumerates every per-host split directly from the CONTRACT definitions (host distances from
    `CompiledFabric.host_distance`), so it shares no logic with the placement algorithms.
    """
    units, need, unit_gpus, _per_node = host_units(compiled, free, request)
    hosts = [int(h) for h in np.nonzero(units)[0]]
    limits = [int(units[h]) for h in hosts]
    count = _count_splits(limits, need)
    if count > max_candidates:
        raise ValueError(f"instance too large for brute force ({count} candidates)")
    dist = [[compiled.host_distance(a, b) for b in hosts] for a in hosts]
    leaves = [set(int(s) for s in compiled.leaves_of(h)) for h in hosts]
    max_hops = request.max_hops
    best: tuple[int, int] | None = None
    for split in _splits(limits, need):
        used = [i for i, g in enumerate(split) if g]
        cost = 0
        worst = 0
        for ai, a in enumerate(used):
            for b in used[ai + 1:]:
                cost += split[a] * split[b] * dist[a][b]
                worst = max(worst, dist[a][b])
        if max_hops is not None and worst > max_hops:
            continue
        cost *= unit_gpus * unit_gpus
        n_leaves = len(set().union(*(leaves[i] for i in used)))
        if best is None or (cost, n_leaves) < best:
            best = (cost, n_leaves)
    return best


def _splits(limits: list[int], need: int) -> Iterator[tuple[int, ...]]:
    """Every vector g with 0 <= g_i <= limits[i] and sum g == need."""
    suffix = [0] * (len(limits) + 1)
    for i in range(len(limits) - 1, -1, -1):
        suffix[i] = suffix[i + 1] + limits[i]
    current = [0] * len(limits)

    def walk(i: int, left: int) -> Iterator[tuple[int, ...]]:
        if i == len(limits):
            if left == 0:
                yield tuple(current)
            return
        for g in range(max(0, left - suffix[i + 1]), min(limits[i], left) + 1):
            current[i] = g
            yield from walk(i + 1, left - g)
        current[i] = 0

    yield from walk(0, need)


def _count_splits(limits: list[int], need: int) -> int:
    ways = [1] + [0] * need
    for x in limits:
        nxt = [0] * (need + 1)
        for total, w in enumerate(ways):
            if w:
                for g in range(min(x, need - total) + 1):
                    nxt[total + g] += w
        ways = nxt
    return ways[need]
