"""Placement on dragonfly and general graphs: parallel seed-and-grow over host classes, then local search.

Hosts with identical switch sets form a class; d between distinct hosts of one class is 2, between
classes D[a, b] = 2 + min switch hops. With U_c units taken from class c, filled fullest host first,
    cost(U) = 1/2 U^T D U - sum_c S_c(U_c)
where S_c is the largest sum of squared per-host counts (same-host pairs cost 0). Growth from every
class (prange) adds whole hosts by smallest per-unit added cost; the best seeds are then improved by
moving units between classes. The lower bound: every unit is at least b(c) hops from the others in
total, b(c) filling the request ring by ring around its class, so cost >= N min_c b(c) / 2.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from gpupool.jit import njit, prange
from gpupool.placement.cost import min_switch_hops

if TYPE_CHECKING:
    from gpupool.fabric.compiled import CompiledFabric

NO_LIMIT = 32768  # above any reachable distance, below the unreachable one (32767 + 2)


@dataclass
class ClassStructure:
    n_classes: int
    dist: np.ndarray  # int32[C, C]: host distance between classes; 2 on the diagonal


def _few_classes(hop: np.ndarray, cls_ptr: np.ndarray, cls_sw: np.ndarray) -> bool:
    return cls_ptr.size <= 2049  # serial AOT code beats importing Numba for its threads (~1 s) up to here


@njit(cache=True, parallel=True, serial_aot_if=_few_classes)
def class_distance(hop: np.ndarray, cls_ptr: np.ndarray, cls_sw: np.ndarray) -> np.ndarray:
    n = cls_ptr.size - 1
    out = np.empty((n, n), dtype=np.int32)
    for i in prange(n):
        for j in range(n):
            out[i, j] = 2 if i == j else min_switch_hops(hop, cls_ptr, cls_sw, i, j) + 2
    return out


def class_structure(compiled: CompiledFabric) -> ClassStructure:
    host_class = compiled.host_class
    n_classes = int(host_class.max()) + 1 if host_class.size else 0
    rep = np.full(n_classes, -1, dtype=np.int64)
    rep[host_class[::-1]] = np.arange(host_class.size - 1, -1, -1)
    ptr = compiled.host_leaf_ptr
    counts = (ptr[rep + 1] - ptr[rep]).astype(np.int64)
    cls_ptr = np.zeros(n_classes + 1, dtype=np.int64)
    np.cumsum(counts, out=cls_ptr[1:])
    cls_sw = np.concatenate([compiled.host_leaf_idx[ptr[h]:ptr[h + 1]] for h in rep]).astype(np.int64) \
        if n_classes else np.zeros(0, np.int64)
    return ClassStructure(n_classes=n_classes, dist=class_distance(compiled.hop, cls_ptr, cls_sw))


@njit(cache=True)
def class_prefix(cls_ptr: np.ndarray, cls_hosts: np.ndarray, units: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per class (offset cls_ptr[c] + c, length n_c + 1): units and squares of its k fullest hosts."""
    n = cls_ptr.size - 1
    cum = np.zeros(cls_hosts.size + n, dtype=np.int64)
    cum_sq = np.zeros(cls_hosts.size + n, dtype=np.int64)
    for c in range(n):
        off = cls_ptr[c] + c
        for k in range(cls_ptr[c + 1] - cls_ptr[c]):
            u = units[cls_hosts[cls_ptr[c] + k]]
            cum[off + k + 1] = cum[off + k] + u
            cum_sq[off + k + 1] = cum_sq[off + k] + u * u
    return cum, cum_sq


@njit(cache=True)
def _full_hosts(c: int, u: int, cls_ptr: np.ndarray, cum: np.ndarray) -> int:
    """Largest k such that the k fullest hosts of class c hold at most u units."""
    off = cls_ptr[c] + c
    lo = 0
    hi = cls_ptr[c + 1] - cls_ptr[c]
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if cum[off + mid] <= u:
            lo = mid
        else:
            hi = mid - 1
    return lo


