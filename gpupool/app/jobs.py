"""Running jobs with their placement cost, and why a pending job waits (`gpupool jobs` / `explain`)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

from gpupool.app.plan import plan_placement, segment_for
from gpupool.app.reclaim import may_reclaim
from gpupool.app.topology import TopologyChoice, resolve_topology
from gpupool.errors import BadRequest, Unsatisfiable
from gpupool.fabric.compiled import CompiledFabric
from gpupool.hostlist import expand, fold
from gpupool.placement.block import block_usage
from gpupool.placement.cost import cost_of
from gpupool.placement.model import Request
from gpupool.placement.nvlink import cost_json as nvlink_cost_json
from gpupool.slurm import jobs as slurm_jobs
from gpupool.slurm.freestate import (
    capacity_gpus,
    free_gpus_for_request,
    subtract_pending_plans,
    trusted_alloc,
    trusted_plan,
)
from gpupool.slurm.models import JobInfo, NodeState
from gpupool.slurm.port import SlurmClient
from gpupool.slurm.preempt import preemptible_jobs
from gpupool.validate import maybe_int_text


def _cost_json(compiled: CompiledFabric, allocation: dict[str, int]) -> dict[str, Any] | None:
    known = set(compiled.host_names)
    if not allocation or any(h not in known for h in allocation):
        return None
    return nvlink_cost_json(compiled, cost_of(compiled, {h: max(1, g) for h, g in allocation.items()}).to_json(),
                            list(allocation))


def job_row(compiled: CompiledFabric, job: JobInfo) -> dict[str, Any]:
    """One running job as `gpupool jobs --json` prints it (cost from the live allocation)."""
    allocation = dict(job.allocation)
    cost = _cost_json(compiled, allocation)
    row: dict[str, Any] = {
        "job_id": job.job_id, "name": job.name, "user": job.user, "account": job.account,
        "partition": job.partition, "state": job.state, "nodelist": fold(job.nodes),
        "allocation": allocation, "gpus": sum(allocation.values()), "cost": cost,
    }
    planned = trusted_plan(job)
    planned_cost = maybe_int_text(planned.get("pair_hops_sum"), 0, 1 << 62)
    if planned_cost is not None:
        row["planned_pair_hops_sum"] = planned_cost
    if cost is None:
        outside = [h for h in allocation if h not in set(compiled.host_names)]
        row["note"] = (f"hosts not in the fabric: {fold(outside)}" if outside
                       else "job has no GPUs")
    return row


def running_jobs(client: SlurmClient, compiled: CompiledFabric, user: str | None = None) -> list[dict[str, Any]]:
    return [job_row(compiled, job) for job in slurm_jobs.running_jobs(client, user=user)]


def request_of_job(job: JobInfo) -> Request:
    """The placement request a Slurm job stands for (GPUs per node x nodes, or GPUs in total)."""
    req = job.request
    if req.gpus_per_node:
        return Request(gpus_per_node=req.gpus_per_node, nodes=req.nodes or 1, partition=req.partition or None)
    if req.gpus_total:
        return Request(gpus=req.gpus_total, partition=req.partition or None)
    raise BadRequest(f"job {job.job_id} asks for no GPUs; nothing to place")


@dataclass
class Explanation:
    job: JobInfo
    asks: dict[str, Any]
    best_now: dict[str, Any] | None
    best_now_reason: str = ""
    pinned: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    preempting: list[dict[str, Any]] | None = None  # borrowed jobs on the pinned nodes (owner partitions)
    topology: TopologyChoice | None = None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "job_id": self.job.job_id, "state": self.job.state, "reason": self.job.reason,
            "partition": self.job.partition, "asks": self.asks,
            "expected_start": self.job.start_time,
            "best_now": self.best_now, "pinned": self.pinned, "notes": self.notes,
        }
        if not self.best_now:
            doc["best_now_reason"] = self.best_now_reason
        if self.preempting is not None:
            doc["preempting"] = self.preempting
        planned = trusted_plan(self.job)
        planned_cost = maybe_int_text(planned.get("pair_hops_sum"), 0, 1 << 62)
        if planned_cost is not None:
            doc["planned"] = {"pair_hops_sum": planned_cost, "mode": planned.get("mode", ""),
                              "leaf_switches": maybe_int_text(planned.get("leaf_switches"), 0, 1 << 31) or 0}
        if self.best_now and self.best_now.get("cost"):
            now = self.best_now["cost"]
            # Compare with where the job is pinned, else with the plan gpupool recorded at submission.
            ref = (self.pinned or {}).get("cost") or doc.get("planned")
            if ref:
                doc["cost_difference"] = {
                    "pair_hops_sum": ref["pair_hops_sum"] - now["pair_hops_sum"],
                    "leaf_switches": ref["leaf_switches"] - now["leaf_switches"],
                }
                pinned_blocks = (self.pinned or {}).get("blocks")
                if pinned_blocks and self.best_now.get("blocks"):
                    doc["cost_difference"]["base_blocks"] = (pinned_blocks["base_blocks"]
                                                             - self.best_now["blocks"]["base_blocks"])
        if self.topology is not None:
            doc["topology"] = self.topology.to_json()
        return doc


def explain_job(client: SlurmClient, compiled: CompiledFabric, job_id: str) -> Explanation:
    """Slurm's reason, the request, the best placement available now and its cost difference
    to the placement the job is pinned to (its --nodelist / gpupool plan), if any."""
    job = client.job(job_id)
    req = job.request
    asks = {
        "nodes": req.nodes, "gpus_per_node": req.gpus_per_node, "gpus": req.total_gpus,
        "partition": req.partition, "nodelist": req.required_nodes or None,
        "exclude": req.excluded_nodes or None, "switches": req.switches or None, "segment": None,
    }
    explanation = Explanation(job=job, asks=asks, best_now=None)
    base = job.state.split("+")[0]
    if base != "PENDING":
        explanation.notes.append(f"job {job.job_id} is {job.state}, not pending")
    try:
        request = request_of_job(job)
    except BadRequest as exc:
        explanation.best_now_reason = exc.message
        return explanation
    states = client.node_states()
    partition = req.partition.split(",")[0] if req.partition else None
    free = free_gpus_for_request(states, partition, exclude=expand(req.excluded_nodes))
    others = [j for j in client.jobs() if j.job_id != job.job_id]
    free = subtract_pending_plans(free, others)
    known = set(compiled.host_names)
    free = {h: g for h, g in free.items() if h in known}
    choice = resolve_topology(compiled, "auto", partition, lambda: client)
    explanation.topology = choice
    layout = choice.layout
    segment = job_segment(client, job, ask_slurm=layout is not None)
    asks["segment"] = segment
    if layout is not None and req.switches:
        explanation.notes.append(f"the job asks --switches={req.switches}, which Slurm's topology/block ignores: "
                                 "it waits for one aggregated block with enough free nodes, not for switches")
    if segment is not None:
        try:
            request = segment_for(choice, replace(request, segment=segment), explanation.notes.append)
        except BadRequest as exc:  # Slurm keeps such a job pending for ever (or refused it at submit)
            explanation.notes.append(f"Slurm cannot place --segment={segment} here: {exc.message}")
            request = replace(request, segment=None)
    try:
        best = plan_placement(compiled, free, request, topology=choice)
        explanation.best_now = {"allocation": best.allocation, "nodelist": fold(best.allocation),
                                "cost": nvlink_cost_json(compiled, best.cost.to_json(), best.hosts)}
        if layout is not None:
            explanation.best_now["blocks"] = block_usage(layout, best.hosts, request.segment)
    except Unsatisfiable as exc:
        explanation.best_now_reason = f"nothing fits now: {exc.message}"
        cap = capacity_gpus(states, partition)
        explanation.notes.append(f"partition {partition or '(all)'} has {sum(cap.values())} GPUs on "
                                 f"usable nodes, {sum(free.values())} free now")
    pinned_alloc = trusted_alloc(job)
    if not pinned_alloc and req.required_nodes and req.gpus_per_node:
        pinned_alloc = dict.fromkeys(expand(req.required_nodes), req.gpus_per_node)
    if pinned_alloc:
        explanation.pinned = {"allocation": pinned_alloc, "nodelist": fold(pinned_alloc),
                              "cost": _cost_json(compiled, pinned_alloc)}
        if layout is not None:
            usage = block_usage(layout, list(pinned_alloc), request.segment)
            explanation.pinned["blocks"] = usage
            if not usage["slurm_accepts"]:
                rule = (f"not {request.segment} nodes of a base block per segment" if request.segment else
                        "not within one aggregated block of the size Slurm requires")
                explanation.notes.append(f"the pinned nodes break Slurm's block rules for {len(pinned_alloc)} "
                                         f"nodes ({rule})")
        busy = [h for h, g in pinned_alloc.items() if free.get(h, 0) < g]
        if busy:
            explanation.notes.append(f"pinned node(s) without enough free GPUs now: {fold(busy)}")
            if base == "PENDING" and may_reclaim(others, states, partition):
                explanation.preempting = _borrowers_on(client, others, states, partition, set(busy))
                explanation.notes += _preempting_notes(explanation.preempting)
    return explanation


def job_segment(client: SlurmClient, job: JobInfo, ask_slurm: bool = True) -> int | None:
    """The job's --segment: as Slurm reports it (squeue --json, 25.11+; looked up only if ask_slurm),
    else as gpupool's marker recorded it at submission (Slurm before 25.11 reports it nowhere)."""
    if job.request.segment:
        return job.request.segment
    recorded = maybe_int_text(job.gpupool_plan.get("segment"), 1, 0xFFFD)
    if recorded:
        return recorded
    if not ask_slurm:
        return None
    # `client.job` reads scontrol's text, which never shows --segment; squeue's JSON does (25.11+).
    found = [j for j in client.jobs(job_ids=[job.job_id]) if j.job_id == job.job_id]
    return found[0].request.segment if found else None


