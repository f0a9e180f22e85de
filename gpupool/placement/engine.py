"""Placement entry point: validate the request, pick the algorithm for the fabric, build the result."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np

from gpupool.errors import BadRequest, Unsatisfiable, param
from gpupool.placement.cost import cost_of_arrays
from gpupool.placement.model import FreeState, Placement, Request
from gpupool.placement.objective import DEFAULT_GOAL, Objective, PlacementGoal

if TYPE_CHECKING:
    from gpupool.fabric.compiled import CompiledFabric

_GRAPH_REFINED_SEEDS = 4
_GRAPH_REFINED_SEEDS_PACK = 8  # pack chooses among more grown candidates: its tie-break needs alternatives
_SWEEP_STEPS = 6  # pack with a hop slack: DP runs of the Lagrangian search for the budget
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
            raise BadRequest(f"{param('gpus_per_node')} {unit_gpus} is more than any host has (largest: {int(free.total_gpus.max())} GPUs)")
        units = (gpus >= unit_gpus).astype(np.int64)
        if not units.any():
            most = int(gpus.max()) if gpus.size else 0
            raise Unsatisfiable(f"no available host has {unit_gpus} free GPUs (most free on one host: {most}); "
                                  f"largest feasible request is 0 GPUs with {param('gpus_per_node')} {unit_gpus}")
    else:
        units = gpus
    return units, need, unit_gpus, per_node


def _infeasible(request: Request, largest_units: int, unit_gpus: int, per_node: bool, why: str) -> Unsatisfiable:
    asked = request.total_gpus
    if per_node:
        largest = f"{largest_units} nodes x {unit_gpus} GPUs ({largest_units * unit_gpus} GPUs)"
    else:
        largest = f"{largest_units} GPUs"
    return Unsatisfiable(f"cannot place {asked} GPUs{why}: largest feasible request is {largest}")


class _Pack:
    """What the `pack` objective scores with: free GPUs per host, leaf groups, the size mix in integer weights."""

    def __init__(self, compiled: CompiledFabric, free: FreeState, goal: PlacementGoal) -> None:
        from gpupool.placement import objective

        self.goal = goal
        self.host_free = np.where(free.usable, free.free_gpus, 0).astype(np.int64)
        self.host_leaf = compiled.host_tree_leaf.astype(np.int64)
        self.n_tree = int(compiled.tree_parent.size)
        self.g = gpus_per_host(free, goal)
        self.sizes, self.weights = goal.size_mix.weights()
        self.hist, self.size = objective.leaf_histograms(self.host_leaf, self.host_free, self.n_tree, self.g)

    def single_host(self, units: np.ndarray, need: int, unit_gpus: int, per_node: bool) -> np.ndarray | None:
        """A job that fits one host costs 0 pair hops there and more anywhere else: with no hop slack, every
        fitting host is scored and the least fragmenting one taken (None: no host fits, or a slack is set)."""
        from gpupool.placement import objective

        unit_need = 1 if per_node else need
        if (per_node and need != 1) or self.goal.hop_slack.extra > 0 or not (units >= unit_need).any():
            return None
        h = objective.best_single_host(need * unit_gpus, units, unit_need, self.host_leaf, self.host_free, self.hist,
                                       self.size, self.g, self.sizes, self.weights)
        if h < 0:
            return None
        take = np.zeros(units.size, dtype=np.int64)
        take[h] = need
        return take

    def delta(self, host_take: np.ndarray, unit_gpus: int) -> int:
        """Score change if the hosts give host_take x unit_gpus GPUs (only the touched leaves change)."""
        from gpupool.placement import objective

        touched = np.unique(self.host_leaf[(host_take > 0) & (self.host_leaf >= 0)])
        after = self.host_free - host_take * unit_gpus
        total = 0
        for t in touched:
            on = self.host_leaf == t
            hist = np.bincount(np.clip(after[on], 0, self.g), minlength=self.g + 1).astype(np.int64)
            total += int(objective.leaf_fragmentation(hist, int(self.size[t]), self.g, self.sizes, self.weights))
            total -= int(objective.leaf_fragmentation(self.hist[t], int(self.size[t]), self.g, self.sizes,
                                                      self.weights))
        return total


class _Congestion:
    """What the `contention` objective scores with: the running jobs' uplink loads (`placement.congestion`)."""

    def __init__(self, compiled: CompiledFabric, free: FreeState, goal: PlacementGoal) -> None:
        self.compiled = compiled
        self.g = gpus_per_host(free, goal)
        n_tree = int(compiled.tree_parent.size)
        load = free.uplink_load
        self.load = (np.zeros(n_tree, np.float64) if load is None or load.size != n_tree
                     else np.asarray(load, dtype=np.float64))
        self.loaded = bool((self.load > 0).any())

    def node_extra(self, need: int, units: np.ndarray, unit_gpus: int, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per tree node and n units of the job under it: the added overload on its bundle (tree DP `extra`)."""
        from gpupool.placement import congestion

        compiled = self.compiled
        cap = congestion.subtree_caps(need, compiled.host_tree_leaf.astype(np.int64), units,
                                      compiled.tree_parent.astype(np.int64), order)
        rate = congestion.unit_rate(compiled, units, unit_gpus, self.g)
        return congestion.node_deltas(need, cap, rate, compiled.tree_uplink_gbps.astype(np.float64), self.load,
                                      congestion.SCORE_SCALE)

    def overload(self, host_take: np.ndarray, unit_gpus: int) -> float:
        """Gb/s over capacity the allocation adds on its uplink bundles."""
        from gpupool.placement import congestion

        hosts = np.nonzero(host_take)[0]
        return congestion.overload_of(self.compiled, self.load, self.g, hosts.tolist(),
                                      (host_take[hosts] * unit_gpus).tolist())


def gpus_per_host(free: FreeState, goal: PlacementGoal) -> int:
    """A whole host's GPUs for the fragmentation score: the goal's, else the largest configured, else free count."""
    if goal.gpus_per_host:
        return int(goal.gpus_per_host)
    if free.total_gpus is not None and free.total_gpus.size and int(free.total_gpus.max()) > 0:
        return int(free.total_gpus.max())
    return max(int(free.free_gpus.max()) if free.free_gpus.size else 1, 1)


def place(compiled: CompiledFabric, free: FreeState, request: Request, goal: PlacementGoal | None = None) -> Placement:
    """The allocation minimising pair_hops_sum (then leaf switches, then best fit) for the request; under the
    `pack` objective, fewest pair hops (within the goal's hop slack) then least added fragmentation first.
    The goal: `goal`, else `request.goal`, else `objective.DEFAULT_GOAL`."""
    start = time.perf_counter()
    goal = goal if goal is not None else request.goal if request.goal is not None else DEFAULT_GOAL
    units, need, unit_gpus, per_node = host_units(compiled, free, request)
    limit = request.max_hops
    why = f" within {param('max_hops')} {limit}" if limit is not None else ""
    total = int(units.sum())
    if total < need and limit is None:  # with max_hops, the algorithms name the largest request that fits
        raise _infeasible(request, total, unit_gpus, per_node, "")
    pack = _Pack(compiled, free, goal) if goal.objective is Objective.PACK else None
    congest = _Congestion(compiled, free, goal) if goal.reads_uplinks else None
    # With whole hosts, the tightest host (fewest free GPUs) is the best fit among equal ones.
    tie = np.where(units > 0, free.free_gpus, 0).astype(np.int64) if per_node else np.zeros(units.size, np.int64)
    single = pack.single_host(units, need, unit_gpus, per_node) if pack is not None else None
    if single is not None:
        host_take, algorithm, optimal, bound = single, "single-host-pack", True, None
    elif limit is not None and limit < 2:
        host_take, algorithm, optimal, bound = _single_host(compiled, units, tie, need, request, unit_gpus, per_node, why)
    elif nvlink := _place_nvlink(compiled, units, tie, free, need, unit_gpus, per_node, request, why):
        host_take, algorithm, optimal, bound = nvlink
    elif compiled.ultrametric:
        host_take, algorithm, optimal, bound = _place_tree(compiled, units, tie, free, need, unit_gpus, per_node,
                                                           request, why, pack, congest)
    else:
        host_take, algorithm, optimal, bound = _place_graph(compiled, units, tie, need, unit_gpus, per_node, request,
                                                            why, pack, congest)
    hosts = np.nonzero(host_take)[0]
    gpus = host_take[hosts] * unit_gpus
    cost = cost_of_arrays(compiled, hosts, gpus)
    allocation = {compiled.host_names[h]: int(g) for h, g in zip(hosts, gpus, strict=True)}
    if bound is not None:
        bound *= unit_gpus * unit_gpus
        optimal = optimal or bound >= cost.pair_hops_sum
    extra: dict[str, Any] = {}
    if pack is not None:
        extra["fragmentation_delta"] = pack.delta(host_take, unit_gpus)
    if congest is not None:
        extra["uplink_overload_gbps"] = congest.overload(host_take, unit_gpus)
    return Placement(allocation=allocation, cost=cost, feasible=True, algorithm=algorithm, optimal=optimal,
                     lower_bound=bound, elapsed_ms=(time.perf_counter() - start) * 1000.0, extra=extra)


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


def _place_nvlink(compiled: CompiledFabric, units: np.ndarray, tie: np.ndarray, free: FreeState, need: int,
                  unit_gpus: int, per_node: bool, request: Request,
                  why: str) -> tuple[np.ndarray, str, bool, int | None] | None:
    """Fewest NVLink domains first (placement.nvlink); None on fabrics without domains, and where
    neither the exact DP nor one island serves (the IB-only paths then place, or say why not)."""
    if not compiled.has_nvlink_domains():
        return None
    from gpupool.placement import nvlink

    if compiled.ultrametric and nvlink.nestable(compiled):
        host_take = nvlink.place_domains(compiled, units, tie, free.free_gpus, need, unit_gpus, request.max_hops)
        return None if host_take is None else (host_take, "tree-dp-nvlink", True, None)
    runs: list[tuple[str, bool]] = []

    def inside(island_units: np.ndarray) -> np.ndarray:
        if compiled.ultrametric:
            result = _place_tree(compiled, island_units, tie, free, need, unit_gpus, per_node, request, why)
        else:
            result = _place_graph(compiled, island_units, tie, need, unit_gpus, per_node, request, why)
        runs.append((result[1], result[2]))
        return result[0]

    try:
        found = nvlink.place_in_one_island(compiled, units, need, inside)
    except Unsatisfiable:  # within --max-hops no single island serves: the IB-only path says why
        return None
    if found is None:
        return None
    host_take, all_tried = found
    return host_take, f"nvlink-one-domain+{runs[0][0]}", all_tried and all(ok for _a, ok in runs), None


def _place_tree(compiled: CompiledFabric, units: np.ndarray, tie: np.ndarray, free: FreeState, need: int, unit_gpus: int,
                per_node: bool, request: Request, why: str, pack: _Pack | None = None,
                congest: _Congestion | None = None) -> tuple[np.ndarray, str, bool, int | None]:
    from gpupool.placement import congestion, objective, tree_dp

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
    # With no uplink loaded, `contention` is `hops` exactly (the same DP keys).
    scored = pack is not None or (congest is not None and congest.loaded)
    if congest is not None and scored:
        extra_ptr, extra = congest.node_extra(need, units, unit_gpus, st.order)
        # Each node adds at most half the job's injection, in SCORE_SCALE units per unit: the score's span.
        extra_span = 2 * (n_tree * (need * congestion.SCORE_SCALE + 1)) + 1
        if pack is not None:  # pack with uplinks: fragmentation first, the overload breaking its ties
            frag_ptr, frag = objective.leaf_deltas(need, leaf_ptr, leaf_hosts, units, unit_gpus, pack.host_free,
                                                   pack.hist, pack.size, pack.g, pack.sizes, pack.weights)
            frag_span = 2 * int(pack.weights.sum()) * (int(pack.host_free.sum()) + 1) + 1
            combined = extra.copy()
            for v in range(n_tree):
                n_frag = min(int(frag_ptr[v + 1] - frag_ptr[v]), int(extra_ptr[v + 1] - extra_ptr[v]))
                combined[extra_ptr[v]:extra_ptr[v] + n_frag] += extra_span * frag[frag_ptr[v]:frag_ptr[v] + n_frag]
            extra = combined
            extra_span *= frag_span
    elif pack is None:
        extra_ptr, extra, extra_span = np.zeros(n_tree + 1, np.int64), np.zeros(1, np.int64), 1
    else:
        extra_ptr, extra = objective.leaf_deltas(need, leaf_ptr, leaf_hosts, units, unit_gpus, pack.host_free,
                                                 pack.hist, pack.size, pack.g, pack.sizes, pack.weights)
        # |sum of per-leaf changes| <= weights x free GPUs: the span of the score over all placements.
        extra_span = 2 * int(pack.weights.sum()) * (int(pack.host_free.sum()) + 1) + 1
    # Lexicographic: pair cost, then (pack) fragmentation or (contention) uplink overload, then leaf switches,
    # then fewest hosts (the even split; a whole-host request always uses `need` hosts), then best fit.
    host_bound = min(need, int((units > 0).sum())) + 1 if not per_node else 0
    weights = _tie_weights(worst, [("fit", fit_bound), ("hosts", host_bound), ("leaf", leaf_bound),
                                   ("extra", extra_span if scored else 0)])
    weight_fit, weight_leaf, weight_hosts = weights["fit"], weights["leaf"], weights["hosts"]
    weight_extra, weight_cost = weights["extra"], weights["cost"]

    def run(w_cost: int, w_leaf: int, w_fit: int, w_extra: int, w_hosts: int = 0) -> np.ndarray:
        _key, take = tree_dp.tree_dp(need, st.order, st.child_ptr, st.child_idx, st.level, leaf_ptr, leaf_hosts,
                                     units, free_gpus, unit_gpus, st.leaf_switches, w_cost, w_leaf, w_fit, max_level,
                                     extra_ptr, extra, w_extra, w_hosts)
        return take

    take = run(weight_cost, weight_leaf, weight_fit, weight_extra, weight_hosts)
    if not take.any():
        raise _infeasible(request, _largest_in_subtree(st, compiled, units, max_level), unit_gpus, per_node, why)
    optimal = True
    if pack is not None and pack.goal.hop_slack:
        take, optimal = _sweep_slack(compiled, take, run, extra_ptr, extra, extra_span, worst, st, leaf_ptr,
                                     leaf_hosts, units, unit_gpus, pack)
    host_take = tree_dp.assign_hosts(take, leaf_ptr, leaf_hosts, units, compiled.n_hosts)
    return host_take, "tree-dp", optimal, None


def _tie_weights(worst: int, ties: list[tuple[str, int]]) -> dict[str, int]:
    """Weights folding pair cost and its tie-breaks (weakest first, each with the bound of its sum over a
    placement; bound 0: not used) into one int64 key: while worst x the cost weight would not fit below
    2^60, the weakest tie-break is dropped (weight 0); with none left, fewest hops alone."""
    active = [(name, bound) for name, bound in ties if bound > 0]
    while True:
        weights = {name: 0 for name, _bound in ties}
        scale = 1
        for name, bound in active:
            weights[name] = scale
            scale *= bound
        if worst * scale < 1 << 60 or not active:
            weights["cost"] = scale
            return weights
        active.pop(0)


def _sweep_slack(compiled: CompiledFabric, first: np.ndarray, run: Any, extra_ptr: np.ndarray, extra: np.ndarray,
                 extra_span: int, worst: int, st: Any, leaf_ptr: np.ndarray, leaf_hosts: np.ndarray,
                 units: np.ndarray, unit_gpus: int, pack: _Pack) -> tuple[np.ndarray, bool]:
    """Within the hop budget, the least fragmenting of the Lagrangian optima cost + m x score (m = 2^j, binary
    search on j): every candidate is an exact DP optimum for its m, and none above the budget is kept."""
    from gpupool.placement import tree_dp

    leaves = np.nonzero(st.child_ptr[1:] == st.child_ptr[:-1])[0]

    def measured(take: np.ndarray) -> tuple[int, int]:
        host_take = tree_dp.assign_hosts(take, leaf_ptr, leaf_hosts, units, compiled.n_hosts)
        hosts = np.nonzero(host_take)[0]
        cost = cost_of_arrays(compiled, hosts, host_take[hosts] * unit_gpus).pair_hops_sum
        score = int(sum(extra[extra_ptr[v] + take[v]] for v in leaves if take[v] > 0))
        return cost, score

    fewest, score = measured(first)
    budget = pack.goal.hop_slack.budget(fewest)
    best = (score, fewest, first)
    top = 0
    while top < 62 and (worst + (extra_span << (top + 1))) < 1 << 60:
        top += 1
    lo, hi = 0, top
    for _ in range(_SWEEP_STEPS):
        if lo > hi:
            break
        j = (lo + hi) // 2
        take = run(1, 0, 0, 1 << j)
        if not take.any():
            break
        cost, score = measured(take)
        if cost <= budget:
            if (score, cost) < best[:2]:
                best = (score, cost, take)
            lo = j + 1
        else:
            hi = j - 1
    return best[2], best[1] == fewest


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
                 request: Request, why: str, pack: _Pack | None = None,
                 congest: _Congestion | None = None) -> tuple[np.ndarray, str, bool, int | None]:
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
    order = order[done[order]][:_GRAPH_REFINED_SEEDS if pack is None and congest is None else _GRAPH_REFINED_SEEDS_PACK]
    cum, cum_sq = graph.class_prefix(cls_ptr, cls_hosts, units)
    # (pair cost, classes used, take); under pack every refined candidate is kept for the tie-break.
    found: list[tuple[int, int, np.ndarray]] = []
    hosts_used: list[int] = []  # the even-split tie-break among equal pair costs (a whole-host request: constant)
    for i in order:
        _cost, take = graph.grow_one(int(seeds[i]), need, cs.dist, cls_ptr, cls_hosts, units, limit)
        graph.local_search(take, cs.dist, cls_ptr, cum, cum_sq, cap, limit, _LOCAL_SEARCH_ROUNDS)
        value = int(graph.cost_of_take(take, cs.dist, cls_ptr, cum, cum_sq))
        found.append((value, int((take > 0).sum()), take))
        hosts_used.append(0 if per_node else
                          int(np.count_nonzero(tree_dp.assign_hosts(take, cls_ptr, cls_hosts, units, compiled.n_hosts))))
    assert found
    best = found[min(range(len(found)), key=lambda k: (found[k][0], found[k][1], hosts_used[k]))]
    if pack is not None:
        # The heuristic's fewest-hop candidate sets the budget; among candidates within it, least added
        # fragmentation, then fewer pair hops, then fewer classes.
        budget = pack.goal.hop_slack.budget(best[0] * unit_gpus * unit_gpus)
        scored = []
        for value, used, take in found:
            if value * unit_gpus * unit_gpus > budget:
                continue
            host_take = tree_dp.assign_hosts(take, cls_ptr, cls_hosts, units, compiled.n_hosts)
            scored.append((pack.delta(host_take, unit_gpus), value, used, take))
        best_scored = min(scored, key=lambda f: (f[0], f[1], f[2]))
        best = (best_scored[1], best_scored[2], best_scored[3])
    if congest is not None and congest.loaded:
        # Among the candidates with the fewest pair hops found, the least uplink overload, then fewer classes.
        ties = []
        for value, used, take in found:
            if value == best[0]:
                host_take = tree_dp.assign_hosts(take, cls_ptr, cls_hosts, units, compiled.n_hosts)
                ties.append((congest.overload(host_take, unit_gpus), used, value, take))
        chosen = min(ties, key=lambda f: (f[0], f[1]))
        best = (chosen[2], chosen[1], chosen[3])
    bound = int(graph.ring_lower_bound(need, cs.dist, cls_ptr, cls_hosts, units, cap, limit))
    host_take = tree_dp.assign_hosts(best[2], cls_ptr, cls_hosts, units, compiled.n_hosts)
    return host_take, "seed-grow+local-search", False, bound
