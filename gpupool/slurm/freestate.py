"""From Slurm node states to what the placement engine needs: free GPUs per usable host.

    states = client.node_states()
    free = free_gpus_for_request(states, partition="gpu", cpus_per_gpu=4)   # {"gpu001": 8, ...}

Hosts absent from the result (or 0) are unavailable, exactly like the `--free FILE` contract.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from gpupool.errors import BadInput, GpupoolError
from gpupool.hostlist import DEFAULT_LIMIT as MAX_HOSTLIST_NAMES
from gpupool.hostlist import expand
from gpupool.slurm.models import JobInfo, NodeState, parse_plan_comment
from gpupool.validate import MAX_GPUS_PER_HOST, is_host_name, maybe_int_text


@dataclass(frozen=True)
class NodeVerdict:
    """How many GPUs of a node a request could use now, and why not more."""

    name: str
    usable_gpus: int
    why: str = ""  # empty when nothing limits the node beyond its free GPUs


def node_verdict(node: NodeState, *, partition: str | None = None,
                 cpus_per_gpu: int | None = None, mem_per_gpu_mb: int | None = None,
                 features: Iterable[str] = (), gpu_type: str | None = None) -> NodeVerdict:
    if partition and partition not in node.partitions:
        return NodeVerdict(node.name, 0, f"not in partition {partition}")
    if not node.usable:
        return NodeVerdict(node.name, 0, f"state {node.state}" + (f" ({node.reason})" if node.reason else ""))
    missing = [f for f in features if f not in node.features]
    if missing:
        return NodeVerdict(node.name, 0, f"lacks feature {','.join(missing)}")
    if gpu_type and node.gpu_types and gpu_type not in node.gpu_types:
        return NodeVerdict(node.name, 0, f"has no {gpu_type} GPUs")
    gpus = node.free_gpus
    why = "" if gpus else "no free GPU"
    # A job needs at least one CPU and some memory on every node it uses.
    if node.cpus_total and node.free_cpus == 0:
        return NodeVerdict(node.name, 0, "no free CPU")
    if node.memory_mb and node.free_memory_mb == 0:
        return NodeVerdict(node.name, 0, "no free memory")
    if cpus_per_gpu:
        by_cpu = node.free_cpus // cpus_per_gpu
        if by_cpu < gpus:
            gpus, why = by_cpu, f"CPUs limit it to {by_cpu} GPUs"
    if mem_per_gpu_mb:
        by_mem = node.free_memory_mb // mem_per_gpu_mb
        if by_mem < gpus:
            gpus, why = by_mem, f"memory limits it to {by_mem} GPUs"
    return NodeVerdict(node.name, max(0, gpus), why)


def free_gpus_for_request(states: Iterable[NodeState], partition: str | None = None, *,
                          cpus_per_gpu: int | None = None, mem_per_gpu_mb: int | None = None,
                          features: Iterable[str] = (), gpu_type: str | None = None,
                          exclude: Iterable[str] = ()) -> dict[str, int]:
    """Host -> GPUs a new job could get there now; only hosts with at least one are listed."""
    excluded = set(exclude)
    features = tuple(features)
    out: dict[str, int] = {}
    for node in states:
        if node.name in excluded:
            continue
        verdict = node_verdict(node, partition=partition, cpus_per_gpu=cpus_per_gpu,
                               mem_per_gpu_mb=mem_per_gpu_mb, features=features, gpu_type=gpu_type)
        if verdict.usable_gpus > 0:
            out[node.name] = verdict.usable_gpus
    return out


def capacity_gpus(states: Iterable[NodeState], partition: str | None = None, *,
                  usable_only: bool = True, exclude: Iterable[str] = ()) -> dict[str, int]:
    """Host -> total GPUs, as if every job ended (for `--switches` fallback and size checks)."""
    excluded = set(exclude)
    return {
        n.name: n.gpus_total for n in states
        if n.gpus_total > 0 and n.name not in excluded
        and (not partition or partition in n.partitions) and (n.usable or not usable_only)
    }


def check_partition(states: Iterable[NodeState], partition: str | None) -> None:
    """Unknown partition -> BadInput naming it (before anything reaches sbatch)."""
    if not partition:
        return
    known = {p for n in states for p in n.partitions}
    if partition not in known:
        listed = ", ".join(sorted(known)) or "none"
        raise BadInput(f"unknown partition {partition!r} (Slurm has: {listed})")


# Pending reasons of jobs that will not start soon: they promise no GPUs to anyone.
NOT_STARTING_REASONS = ("JobHeldUser", "JobHeldAdmin", "BeginTime", "Dependency", "DependencyNeverSatisfied",
                        "InvalidAccount", "InvalidQOS")


def trusted_alloc(job: JobInfo) -> dict[str, int]:
    """The GPUs a job's gpupool marker (``--comment gpupool:...,alloc=gpu001:8+...``) says it takes,
    trusted only as far as Slurm itself confirms it.

    Any user can write any comment, so the marker is believed only when it restates the job's real
    request: its hosts are exactly the job's node list (``--nodelist`` while pending, the allocated
    nodes while running) and its counts equal the GPUs the job asked Slurm for (K on every node, or
    N in total). A forged marker therefore claims nothing beyond what the job holds or asked for
    anyway, and changes nothing in other users' plans. `plan`, `submit` and `explain` all use this.
    """
    alloc = parse_alloc_field(parse_plan_comment(job.comment).get("alloc", ""))
    if not alloc:
        return {}
    try:
        pinned = set(job.nodes) if job.nodes else set(expand(job.request.required_nodes))
    except GpupoolError:
        return {}
    if set(alloc) != pinned:
        return {}
    per_node, total = job.request.gpus_per_node, job.request.gpus_total
    if per_node and all(g == per_node for g in alloc.values()):
        return alloc
    if total and not per_node and sum(alloc.values()) == total:
        return alloc
    return {}


def trusted_plan(job: JobInfo) -> dict[str, str]:
    """The marker's fields when its placement is trusted (see `trusted_alloc`), else {}.

    A marker without ``alloc`` (mode wait-switches) is trusted when the job asks Slurm for no node
    list: it then only describes the job's own cost and steers nothing."""
    plan = parse_plan_comment(job.comment)
    if not plan:
        return {}
    if "alloc" in plan:
        return plan if trusted_alloc(job) else {}
    return plan if not job.request.required_nodes else {}


