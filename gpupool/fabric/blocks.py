"""Blocks as Slurm's topology/block sees them (23.11+), built from the fabric or read from Slurm's files.

A *base block* is one (logical) leaf group with its hosts; base blocks are listed in fabric order
(depth-first over the logical tree), so consecutive blocks share a scalable unit (pod, spine group,
dragonfly group). Slurm aggregates 2**k consecutive base blocks into a block of level k when
`BlockSizes` names base_size * 2**k; `BlockSizes` is chosen from the fabric: level k is offered
only when no aggregated block of that level straddles a scalable-unit boundary it could have
fitted inside, plus the whole cluster (src/plugins/topology/block/block_record.c reads them).
On a fabric with multi-node NVLink domains (fabric.nvlink: GB200/GB300 NVL72), a base block is one
NVLink domain instead (NVIDIA's and SchedMD's advice for such racks): BlockSizes starts at the domain
size, no block straddles a domain, and hosts outside every domain are in no block.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gpupool.errors import BadInput
from gpupool.fabric.model import natural_key
from gpupool.hostlist import expand

if TYPE_CHECKING:
    from gpupool.fabric.compiled import CompiledFabric


@dataclass(frozen=True)
class BlockLayout:
    """Base blocks in Slurm's order, the base block size and the aggregation levels Slurm offers."""

    blocks: tuple[tuple[str, tuple[str, ...]], ...]  # (block name, host names)
    base_size: int  # nodes per base block for planning (BlockSizes' first value)
    levels: tuple[int, ...]  # allowed aggregation levels k (BlockSizes = base_size * 2**k), ascending
    source: str = "fabric"  # where the layout came from: fabric, topology.conf, topology.yaml

    @property
    def sizes(self) -> list[int]:
        return [self.base_size << k for k in self.levels]

    def block_of(self) -> dict[str, int]:
        """host -> base block index."""
        return {host: b for b, (_name, hosts) in enumerate(self.blocks) for host in hosts}

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "base_blocks": len(self.blocks), "block_sizes": self.sizes}


def _tree_order_leaves(compiled: CompiledFabric) -> list[int]:
    """Logical leaves carrying hosts, depth-first with children in natural name order."""
    children: dict[int, list[int]] = {}
    roots: list[int] = []
    for t, p in enumerate(compiled.tree_parent.tolist()):
        (children.setdefault(p, []) if p >= 0 else roots).append(t)
    has_hosts = {int(t) for t in compiled.host_tree_leaf.tolist() if t >= 0}
    order: list[int] = []
    stack = sorted(roots, key=lambda t: natural_key(compiled.tree_names[t]), reverse=True)
    while stack:
        t = stack.pop()
        if t in has_hosts:
            order.append(t)
        stack += sorted(children.get(t, []), key=lambda c: natural_key(compiled.tree_names[c]), reverse=True)
    return order


def fabric_blocks(compiled: CompiledFabric) -> BlockLayout:
    """The fabric's base blocks (one per logical leaf, or one per NVLink domain) and the BlockSizes
    its structure supports."""
    leaves = _tree_order_leaves(compiled)
    hosts: dict[int, list[str]] = {}
    for h, leaf in enumerate(compiled.host_tree_leaf.tolist()):
        if leaf >= 0:
            hosts.setdefault(leaf, []).append(compiled.host_names[h])
    if compiled.has_nvlink_domains():
        return _domain_blocks(compiled, leaves)
    blocks = tuple((compiled.tree_names[t], tuple(hosts[t])) for t in leaves)
    if not blocks:
        raise BadInput("the fabric has no compute host: there is no block to build")
    return _with_levels(compiled, blocks, [[t] for t in leaves])


def _domain_blocks(compiled: CompiledFabric, leaves: list[int]) -> BlockLayout:
    """One base block per NVLink domain, in fabric order (the leaf its first host sits under, then
    host order); a domain is a child of that leaf in the aggregation structure (-1 - index as key)."""
    rank = {t: i for i, t in enumerate(leaves)}
    members: dict[int, list[int]] = {}
    for h, d in enumerate(compiled.host_domain.tolist()):
        if d >= 0:
            members.setdefault(d, []).append(h)
    order = sorted(members, key=lambda d: (rank.get(int(compiled.host_tree_leaf[members[d][0]]), len(rank)),
                                           members[d][0]))
    blocks = tuple((compiled.domain_names[d], tuple(compiled.host_names[h] for h in members[d])) for d in order)
    chains = [[-1 - d, int(compiled.host_tree_leaf[members[d][0]])] for d in order]
    return _with_levels(compiled, blocks, [c if c[1] >= 0 else c[:1] for c in chains])


