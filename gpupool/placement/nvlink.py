"""Placement on fabrics with multi-node NVLink domains: fewest NVLink domains first, then IB hops.

GPUs of one NVLink domain (a GB200/GB300 NVL72 rack) talk over NVLink; a job that spans domains
sends its collectives over InfiniBand between them. The objective on such a fabric is therefore
lexicographic: the fewest NVLink islands (`domains_touched`: each domain once, each host outside
every domain as its own island), then `pair_hops_sum` (IB hops, unchanged meaning), then best fit.

It runs the exact tree DP (placement.tree_dp) on the logical tree with one more level below the IB
leaf groups: every domain, and every host outside a domain, is a leaf group of its own under the IB
leaf group it sits in. Pairs inside such a group are 2 IB hops apart (distinct hosts under one leaf)
and pairs across groups under one leaf too, so the DP's pair cost stays `pair_hops_sum`; its
per-group term (the leaf-switch tie-break elsewhere) counts islands and is weighted above the cost.
This needs an ultrametric fabric where each domain lies under one IB leaf group. Elsewhere (a domain
across leaves, dragonfly, `graph`) a request that one island can hold goes to the best single island
(`place_in_one_island`); a larger one is placed on IB hops alone (docs/contract.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from gpupool.fabric.nvlink import domains_touched
from gpupool.placement import tree_dp

if TYPE_CHECKING:
    from gpupool.fabric.compiled import CompiledFabric

_STRUCTURES: dict[int, tuple[CompiledFabric, DomainTree | None]] = {}


@dataclass
class DomainTree:
    """The logical tree plus one group per island (T + I nodes) and each host's island group."""

    tree: tree_dp.TreeStructure
    host_group: np.ndarray  # int64[H]: the island group (tree node index) of each host


def domain_tree(compiled: CompiledFabric) -> DomainTree | None:
    """The augmented tree, or None when the DP cannot model the domains (module docstring)."""
    if not compiled.ultrametric or not compiled.has_nvlink_domains():
        return None
    n_tree = compiled.tree_parent.size
    leaf = compiled.host_tree_leaf.astype(np.int64)
    if (leaf < 0).any():
        return None
    island = islands(compiled)  # one island per domain, then one per host outside any domain
    n_islands = int(island.max()) + 1 if island.size else 0
    island_leaf = np.full(n_islands, -1, dtype=np.int64)
    for h in range(island.size):
        i = int(island[h])
        if island_leaf[i] >= 0 and island_leaf[i] != leaf[h]:
            return None  # a domain across IB leaf groups: not a subtree of the IB tree
        island_leaf[i] = leaf[h]
    parent = np.concatenate([compiled.tree_parent.astype(np.int64), island_leaf])
    level = np.concatenate([compiled.tree_level.astype(np.int64), np.zeros(n_islands, dtype=np.int64)])
    n = parent.size
    kids = np.nonzero(parent >= 0)[0]
    order_kids = kids[np.argsort(parent[kids], kind="stable")]
    child_ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(parent[kids], minlength=n), out=child_ptr[1:])
    order = np.argsort(level, kind="stable").astype(np.int64)
    # The per-group term of the DP key counts islands: 1 for each island group, unused elsewhere.
    per_group = np.zeros(n, dtype=np.int64)
    per_group[n_tree:] = 1
    tree = tree_dp.TreeStructure(child_ptr=child_ptr, child_idx=order_kids.astype(np.int64), order=order,
                                 level=level, leaf_switches=per_group, max_level=int(level.max()) if n else 0)
    return DomainTree(tree=tree, host_group=n_tree + island)


def _cached(compiled: CompiledFabric) -> DomainTree | None:
    entry = _STRUCTURES.get(id(compiled))
    if entry is None or entry[0] is not compiled:
        if len(_STRUCTURES) > 8:
            _STRUCTURES.clear()
        entry = (compiled, domain_tree(compiled))
        _STRUCTURES[id(compiled)] = entry
    return entry[1]


