"""Per-host shapes: whether a `--gpus N` placement is uneven, and what an even split would cost.

torchrun and most launchers start the same number of processes on every host, so a placement such
as 8,8,8,8,7,1 is often unusable as it stands. The placement engine minimises hops, not unevenness;
this step only looks for an even split of the same request and says what it costs.
"""

from __future__ import annotations

from dataclasses import replace

from gpupool.app.plan import plan_placement
from gpupool.app.topology import TopologyChoice
from gpupool.errors import GpupoolError
from gpupool.fabric.compiled import CompiledFabric
from gpupool.placement.model import FreeState, Placement, Request

# Even splits tried, largest GPUs per host first: each is one more placement run.
MAX_EVEN_TRIES = 3


def per_host_counts(placement: Placement) -> list[int]:
    """GPUs per host of the placement, largest first (the order a reader compares shapes in)."""
    return sorted(placement.allocation.values(), reverse=True)


def uneven_shape_note(compiled: CompiledFabric, free: FreeState, request: Request, placement: Placement,
                      topology: TopologyChoice | None = None) -> str | None:
    """For a `--gpus N` request (no per-host count) placed unevenly: the shape, and the even split
    (`--gpus-per-node K`) that fits now with its pair_hops_sum; None when the shape is even."""
    counts = per_host_counts(placement)
    if request.gpus is None or request.gpus_per_node is not None or request.nodes is not None \
            or len(set(counts)) <= 1:
        return None
    shape = ",".join(map(str, counts))
    cost = placement.cost.pair_hops_sum
    divisors = [k for k in range(counts[0], 0, -1) if request.gpus % k == 0][:MAX_EVEN_TRIES]
    for per_node in divisors:
        try:
            even = plan_placement(compiled, free, replace(request, gpus_per_node=per_node), None, topology)
        except GpupoolError:  # infeasible now, or a shape Slurm's block rules refuse
            continue
        hosts = len(even.allocation)
        if even.cost.pair_hops_sum <= cost:
            return (f"{shape} GPUs per host; add --gpus-per-node {per_node} for an even split "
                    f"({hosts} x {per_node}, the same pair_hops_sum {even.cost.pair_hops_sum})")
        return (f"{shape} GPUs per host; add --gpus-per-node {per_node} for an even split "
                f"({hosts} x {per_node}, pair_hops_sum {even.cost.pair_hops_sum} instead of {cost})")
    return f"{shape} GPUs per host, and no even split with {counts[0]} or fewer GPUs per host fits now"
