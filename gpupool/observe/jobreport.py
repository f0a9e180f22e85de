"""Per-job topology report (jobstats-like): leaves spanned, the optimum on the state at its start, a hint.

The free state at the job's start is rebuilt from accounting: every node's configured GPUs minus
the GPUs of the other runs that were running at that instant (sacct, GPUs split evenly over a
run's nodes). Node states at that time (down, drained) are not in sacct and are not considered.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from gpupool.errors import InfeasibleError, InputError
from gpupool.fabric.kinds import FabricKind
from gpupool.hostlist import fold
from gpupool.observe.lending import SACCT_FIELDS, JobRun
from gpupool.placement.cost import cost_of
from gpupool.placement.engine import place
from gpupool.placement.model import Cost, FreeState, Request

if TYPE_CHECKING:
    from gpupool.fabric.compiled import CompiledFabric


def job_argv(job_id: str) -> list[str]:
    return ["sacct", "--jobs", job_id, "--allocations", "--duplicates", "--parsable2", "--format", ",".join(SACCT_FIELDS)]


def allocation_of(run: JobRun) -> dict[str, int]:
    """GPUs per node, split evenly (sacct has no per-node GPUs); the first nodes take any remainder."""
    if not run.nodes:
        return {}
    base, extra = divmod(run.gpus, len(run.nodes))
    return {host: base + (1 if i < extra else 0) for i, host in enumerate(run.nodes)}


def free_at_start(run: JobRun, others: list[JobRun], capacity: dict[str, int]) -> dict[str, int]:
    """Configured GPUs minus those held by other runs that were running when `run` started."""
    assert run.start is not None
    free = dict(capacity)
    for other in others:
        if other.start is None or (other.job_id == run.job_id and other.start == run.start):
            continue
        if other.start <= run.start and (other.end is None or other.end > run.start):
            for host, gpus in allocation_of(other).items():
                if host in free:
                    free[host] = max(0, free[host] - gpus)
    return free


@dataclass
class JobTopology:
    job_id: str
    state: str
    start: datetime
    allocation: dict[str, int]
    cost: Cost
    leaves: int  # logical leaves (rail groups count once) the job's hosts sit on
    optimum: Cost | None
    optimum_allocation: dict[str, int]
    optimum_leaves: int | None
    optimum_note: str
    hints: list[str]

    def as_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "job_id": self.job_id, "state": self.state, "start": self.start.strftime("%Y-%m-%dT%H:%M:%S"),
            "gpus": sum(self.allocation.values()), "nodelist": fold(sorted(self.allocation)),
            "allocation": self.allocation, "cost": self.cost.to_json(), "leaves": self.leaves,
            "optimum": None if self.optimum is None else {
                "allocation": self.optimum_allocation, "nodelist": fold(sorted(self.optimum_allocation)),
                "cost": self.optimum.to_json(), "leaves": self.optimum_leaves},
            "hints": self.hints}
        if self.optimum is not None:
            doc["difference"] = {
                "pair_hops_sum": self.cost.pair_hops_sum - self.optimum.pair_hops_sum,
                "mean_hops": round(self.cost.mean_hops - self.optimum.mean_hops, 6),
                "leaves": self.leaves - (self.optimum_leaves or 0),
                "pair_hops_ratio": round(self.cost.pair_hops_sum / self.optimum.pair_hops_sum, 6)
                if self.optimum.pair_hops_sum else None}
        else:
            doc["optimum_note"] = self.optimum_note
        return doc


def _leaves(compiled: CompiledFabric, hosts: list[str]) -> int:
    index = compiled.host_index()
    return len({int(compiled.host_tree_leaf[index[h]]) for h in hosts if h in index})


def job_topology(compiled: CompiledFabric, run: JobRun, others: list[JobRun], capacity: dict[str, int]) -> JobTopology:
    if run.start is None or not run.nodes or not run.gpus:
        raise InputError(f"job {run.job_id} has not run on GPUs (state {run.state})")
    allocation = allocation_of(run)
    unknown = [h for h in allocation if h not in compiled.host_index()]
    if unknown:
        raise InputError(f"job {run.job_id} ran on host(s) not in the fabric: {', '.join(unknown[:5])}")
    cost = cost_of(compiled, allocation)
    leaves = _leaves(compiled, list(allocation))
    per_node = set(allocation.values())
    if len(per_node) == 1:
        request = Request(gpus=run.gpus, gpus_per_node=per_node.pop(), nodes=len(allocation))
    else:
        request = Request(gpus=run.gpus)
    free = free_at_start(run, others, capacity)
    state = FreeState.from_dict(compiled, {h: g for h, g in free.items() if g > 0}, ignore_unknown=True)
    optimum = None
    optimum_allocation: dict[str, int] = {}
    optimum_leaves = None
    note = ""
    try:
        placement = place(compiled, state, request)
        optimum, optimum_allocation = placement.cost, dict(placement.allocation)
        optimum_leaves = _leaves(compiled, list(optimum_allocation))
    except InfeasibleError as exc:
        note = f"no placement on the rebuilt state at its start: {exc.message}"
    hints: list[str] = []
    if optimum is not None and (optimum_leaves or 0) < leaves:
        units, unit_gpus, whole = request.shape()
        shape = f"--nodes {units} --gpus-per-node {unit_gpus}" if whole else f"--gpus {units}"
        hints.append(f"the job spanned {leaves} leaves where {optimum_leaves} would have done: "
                     f"`gpupool submit {shape} ...` places it on the minimal-hop hosts")
        hints.append(f"or ask Slurm's tree plugin to wait for fewer leaf switches: `sbatch --switches={optimum_leaves}@HH:MM:SS`")
        if compiled.kind is FabricKind.DRAGONFLY:
            hints.append("with topology/block (Slurm 23.11+), `--segment=N` keeps groups of N nodes inside one block")
    elif optimum is not None and optimum.pair_hops_sum < cost.pair_hops_sum:
        hints.append(f"same leaves, but pair_hops_sum {cost.pair_hops_sum} vs {optimum.pair_hops_sum} possible: "
                     "`gpupool submit` picks the closer hosts")
    elif optimum is not None:
        hints.append("placement was as good as the state at its start allowed")
    return JobTopology(run.job_id, run.state, run.start, allocation, cost, leaves, optimum, optimum_allocation,
                       optimum_leaves, note, hints)
