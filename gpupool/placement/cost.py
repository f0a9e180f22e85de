"""The single definition of an allocation's cost figures (docs/contract.md), used by plan, jobs, tests, benchmarks.

Hosts are grouped by class (identical switch sets): same-class distinct hosts are 2 hops apart and
class pairs need one min over their switch pairs, so no host x host matrix is ever built.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from gpupool.errors import InputError
from gpupool.fabric.kinds import FabricKind
from gpupool.jit import njit
from gpupool.placement.model import Cost

if TYPE_CHECKING:
    from gpupool.fabric.compiled import CompiledFabric


@njit(cache=True)
def min_switch_hops(hop: np.ndarray, cls_ptr: np.ndarray, cls_sw: np.ndarray, i: int, j: int) -> int:
    """Fewest switch hops between any switch of class i and any switch of class j."""
    best = 1 << 30
    for a in range(cls_ptr[i], cls_ptr[i + 1]):
        for b in range(cls_ptr[j], cls_ptr[j + 1]):
            h = hop[cls_sw[a], cls_sw[b]]
            if h < best:
                best = h
    return best


@njit(cache=True)
def class_pair_cost(hop: np.ndarray, cls_ptr: np.ndarray, cls_sw: np.ndarray, gpus: np.ndarray, squares: np.ndarray,
                    hosts: np.ndarray) -> tuple[int, int]:
    """(pair_hops_sum, max_hops) over allocated classes: sum_i<j G_i G_j d_ij plus 2 x intra-class pairs."""
    n = gpus.size
    total = 0
    max_d = 0
    for i in range(n):
        if hosts[i] > 1:
            total += gpus[i] * gpus[i] - squares[i]  # (G^2 - sum g^2)/2 pairs at distance 2
            max_d = max(max_d, 2)
        for j in range(i + 1, n):
            d = min_switch_hops(hop, cls_ptr, cls_sw, i, j) + 2
            total += gpus[i] * gpus[j] * d
            if d > max_d:
                max_d = d
    return total, max_d


def allocation_arrays(compiled: CompiledFabric, allocation: Mapping[str, int]) -> tuple[np.ndarray, np.ndarray]:
    index = compiled.host_index()
    hosts = np.empty(len(allocation), dtype=np.int64)
    gpus = np.empty(len(allocation), dtype=np.int64)
    for k, (host, g) in enumerate(allocation.items()):
        h = index.get(host)
        if h is None:
            raise InputError(f"host {host} is not in the fabric")
        hosts[k] = h
        gpus[k] = int(g)
    return hosts, gpus


def cost_of(compiled: CompiledFabric, allocation: Mapping[str, int]) -> Cost:
    """pair_hops_sum, mean_hops, max_hops, leaf_switches and groups of {host: gpus}."""
    hosts, gpus = allocation_arrays(compiled, allocation)
    return cost_of_arrays(compiled, hosts, gpus)


def cost_of_arrays(compiled: CompiledFabric, hosts: np.ndarray, gpus: np.ndarray) -> Cost:
    keep = gpus > 0
    hosts = np.asarray(hosts, dtype=np.int64)[keep]
    gpus = np.asarray(gpus, dtype=np.int64)[keep]
    if hosts.size == 0:
        return Cost(0, 0.0, 0, 0, 0)
    if hosts.size == 1:  # one host: every pair is 0 hops apart (the common single-node job, kept cheap)
        leaves = np.unique(compiled.leaves_of(int(hosts[0])))
        return Cost(pair_hops_sum=0, mean_hops=0.0, max_hops=0, leaf_switches=int(leaves.size),
                    groups=_groups(compiled, leaves))
    if np.unique(hosts).size != hosts.size:
        raise InputError("allocation names a host twice")
    classes, first, inverse = np.unique(compiled.host_class[hosts], return_index=True, return_inverse=True)
    class_gpus = np.bincount(inverse, weights=gpus).astype(np.int64)
    class_squares = np.bincount(inverse, weights=gpus * gpus).astype(np.int64)
    class_hosts = np.bincount(inverse).astype(np.int64)
    rep = hosts[first]
    ptr = compiled.host_leaf_ptr
    counts = (ptr[rep + 1] - ptr[rep]).astype(np.int64)
    cls_ptr = np.zeros(classes.size + 1, dtype=np.int64)
    np.cumsum(counts, out=cls_ptr[1:])
    cls_sw = np.concatenate([compiled.host_leaf_idx[ptr[h]:ptr[h + 1]] for h in rep]).astype(np.int64) \
        if rep.size else np.zeros(0, np.int64)
    pair_sum, max_d = class_pair_cost(compiled.hop, cls_ptr, cls_sw, class_gpus, class_squares, class_hosts)
    total = int(gpus.sum())
    pairs = (total * total - int((gpus * gpus).sum())) // 2
    leaves = np.unique(cls_sw)
    mean = float(pair_sum) / pairs if pairs else 0.0
    return Cost(pair_hops_sum=int(pair_sum), mean_hops=mean, max_hops=int(max_d), leaf_switches=int(leaves.size),
                groups=_groups(compiled, leaves))


def _groups(compiled: CompiledFabric, leaves: np.ndarray) -> int:
    if compiled.kind is not FabricKind.DRAGONFLY:
        return 0
    group = compiled.switch_group[leaves]
    return int(np.unique(group[group >= 0]).size)
