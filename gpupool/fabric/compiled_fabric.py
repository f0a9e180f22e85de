"""The compiled fabric itself: flat NumPy arrays and the queries on them (no compiler, no cache).

gpupool.fabric.compiled builds it from a Fabric and loads it through gpupool.fabric.cache; both, and
the NVLink helpers, import it from here, so the record depends on neither of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gpupool.fabric.kinds import FabricKind

UNREACHABLE = 32767


@dataclass
class CompiledFabric:
    host_names: list[str]
    switch_names: list[str]
    switch_node: np.ndarray  # int32[S]: node index in Fabric.nodes
    host_leaf_ptr: np.ndarray  # int32[H+1]: CSR host -> adjacent switches
    host_leaf_idx: np.ndarray  # int32[nnz]
    adj_ptr: np.ndarray  # int32[V+1]: CSR of the transit graph (switches, then multi-rail hosts)
    adj_idx: np.ndarray  # int32[2E]
    hop: np.ndarray  # int16[S,S] switch hop counts, UNREACHABLE where disconnected
    switch_level: np.ndarray  # int16[S]: 1 = leaf, up/down layering (fabric.structure); 0 = unreachable
    switch_group: np.ndarray  # int32[S]: dragonfly group, -1 otherwise
    host_class: np.ndarray  # int32[H]: hosts with identical adjacent-switch sets share a class
    tree_parent: np.ndarray  # int32[T]: logical tree (level-1 = leaf groups); -1 at roots
    tree_level: np.ndarray  # int16[T]
    tree_names: list[str]
    host_tree_leaf: np.ndarray  # int32[H]: logical level-1 tree node of each host
    switch_tree_node: np.ndarray  # int32[S]: logical tree node each switch was merged into (-1 none)
    # float64[T]: Gb/s of the switch cables between a tree node's subtree and the rest of the fabric (its
    # uplink bundle: leaf->spine cables of a leaf, spine->core of a pod, a dragonfly group's global links); 0 at roots
    tree_uplink_gbps: np.ndarray
    host_gbps: np.ndarray  # float64[H]: a host's injection rate, the Gb/s of all its HCA cables
    kind: FabricKind  # str-valued: "fat-tree" | "dragonfly" | "graph" in JSON and the cache
    ultrametric: bool  # d(a,b) == 2 * tree_level(lca(a,b)) for all host pairs
    meta: dict[str, Any] = field(default_factory=dict)
    # Multi-node NVLink domains (fabric.nvlink): per host its domain index, -1 for none.
    host_domain: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))
    domain_names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        # The cache stores the kind as its string value; hand every reader the enum.
        self.kind = FabricKind(self.kind)

    @property
    def n_hosts(self) -> int:
        return len(self.host_names)

    @property
    def n_switches(self) -> int:
        return len(self.switch_names)

    def host_index(self) -> dict[str, int]:
        return {h: i for i, h in enumerate(self.host_names)}

    def leaves_of(self, host: int) -> np.ndarray:
        return self.host_leaf_idx[self.host_leaf_ptr[host]:self.host_leaf_ptr[host + 1]]

    def host_distance(self, a: int, b: int) -> int:
        """d(a, b) per docs/contract.md: 0 for a == b, else 2 + min switch hops between their switches."""
        if a == b:
            return 0
        la, lb = self.leaves_of(a), self.leaves_of(b)
        if la.size == 0 or lb.size == 0:
            return UNREACHABLE
        best = int(self.hop[np.ix_(la, lb)].min())
        return UNREACHABLE if best >= UNREACHABLE else best + 2

    def leaf_switch_count(self, hosts: list[int]) -> int:
        leaves: set[int] = set()
        for h in hosts:
            leaves.update(int(x) for x in self.leaves_of(h))
        return len(leaves)

    def has_nvlink_domains(self) -> bool:
        return bool(self.domain_names)

    def n_groups(self) -> int:
        return int(self.switch_group.max()) + 1 if self.switch_group.size else 0