@njit(cache=True)
def _squares(c: int, u: int, cls_ptr: np.ndarray, cum: np.ndarray, cum_sq: np.ndarray) -> int:
    """S_c(u): largest sum of squared per-host counts for u units in class c."""
    off = cls_ptr[c] + c
    k = _full_hosts(c, u, cls_ptr, cum)
    rest = u - cum[off + k]
    return cum_sq[off + k] + rest * rest  # type: ignore[no-any-return]  # an int64 reaches callers as int


@njit(cache=True)
def _grow(seed: int, need: int, dist: np.ndarray, cls_ptr: np.ndarray, cls_hosts: np.ndarray, units: np.ndarray,
          max_hops: int, take: np.ndarray) -> tuple[int, int, int]:
    """Grow from `seed` host by host; returns (cost, classes used, units placed) and fills `take`."""
    n = cls_ptr.size - 1
    weight = np.zeros(n, dtype=np.int64)  # sum of distances from a new host of class x to placed units
    far = np.zeros(n, dtype=np.int64)  # largest distance from class x to a used class
    used = np.zeros(n, dtype=np.int64)  # hosts consumed per class
    take[:] = 0
    remaining = need
    cost = 0
    support = 0
    c = seed
    while remaining > 0 and c >= 0:
        h = cls_hosts[cls_ptr[c] + used[c]]
        g = min(units[h], remaining)
        cost += g * weight[c]
        if take[c] == 0:
            support += 1
            for x in range(n):
                if dist[x, c] > far[x]:
                    far[x] = dist[x, c]
        take[c] += g
        used[c] += 1
        remaining -= g
        for x in range(n):
            weight[x] += g * dist[x, c]
        c = -1
        best_w = np.int64(1) << 62
        best_chunk = 0
        for x in range(n):
            if used[x] >= cls_ptr[x + 1] - cls_ptr[x] or far[x] > max_hops:
                continue
            chunk = units[cls_hosts[cls_ptr[x] + used[x]]]
            if weight[x] < best_w or (weight[x] == best_w and chunk > best_chunk):
                best_w = weight[x]
                best_chunk = chunk
                c = x
    return cost, support, need - remaining


def _few_seeds(seeds: np.ndarray, need: int, dist: np.ndarray, *_rest: object) -> bool:
    return bool(seeds.size * dist.shape[0] <= 1 << 20)  # serial AOT code beats importing Numba's threads here


