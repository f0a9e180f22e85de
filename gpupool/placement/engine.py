"""Placement entry point: validate the request, pick the algorithm for the fabric, build the result."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np

from gpupool.errors import InfeasibleError, UsageError
from gpupool.placement.cost import cost_of_arrays
from gpupool.placement.model import FreeState, Placement, Request

if TYPE_CHECKING:
    from gpupool.fabric.compiled import CompiledFabric

_GRAPH_REFINED_SEEDS = 4
_LOCAL_SEARCH_ROUNDS = 64
_STRUCTURES: dict[int, tuple[Any, dict[str, Any]]] = {}


def _structures(compiled: CompiledFabric) -> dict[str, Any]:
    """Per-fabric arrays that do not depend on the free state, kept for the fabric object's lifetime."""
    entry = _STRUCTURES.get(id(compiled))
    if entry is None or entry[0] is not compiled:
        if len(_STRUCTURES) > 8:
            _STRUCTURES.clear()
        entry = (compiled, {})
        _STRUCTURES[id(compiled)] = entry
    return entry[1]


def host_units(compiled: CompiledFabric, free: FreeState, request: Request) -> tuple[np.ndarray, int, int, bool]:
    """(units per host, units needed, GPUs per unit, per_node) after exclusions; raises on impossible shapes."""
    need, unit_gpus, per_node = request.shape()
    if request.exclude:
        index = compiled.host_index()
        excluded = np.asarray([index[h] for h in request.exclude if h in index], dtype=np.int64)
        free = free.without(excluded)
    gpus = np.where(free.usable, free.free_gpus, 0).astype(np.int64)
    if per_node:
        if free.total_gpus is not None and free.total_gpus.size and unit_gpus > int(free.total_gpus.max()):
            raise UsageError(f"--gpus-per-node {unit_gpus} is more than any host has (largest: {int(free.total_gpus.max())} GPUs)")
        units = (gpus >= unit_gpus).astype(np.int64)
        if not units.any():
            most = int(gpus.max()) if gpus.size else 0
            raise InfeasibleError(f"no available host has {unit_gpus} free GPUs (most free on one host: {most}); "
                                  f"largest feasible request is 0 GPUs with --gpus-per-node {unit_gpus}")
    else:
        units = gpus
    return units, need, unit_gpus, per_node


def _infeasible(request: Request, largest_units: int, unit_gpus: int, per_node: bool, why: str) -> InfeasibleError:
    asked = request.total_gpus
    if per_node:
        largest = f"{largest_units} nodes x {unit_gpus} GPUs ({largest_units * unit_gpus} GPUs)"
    else:
        largest = f"{largest_units} GPUs"
    return InfeasibleError(f"cannot place {asked} GPUs{why}: largest feasible request is {largest}")


def place(compiled: CompiledFabric, free: FreeState, request: Request) -> Placement:
    """The allocation minimising pair_hops_sum (then leaf switches, then best fit) for the request."""
    start = time.perf_counter()
    units, need, unit_gpus, per_node = host_units(compiled, free, request)
    limit = request.max_hops
    why = f" within --max-hops {limit}" if limit is not None else ""
    total = int(units.sum())
    if total < need and limit is None:  # with max_hops, the algorithms name the largest request that fits
        raise _infeasible(request, total, unit_gpus, per_node, "")
    # With whole hosts, the tightest host (fewest free GPUs) is the best fit among equal ones.
    tie = np.where(units > 0, free.free_gpus, 0).astype(np.int64) if per_node else np.zeros(units.size, np.int64)
    if limit is not None and limit < 2:
        host_take, algorithm, optimal, bound = _single_host(compiled, units, tie, need, request, unit_gpus, per_node,
                                                            why)
    elif compiled.ultrametric:
        host_take, algorithm, optimal, bound = _place_tree(compiled, units, tie, free, need, unit_gpus, per_node,
                                                           request, why)
    else:
        host_take, algorithm, optimal, bound = _place_graph(compiled, units, tie, need, unit_gpus, per_node, request,
                                                            why)
    hosts = np.nonzero(host_take)[0]
    gpus = host_take[hosts] * unit_gpus
    cost = cost_of_arrays(compiled, hosts, gpus)
    allocation = {compiled.host_names[h]: int(g) for h, g in zip(hosts, gpus, strict=True)}
    if bound is not None:
        bound *= unit_gpus * unit_gpus
        optimal = optimal or bound >= cost.pair_hops_sum
    return Placement(allocation=allocation, cost=cost, feasible=True, algorithm=algorithm, optimal=optimal,
                     lower_bound=bound, elapsed_ms=(time.perf_counter() - start) * 1000.0)


def _single_host(compiled: CompiledFabric, units: np.ndarray, tie: np.ndarray, need: int, request: Request,
                 unit_gpus: int, per_node: bool, why: str) -> tuple[np.ndarray, str, bool, int | None]:
    # Pairs on one host are 0 hops apart; two hosts are at least 2 apart.
    fits = np.nonzero(units >= need)[0]
    if fits.size == 0:
        raise _infeasible(request, int(units.max()), unit_gpus, per_node, why)
    # The contract's tie-break after pair_hops_sum: fewest leaf switches (a multi-rail host
    # touches several), then the tightest host that fits.
    leaves = np.diff(compiled.host_leaf_ptr)[fits].astype(np.int64)
    for k in np.nonzero(leaves > 1)[0]:
        leaves[k] = np.unique(compiled.leaves_of(int(fits[k]))).size
    best = fits[np.lexsort((fits, tie[fits], units[fits], leaves))[0]]
    take = np.zeros(units.size, dtype=np.int64)
    take[best] = need
    return take, "single-host", True, None


