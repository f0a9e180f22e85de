"""The placement objective as commands take it: options -> PlacementGoal, and the one line saying why.

The size mix comes from `--size-mix` (GPUS:SHARE,...), from a sacct history (`--size-history FILE`,
read with the simulator's own workload readers), or is the documented default
(`placement.objective.DEFAULT_SIZE_MIX`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from gpupool.errors import BadRequest, Unsatisfiable
from gpupool.placement.objective import (
    DEFAULT_GOAL,
    HopSlack,
    Objective,
    PlacementGoal,
    SizeMix,
    fragmentation_of,
    parse_size_mix,
    whole_counts,
)

if TYPE_CHECKING:
    from gpupool.app.topology import TopologyChoice
    from gpupool.fabric.compiled import CompiledFabric
    from gpupool.placement.health import Health
    from gpupool.placement.model import FreeState, Placement, Request
    from gpupool.slurm.models import JobInfo

OBJECTIVE_CHOICES = tuple(o.value for o in Objective)


def size_mix_from_history(path: str, gpus_per_host: int = 8) -> SizeMix:
    """Job-count shares per GPU count of a sacct (-P or --json) or SWF history."""
    from gpupool.simulate.workload import WorkloadStats, read_workload

    counts: Counter[int] = Counter()
    for job in read_workload(path, "auto", WorkloadStats(), gpus_per_host=gpus_per_host):
        if job.gpus > 0:
            counts[job.gpus] += 1
    if not counts:
        raise BadRequest(f"--size-history {path}: no GPU jobs in the history")
    return SizeMix.from_counts(dict(counts), f"history {path} ({sum(counts.values())} jobs)")


def goal_from_options(objective: str | None, hop_slack: str | None = None, size_mix: str | None = None,
                      size_history: str | None = None) -> PlacementGoal:
    """The goal of `--objective`, `--hop-slack`, `--size-mix`, `--size-history` (unset: the default goal's)."""
    if size_mix and size_history:
        raise BadRequest("give --size-mix or --size-history, not both")
    chosen = Objective.parse(objective) if objective else DEFAULT_GOAL.objective
    goal = replace(DEFAULT_GOAL, objective=chosen)
    if hop_slack is not None:
        goal = replace(goal, hop_slack=HopSlack.parse(hop_slack))
    if size_mix:
        goal = replace(goal, size_mix=parse_size_mix(size_mix))
    elif size_history:
        goal = replace(goal, size_mix=size_mix_from_history(size_history))
    if chosen is not Objective.PACK and (goal.hop_slack or size_mix or size_history):
        raise BadRequest("--hop-slack, --size-mix and --size-history apply to --objective pack only")
    return goal


def running_uplink_load(compiled: CompiledFabric, jobs: Iterable[JobInfo], goal: PlacementGoal | None,
                        totals: Mapping[str, int] | None = None) -> np.ndarray | None:
    """The Gb/s running jobs send over each uplink bundle (`placement.congestion.bundle_loads`), for a goal
    that reads them (`contention`); None for any other goal. totals: configured GPUs per host (default 8)."""
    from gpupool.placement.congestion import bundle_loads

    if not (goal if goal is not None else DEFAULT_GOAL).reads_uplinks:
        return None
    index = compiled.host_index()
    per_host = np.full(compiled.n_hosts, 8, dtype=np.int64)
    for host, gpus in (totals or {}).items():
        h = index.get(host)
        if h is not None and gpus > 0:
            per_host[h] = gpus
    running = []
    for job in jobs:
        if job.state != "RUNNING":
            continue
        held = [(index[h], g) for h, g in job.allocation.items() if h in index and g > 0]
        if len(held) > 1:  # a job on one host crosses no bundle
            running.append(([h for h, _ in held], [g for _, g in held]))
    return bundle_loads(compiled, running, per_host)


def explain(compiled: CompiledFabric, free: FreeState, request: Request, placement: Placement,
            health: Health | None = None, topology: TopologyChoice | None = None) -> dict[str, Any]:
    """The `objective` block of `plan --json`: the goal, and `why` in one sentence (with its figures)."""
    from gpupool.app.plan import plan_placement
    from gpupool.placement.engine import gpus_per_host

    goal = request.goal if request.goal is not None else DEFAULT_GOAL
    doc = goal.to_json()
    if topology is not None and topology.layout is not None:
        doc["why"] = "topology/block: fewest blocks within Slurm's block rules (the objective applies to tree " \
                     "and graph placement)"
        return doc
    g = gpus_per_host(free, goal)
    leaf = compiled.host_tree_leaf.astype(np.int64)
    n_tree = int(compiled.tree_parent.size)
    before = np.where(free.usable, free.free_gpus, 0).astype(np.int64)
    sizes, weights = goal.size_mix.weights()

    def after(p: Placement) -> np.ndarray:
        state = before.copy()
        index = compiled.host_index()
        for host, gpus in p.allocation.items():
            state[index[host]] -= gpus
        return state

    mine = after(placement)
    leaves, hosts = whole_counts(leaf, mine, n_tree, g)
    frag = int(fragmentation_of(leaf, mine, n_tree, g, sizes, weights))
    doc.update({"whole_free_leaves_after": leaves, "whole_free_hosts_after": hosts,
                "fragmentation_after": round(frag / weights.sum(), 3) if weights.sum() else 0.0})
    other_goal = PlacementGoal(objective=Objective.HOPS) if goal.objective is not Objective.HOPS \
        else replace(goal, objective=Objective.PACK)
    try:
        other = plan_placement(compiled, free, replace(request, goal=other_goal), health, topology)
    except Unsatisfiable:
        other = None
    if other is None:
        doc["why"] = f"{goal.objective.value}: the only objective that finds a placement"
        return doc
    theirs = after(other)
    o_leaves, o_hosts = whole_counts(leaf, theirs, n_tree, g)
    o_frag = int(fragmentation_of(leaf, theirs, n_tree, g, sizes, weights))
    extra_hops = placement.cost.pair_hops_sum - other.cost.pair_hops_sum
    biggest = max(goal.size_mix.sizes)
    if goal.objective is Objective.CONTENTION:
        doc.update(_uplink_figures(compiled, free, g, placement, other))
        return doc
    if goal.objective is Objective.PACK:
        doc["extra_pair_hops"] = extra_hops
        kept = f"{leaves} whole free leaves and {hosts} whole free hosts kept"
        if (leaves, hosts, frag) == (o_leaves, o_hosts, o_frag) and extra_hops == 0:
            doc["why"] = f"pack: same as the fewest-hops placement ({kept})"
        else:
            hop_text = "no more pair hops than" if extra_hops <= 0 else f"{extra_hops} more pair hops than"
            doc["why"] = (f"pack: {kept} for jobs up to {biggest} GPUs (fewest-hops placement: {o_leaves} leaves, "
                          f"{o_hosts} hosts); {hop_text} the fewest-hops placement")
    else:
        same = other.allocation == placement.allocation
        doc["why"] = ("hops: fewest pair hops, then fewest leaf switches, then fewest hosts (the even split), "
                      "then best fit"
                      + ("; pack would pick the same" if same else
                         f"; pack would keep {o_leaves} whole free leaves and {o_hosts} whole hosts "
                         f"(this: {leaves}, {hosts})"))
    return doc


def _uplink_figures(compiled: CompiledFabric, free: FreeState, g: int, placement: Placement,
                    fewest_hops: Placement) -> dict[str, Any]:
    """The `contention` objective's figures and why line: the Gb/s it adds over capacity on loaded uplinks,
    against the fewest-hops placement."""
    from gpupool.placement.congestion import overload_of

    index = compiled.host_index()
    load = free.uplink_load if free.uplink_load is not None else np.zeros(compiled.tree_parent.size)

    def overload(p: Placement) -> float:
        hosts = [index[h] for h in p.allocation]
        return overload_of(compiled, load, g, hosts, list(p.allocation.values()))

    mine, theirs = overload(placement), overload(fewest_hops)
    loaded = int((load > 0).sum())
    doc: dict[str, Any] = {"loaded_uplink_bundles": loaded if free.uplink_load is not None else None,
                           "uplink_overload_gbps": round(mine, 3), "uplink_overload_gbps_fewest_hops": round(theirs, 3)}
    if free.uplink_load is None:
        doc["why"] = ("contention: no running jobs known (a --free file), so the fewest-hops placement; "
                      f"it adds {mine:g} Gb/s over uplink capacity on its own")
    elif placement.allocation == fewest_hops.allocation:
        doc["why"] = (f"contention: same as the fewest-hops placement ({loaded} uplink bundles loaded by running jobs; "
                      f"it adds {mine:g} Gb/s over capacity)")
    else:
        doc["why"] = (f"contention: adds {mine:g} Gb/s over capacity on uplinks running jobs load (fewest-hops "
                      f"placement: {theirs:g} Gb/s), at the fewest pair hops")
    return doc
