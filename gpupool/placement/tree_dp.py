"""Exact placement on ultrametric fabrics (fat-trees, rail-optimised trees): DP over the logical tree.

With d(a, b) = 2 x level(lca), the cost of n units under a tree node v of level L is
    cost_v(n) = L n^2 + min over splits sum_c [cost_c(n_c) - L n_c^2]
(a min-plus knapsack over children, bounded by min(request, subtree capacity)), and inside a leaf
group cost(n) = n^2 - S(n), where S(n), the largest sum of squares of per-host counts, comes from
filling the fullest hosts first. Ties are folded into one int64 key:
    key = A * pair_cost + B * leaf_switches + H * hosts + free GPUs left in touched leaf groups (best fit);
under the `pack` objective a per-leaf-group fragmentation change sits between pair_cost and leaf_switches, and
under `contention` a per-node uplink overload (at leaf groups and internal nodes alike).
Hosts (the even-split tie-break): two placements of equal pair cost with the same sum of squares of
per-leaf counts (on a 2-level tree: cost = 2n^2 - sum of leaf squares - sum of host squares) have per-host
counts of equal sum and equal sum of squares Q, and by Cauchy-Schwarz k hosts hold them evenly only if
k = sum^2 / Q, fewer than any uneven shape needs; so fewest hosts then picks the even split (3+3, not 4+1+1).
A unit is one GPU, or one whole host with --gpus-per-node (then every usable host holds one unit).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from gpupool.jit import njit

if TYPE_CHECKING:
    from gpupool.fabric.compiled import CompiledFabric

_KEY_LIMIT = 1 << 60


@dataclass
class TreeStructure:
    child_ptr: np.ndarray  # int64[T+1]
    child_idx: np.ndarray  # int64
    order: np.ndarray  # int64[T]: tree nodes, children before parents
    level: np.ndarray  # int64[T]
    leaf_switches: np.ndarray  # int64[T]: switches merged into each level-1 node (rails)
    max_level: int


def tree_structure(compiled: CompiledFabric) -> TreeStructure:
    parent = compiled.tree_parent.astype(np.int64)
    n = parent.size
    has_parent = parent >= 0
    kids = np.nonzero(has_parent)[0]
    order_kids = kids[np.argsort(parent[kids], kind="stable")]
    counts = np.bincount(parent[kids], minlength=n) if kids.size else np.zeros(n, np.int64)
    child_ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=child_ptr[1:])
    level = compiled.tree_level.astype(np.int64)
    order = np.argsort(level, kind="stable").astype(np.int64)
    sw_node = compiled.switch_tree_node
    leaf_sw = np.bincount(sw_node[sw_node >= 0], minlength=n).astype(np.int64) if n else np.zeros(0, np.int64)
    leaf_sw = np.maximum(leaf_sw, 1)
    return TreeStructure(child_ptr=child_ptr, child_idx=order_kids.astype(np.int64), order=order, level=level,
                         leaf_switches=leaf_sw, max_level=int(level.max()) if n else 0)


@njit(cache=True)
def leaf_host_lists(host_leaf: np.ndarray, units: np.ndarray, n_tree: int,
                    tie: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CSR group -> hosts with units > 0, fullest first; among equals smallest `tie` (best fit), then host order."""
    counts = np.zeros(n_tree + 1, dtype=np.int64)
    for h in range(units.size):
        if units[h] > 0 and host_leaf[h] >= 0:
            counts[host_leaf[h] + 1] += 1
    ptr = np.cumsum(counts)
    fill = ptr[:-1].copy()
    hosts = np.empty(ptr[-1], dtype=np.int64)
    for h in range(units.size):
        if units[h] > 0 and host_leaf[h] >= 0:
            t = host_leaf[h]
            hosts[fill[t]] = h
            fill[t] += 1
    for t in range(n_tree):
        # Insertion sort: units descending, then tie ascending; stable, so host order breaks the rest.
        for i in range(ptr[t] + 1, ptr[t + 1]):
            h = hosts[i]
            j = i - 1
            while j >= ptr[t] and (units[hosts[j]] < units[h]
                                   or (units[hosts[j]] == units[h] and tie[hosts[j]] > tie[h])):
                hosts[j + 1] = hosts[j]
                j -= 1
            hosts[j + 1] = h
    return ptr, hosts