def _borrowers_on(client: SlurmClient, jobs: list[JobInfo], states: list[NodeState], partition: str | None,
                  hosts: set[str]) -> list[dict[str, Any]]:
    """Preemptible borrowed jobs on `hosts`: what Slurm must preempt before the job can start there."""
    found = preemptible_jobs(jobs, client.partitions(), client.preemption(), partition or "", time.time(),
                             node_partitions={n.name: n.partitions for n in states})
    return [{"job_id": p.job.job_id, "gpus": sum(p.job.allocation.values()), "run_seconds": p.run_seconds,
             "protected": p.protected, "protected_for_s": max(0, p.exempt_seconds - p.run_seconds)}
            for p in found if hosts.intersection(p.job.allocation)]


def _preempting_notes(borrowers: list[dict[str, Any]]) -> list[str]:
    if not borrowers:
        return []
    ready = [b["job_id"] for b in borrowers if not b["protected"]]
    waiting = [f"{b['job_id']} (another {b['protected_for_s']} s)" for b in borrowers if b["protected"]]
    notes = []
    if ready:
        notes.append(f"borrowed job(s) Slurm may preempt on the pinned nodes: {', '.join(ready)}")
    if waiting:
        notes.append(f"borrowed job(s) still protected by their min_runtime (PreemptExemptTime): {', '.join(waiting)}")
    return notes