def place_domains(compiled: CompiledFabric, units: np.ndarray, tie: np.ndarray, free_gpus: np.ndarray, need: int,
                  unit_gpus: int, max_hops: int | None) -> np.ndarray | None:
    """Units per host minimising (islands, pair_hops_sum, free GPUs left in touched islands), or None
    when the fabric has no domains, the DP cannot model them, the key would overflow int64 or nothing
    fits (the caller then places as before and reports why nothing fits)."""
    st = _cached(compiled)
    if st is None:
        return None
    tree = st.tree
    max_level = tree.max_level if max_hops is None else max_hops // 2
    leaf_ptr, leaf_hosts = tree_dp.leaf_host_lists(st.host_group, units, tree.level.size, tie)
    free_gpus = np.where(units > 0, free_gpus, 0).astype(np.int64)
    fit_bound = int(free_gpus.sum()) + 1
    worst_cost = max(tree.max_level, 1) * need * need + 1
    weight_fit, weight_cost, weight_island = 1, fit_bound, fit_bound * worst_cost
    if weight_island * (need + 1) >= 1 << 60:  # drop best fit before the key leaves int64
        weight_fit, weight_cost, weight_island = 0, 1, worst_cost
        if weight_island * (need + 1) >= 1 << 60:
            return None
    key, take = tree_dp.tree_dp(need, tree.order, tree.child_ptr, tree.child_idx, tree.level, leaf_ptr, leaf_hosts,
                                units, free_gpus, unit_gpus, tree.leaf_switches, weight_cost, weight_island,
                                weight_fit, max_level, np.zeros(tree.level.size + 1, np.int64),
                                np.zeros(1, np.int64), 0, 0)  # no per-leaf extra score (pack's), no host count
    if key < 0:
        return None
    return tree_dp.assign_hosts(take, leaf_ptr, leaf_hosts, units, compiled.n_hosts)


def nvlink_usage(compiled: CompiledFabric, hosts: list[str]) -> dict[str, object] | None:
    """`plan`'s NVLink figures for a host set: islands spanned and the domains' names (None without domains)."""
    if not compiled.has_nvlink_domains():
        return None
    index = compiled.host_index()
    count, used = domains_touched(compiled.host_domain, np.asarray([index[h] for h in hosts], dtype=np.int64))
    return {"nvlink_domains": count, "nvlink_domain_names": [compiled.domain_names[d] for d in used]}


def nestable(compiled: CompiledFabric) -> bool:
    """The exact DP applies: a tree fabric whose every domain lies under one IB leaf group."""
    return _cached(compiled) is not None


def islands(compiled: CompiledFabric) -> np.ndarray:
    """Per host its NVLink island: the domain index, or (n_domains + k) for the k-th host outside one."""
    dom = compiled.host_domain.astype(np.int64)
    return np.where(dom >= 0, dom, len(compiled.domain_names) + np.cumsum(dom < 0) - 1)


def place_in_one_island(compiled: CompiledFabric, units: np.ndarray, need: int,
                        place_units: Callable[[np.ndarray], np.ndarray], limit: int = 8
                        ) -> tuple[np.ndarray, bool] | None:
    """Where the DP does not apply: when some island holds the whole request, the best placement
    inside one island (`place_units` on the units of that island only, lowest pair_hops_sum, then
    the tightest island); at most `limit` islands, the tightest first. (host units, every island
    that fits was tried), or None when no single island fits (the caller then places IB-only)."""
    from gpupool.placement.cost import cost_of_arrays

    island = islands(compiled)
    cap = np.bincount(island, weights=units, minlength=int(island.max()) + 1 if island.size else 0).astype(np.int64)
    fits = np.nonzero(cap >= need)[0]
    if fits.size == 0:
        return None
    order = fits[np.lexsort((fits, cap[fits]))]
    best: tuple[tuple[int, int], np.ndarray] | None = None
    for i in order[:limit].tolist():
        take = place_units(np.where(island == i, units, 0))
        hosts = np.nonzero(take)[0]
        key = (cost_of_arrays(compiled, hosts, take[hosts]).pair_hops_sum, int(cap[i]))
        if best is None or key < best[0]:
            best = (key, take)
    assert best is not None
    return best[1], order.size <= limit


def cost_json(compiled: CompiledFabric, cost: dict[str, object], hosts: list[str]) -> dict[str, object]:
    """A cost document with `nvlink_domains` added on fabrics with NVLink domains (unchanged elsewhere)."""
    usage = nvlink_usage(compiled, hosts)
    return cost if usage is None else {**cost, "nvlink_domains": usage["nvlink_domains"]}