def _with_levels(compiled: CompiledFabric, blocks: tuple[tuple[str, tuple[str, ...]], ...],
                 bottoms: list[list[int]]) -> BlockLayout:
    """BlockSizes for base blocks whose ancestor chains start with `bottoms` and go up the logical tree."""
    base = min(len(h) for _n, h in blocks)
    total = sum(len(h) for _n, h in blocks)
    parent = compiled.tree_parent.tolist()
    under: dict[int, int] = {}  # logical switch (or domain) -> base blocks below it
    ancestors: list[list[int]] = []
    for bottom in bottoms:
        chain = list(bottom)
        while chain[-1] >= 0 and parent[chain[-1]] >= 0:
            chain.append(parent[chain[-1]])
        ancestors.append(chain)
        for a in chain:
            under[a] = under.get(a, 0) + 1
    levels = [0]
    k = 1
    while (base << k) <= total:
        if (1 << k) >= len(blocks) or _aligned(ancestors, under, 1 << k):
            levels.append(k)
        k += 1
    return BlockLayout(blocks=blocks, base_size=base, levels=tuple(levels))


def _aligned(ancestors: list[list[int]], under: Mapping[int, int], width: int) -> bool:
    """No aligned group of `width` consecutive base blocks spreads over several subtrees when one of
    those subtrees could have held a whole group (it would straddle a scalable unit)."""
    for start in range(0, len(ancestors) - width + 1, width):
        group = ancestors[start:start + width]
        common = set(group[0]).intersection(*map(set, group[1:]))
        for chain in group:
            pos = next((i for i, a in enumerate(chain) if a in common), len(chain))
            child = chain[pos - 1]  # the subtree below the common ancestor this block sits in
            if under[child] >= width:
                return False
    return True


def _levels_from_sizes(sizes: Sequence[int], where: str) -> tuple[int, tuple[int, ...]]:
    base = sizes[0]
    levels = []
    for size in sizes:
        if size <= 0 or size % base or (size // base) & (size // base - 1):
            raise BadInput(f"{where}: BlockSizes {','.join(map(str, sizes))}: each size must be the first "
                             "times a power of two (Slurm refuses it)")
        levels.append((size // base).bit_length() - 1)
    return base, tuple(sorted(set(levels)))


def _layout(blocks: list[tuple[str, tuple[str, ...]]], sizes: Sequence[int] | None, source: str) -> BlockLayout:
    if not blocks:
        raise BadInput(f"{source}: no block")
    smallest = min(len(h) for _n, h in blocks)
    if sizes:
        base, levels = _levels_from_sizes(list(sizes), source)
        if smallest < base:
            raise BadInput(f"{source}: a block has {smallest} nodes, fewer than the base block size {base}")
    else:  # Slurm's default: the first block's node count, levels 0-4
        base, levels = len(blocks[0][1]), (0, 1, 2, 3, 4)
    return BlockLayout(blocks=tuple(blocks), base_size=base, levels=levels, source=source)


def blocks_from_topology_conf(text: str) -> BlockLayout:
    """A topology.conf for topology/block: `BlockName=... Nodes=...` lines and `BlockSizes=`."""
    blocks: list[tuple[str, tuple[str, ...]]] = []
    sizes: list[int] | None = None
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        fields = dict(re.findall(r"(\w+)=(\S+)", line))
        fields = {k.lower(): v for k, v in fields.items()}
        if "blockname" in fields:
            blocks.append((fields["blockname"], tuple(expand(fields.get("nodes", "")))))
        elif "blocksizes" in fields:
            try:
                sizes = [int(s) for s in fields["blocksizes"].split(",")]
            except ValueError:
                raise BadInput(f"topology.conf: BlockSizes={fields['blocksizes']} is not a list of numbers") from None
    return _layout(blocks, sizes, "topology.conf")


def blocks_from_topology_yaml(text: str, topology: str | None = None) -> BlockLayout:
    """The block topology `topology` (else the first block topology) of a topology.yaml."""
    import yaml  # only commands that meet a topology.yaml pay for PyYAML

    doc = yaml.safe_load(text) or []
    for entry in doc if isinstance(doc, list) else []:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("block"), Mapping):
            continue
        if topology and str(entry.get("topology")) != topology:
            continue
        section = entry["block"]
        blocks = [(str(b.get("block")), tuple(expand(str(b.get("nodes") or ""))))
                  for b in section.get("blocks") or [] if isinstance(b, Mapping)]
        sizes = section.get("block_sizes")
        return _layout(blocks, [int(s) for s in sizes] if sizes else None, "topology.yaml")
    raise BadInput(f"topology.yaml has no block topology{f' named {topology!r}' if topology else ''}")
