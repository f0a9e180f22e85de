"""What `gpupool plan` (and `submit`) need around the engine: free-state sources and the JSON document."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from gpupool.errors import EnvError, InputError
from gpupool.placement.model import FreeState, Placement, Request

if TYPE_CHECKING:
    from gpupool.fabric.compiled import CompiledFabric


def load_free_file(path: str, compiled: CompiledFabric, *, ignore_unknown: bool = False) -> FreeState:
    """The `--free FILE` JSON object {"host": free_gpus}."""
    from gpupool.fsutil import read_input_bytes
    from gpupool.validate import load_json_text

    raw = read_input_bytes(path, "free-state file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: free-state file is not UTF-8 (byte {exc.start})") from None
    doc = load_json_text(text, path)
    if not isinstance(doc, dict):
        raise InputError(f"{path}: expected a JSON object {{\"host\": free_gpus, ...}}")
    return FreeState.from_dict(compiled, doc, ignore_unknown=ignore_unknown, source=path)


def free_state_from_slurm(client: Any, compiled: CompiledFabric, request: Request,
                          warn: Callable[[str], None] | None = None) -> FreeState:
    """Free GPUs per host as Slurm sees them now (state, partition, CPUs and memory considered).

    `client` is a `gpupool.slurm.client.SlurmClient` (anything with `node_states()` and `jobs()`).
    """
    try:
        from gpupool.slurm.freestate import (
            capacity_gpus,
            check_partition,
            free_gpus_for_request,
            subtract_pending_plans,
        )
    except ImportError:
        raise EnvError("reading the free state from Slurm is not available; use --free FILE") from None
    states = client.node_states()
    check_partition(states, request.partition)
    free = free_gpus_for_request(states, request.partition)
    # The same rule as `submit`: GPUs promised to pending pinned jobs (trusted markers only) are taken.
    free = subtract_pending_plans(free, client.jobs())
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


def fold_hosts(hosts: list[str]) -> str:
    from ClusterShell.NodeSet import NodeSet

    return str(NodeSet.fromlist(hosts)) if hosts else ""


def plan_document(placement: Placement | None, reference: tuple[str, Placement | None] | None,
                  request: Request, elapsed_ms: float, error: str | None = None) -> dict[str, Any]:
    """The `plan --json` document (CONTRACT.md keys first, extras after)."""
    doc: dict[str, Any]
    if placement is None:
        doc = {"feasible": False, "allocation": {}, "nodelist": "",
               "cost": {"pair_hops_sum": None, "mean_hops": None, "max_hops": None, "leaf_switches": None,
                        "groups": None},
               "elapsed_ms": round(elapsed_ms, 3)}
        if error:
            doc["error"] = error
    else:
        doc = {"feasible": True, "allocation": placement.allocation, "nodelist": fold_hosts(placement.hosts),
               "cost": placement.cost.to_json(), "elapsed_ms": round(elapsed_ms, 3),
               "placement_ms": round(placement.elapsed_ms, 3), "algorithm": placement.algorithm,
               "optimal": placement.optimal, "lower_bound": placement.lower_bound}
    units, per_unit, per_node = request.shape()
    doc["request"] = {"gpus": units * per_unit, "gpus_per_node": per_unit if per_node else None,
                      "nodes": units if per_node else None, "max_hops": request.max_hops,
                      "partition": request.partition, "exclude": list(request.exclude)}
    if reference is not None:
        mode, ref = reference
        doc["slurm_reference"] = {"mode": mode, "feasible": ref is not None,
                                  "allocation": ref.allocation if ref else {},
                                  "nodelist": fold_hosts(ref.hosts) if ref else "",
                                  "cost": ref.cost.to_json() if ref else None}
    return doc


def reference_placement(compiled: CompiledFabric, free: FreeState, request: Request) -> tuple[str, Placement | None]:
    from gpupool.placement.cost import cost_of
    from gpupool.placement.slurm_reference import slurm_reference

    mode, allocation = slurm_reference(compiled, free, request)
    if allocation is None:
        return mode, None
    return mode, Placement(allocation=allocation, cost=cost_of(compiled, allocation), algorithm=mode)
