"""Placers: a policy's choice of (hosts, GPUs per host, mean pair hops) on a free-GPU array.

Two kinds: gpupool's own placement under a placement goal (`goal_placer`, `placement.engine.place`), and
an emulation of Slurm's node selection (`chooser_placer` over a chooser such as
`placement.slurm_reference.slurm_reference`). Policies (`policies.py`) pick one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from gpupool.errors import Unsatisfiable
from gpupool.placement.cost import cost_of_arrays
from gpupool.placement.engine import place
from gpupool.placement.model import FreeState, Request
from gpupool.placement.objective import PlacementGoal
from gpupool.simulate.core import Choice, Placer, SimConfig
from gpupool.simulate.workload import Job

if TYPE_CHECKING:
    from gpupool.fabric.compiled import CompiledFabric

Chooser = Callable[[FreeState, Request], "dict[str, int] | None"]  # Slurm-like node selection: host -> GPUs


class _Requests:
    """The placement Request of a job's shape, made once per (GPUs, nodes)."""

    def __init__(self) -> None:
        self.requests: dict[tuple[int, int], Request] = {}

    def of(self, job: Job) -> Request:
        key = (job.gpus, job.nodes)
        req = self.requests.get(key)
        if req is None:
            req = Request(gpus=job.gpus) if job.nodes == 0 else Request(nodes=job.nodes, gpus_per_node=job.gpus_per_node)
            self.requests[key] = req
        return req


def _arrays(index: dict[str, int], allocation: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    hosts = np.fromiter((index[h] for h in allocation), dtype=np.int64, count=len(allocation))
    gpus = np.fromiter(allocation.values(), dtype=np.int64, count=len(allocation))
    return hosts, gpus


def goal_placer(compiled: CompiledFabric, goal: PlacementGoal, config: SimConfig | None = None,
                loads: Callable[[], np.ndarray] | None = None) -> Placer:
    """gpupool's placement (what `plan` does) under `goal`, on the free array; `loads` gives the running jobs'
    uplink loads to a goal that reads them (the `contention` objective)."""
    index = compiled.host_index()
    gpus_per_host = config.gpus_per_host if config is not None else 8
    # Every host has gpus_per_host GPUs configured, as Slurm would tell `plan` (the pack score needs whole hosts).
    totals = np.full(compiled.n_hosts, gpus_per_host, dtype=np.int32)
    requests = _Requests()

    read_loads = loads if goal.reads_uplinks else None

    def gpupool_placer(free: np.ndarray, job: Job) -> Choice | None:
        state = FreeState(free_gpus=free, usable=free > 0, total_gpus=totals,
                          uplink_load=read_loads() if read_loads is not None else None)
        try:
            p = place(compiled, state, requests.of(job), goal)
        except Unsatisfiable:
            return None
        hosts, gpus = _arrays(index, p.allocation)
        return hosts, gpus, p.cost.mean_hops
    return gpupool_placer


def chooser_placer(compiled: CompiledFabric, choose: Chooser) -> Placer:
    """A Slurm-like node selection on the free array; its mean pair hops are measured, not chosen for."""
    index = compiled.host_index()
    requests = _Requests()

    def slurm_placer(free: np.ndarray, job: Job) -> Choice | None:
        try:
            allocation = choose(FreeState(free_gpus=free, usable=free > 0), requests.of(job))
        except Unsatisfiable:
            return None
        if not allocation:
            return None
        hosts, gpus = _arrays(index, allocation)
        return hosts, gpus, cost_of_arrays(compiled, hosts, gpus).mean_hops
    return slurm_placer


def slurm_tree_chooser(compiled: CompiledFabric) -> Chooser:
    """Slurm 22.05's topology/tree selection (`placement.slurm_reference`)."""
    from gpupool.placement.slurm_reference import slurm_reference

    def choose(state: FreeState, request: Request) -> dict[str, int] | None:
        # The earlier --gpus=N model, so that docs/simulate.md's figures stay comparable (issue #27).
        return slurm_reference(compiled, state, request, gpus_tiers=False)[1]
    return choose


def slurm_block_chooser(compiled: CompiledFabric) -> Chooser:
    """Slurm's topology/block selection on the fabric's own blocks (one base block per logical leaf)."""
    from gpupool.fabric.blocks import fabric_blocks
    from gpupool.placement.block import slurm_block_reference

    layout = fabric_blocks(compiled)

    def choose(state: FreeState, request: Request) -> dict[str, int] | None:
        return slurm_block_reference(compiled, state, request, layout)
    return choose
