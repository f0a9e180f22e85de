"""Plain data of a placement decision: free state, request, result."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from gpupool.errors import BadInput, BadRequest, param
from gpupool.placement.objective import PlacementGoal

if TYPE_CHECKING:
    from gpupool.fabric.compiled import CompiledFabric


@dataclass
class FreeState:
    """Free GPUs per host (fabric host order) and whether each host can take the job at all."""

    free_gpus: np.ndarray  # int32[H]
    usable: np.ndarray  # bool[H]: state, CPUs and memory allow the job on this host
    total_gpus: np.ndarray | None = None  # int32[H] configured GPUs, when known (Slurm)
    # float64[T] Gb/s that running jobs send over each tree node's uplink bundle (placement.congestion), when known
    uplink_load: np.ndarray | None = None

    @classmethod
    def from_dict(cls, compiled: CompiledFabric, free: Mapping[str, Any], *, ignore_unknown: bool = False,
                  source: str = "free state") -> FreeState:
        """{host: free_gpus}; absent hosts or 0 are unavailable; unknown hosts are an input error."""
        index = compiled.host_index()
        free_gpus = np.zeros(compiled.n_hosts, dtype=np.int32)
        unknown: list[str] = []
        from gpupool.validate import MAX_GPUS_PER_HOST, bounded_int

        for host, value in free.items():
            # Bounded per host: a file saying 1000000000 must not make planning allocate gigabytes.
            value = bounded_int(value, f"{source}: host {str(host)[:60]}: free GPUs", 0, MAX_GPUS_PER_HOST)
            h = index.get(str(host))
            if h is None:
                unknown.append(str(host))
                continue
            free_gpus[h] = int(value)
        if unknown and not ignore_unknown:
            shown = ", ".join(unknown[:5]) + (" ..." if len(unknown) > 5 else "")
            raise BadInput(f"{source}: unknown host(s) not in the fabric: {shown} (use {param('ignore_unknown')} to skip them)")
        return cls(free_gpus=free_gpus, usable=free_gpus > 0)

    @classmethod
    def from_arrays(cls, free_gpus: Iterable[int], usable: Iterable[bool] | None = None) -> FreeState:
        gpus = np.asarray(list(free_gpus) if not isinstance(free_gpus, np.ndarray) else free_gpus, dtype=np.int32)
        mask = gpus > 0 if usable is None else np.asarray(usable, dtype=np.bool_) & (gpus > 0)
        return cls(free_gpus=gpus, usable=mask)

    def without(self, hosts: np.ndarray) -> FreeState:
        """The same state with the given host indices made unusable (exclude lists)."""
        usable = self.usable.copy()
        usable[hosts] = False
        return FreeState(free_gpus=self.free_gpus, usable=usable, total_gpus=self.total_gpus,
                         uplink_load=self.uplink_load)

    def to_dict(self, compiled: CompiledFabric) -> dict[str, int]:
        return {compiled.host_names[h]: int(self.free_gpus[h]) for h in np.nonzero(self.usable & (self.free_gpus > 0))[0]}


@dataclass(frozen=True)
class Request:
    """N GPUs anywhere, or `nodes` hosts x `gpus_per_node` GPUs each; `max_hops` bounds every pair."""

    gpus: int | None = None
    gpus_per_node: int | None = None
    nodes: int | None = None
    exclude: tuple[str, ...] = ()
    max_hops: int | None = None
    partition: str | None = None
    segment: int | None = None  # Slurm's --segment: groups of this many nodes, each in one base block
    goal: PlacementGoal | None = None  # the placement objective; None: objective.DEFAULT_GOAL (what plan does)

    def shape(self) -> tuple[int, int, bool]:
        """(units, gpus per unit, per_node): a unit is one GPU, or one whole host of K GPUs."""
        from gpupool.validate import MAX_COUNT, MAX_GPUS_PER_HOST

        for name, value, high in ((param("gpus"), self.gpus, MAX_COUNT), (param("gpus_per_node"), self.gpus_per_node,
                                                                          MAX_GPUS_PER_HOST), (param("nodes"), self.nodes, MAX_COUNT)):
            if value is not None and value <= 0:
                raise BadRequest(f"{name} must be a positive number, got {value}")
            if value is not None and value > high:
                raise BadRequest(f"{name} {value} is more than the limit of {high}")
        if self.segment is not None and not 0 < self.segment <= MAX_COUNT:
            raise BadRequest(f"{param('segment')} must be between 1 and {MAX_COUNT}, got {self.segment}")
        if self.max_hops is not None and not 0 <= self.max_hops <= MAX_COUNT:
            raise BadRequest(f"{param('max_hops')} must be between 0 and {MAX_COUNT}, got {self.max_hops}")
        gpus, per_node, nodes = self.gpus, self.gpus_per_node, self.nodes
        if per_node is None and nodes is not None:
            if gpus is None:
                raise BadRequest(f"{param('nodes')} needs {param('gpus')} or {param('gpus_per_node')}")
            if gpus % nodes:
                raise BadRequest(f"{param('gpus')} {gpus} cannot be split evenly over {param('nodes')} {nodes}; give {param('gpus_per_node')}")
            per_node = gpus // nodes
        if per_node is not None:
            if nodes is None:
                if gpus is None:
                    raise BadRequest(f"{param('gpus_per_node')} needs {param('gpus')} or {param('nodes')}")
                if gpus % per_node:
                    raise BadRequest(f"{param('gpus')} {gpus} is not a multiple of {param('gpus_per_node')} {per_node}")
                nodes = gpus // per_node
            elif gpus is not None and gpus != nodes * per_node:
                raise BadRequest(f"{param('gpus')} {gpus} does not equal {param('nodes')} {nodes} x {param('gpus_per_node')} {per_node}")
            return nodes, per_node, True
        if gpus is None:
            raise BadRequest(f"give {param('gpus')} N (and optionally {param('gpus_per_node')} K or {param('nodes')} M)")
        return gpus, 1, False

    @property
    def total_gpus(self) -> int:
        units, per_unit, _ = self.shape()
        return units * per_unit


@dataclass(frozen=True)
class Cost:
    """Cost figures of an allocation, exactly as docs/contract.md defines them."""

    pair_hops_sum: int
    mean_hops: float
    max_hops: int
    leaf_switches: int
    groups: int

    def to_json(self) -> dict[str, Any]:
        return {"pair_hops_sum": self.pair_hops_sum, "mean_hops": round(self.mean_hops, 6), "max_hops": self.max_hops,
                "leaf_switches": self.leaf_switches, "groups": self.groups}


@dataclass
class Placement:
    allocation: dict[str, int]  # host -> GPUs, fabric (natural) host order
    cost: Cost
    feasible: bool = True
    algorithm: str = ""
    optimal: bool = False  # proven optimal (exact DP or brute force)
    lower_bound: int | None = None  # on pair_hops_sum, when the result comes from a heuristic
    elapsed_ms: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def hosts(self) -> list[str]:
        return list(self.allocation)

    @property
    def total_gpus(self) -> int:
        return sum(self.allocation.values())
