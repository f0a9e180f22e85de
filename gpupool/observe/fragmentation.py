"""Fragmentation of the free GPUs, measured against the job shapes a site runs.

Definitions (docs/observe.md and docs/contract.md hold the user-facing text):

- A *shape* of s GPUs is a single-host job when s < K (K = GPUs per node): it needs one host
  with at least s free GPUs. When s is a multiple of K it is a whole-node job: s/K hosts, each
  with at least K free GPUs (a *whole-free* host).
- A *leaf* is a level-1 node of the compiled fabric's logical tree (leaf switches joined by
  multi-rail hosts); a *pod* is its level-2 ancestor (the spine group; a dragonfly group), or the
  leaf itself when the tree has one level; *anywhere* is the tree root (one connected fabric).
- A shape *fits within* a scope when one leaf / pod / root alone holds the hosts it needs.
- A free GPU is *stranded for a shape* when that shape cannot use it without crossing its leaf:
  single-host shapes strand the GPUs of hosts with fewer than s free; whole-node shapes strand
  the GPUs of hosts that are not whole-free, and of whole-free hosts in leaves with fewer than
  s/K whole-free hosts. A GPU is *stranded* when it is stranded for every listed shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from gpupool.errors import BadRequest, param

if TYPE_CHECKING:
    from gpupool.fabric.compiled import CompiledFabric
    from gpupool.placement.model import FreeState

DEFAULT_SHAPES = (1, 2, 3, 4, 8, 16, 32, 64, 128, 256)
DEFAULT_GPUS_PER_NODE = 8
SCOPES = ("leaf", "pod", "anywhere")


@dataclass(frozen=True)
class Shape:
    gpus: int
    hosts: int  # whole-node shapes: hosts needed; single-host shapes: 1
    whole_nodes: bool

    @property
    def kind(self) -> str:
        return "whole-node" if self.whole_nodes else "single-host"


def parse_shapes(text: str | None, gpus_per_node: int) -> list[Shape]:
    """`8,16,32` -> shapes; a size below K is a single-host job, a multiple of K is whole nodes."""
    if gpus_per_node <= 0:
        raise BadRequest(f"{param('gpus_per_node')} must be a positive number, got {gpus_per_node}")
    if text is None:
        sizes = list(DEFAULT_SHAPES)
    else:
        sizes = []
        for item in text.split(","):
            item = item.strip()
            if not item.isdigit() or int(item) <= 0:
                raise BadRequest(f"{param('shapes')}: {item!r} is not a positive number of GPUs")
            sizes.append(int(item))
    shapes: list[Shape] = []
    for s in sorted(set(sizes)):
        if s < gpus_per_node:
            shapes.append(Shape(s, 1, False))
        elif s % gpus_per_node == 0:
            shapes.append(Shape(s, s // gpus_per_node, True))
        else:
            raise BadRequest(f"{param('shapes')}: {s} GPUs is neither below nor a multiple of {gpus_per_node} GPUs per node")
    return shapes


def gpus_per_node_of(free: FreeState, option: int | None) -> int:
    """K: the option, else the most common configured GPU count of the hosts (Slurm), else 8."""
    if option is not None:
        if option <= 0:
            raise BadRequest(f"{param('gpus_per_node')} must be a positive number, got {option}")
        return option
    totals = free.total_gpus
    if totals is not None:
        values = np.asarray(totals, dtype=np.int64)
        values = values[values > 0]
        if values.size:
            return int(np.bincount(values).argmax())
    return DEFAULT_GPUS_PER_NODE


@dataclass(frozen=True)
class LeafFree:
    name: str
    pod: str
    hosts: int
    free_gpus: int
    whole_free_hosts: int
    capacity_gpus: int  # configured GPUs when known, else hosts x K


@dataclass(frozen=True)
class ShapeFit:
    shape: Shape
    fits: dict[str, bool]  # scope -> fits now within one unit of that scope
    jobs_within_leaf: int  # how many such jobs could start at once, none crossing a leaf
    stranded_gpus: int  # free GPUs this shape cannot use without crossing their leaf


@dataclass(frozen=True)
class Fragmentation:
    gpus_per_node: int
    free_gpus: int
    shapes: list[ShapeFit]
    largest: dict[str, int]  # scope -> GPUs of the largest listed shape that fits (0: none)
    largest_whole_node_gpus: dict[str, int]  # scope -> most whole-free GPUs inside one unit
    stranded_gpus: int
    leaves: list[LeafFree]
    # Stranded for every listed whole-node shape (None: none listed): with 1-GPU jobs among the
    # shapes `stranded_gpus` is 0 by definition, this says what multi-node jobs cannot use.
    stranded_gpus_whole_node: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "gpus_per_node": self.gpus_per_node,
            "free_gpus": self.free_gpus,
            "largest": dict(self.largest),
            "largest_whole_node_gpus": dict(self.largest_whole_node_gpus),
            "stranded_gpus": self.stranded_gpus,
            "stranded_gpus_whole_node": self.stranded_gpus_whole_node,
            "shapes": [{"gpus": f.shape.gpus, "kind": f.shape.kind, "hosts": f.shape.hosts, "fits": dict(f.fits),
                        "jobs_within_leaf": f.jobs_within_leaf, "stranded_gpus": f.stranded_gpus}
                       for f in self.shapes],
            "leaves": [{"name": leaf.name, "pod": leaf.pod, "hosts": leaf.hosts, "free_gpus": leaf.free_gpus,
                        "whole_free_hosts": leaf.whole_free_hosts, "capacity_gpus": leaf.capacity_gpus}
                       for leaf in self.leaves],
        }


def _ancestors(compiled: CompiledFabric) -> tuple[np.ndarray, np.ndarray]:
    """For every tree node: its pod (level-2 ancestor, else itself) and its root."""
    parent = compiled.tree_parent
    level = compiled.tree_level
    n = parent.size
    pod = np.arange(n, dtype=np.int64)
    root = np.arange(n, dtype=np.int64)
    for t in range(n):
        p = t
        while parent[p] >= 0:
            p = int(parent[p])
            if int(level[p]) == 2:
                pod[t] = p
        root[t] = p
    return pod, root


def measure(compiled: CompiledFabric, free: FreeState, shapes: list[Shape],
            gpus_per_node: int = DEFAULT_GPUS_PER_NODE) -> Fragmentation:
    """Every fragmentation figure for one free state (hosts not attached to a leaf are ignored)."""
    k = gpus_per_node
    host_free = np.where(free.usable, free.free_gpus, 0).astype(np.int64)
    leaf = compiled.host_tree_leaf.astype(np.int64)
    attached = leaf >= 0
    host_free = np.where(attached, host_free, 0)
    n_tree = compiled.tree_parent.size
    pod_of, root_of = _ancestors(compiled)
    whole = (host_free >= k) & attached
    safe_leaf = np.where(attached, leaf, 0)

    leaf_free = np.bincount(safe_leaf, weights=host_free, minlength=n_tree).astype(np.int64)
    leaf_whole = np.bincount(safe_leaf, weights=whole, minlength=n_tree).astype(np.int64)
    leaf_hosts = np.bincount(safe_leaf[attached], minlength=n_tree).astype(np.int64)
    leaf_max_host = np.zeros(n_tree, dtype=np.int64)
    np.maximum.at(leaf_max_host, safe_leaf, host_free)

    def per_scope(values: np.ndarray, how: str) -> dict[str, np.ndarray]:
        out = {"leaf": values}
        for scope, up in (("pod", pod_of), ("anywhere", root_of)):
            agg = np.zeros(n_tree, dtype=np.int64)
            if how == "sum":
                np.add.at(agg, up, values)
            else:
                np.maximum.at(agg, up, values)
            out[scope] = agg
        return out

    whole_by = per_scope(leaf_whole, "sum")
    max_host_by = per_scope(leaf_max_host, "max")

    fits: list[ShapeFit] = []
    stranded_mask = np.ones(compiled.n_hosts, dtype=np.bool_) & (host_free > 0)
    whole_stranded_mask = stranded_mask.copy()
    for shape in shapes:
        if shape.whole_nodes:
            scope_fit = {s: bool((whole_by[s] >= shape.hosts).any()) for s in SCOPES}
            jobs = int((leaf_whole // shape.hosts).sum())
            usable_host = whole & (leaf_whole[safe_leaf] >= shape.hosts)
        else:
            scope_fit = {s: bool((max_host_by[s] >= shape.gpus).any()) for s in SCOPES}
            jobs = int((host_free // shape.gpus).sum())
            usable_host = host_free >= shape.gpus
        stranded_mask &= ~usable_host
        if shape.whole_nodes:
            whole_stranded_mask &= ~usable_host
        fits.append(ShapeFit(shape, scope_fit, jobs, int(host_free[~usable_host].sum())))

    largest = {s: max((f.shape.gpus for f in fits if f.fits[s]), default=0) for s in SCOPES}
    largest_whole = {s: int(whole_by[s].max()) * k if n_tree else 0 for s in SCOPES}

    totals = free.total_gpus
    leaves: list[LeafFree] = []
    for t in range(n_tree):
        if int(compiled.tree_level[t]) != 1 or leaf_hosts[t] == 0:
            continue
        members = attached & (leaf == t)
        capacity = int(totals[members].sum()) if totals is not None else int(leaf_hosts[t]) * k
        leaves.append(LeafFree(name=compiled.tree_names[t], pod=compiled.tree_names[int(pod_of[t])],
                               hosts=int(leaf_hosts[t]), free_gpus=int(leaf_free[t]),
                               whole_free_hosts=int(leaf_whole[t]), capacity_gpus=capacity))
    return Fragmentation(gpus_per_node=k, free_gpus=int(host_free.sum()), shapes=fits, largest=largest,
                         largest_whole_node_gpus=largest_whole, stranded_gpus=int(host_free[stranded_mask].sum()),
                         leaves=leaves,
                         stranded_gpus_whole_node=int(host_free[whole_stranded_mask].sum())
                         if any(sh.whole_nodes for sh in shapes) else None)