def _place_tree(compiled: CompiledFabric, units: np.ndarray, tie: np.ndarray, free: FreeState, need: int, unit_gpus: int,
                per_node: bool, request: Request, why: str) -> tuple[np.ndarray, str, bool, int | None]:
    from gpupool.placement import tree_dp

    cache = _structures(compiled)
    if "tree" not in cache:
        cache["tree"] = tree_dp.tree_structure(compiled)
    st: tree_dp.TreeStructure = cache["tree"]
    max_level = st.max_level if request.max_hops is None else request.max_hops // 2
    n_tree = st.level.size
    leaf_ptr, leaf_hosts = tree_dp.leaf_host_lists(compiled.host_tree_leaf.astype(np.int64), units, n_tree, tie)
    free_gpus = np.where(units > 0, free.free_gpus, 0).astype(np.int64)
    fit_bound = int(free_gpus.sum()) + 1
    leaf_bound = compiled.n_switches + 1
    worst = max(st.max_level, 1) * need * need + 1
    weight_fit, weight_leaf, weight_cost = 1, fit_bound, fit_bound * leaf_bound
    if worst * weight_cost >= 1 << 60:  # keep the composite key inside int64: drop the weakest tie-break
        weight_fit, weight_leaf, weight_cost = 0, 1, leaf_bound
        if worst * weight_cost >= 1 << 60:
            weight_leaf, weight_cost = 0, 1
    key, take = tree_dp.tree_dp(need, st.order, st.child_ptr, st.child_idx, st.level, leaf_ptr, leaf_hosts, units,
                                free_gpus, unit_gpus, st.leaf_switches, weight_cost, weight_leaf, weight_fit, max_level)
    if key < 0:
        raise _infeasible(request, _largest_in_subtree(st, compiled, units, max_level), unit_gpus, per_node, why)
    host_take = tree_dp.assign_hosts(take, leaf_ptr, leaf_hosts, units, compiled.n_hosts)
    return host_take, "tree-dp", True, None


def _largest_in_subtree(st: Any, compiled: CompiledFabric, units: np.ndarray, max_level: int) -> int:
    totals = np.zeros(st.level.size, dtype=np.int64)
    leaf = compiled.host_tree_leaf
    ok = leaf >= 0
    np.add.at(totals, leaf[ok], units[ok])
    parent = compiled.tree_parent
    for v in st.order:
        if parent[v] >= 0:
            totals[parent[v]] += totals[v]
    allowed = st.level <= max_level
    return int(totals[allowed].max()) if allowed.any() else 0


def _place_graph(compiled: CompiledFabric, units: np.ndarray, tie: np.ndarray, need: int, unit_gpus: int, per_node: bool,
                 request: Request, why: str) -> tuple[np.ndarray, str, bool, int | None]:
    from gpupool.placement import graph, tree_dp

    cache = _structures(compiled)
    if "classes" not in cache:
        cache["classes"] = graph.class_structure(compiled)
    cs: graph.ClassStructure = cache["classes"]
    limit = graph.NO_LIMIT if request.max_hops is None else request.max_hops
    cls_ptr, cls_hosts = tree_dp.leaf_host_lists(compiled.host_class.astype(np.int64), units, cs.n_classes, tie)
    cap = np.bincount(compiled.host_class, weights=units, minlength=cs.n_classes).astype(np.int64)
    seeds = np.nonzero(cap > 0)[0].astype(np.int64)
    costs, support, placed = graph.grow_all(seeds, need, cs.dist, cls_ptr, cls_hosts, units, limit)
    done = placed >= need
    if not done.any():
        raise _infeasible(request, int(placed.max()) if placed.size else 0, unit_gpus, per_node, why)
    order = np.lexsort((seeds, support, costs))
    order = order[done[order]][:_GRAPH_REFINED_SEEDS]
    cum, cum_sq = graph.class_prefix(cls_ptr, cls_hosts, units)
    best: tuple[int, int, np.ndarray] | None = None
    for i in order:
        _cost, take = graph.grow_one(int(seeds[i]), need, cs.dist, cls_ptr, cls_hosts, units, limit)
        graph.local_search(take, cs.dist, cls_ptr, cum, cum_sq, cap, limit, _LOCAL_SEARCH_ROUNDS)
        value = int(graph.cost_of_take(take, cs.dist, cls_ptr, cum, cum_sq))
        used = int((take > 0).sum())
        if best is None or (value, used) < (best[0], best[1]):
            best = (value, used, take)
    assert best is not None
    bound = int(graph.ring_lower_bound(need, cs.dist, cls_ptr, cls_hosts, units, cap, limit))
    host_take = tree_dp.assign_hosts(best[2], cls_ptr, cls_hosts, units, compiled.n_hosts)
    return host_take, "seed-grow+local-search", False, bound
