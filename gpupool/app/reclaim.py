"""Reclaim as a use case: from Slurm's jobs, partitions and preemption settings to the borrowers an
owner's job may preempt, then the least-preempting placement (`gpupool.placement.reclaim`).

`plan` and `submit` both call `plan_with_reclaim`, so what `plan` shows is what `submit` pins.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np

from gpupool.fabric.compiled import CompiledFabric
from gpupool.placement.health import Health
from gpupool.placement.model import FreeState, Placement, Request
from gpupool.placement.reclaim import Borrower, Reclaim, plan_reclaim
from gpupool.slurm.models import JobInfo, NodeState, PreemptionConfig
from gpupool.slurm.parse import has_started
from gpupool.slurm.preempt import PreemptibleJob, preemptible_jobs


def borrowers_of(found: Sequence[PreemptibleJob]) -> list[Borrower]:
    return [Borrower(job_id=p.job.job_id, allocation={h: g for h, g in p.job.allocation.items() if g > 0},
                     run_seconds=p.run_seconds, protected=p.protected, exempt_seconds=p.exempt_seconds,
                     partition=p.job.partition, account=p.job.account) for p in found]


def eligible_hosts(compiled: CompiledFabric, states: Sequence[NodeState], partition: str,
                   request: Request, health: Health | None) -> np.ndarray:
    """Hosts that may take the job once borrowers leave: in the partition and the fabric, usable
    by state, not excluded by the request or by health."""
    index = compiled.host_index()
    mask = np.zeros(compiled.n_hosts, dtype=np.bool_)
    skip = set(request.exclude) | set(health.excluded if health else {})
    for node in states:
        h = index.get(node.name)
        if h is not None and partition in node.partitions and node.usable and node.name not in skip:
            mask[h] = True
    return mask


def may_reclaim(jobs: Sequence[JobInfo], states: Sequence[NodeState], partition: str | None) -> bool:
    """Cheap first test (no extra Slurm call): does a running job of another partition hold GPUs
    on `partition`'s nodes?"""
    if not partition:
        return False
    members = {n.name for n in states if partition in n.partitions}
    return any(has_started(j.state) and j.partition != partition
               and any(g > 0 and h in members for h, g in j.allocation.items()) for j in jobs)


def plan_with_reclaim(compiled: CompiledFabric, free: FreeState, request: Request, states: Sequence[NodeState],
                      jobs: Sequence[JobInfo], partitions: dict[str, dict[str, str]], config: PreemptionConfig,
                      place_fn: Callable[[FreeState], Placement], *, owner_qos: str | None = None,
                      health: Health | None = None, now: float | None = None) -> Reclaim | None:
    """The least-preempting plan of minimal pair_hops_sum for `request` in its partition, or None
    when no running job there is preemptible by it (plan as usual then). Raises Unsatisfiable
    when nothing fits even with every borrower preempted."""
    partition = request.partition
    if not partition:
        return None
    found = preemptible_jobs(jobs, partitions, config, partition, time.time() if now is None else now,
                             node_partitions={n.name: n.partitions for n in states}, owner_qos=owner_qos)
    if not found:
        return None
    mask = eligible_hosts(compiled, states, partition, request, health)
    return plan_reclaim(free, compiled.host_index(), mask, borrowers_of(found), place_fn,
                        need_gpus=request.total_gpus)