@njit(cache=True)
def tree_dp(need: int, order: np.ndarray, child_ptr: np.ndarray, child_idx: np.ndarray, level: np.ndarray,
            leaf_ptr: np.ndarray, leaf_hosts: np.ndarray, units: np.ndarray, free_gpus: np.ndarray,
            unit_gpus: int, leaf_sw: np.ndarray, weight_cost: int, weight_leaf: int, weight_fit: int, max_level: int,
            extra_ptr: np.ndarray, extra: np.ndarray, weight_extra: int, weight_hosts: int) -> tuple[int, np.ndarray]:
    """Best key and units per tree node on the optimal allocation (all-zero take when nothing fits).

    `extra[extra_ptr[v] + n]` (used when weight_extra != 0) adds a per-node score of n units to the key: the
    `pack` objective's fragmentation change per leaf group (`objective.leaf_deltas`), or the `contention`
    objective's added uplink overload per tree node (`congestion.node_deltas`); a node whose slice is shorter
    than its n + 1 adds nothing; `weight_hosts` x hosts used (the even-split tie-break; 0 turns it off)."""
    n_tree = level.size
    total = np.zeros(n_tree, dtype=np.int64)
    cap = np.zeros(n_tree, dtype=np.int64)
    group_free = np.zeros(n_tree, dtype=np.int64)
    for v in order:
        if level[v] > max_level:
            continue
        s = 0
        for i in range(leaf_ptr[v], leaf_ptr[v + 1]):
            s += units[leaf_hosts[i]]
            group_free[v] += free_gpus[leaf_hosts[i]]
        for i in range(child_ptr[v], child_ptr[v + 1]):
            s += total[child_idx[i]]
        total[v] = s
        cap[v] = min(need, s)
    key_off = np.zeros(n_tree + 1, dtype=np.int64)
    pre_off = np.zeros(child_idx.size + 1, dtype=np.int64)
    for v in range(n_tree):
        key_off[v + 1] = key_off[v] + (cap[v] + 1 if level[v] <= max_level else 0)
        run = 0
        for i in range(child_ptr[v], child_ptr[v + 1]):
            run = min(need, run + cap[child_idx[i]])
            pre_off[i + 1] = pre_off[i] + (run + 1 if level[v] <= max_level else 0)
    keys = np.empty(key_off[n_tree], dtype=np.int64)
    prefix = np.empty(pre_off[child_idx.size], dtype=np.int64)
    big = np.int64(1) << 61
    for v in order:
        lv = level[v]
        if lv > max_level:
            continue
        base = key_off[v]
        keys[base] = 0
        if child_ptr[v + 1] == child_ptr[v]:
            # Leaf group: fill the fullest hosts first (largest sum of squares).
            squares = 0
            taken = 0
            i = leaf_ptr[v]
            used = 0
            for n in range(1, cap[v] + 1):
                if taken == units[leaf_hosts[i]]:
                    i += 1
                    taken = 0
                squares += 2 * taken + 1
                taken += 1
                used = n
                keys[base + n] = (weight_cost * (n * n - squares) + weight_leaf * leaf_sw[v]
                                  + weight_fit * (group_free[v] - used * unit_gpus)
                                  + weight_hosts * (i - leaf_ptr[v] + 1))
                if weight_extra != 0:
                    keys[base + n] += weight_extra * extra[extra_ptr[v] + n]
            continue
        # Internal node: min-plus knapsack over children, prefix by prefix.
        prev_off = -1
        prev_cap = 0
        for ci in range(child_ptr[v], child_ptr[v + 1]):
            c = child_idx[ci]
            cur = pre_off[ci]
            cur_cap = pre_off[ci + 1] - cur - 1
            if prev_off < 0:
                for k in range(cur_cap + 1):
                    prefix[cur + k] = keys[key_off[c] + k] - weight_cost * lv * k * k
            else:
                out = prefix[cur:cur + cur_cap + 1]
                prev = prefix[prev_off:prev_off + prev_cap + 1]
                out[:] = big
                cbase = key_off[c]
                for k in range(cap[c] + 1):
                    fk = keys[cbase + k] - weight_cost * lv * k * k
                    upto = min(prev_cap, cur_cap - k)
                    dst = out[k:k + upto + 1]
                    for t in range(upto + 1):
                        dst[t] = min(dst[t], prev[t] + fk)
            prev_off = cur
            prev_cap = cur_cap
        for n in range(cap[v] + 1):
            keys[base + n] = weight_cost * lv * n * n + prefix[prev_off + n]
            if weight_extra != 0 and n < extra_ptr[v + 1] - extra_ptr[v]:
                keys[base + n] += weight_extra * extra[extra_ptr[v] + n]  # a score of this node's own (its uplinks)
    # A parent's options include each child's, so the best over all allowed nodes is the optimum.
    best = -1
    best_key = big
    for v in range(n_tree):
        if level[v] > max_level or cap[v] < need:
            continue
        if keys[key_off[v] + need] < best_key:
            best_key = keys[key_off[v] + need]
            best = v
    take = np.zeros(n_tree, dtype=np.int64)
    if best < 0:
        return -1, take
    # Walk down: recover each child's share from the stored prefixes.
    stack = np.empty(n_tree, dtype=np.int64)
    top = 0
    stack[0] = best
    take[best] = need
    top = 1
    while top > 0:
        top -= 1
        v = stack[top]
        t = take[v]
        lv = level[v]
        first = child_ptr[v]
        for ci in range(child_ptr[v + 1] - 1, first - 1, -1):
            c = child_idx[ci]
            cur = pre_off[ci]
            if ci == first:
                k = t
            else:
                prev = pre_off[ci - 1]
                prev_cap = pre_off[ci] - prev - 1
                target = prefix[cur + t]
                k = -1
                for kk in range(min(cap[c], t) + 1):
                    if t - kk <= prev_cap and prefix[prev + t - kk] + keys[key_off[c] + kk] - weight_cost * lv * kk * kk == target:
                        k = kk
                        break
            if k > 0:
                take[c] = k
                stack[top] = c
                top += 1
            t -= k
    return best_key, take  # type: ignore[return-value]  # the int64 key reaches callers as int


@njit(cache=True)
def assign_hosts(take: np.ndarray, leaf_ptr: np.ndarray, leaf_hosts: np.ndarray, units: np.ndarray,
                 n_hosts: int) -> np.ndarray:
    """Units per host: inside each leaf group, fullest hosts first; the remainder goes to the host
    whose free units fit it most tightly (keeps larger free blocks intact)."""
    out = np.zeros(n_hosts, dtype=np.int64)
    for v in range(leaf_ptr.size - 1):
        n = take[v]
        if n <= 0 or leaf_ptr[v + 1] == leaf_ptr[v]:
            continue
        i = leaf_ptr[v]
        end = leaf_ptr[v + 1]
        while i < end and units[leaf_hosts[i]] <= n:
            out[leaf_hosts[i]] = units[leaf_hosts[i]]
            n -= units[leaf_hosts[i]]
            i += 1
            if n == 0:
                break
        if n > 0:
            # Hosts from i on are sorted by units descending: the last one with units >= n fits best.
            best = i
            for j in range(i, end):
                if units[leaf_hosts[j]] >= n:
                    best = j
            out[leaf_hosts[best]] = n
    return out
