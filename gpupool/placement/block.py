"""Placement under Slurm's topology/block: fewest base blocks, then fewest lower-level aggregated
blocks, inside the one aggregated block Slurm's rules allow, and Slurm's own choice beside it.

Slurm's rules (src/plugins/topology/block/eval_nodes_block.c), for a job of n nodes and base
blocks of B nodes: the job lives in ONE aggregated block of the lowest offered level
k >= ceil(log2(ceil(n / B))) (2**k consecutive base blocks; the whole cluster when no level is
that large). When that block is larger than the job needs, the job may also touch at most
ceil(n / (B * 2**j)) aggregated blocks of the highest offered level j below k ("llblocks").
A node list (`-w`) that breaks these rules is refused, so every plan here satisfies them.
Slurm then picks, among aggregated blocks with enough free nodes, the one with the fewest free
nodes (ties to the later one), and inside it base blocks one by one: one that fits the rest
(the smallest such), else the largest; nodes in node order. Weights, CPUs and required nodes
are not modelled (`slurm_block_reference`).

`--segment=S` (`details->segment_size`, eval_nodes_block() in the same file, 25.11.7; the 24.11 and
26.05 plugins' messages show where they differ): the node count n must be a multiple of S, else the
job is refused ("segment_size does not fit the job size"; 26.05 instead ignores an S larger than n,
and refuses a --gpus count not divisible by n / S, which gpupool's per-node GPU requests never are).
The job is then placed as n / S independent jobs of S nodes (`next_segment`: each segment runs the
whole evaluation above with rem_nodes = S on the free nodes minus those earlier segments took), so
the one-aggregated-block rule (`_get_block_level(S)`) and the llblock limit apply to each segment,
not the job: segments may lie in different aggregated blocks anywhere in the cluster. With S no
larger than a base block (24.11 refuses a larger S: "segment > bblock_node_cnt is not supported";
25.11 places such a segment in an aggregated block, not modelled here, so gpupool refuses it too),
every segment lies in ONE base block: Slurm picks the base block with the fewest free nodes >= S
(ties to the later one) and takes its first S free nodes in node order. A host set is therefore
accepted iff each base block holds a multiple of S of its nodes. A node list (`-w`) with more than
one segment is refused by 24.11 ("requires nodes with segment are not supported"); 25.11 accepts it
when it names exactly n nodes and restricts every segment to them, so gpupool pins with `-w` on
25.11+ and, before that, with `--exclude` of every other block node (the same free set Slurm's
segment search then sees). `--consolidate-segments` / `--spread-segments` (25.11+) are not modelled.
Only a request with a node count (`--nodes`/`--gpus-per-node`) can be segmented here: a bare GPU
count leaves n to the plan, which Slurm's min_nodes check cannot follow.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, NotRequired, TypedDict

import numpy as np

from gpupool.errors import BadRequest, Unsatisfiable, param
from gpupool.fabric.model import natural_key
from gpupool.placement.cost import cost_of_arrays
from gpupool.placement.engine import host_units
from gpupool.placement.model import FreeState, Placement, Request

if TYPE_CHECKING:
    from gpupool.fabric.blocks import BlockLayout
    from gpupool.fabric.compiled import CompiledFabric


@dataclass(frozen=True)
class BlockRule:
    """What Slurm allows a job of `nodes` nodes: one aggregated block of `width` base blocks
    (aligned), and at most `max_low` aggregated blocks of `low_width` base blocks when `limit_low`."""

    nodes: int
    level: int | None  # None: the whole cluster is one block
    width: int
    low_width: int
    max_low: int
    limit_low: bool


def block_rule(layout: BlockLayout, nodes: int) -> BlockRule:
    """Slurm's block level and lower-level limit for a job of `nodes` nodes (`_get_block_level`)."""
    per_block = -(-max(nodes, 1) // layout.base_size)
    raw = (per_block - 1).bit_length()  # ceil(log2(per_block))
    level = next((k for k in layout.levels if k >= raw), None)
    low = max((k for k in layout.levels if k < raw), default=0) if raw > 0 else 0
    width = len(layout.blocks) if level is None else 1 << level
    low_width = 1 << low
    max_low = -(-max(nodes, 1) // (low_width * layout.base_size))
    return BlockRule(nodes=nodes, level=level, width=width, low_width=low_width, max_low=max_low,
                     limit_low=width != low_width * max_low)


def check_segment(layout: BlockLayout, request: Request) -> int | None:
    """The request's --segment size once Slurm would accept it for this layout (module docstring);
    a size Slurm refuses is a BadRequest."""
    size = request.segment
    if size is None:
        return None
    units, _per_unit, per_node = request.shape()  # a size below 1 fails here
    if not per_node:
        raise BadRequest(f"{param('segment')} {size} needs a node count: give {param('nodes')} or {param('gpus_per_node')}")
    if size > layout.base_size:
        raise BadRequest(f"{param('segment')} {size} is larger than a base block ({layout.base_size} nodes): "
                         "Slurm's topology/block cannot keep such a segment in one base block")
    if units % size:
        raise BadRequest(f"{param('segment')} {size} does not divide the job's {units} node(s): Slurm refuses it")
    return size


class BlockUsage(TypedDict):
    """`plan`'s `blocks` figures (docs/contract.md)."""

    base_blocks: int
    block_names: list[str]
    aggregated_blocks: int
    level: int | None
    slurm_accepts: bool
    segment: NotRequired[int]


def block_usage(layout: BlockLayout, hosts: list[str], segment: int | None = None) -> BlockUsage:
    """How a host set sits in the blocks: base blocks, lower-level blocks and whether Slurm's rules
    for a job of that many nodes (in segments of `segment` nodes) accept it (`plan`'s `blocks`)."""
    owner = layout.block_of()
    used = sorted({owner[h] for h in hosts if h in owner})
    rule = block_rule(layout, len(hosts))
    groups = {b // rule.width for b in used}
    lows = {b // rule.low_width for b in used}
    outside = [h for h in hosts if h not in owner]
    if segment:
        per_block = [sum(1 for h in hosts if owner.get(h) == b) for b in used]
        ok = not outside and len(hosts) % segment == 0 and all(c % segment == 0 for c in per_block)
    else:
        ok = not outside and len(groups) <= 1 and (not rule.limit_low or len(lows) <= rule.max_low)
    doc: BlockUsage = {"base_blocks": len(used), "block_names": [layout.blocks[b][0] for b in used],
                       "aggregated_blocks": len(lows), "level": rule.level, "slurm_accepts": ok}
    if segment:
        doc["segment"] = segment
    return doc


def _block_hosts(compiled: CompiledFabric, layout: BlockLayout) -> list[np.ndarray]:
    """Fabric host indices of every base block, in Slurm's node order (natural name order)."""
    index = compiled.host_index()
    return [np.asarray([index[h] for h in sorted(hosts, key=natural_key) if h in index], dtype=np.int64)
            for _name, hosts in layout.blocks]


def _fill(group: list[int], cap: np.ndarray, need: int) -> list[tuple[int, int]] | None:
    """Fewest base blocks of `group` covering `need` units: the largest ones, the last one the
    smallest that still covers what is left. [(block, units taken)] or None."""
    order = sorted(group, key=lambda b: (-int(cap[b]), b))
    total, count = 0, 0
    for b in order:
        if total >= need:
            break
        total += int(cap[b])
        count += 1
    if total < need:
        return None
    chosen = order[:count - 1]
    left = need - sum(int(cap[b]) for b in chosen)
    last = min((b for b in order[count - 1:] if cap[b] >= left), key=lambda b: (int(cap[b]), b))
    return [(b, int(cap[b])) for b in chosen] + [(last, left)]


def _take(hosts: np.ndarray, units: np.ndarray, tie: np.ndarray, amount: int, per_node: bool,
          host_take: np.ndarray) -> None:
    """Take `amount` units from one block's hosts: whole hosts tightest first (per node), else
    the hosts with the most free GPUs first (fewest hosts)."""
    avail = hosts[units[hosts] > 0]
    if per_node:
        order = avail[np.lexsort((avail, tie[avail]))]
    else:
        order = avail[np.lexsort((avail, -units[avail]))]
    for h in order:
        if amount <= 0:
            break
        got = min(int(units[h]), amount)
        host_take[h] = got
        amount -= got


def place_block(compiled: CompiledFabric, free: FreeState, request: Request, layout: BlockLayout) -> Placement:
    """The placement with the fewest base blocks, then the fewest lower-level aggregated blocks, then
    the fullest aggregated block (less fragmentation), then the lowest pair_hops_sum, among those
    Slurm's block rules accept for the resulting node count (and within `request.max_hops`).
    With `request.segment` S: every base block holds a multiple of S chosen nodes, anywhere."""
    start = time.perf_counter()
    segment = check_segment(layout, request)
    units, need, unit_gpus, per_node = host_units(compiled, free, request)
    tie = np.where(units > 0, free.free_gpus, 0).astype(np.int64)
    block_hosts = _block_hosts(compiled, layout)
    cap = np.asarray([int(units[h].sum()) for h in block_hosts], dtype=np.int64)
    if segment:
        cap -= cap % segment  # a base block gives whole segments only
    nodes_free = np.asarray([int((units[h] > 0).sum()) for h in block_hosts], dtype=np.int64)
    n_blocks = len(block_hosts)
    widths = sorted({1 << k for k in layout.levels if (1 << k) < n_blocks} | {n_blocks})
    best: tuple[tuple[int, ...], np.ndarray] | None = None
    seen: set[tuple[int, ...]] = set()
    for width in widths:
        for first in range(0, n_blocks, width):
            fill = _fill(list(range(first, min(first + width, n_blocks))), cap, need)
            if fill is None:
                continue
            host_take = np.zeros(compiled.n_hosts, dtype=np.int64)
            for b, amount in fill:
                _take(block_hosts[b], units, tie, amount, per_node, host_take)
            chosen = np.nonzero(host_take)[0]
            signature = tuple(chosen.tolist())
            if signature in seen:
                continue
            seen.add(signature)
            rule = block_rule(layout, len(chosen))
            used = sorted({b for b, _a in fill})
            lows = len({b // rule.low_width for b in used})
            if segment:
                # each segment is its own job of S nodes in one base block: no job-wide block rule
                spare = int(nodes_free[first:first + width].sum()) - len(chosen)
            else:
                if len({b // rule.width for b in used}) > 1:
                    continue
                if rule.limit_low and lows > rule.max_low:
                    continue
                group = used[0] // rule.width
                spare = int(nodes_free[group * rule.width:(group + 1) * rule.width].sum()) - len(chosen)
            cost = cost_of_arrays(compiled, chosen, host_take[chosen] * unit_gpus)
            if request.max_hops is not None and cost.max_hops > request.max_hops:
                continue
            key = (len(used), lows, spare, cost.pair_hops_sum, int(tie[chosen].sum()))
            if best is None or key < best[0]:
                best = (key, host_take)
    if best is None:
        within = f" within {param('max_hops')} {request.max_hops}" if request.max_hops is not None else ""
        why = (f"the base blocks do not hold {need // segment} segment(s) of {segment} free nodes now" if segment
               else "no aggregated block of the size such a job needs has enough free nodes now")
        raise Unsatisfiable(f"cannot place {request.total_gpus} GPUs{within} under Slurm's topology/block rules (BlockSizes "
                              f"{','.join(map(str, layout.sizes))}): {why}")
    host_take = best[1]
    hosts = np.nonzero(host_take)[0]
    gpus = host_take[hosts] * unit_gpus
    allocation = {compiled.host_names[h]: int(g) for h, g in zip(hosts, gpus, strict=True)}
    return Placement(allocation=allocation, cost=cost_of_arrays(compiled, hosts, gpus), feasible=True,
                     algorithm="block", optimal=False, elapsed_ms=(time.perf_counter() - start) * 1000.0,
                     extra={"blocks": block_usage(layout, list(allocation), segment)})


def slurm_block_reference(compiled: CompiledFabric, free: FreeState, request: Request,
                          layout: BlockLayout) -> dict[str, int] | None:
    """What Slurm's topology/block would pick on the same state (see the module docstring); a GPU
    count without a node count is modelled as the fewest nodes of the largest free host."""
    segment = check_segment(layout, request)
    units, need, unit_gpus, per_node = host_units(compiled, free, request)
    block_hosts = _block_hosts(compiled, layout)
    avail = [h[units[h] > 0] for h in block_hosts]
    if segment:
        return _segment_reference(compiled, avail, need // segment, segment, unit_gpus)
    if per_node:
        nodes = need
    else:
        most = int(units.max()) if units.size else 0
        if most <= 0:
            return None
        nodes = -(-need // most)
    rule = block_rule(layout, nodes)
    n_blocks = len(block_hosts)
    count = np.asarray([a.size for a in avail], dtype=np.int64)
    low_count = np.zeros(-(-n_blocks // rule.low_width), dtype=np.int64)
    for b in range(n_blocks):
        low_count[b // rule.low_width] += count[b]
    group, group_nodes = -1, 0
    for g in range(-(-n_blocks // rule.width)):
        members = range(g * rule.width, min((g + 1) * rule.width, n_blocks))
        bnc = int(count[list(members)].sum())
        if rule.limit_low:
            lows = sorted({b // rule.low_width for b in members})
            enough = int(sum(sorted((int(low_count[x]) for x in lows), reverse=True)[:rule.max_low]))
        else:
            enough = bnc
        if enough < nodes:
            continue
        if group == -1 or bnc <= group_nodes:
            group, group_nodes = g, bnc
    if group == -1:
        return None
    group_blocks = list(range(group * rule.width, min((group + 1) * rule.width, n_blocks)))
    taken: dict[int, int] = {}
    required: set[int] = set()
    rem_nodes, rem_units, max_low = nodes, need, rule.max_low
    while rem_nodes > 0 and rem_units > 0:
        best, best_fit, best_same = -1, False, True
        for i in group_blocks:
            if i in required:
                continue
            best, best_fit, best_same = _choose(i, best, best_fit, best_same, count, low_count, rule,
                                                required, rem_nodes)
        if best == -1 or (max_low <= 0 and not best_same):
            break
        required.add(best)
        for h in avail[best]:
            if rem_nodes <= 0 or rem_units <= 0:
                break
            got = min(int(units[h]), rem_units) if not per_node else 1
            taken[int(h)] = got * unit_gpus
            rem_units -= got
            rem_nodes -= 1
        if not best_same:
            max_low -= 1
    if rem_units > 0:
        return None
    return {compiled.host_names[h]: g for h, g in sorted(taken.items())}


def _segment_reference(compiled: CompiledFabric, avail: list[np.ndarray], segments: int, size: int,
                       unit_gpus: int) -> dict[str, int] | None:
    """Slurm's segment loop for S <= base block size: each segment takes the first S free nodes of
    the base block with the fewest free nodes >= S (ties to the later block), one after another."""
    left = [list(a.tolist()) for a in avail]
    taken: list[int] = []
    for _ in range(segments):
        best = -1
        for b, hosts in enumerate(left):
            if len(hosts) >= size and (best == -1 or len(hosts) <= len(left[best])):
                best = b
        if best == -1:
            return None
        taken += left[best][:size]
        left[best] = left[best][size:]
    return {compiled.host_names[h]: unit_gpus for h in sorted(taken)}


def _choose(i: int, best: int, best_fit: bool, best_same: bool, count: np.ndarray, low_count: np.ndarray,
            rule: BlockRule, required: set[int], rem: int) -> tuple[int, bool, bool]:
    """One step of Slurm's `_choose_best_bblock`: returns the new (best, best_fit, best_same)."""
    fit = bool(count[i] >= rem)
    low = rule.low_width
    if rule.limit_low and (best < 0 or best // low != i // low):
        same = any(j // low == i // low for j in required)
        if best < 0 or (same and not best_same):
            return i, fit, same
        if not same and best_same:
            return best, best_fit, best_same
        mine, theirs = int(low_count[i // low]), int(low_count[best // low])
        if (mine >= rem) != (theirs >= rem):
            return (i, fit, same) if mine >= rem else (best, best_fit, best_same)
        if mine != theirs:
            better = mine < theirs if mine >= rem else mine > theirs
            return (i, fit, same) if better else (best, best_fit, best_same)
    if (best < 0 or (fit and not best_fit) or (not fit and not best_fit and count[i] >= count[best])
            or (fit and count[i] <= count[best])):
        return i, fit, best_same
    return best, best_fit, best_same
