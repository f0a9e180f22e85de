"""`gpupool plan` as a use case: free state (file or Slurm), the one planning step, the JSON document.

`plan_placement` is the only place a command asks the engine for a placement: `plan`, `submit`
and `explain` all go through it, so they cannot disagree about what "best" means.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from gpupool.app.objective import explain, running_uplink_load
from gpupool.app.reclaim import may_reclaim, plan_with_reclaim
from gpupool.app.topology import TopologyChoice, resolve_topology
from gpupool.errors import InfeasibleError, InputError
from gpupool.fabric.compiled import CompiledFabric
from gpupool.fabric.kinds import FabricKind
from gpupool.fsutil import read_input_bytes
from gpupool.hostlist import fold
from gpupool.placement.block import block_usage, check_segment, place_block, slurm_block_reference
from gpupool.placement.cost import cost_of
from gpupool.placement.engine import place
from gpupool.placement.health import Health, excluded_in_fabric, place_with_health, without_excluded
from gpupool.placement.model import FreeState, Placement, Request
from gpupool.placement.nvlink import nvlink_usage
from gpupool.placement.reclaim import Reclaim
from gpupool.placement.slurm_reference import slurm_reference
from gpupool.slurm.freestate import (
    capacity_gpus,
    check_partition,
    free_gpus_for_request,
    subtract_pending_plans,
)
from gpupool.slurm.models import BROKEN_FLAGS, JobInfo, NodeState
from gpupool.slurm.port import SlurmClient
from gpupool.validate import load_json_text


def plan_placement(compiled: CompiledFabric, free: FreeState | Mapping[str, int], request: Request,
                   health: Health | None = None, topology: TopologyChoice | None = None,
                   uplink_load: np.ndarray | None = None) -> Placement:
    """The best placement of `request` on `free` (a FreeState, or {host: free GPUs} of fabric hosts) under
    `request.goal` (None: `placement.objective.DEFAULT_GOAL`, which the simulator's `gpupool` policy uses too);
    with `health`, never on an excluded host and off degraded leaves where that costs nothing.
    Under a block topology: fewest blocks within Slurm's block rules (`placement.block`). `uplink_load`: the
    running jobs' Gb/s per uplink bundle (`objective.running_uplink_load`), for the `contention` objective."""
    if not isinstance(free, FreeState):
        free = FreeState.from_dict(compiled, dict(free), ignore_unknown=True)
    if uplink_load is not None:
        free = replace(free, uplink_load=uplink_load)
    if topology is not None and topology.layout is not None:
        return place_block(compiled, without_excluded(compiled, free, health or Health()), request, topology.layout)
    if health:
        return place_with_health(compiled, free, request, health)
    return place(compiled, free, request)


def health_from_node_states(states: list[NodeState], partition: str | None = None) -> Health:
    """Nodes Slurm has drained, down or failing (by gpupool's node check or anyone), with Slurm's reason."""
    excluded = {n.name: f"Slurm {n.state}" + (f": {n.reason}" if n.reason else "") for n in states
                if n.flags & BROKEN_FLAGS and (not partition or partition in n.partitions)}
    return Health(excluded=excluded)


def load_health_file(path: str, compiled: CompiledFabric) -> Health:
    """`--health FILE`: a saved `fabric audit --json`; its broken hosts and degraded leaves."""
    from gpupool.audit.placement_health import health_from_findings

    raw = read_input_bytes(path, "health file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: health file is not UTF-8 (byte {exc.start})") from None
    doc = load_json_text(text, path)
    findings = doc.get("findings") if isinstance(doc, dict) else None
    if not isinstance(findings, list) or not all(isinstance(f, dict) for f in findings):
        raise InputError(f"{path}: expected a `fabric audit --json` document with a \"findings\" list")
    found = health_from_findings(findings, compiled.host_names)
    return Health(excluded=found.broken_hosts, degraded_leaves=found.degraded_leaves)


def load_free_file(path: str, compiled: CompiledFabric, *, ignore_unknown: bool = False,
                   gpus_per_host: int | None = None, size_option: str = "--gpus-per-host") -> FreeState:
    """The `--free FILE` JSON object {"host": free_gpus}; with `gpus_per_host` (what `size_option`
    says a whole host has) a host with more free GPUs than that is refused, without asking Slurm."""
    raw = read_input_bytes(path, "free-state file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: free-state file is not UTF-8 (byte {exc.start})") from None
    doc = load_json_text(text, path)
    if not isinstance(doc, dict):
        raise InputError(f"{path}: expected a JSON object {{\"host\": free_gpus, ...}}")
    free = FreeState.from_dict(compiled, doc, ignore_unknown=ignore_unknown, source=path)
    if gpus_per_host is not None:
        check_free_within_host_size(path, free, compiled, gpus_per_host, size_option)
    return free


def check_free_within_host_size(path: str, free: FreeState, compiled: CompiledFabric, gpus_per_host: int,
                                size_option: str) -> None:
    """A free file saying a host has more free GPUs than a whole host has is wrong (exit 4, file, host and
    the option that gave the size named): the fabric does not count GPUs, so the size comes from an option."""
    over = np.nonzero(free.free_gpus > gpus_per_host)[0]
    if over.size:
        h = int(over[0])
        more = f" (and {over.size - 1} more host{'s' if over.size > 2 else ''})" if over.size > 1 else ""
        raise InputError(f"{path}: host {compiled.host_names[h]}: {int(free.free_gpus[h])} free GPUs, but "
                         f"{size_option} {gpus_per_host} says a host has {gpus_per_host}{more}")


def check_free_within_capacity(path: str, free: FreeState, compiled: CompiledFabric,
                               states: Iterable[NodeState]) -> None:
    """A free file saying a host has more free GPUs than Slurm configures on it is wrong (exit 4,
    file and host named); hosts Slurm does not count GPUs on are not judged."""
    totals = capacity_gpus(states, usable_only=False)
    index = compiled.host_index()
    for host, gpus in totals.items():
        h = index.get(host)
        if h is not None and int(free.free_gpus[h]) > gpus:
            raise InputError(f"{path}: host {host}: {int(free.free_gpus[h])} free GPUs, but Slurm configures "
                             f"{gpus} on it")


def free_state_from_slurm(states: list[NodeState], compiled: CompiledFabric, request: Request,
                          warn: Callable[[str], None] | None = None, jobs: Iterable[JobInfo] = ()) -> FreeState:
    """Free GPUs per host as Slurm sees them now (state, partition, CPUs and memory considered),
    minus the GPUs promised to pending pinned gpupool jobs among `jobs` (trusted markers only)."""
    check_partition(states, request.partition)
    free = free_gpus_for_request(states, request.partition)
    # The same rule as `submit`: GPUs promised to pending pinned jobs (trusted markers only) are taken.
    free = subtract_pending_plans(free, jobs)
    index = compiled.host_index()
    outside = sorted(h for h in free if h not in index)
    if outside and warn is not None:
        shown = ", ".join(outside[:5]) + (" ..." if len(outside) > 5 else "")
        warn(f"{len(outside)} Slurm node(s) with free GPUs are not in the fabric and are ignored: {shown}")
    state = FreeState.from_dict(compiled, free, ignore_unknown=True, source="Slurm")
    totals = np.zeros(compiled.n_hosts, dtype=np.int32)
    for host, gpus in capacity_gpus(states, request.partition, usable_only=False).items():
        h = index.get(host)
        if h is not None:
            totals[h] = gpus
    state.total_gpus = totals
    return state


def restrict_to_partition(free: FreeState, compiled: CompiledFabric, states: list[NodeState],
                          partition: str) -> FreeState:
    """A free file's hosts limited to `partition`'s nodes (InputError naming an unknown partition)."""
    check_partition(states, partition)
    members = {n.name for n in states if partition in n.partitions}
    outside = np.asarray([h for h, name in enumerate(compiled.host_names) if name not in members], dtype=np.int64)
    return free.without(outside) if len(outside) else free


@dataclass
class PlanOutcome:
    request: Request
    free: FreeState
    reference: tuple[str, Placement | None]
    placement: Placement | None
    error: str | None = None  # why nothing fits, when placement is None
    skipped: dict[str, str] | None = None  # fabric host -> why health excluded it
    topology: TopologyChoice | None = None
    reclaim: Reclaim | None = None  # the borrowed jobs the placement preempts (owner partitions)
    objective: dict[str, Any] | None = None  # the goal and why this placement (app.objective.explain)


def run_plan(compiled: CompiledFabric, request: Request, *, free_path: str | None, ignore_unknown: bool,
             slurm: Callable[[], SlurmClient], warn: Callable[[str], None] | None = None,
             health_path: str | None = None, topology: str = "auto",
             gpus_per_host: int | None = None) -> PlanOutcome:
    """Free state from `free_path` (else Slurm), Slurm's own pick for comparison, and ours.

    `slurm` is called only when Slurm is needed: no `--free`, or `--partition` with `--free`
    (a free file lists hosts, not partitions, so Slurm says which hosts a partition has).
    Health (hosts skipped, leaves avoided) comes from Slurm's drained/down nodes whenever Slurm
    is read, and from `health_path` (a saved `fabric audit --json`). `gpus_per_host`: a whole host's
    GPUs, so a free file is checked without Slurm (with Slurm, against what Slurm configures).
    """
    health = Health()
    states: list[NodeState] = []
    jobs: list[JobInfo] = []
    client: SlurmClient | None = None
    read_slurm = not free_path or bool(request.partition)
    choice = resolve_topology(compiled, topology, request.partition, slurm if read_slurm else None)
    request = segment_for(choice, request, warn)
    if free_path:
        free = load_free_file(free_path, compiled, ignore_unknown=ignore_unknown, gpus_per_host=gpus_per_host)
        if request.partition:
            states = slurm().node_states()
            check_free_within_capacity(free_path, free, compiled, states)
            free = restrict_to_partition(free, compiled, states, request.partition)
            health = health_from_node_states(states, request.partition)
    else:
        client = slurm()
        states = client.node_states()
        jobs = client.jobs()
        # The same rule as `submit`: GPUs promised to pending pinned jobs (trusted markers only) are taken.
        free = free_state_from_slurm(states, compiled, request, warn=warn, jobs=jobs)
        # The contention objective keeps multi-leaf jobs off the uplinks running jobs load (None otherwise).
        totals = capacity_gpus(states, usable_only=False)
        free.uplink_load = running_uplink_load(compiled, jobs, request.goal, totals)
        health = health_from_node_states(states, request.partition)
    if health_path:
        health = health.merged(load_health_file(health_path, compiled))
    skipped = excluded_in_fabric(compiled, health)
    free = without_excluded(compiled, free, health)
    if client is not None and may_reclaim(jobs, states, request.partition):
        try:
            reference = reference_placement(compiled, free, request, choice)
        except InfeasibleError:  # nothing free now; Slurm would preempt, which its reference does not model
            reference = ("slurm-dragonfly" if compiled.kind is FabricKind.DRAGONFLY else "slurm-tree", None)
        # An owner's partition with borrowed GPUs: count them as free, preempt the least.
        try:
            reclaim = reclaim_for(client, compiled, free, request, states, jobs, health, topology=choice)
        except InfeasibleError as exc:
            return PlanOutcome(request, free, reference, None, error=exc.message, skipped=skipped, topology=choice)
        if reclaim is not None:
            return PlanOutcome(request, free, reference, reclaim.placement, skipped=skipped, topology=choice,
                               reclaim=reclaim)
    else:
        reference = reference_placement(compiled, free, request, choice)
    try:
        placement = plan_placement(compiled, free, request, health, choice)
    except InfeasibleError as exc:
        return PlanOutcome(request, free, reference, None, error=exc.message, skipped=skipped, topology=choice)

    return PlanOutcome(request, free, reference, placement, skipped=skipped, topology=choice,
                       objective=explain(compiled, free, request, placement, plan_placement, health, choice))


def segment_for(choice: TopologyChoice, request: Request, warn: Callable[[str], None] | None) -> Request:
    """The request with its --segment checked against the block layout (a size Slurm refuses is a
    UsageError), or without it under tree/dragonfly, where Slurm ignores --segment (a note says so)."""
    if request.segment is None:
        return request
    if choice.layout is not None:
        check_segment(choice.layout, request)
        return request
    if warn is not None:
        warn(f"--segment={request.segment} is ignored by Slurm's topology/{choice.kind} ({choice.why}); "
             "planned without it")
    return replace(request, segment=None)


def reclaim_for(client: SlurmClient, compiled: CompiledFabric, free: FreeState, request: Request,
                states: list[NodeState], jobs: list[JobInfo], health: Health | None,
                owner_qos: str | None = None, topology: TopologyChoice | None = None) -> Reclaim | None:
    """`plan_with_reclaim` on Slurm's partitions and preemption settings (read only when needed)."""
    return plan_with_reclaim(compiled, free, request, states, jobs, client.partitions(), client.preemption(),
                             lambda state: plan_placement(compiled, state, request, health, topology),
                             owner_qos=owner_qos, health=health)


def plan_document(placement: Placement | None, reference: tuple[str, Placement | None] | None,
                  request: Request, elapsed_ms: float, error: str | None = None,
                  skipped: Mapping[str, str] | None = None,
                  topology: TopologyChoice | None = None, reclaim: Reclaim | None = None,
                  compiled: CompiledFabric | None = None,
                  objective: dict[str, Any] | None = None) -> dict[str, Any]:
    """The `plan --json` document (docs/contract.md keys first, extras after); with `compiled` on a
    fabric with NVLink domains, `cost` adds `nvlink_domains` and the document names the domains."""
    doc: dict[str, Any]
    if placement is None:
        doc = {"feasible": False, "allocation": {}, "nodelist": "",
               "cost": {"pair_hops_sum": None, "mean_hops": None, "max_hops": None, "leaf_switches": None,
                        "groups": None},
               "elapsed_ms": round(elapsed_ms, 3)}
        if error:
            doc["error"] = error
    else:
        doc = {"feasible": True, "allocation": placement.allocation, "nodelist": fold(placement.hosts),
               "cost": placement.cost.to_json(), "elapsed_ms": round(elapsed_ms, 3),
               "placement_ms": round(placement.elapsed_ms, 3), "algorithm": placement.algorithm,
               "optimal": placement.optimal, "lower_bound": placement.lower_bound}
    units, per_unit, per_node = request.shape()
    doc["request"] = {"gpus": units * per_unit, "gpus_per_node": per_unit if per_node else None,
                      "nodes": units if per_node else None, "max_hops": request.max_hops,
                      "partition": request.partition, "exclude": list(request.exclude),
                      "segment": request.segment}
    if reference is not None:
        mode, ref = reference
        doc["slurm_reference"] = {"mode": mode, "feasible": ref is not None,
                                  "allocation": ref.allocation if ref else {},
                                  "nodelist": fold(ref.hosts) if ref else "",
                                  "cost": ref.cost.to_json() if ref else None}
        if topology is not None and topology.layout is not None and ref is not None:
            doc["slurm_reference"]["blocks"] = block_usage(topology.layout, ref.hosts, request.segment)
    if topology is not None:
        doc["topology"] = topology.to_json()
        if topology.layout is not None and placement is not None:
            doc["blocks"] = block_usage(topology.layout, placement.hosts, request.segment)
    if compiled is not None:
        _add_nvlink(doc, compiled, placement, reference)
    if skipped is not None:
        doc["skipped"] = dict(skipped)
    if reclaim is not None:
        doc["preempt"] = reclaim.to_json()
    if objective is not None:
        doc["objective"] = objective
    return doc


def _add_nvlink(doc: dict[str, Any], compiled: CompiledFabric, placement: Placement | None,
                reference: tuple[str, Placement | None] | None) -> None:
    """NVLink islands spanned, in `cost`, and the domains' names beside it (ours and Slurm's)."""
    ours = nvlink_usage(compiled, placement.hosts if placement is not None else [])
    if ours is None:
        return
    doc["cost"]["nvlink_domains"] = ours["nvlink_domains"] if placement is not None else None
    doc["nvlink_domain_names"] = ours["nvlink_domain_names"]
    ref = reference[1] if reference is not None else None
    if ref is not None and isinstance(doc.get("slurm_reference", {}).get("cost"), dict):
        theirs = nvlink_usage(compiled, ref.hosts)
        if theirs is not None:  # always: the same fabric as ours
            doc["slurm_reference"]["cost"]["nvlink_domains"] = theirs["nvlink_domains"]
            doc["slurm_reference"]["nvlink_domain_names"] = theirs["nvlink_domain_names"]


def reference_placement(compiled: CompiledFabric, free: FreeState, request: Request,
                        topology: TopologyChoice | None = None) -> tuple[str, Placement | None]:
    """What Slurm itself would pick on `free`: its block choice under a block topology, else tree/dragonfly."""
    if topology is not None and topology.layout is not None:
        mode = "slurm-block"
        try:
            allocation = slurm_block_reference(compiled, free, request, topology.layout)
        except InfeasibleError:
            allocation = None
    else:
        mode, allocation = slurm_reference(compiled, free, request)
    if allocation is None:
        return mode, None
    return mode, Placement(allocation=allocation, cost=cost_of(compiled, allocation), algorithm=mode)