def subtract_pending_plans(free: Mapping[str, int], jobs: Iterable[JobInfo]) -> dict[str, int]:
    """Free GPUs minus those promised to pending jobs pinned to nodes.

    A job gpupool just submitted may still be PENDING (slurmctld schedules asynchronously), so
    node states do not show its GPUs as used yet. What it will take is its real request (``--nodelist``
    x GPUs per node), or the marker gpupool recorded when `trusted_alloc` confirms it. Held jobs and
    jobs waiting for a begin time or a dependency promise nothing.
    """
    out = dict(free)
    for job in jobs:
        if not job.state.startswith("PENDING") or job.reason.startswith(NOT_STARTING_REASONS):
            continue
        alloc = trusted_alloc(job)
        if not alloc and job.request.required_nodes and job.request.gpus_per_node:
            try:
                alloc = dict.fromkeys(expand(job.request.required_nodes), job.request.gpus_per_node)
            except GpupoolError:
                alloc = {}
        for host, gpus in alloc.items():
            if host in out:
                out[host] = max(0, out[host] - gpus)
    return {h: g for h, g in out.items() if g > 0}


def format_alloc_field(allocation: Mapping[str, int]) -> str:
    """{"gpu001": 8, "gpu002": 4} -> ``gpu001:8+gpu002:4`` (safe inside a comma-separated comment)."""
    return "+".join(f"{h}:{g}" for h, g in allocation.items())


def parse_alloc_field(text: str) -> dict[str, int]:
    """``gpu001:8+gpu002:4`` -> {host: GPUs}; anything malformed (``gpu001:²``, bad host names,
    counts above MAX_GPUS_PER_HOST) makes the whole field empty: it is untrusted user text."""
    out: dict[str, int] = {}
    for item in (text or "").split("+")[:MAX_HOSTLIST_NAMES]:
        host, _, gpus = item.partition(":")
        count = maybe_int_text(gpus, 1, MAX_GPUS_PER_HOST)
        if not is_host_name(host) or count is None or host in out:
            return {}
        out[host] = count
    return out
