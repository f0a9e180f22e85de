"""Uplink loads and the `contention` objective's score: keep multi-leaf jobs off loaded uplink bundles.

The same rule as the simulator's link contention model (`simulate.contention`, docs/simulate.md
"Contention model"), so `plan`, `submit` and the simulator score a placement alike:

- Bundles. Every node t of the fabric's logical tree below a root has an uplink bundle of capacity
  C_t Gb/s (`CompiledFabric.tree_uplink_gbps`; 0 for roots, which have none).
- Demand. A job holding g_h GPUs on host h injects w_h = host_gbps_h x g_h / gpus_per_host; across
  bundle t it sends d_t = min(W_in, W - W_in) (W_in: its hosts under t; W: all its hosts).
- Load. L_t = the summed demand of the running jobs on t.
- Score. What a new job adds over capacity, summed over the bundles it crosses:
  sum_t [max(0, L_t + d_t - C_t) - max(0, L_t - C_t)], the bandwidth that the jobs on t (the new one
  included) would lose under proportional sharing. 0 for a job inside one leaf, and for any job on
  bundles with room.

In integer units for the tree DP: 1/`SCORE_SCALE` of one placement unit's injection (a GPU's, or a
whole host's with --gpus-per-node), so the score is exact on fabrics whose hosts inject at one rate.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from gpupool.jit import njit

if TYPE_CHECKING:
    from gpupool.fabric.compiled import CompiledFabric

SCORE_SCALE = 16  # score units per unit injection: 1/16 of a GPU's (or host's) injection rate

_CHAINS: dict[int, tuple[CompiledFabric, list[tuple[int, ...]]]] = {}


def host_chains(compiled: CompiledFabric) -> list[tuple[int, ...]]:
    """Per host: the tree nodes with an uplink bundle on the way from its leaf to the root (leaf first)."""
    entry = _CHAINS.get(id(compiled))
    if entry is not None and entry[0] is compiled:
        return entry[1]
    capacity = compiled.tree_uplink_gbps.tolist()
    parent = compiled.tree_parent.tolist()
    chains: list[tuple[int, ...]] = []
    for t in range(len(parent)):
        chain = []
        p = t
        while p >= 0:
            if capacity[p] > 0:
                chain.append(p)
            p = parent[p]
        chains.append(tuple(chain))
    out = [chains[t] if t >= 0 else () for t in compiled.host_tree_leaf.tolist()]
    if len(_CHAINS) > 8:
        _CHAINS.clear()
    _CHAINS[id(compiled)] = (compiled, out)
    return out


def cut_demands(chains: Sequence[tuple[int, ...]], gbps_per_gpu: Sequence[float], hosts: Sequence[int],
                gpus: Sequence[int]) -> tuple[list[int], list[float]]:
    """(bundles a job on these hosts crosses, its demand min(W_in, W - W_in) on each in Gb/s)."""
    inside: dict[int, float] = {}
    total = 0.0
    for h, g in zip(hosts, gpus, strict=True):
        w = gbps_per_gpu[h] * g
        total += w
        for t in chains[h]:
            inside[t] = inside.get(t, 0.0) + w
    links: list[int] = []
    demands: list[float] = []
    for t, w_in in inside.items():
        d = min(w_in, total - w_in)
        if d > 1e-9 * total:  # a subtree holding the whole job sends nothing out
            links.append(t)
            demands.append(d)
    return links, demands


def bundle_loads(compiled: CompiledFabric, jobs: Iterable[tuple[Sequence[int], Sequence[int]]],
                 gpus_per_host: int | np.ndarray) -> np.ndarray:
    """L_t per tree node (Gb/s) from the running jobs, each as (host indices, GPUs on each); gpus_per_host:
    one count for every host, or each host's configured GPUs (a job's injection is its share of them)."""
    chains = host_chains(compiled)
    per_gpu = (compiled.host_gbps / np.maximum(gpus_per_host, 1)).tolist()
    load = np.zeros(compiled.tree_parent.size, dtype=np.float64)
    for hosts, gpus in jobs:
        links, demands = cut_demands(chains, per_gpu, hosts, gpus)
        for t, d in zip(links, demands, strict=True):
            load[t] += d
    return load


def added_overload(capacity: np.ndarray, load: np.ndarray, links: Sequence[int], demands: Sequence[float]) -> float:
    """Gb/s over capacity that a job with this demand adds on its bundles (the score, in Gb/s)."""
    total = 0.0
    for t, d in zip(links, demands, strict=True):
        c, ell = float(capacity[t]), float(load[t])
        total += max(0.0, ell + d - c) - max(0.0, ell - c)
    return total


def overload_of(compiled: CompiledFabric, load: np.ndarray, gpus_per_host: int, hosts: Sequence[int],
                gpus: Sequence[int]) -> float:
    """The score of one concrete allocation (host indices, GPUs each), in Gb/s."""
    per_gpu = (compiled.host_gbps / max(gpus_per_host, 1)).tolist()
    links, demands = cut_demands(host_chains(compiled), per_gpu, hosts, gpus)
    return added_overload(compiled.tree_uplink_gbps, load, links, demands)


def unit_rate(compiled: CompiledFabric, units: np.ndarray, unit_gpus: int, gpus_per_host: int) -> float:
    """One placement unit's injection in Gb/s: the fastest usable host's share (exact when all inject alike)."""
    usable = units > 0
    rates = compiled.host_gbps[usable] if usable.any() else compiled.host_gbps
    top = float(rates.max()) if rates.size else 0.0
    return top * unit_gpus / max(gpus_per_host, 1)


@njit(cache=True)
def node_deltas(need: int, cap: np.ndarray, unit_gbps: float, capacity: np.ndarray, load: np.ndarray,
                scale: int) -> tuple[np.ndarray, np.ndarray]:
    """Per tree node v and n = 0..cap[v] units of the job under it: the added overload on v's bundle, in
    integer units of unit_gbps / scale. CSR (ptr, values); the tree DP adds it at every node it walks."""
    n_tree = cap.size
    ptr = np.zeros(n_tree + 1, dtype=np.int64)
    for v in range(n_tree):
        ptr[v + 1] = ptr[v] + max(cap[v], 0) + 1
    out = np.zeros(ptr[n_tree], dtype=np.int64)
    if unit_gbps <= 0:
        return ptr, out
    for v in range(n_tree):
        c = capacity[v]
        if c <= 0:
            continue  # a root: no bundle
        before = max(0.0, load[v] - c)
        for n in range(1, cap[v] + 1):
            d = min(n, need - n) * unit_gbps
            added = max(0.0, load[v] + d - c) - before
            out[ptr[v] + n] = np.int64(np.floor(added * scale / unit_gbps + 0.5))
    return ptr, out


def subtree_caps(need: int, host_leaf: np.ndarray, units: np.ndarray, parent: np.ndarray, order: np.ndarray) -> np.ndarray:
    """min(need, units under v) per tree node (order: children before parents), as the tree DP bounds n."""
    total = np.zeros(parent.size, dtype=np.int64)
    ok = host_leaf >= 0
    np.add.at(total, host_leaf[ok], units[ok])
    for v in order.tolist():
        p = parent[v]
        if p >= 0:
            total[p] += total[v]
    return np.minimum(total, need)