@njit(cache=True, parallel=True, serial_aot_if=_few_seeds)
def grow_all(seeds: np.ndarray, need: int, dist: np.ndarray, cls_ptr: np.ndarray, cls_hosts: np.ndarray,
             units: np.ndarray, max_hops: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = cls_ptr.size - 1
    costs = np.empty(seeds.size, dtype=np.int64)
    support = np.empty(seeds.size, dtype=np.int64)
    placed = np.empty(seeds.size, dtype=np.int64)
    for i in prange(seeds.size):
        take = np.zeros(n, dtype=np.int64)
        cost, sup, got = _grow(seeds[i], need, dist, cls_ptr, cls_hosts, units, max_hops, take)
        costs[i] = cost
        support[i] = sup
        placed[i] = got
    return costs, support, placed


@njit(cache=True)
def grow_one(seed: int, need: int, dist: np.ndarray, cls_ptr: np.ndarray, cls_hosts: np.ndarray, units: np.ndarray,
             max_hops: int) -> tuple[int, np.ndarray]:
    take = np.zeros(cls_ptr.size - 1, dtype=np.int64)
    cost, _sup, _got = _grow(seed, need, dist, cls_ptr, cls_hosts, units, max_hops, take)
    return cost, take


@njit(cache=True)
def local_search(take: np.ndarray, dist: np.ndarray, cls_ptr: np.ndarray, cum: np.ndarray, cum_sq: np.ndarray,
                 cap: np.ndarray, max_hops: int, max_rounds: int) -> int:
    """Move units between classes while (cost, classes used) improves; returns the cost change."""
    n = take.size
    weight = np.zeros(n, dtype=np.int64)
    for c in range(n):
        if take[c] > 0:
            for x in range(n):
                weight[x] += take[c] * dist[x, c]
    total_change = 0
    cands = np.empty(5, dtype=np.int64)
    for _round in range(max_rounds):
        best_delta = 0
        best_sup = 0
        best_a = -1
        best_b = -1
        best_m = 0
        for a in range(n):
            ua = take[a]
            if ua == 0:
                continue
            sa = _squares(a, ua, cls_ptr, cum, cum_sq)
            for b in range(n):
                if b == a or take[b] >= cap[b]:
                    continue
                room = cap[b] - take[b]
                # All classes left in use must stay within max_hops of b.
                ok = True
                for x in range(n):
                    if take[x] > 0 and x != a and dist[b, x] > max_hops:
                        ok = False
                        break
                if not ok:
                    continue
                cands[0] = 1
                cands[1] = ua
                cands[2] = min(ua, room)
                # The last (partial or full) host of a; what fills b's next host.
                off = cls_ptr[a] + a
                k = _full_hosts(a, ua, cls_ptr, cum)
                part = ua - cum[off + k]
                cands[3] = part if part > 0 else cum[off + k] - cum[off + k - 1]
                offb = cls_ptr[b] + b
                kb = _full_hosts(b, take[b], cls_ptr, cum)
                cands[4] = cum[offb + min(kb + 1, cls_ptr[b + 1] - cls_ptr[b])] - take[b]
                sb = _squares(b, take[b], cls_ptr, cum, cum_sq)
                for ci in range(5):
                    m = cands[ci]
                    if m <= 0 or m > ua or m > room:
                        continue
                    delta = (m * (weight[b] - weight[a]) + m * m * (dist[a, a] + dist[b, b] - 2 * dist[a, b]) // 2
                             - (_squares(a, ua - m, cls_ptr, cum, cum_sq) - sa)
                             - (_squares(b, take[b] + m, cls_ptr, cum, cum_sq) - sb))
                    sup = (1 if take[b] == 0 else 0) - (1 if m == ua else 0)
                    if delta < best_delta or (delta == best_delta and sup < best_sup):
                        best_delta = delta
                        best_sup = sup
                        best_a = a
                        best_b = b
                        best_m = m
        if best_a < 0:
            break
        take[best_a] -= best_m
        take[best_b] += best_m
        for x in range(n):
            weight[x] += best_m * (dist[x, best_b] - dist[x, best_a])
        total_change += best_delta
    return total_change


@njit(cache=True)
def cost_of_take(take: np.ndarray, dist: np.ndarray, cls_ptr: np.ndarray, cum: np.ndarray, cum_sq: np.ndarray) -> int:
    n = take.size
    total = 0
    for a in range(n):
        if take[a] == 0:
            continue
        for b in range(n):
            if take[b] > 0:
                total += take[a] * take[b] * dist[a, b]
        total -= 2 * _squares(a, take[a], cls_ptr, cum, cum_sq)
    return total // 2


@njit(cache=True)
def ring_lower_bound(need: int, dist: np.ndarray, cls_ptr: np.ndarray, cls_hosts: np.ndarray, units: np.ndarray,
                     cap: np.ndarray, max_hops: int) -> int:
    """min over classes c of b(c): the least total distance from one unit in c to need - 1 others."""
    n = cap.size
    best = np.int64(1) << 62
    max_d = 0
    for a in range(n):
        for b in range(n):
            if dist[a, b] <= max_hops and dist[a, b] > max_d:
                max_d = dist[a, b]
    ring = np.zeros(max_d + 1, dtype=np.int64)
    for c in range(n):
        if cap[c] == 0:
            continue
        ring[:] = 0
        top = units[cls_hosts[cls_ptr[c]]]  # fullest host of the class
        ring[0] = top - 1
        for x in range(n):
            d = dist[c, x]
            if x != c and cap[x] > 0 and d <= max_hops:
                ring[d] += cap[x]
        if max_d >= 2:
            ring[2] += cap[c] - top
        left = need - 1
        total = 0
        for d in range(max_d + 1):
            k = min(left, ring[d])
            total += k * d
            left -= k
            if left == 0:
                break
        if left == 0 and total < best:
            best = total  # type: ignore[assignment]  # both int64 inside the kernel
    if best == np.int64(1) << 62:
        return 0
    return (need * best + 1) // 2  # type: ignore[return-value]  # an int64 reaches callers as int
