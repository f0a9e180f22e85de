"""What Slurm 22.05's select/cons_tres would pick on the same state, for side-by-side comparison.

Modelled on `_eval_nodes_topo` (topology/tree) and `_eval_nodes_dfly` (TopologyParam=dragonfly) in
src/plugins/select/cons_tres/job_test.c, with Slurm's switches = the fabric's logical tree (what
`fabric export --format slurm-tree` writes) and nodes in host order:
- tree: the top switch is the highest-level switch with enough available nodes; leaf switches are
  then added one at a time, each the one with the least summed distance to the leaves already
  chosen, ties to the tightest fit (`_topo_choose_best_switch` / `_topo_compare_switches`); inside a
  leaf, nodes are taken in bitmap (host) order, each giving its free GPUs up to what is still needed.
- dragonfly: the leaf with the most available nodes if it alone suffices, else one node per leaf
  switch, round-robin over the leaves.
- node weights (`weights=`, optional, one per host; Slurm's `Weight=`): the top switch is, among
  those with enough nodes, of the highest level *and* of the lowest weight present; then weight tiers
  are added lowest first until they hold the request; every available node of the lower tiers is
  taken (Slurm treats them as required), then the rest of the last tier on the leaves those nodes
  already use, then further leaves as above, over the last tier's nodes. Read from 25.11's
  src/plugins/topology/tree/eval_nodes_tree.c (the weight logic is as in 22.05's job_test.c, where
  the tree part is taken from: no `_decrement_node_cnt` on upper switches). All weights equal, or
  none given, is exactly the unweighted selection.
- whole-job `--gpus=N` (no node count): the nodes are tiered by the GPUs each can give, min(free, N),
  most first, and chosen as with node weights (a partly used node is taken only when the better
  tiers cannot hold the job). Measured against 22.05's `sbatch --test-only` (scripts/
  calibrate_slurm_tree.py --form gpus), not read from its source.
Required nodes and CPU counts are not modelled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from gpupool.fabric.kinds import FabricKind
from gpupool.placement.engine import host_units
from gpupool.placement.model import FreeState, Request

if TYPE_CHECKING:
    from gpupool.fabric.compiled import CompiledFabric

INFINITE = 1 << 40


class _Tree:
    def __init__(self, compiled: CompiledFabric) -> None:
        self.parent = [int(p) for p in compiled.tree_parent]
        self.level = [int(x) - 1 for x in compiled.tree_level]  # Slurm levels: leaves are 0
        self.leaves = [t for t, lv in enumerate(self.level) if lv == 0]
        self.ancestors: list[list[int]] = []
        for t in range(len(self.parent)):
            chain = [t]
            while self.parent[chain[-1]] >= 0:
                chain.append(self.parent[chain[-1]])
            self.ancestors.append(chain)

    def up(self, t: int) -> int:
        """Slurm's parent: a root is its own parent."""
        return self.parent[t] if self.parent[t] >= 0 else t

    def distance(self, a: int, b: int) -> int:
        """Hops between two switches through their lowest common ancestor (INFINITE if none)."""
        if a == b:
            return 0
        seen = {t: k for k, t in enumerate(self.ancestors[a])}
        for k, t in enumerate(self.ancestors[b]):
            if t in seen:
                return seen[t] + k
        return INFINITE


def _prepare(compiled: CompiledFabric, free: FreeState, request: Request
             ) -> tuple[_Tree, np.ndarray, int, int, int, bool, list[int]]:
    units, need, unit_gpus, per_node = host_units(compiled, free, request)
    tree = _Tree(compiled)
    node_cnt = [0] * len(tree.parent)
    for h in np.nonzero(units)[0]:
        t = int(compiled.host_tree_leaf[h])
        while t >= 0:
            node_cnt[t] += 1
            t = tree.parent[t]
    return tree, units, need, unit_gpus, (need if per_node else 1), per_node, node_cnt


def whole_job_gpus_tiers(units: np.ndarray, need: int) -> np.ndarray:
    """For sbatch's whole-job `--gpus=N` (no node count), Slurm 22.05 behaves as if the nodes were weighted
    by the GPUs each can give the job, min(free, N), most first: it takes the nodes of the best tiers whole
    and chooses among the last tier's nodes by topology, as with node Weight= (`_weight_tiers`). Measured,
    not read from the source: scripts/calibrate_slurm_tree.py --form gpus against sbatch --test-only."""
    give = np.minimum(units, need).astype(np.int64)
    top = int(give.max()) if give.size else 0
    return np.where(give > 0, top - give, top).astype(np.int64)


def _subtree_of(tree: _Tree, top: int, t: int) -> bool:
    return top in tree.ancestors[t]


def _take_nodes(compiled: CompiledFabric, leaf: int, units: np.ndarray, taken: dict[int, int],
                state: list[int], per_node: bool, one: bool = False) -> None:
    """Take available nodes of `leaf` in host order; state = [remaining units, remaining nodes]."""
    for h in np.nonzero((compiled.host_tree_leaf == leaf) & (units > 0))[0]:
        h = int(h)
        if h in taken:
            continue
        g = 1 if per_node else min(int(units[h]), state[0])
        if g <= 0:
            continue
        taken[h] = g
        state[0] -= g
        state[1] -= 1
        if state[0] <= 0 and state[1] <= 0:
            return
        if one:
            return


def _result(compiled: CompiledFabric, taken: dict[int, int], unit_gpus: int) -> dict[str, int]:
    return {compiled.host_names[h]: g * unit_gpus for h, g in sorted(taken.items())}


def slurm_tree_reference(compiled: CompiledFabric, free: FreeState, request: Request,
                         weights: np.ndarray | None = None, gpus_tiers: bool = True) -> dict[str, int] | None:
    """Slurm topology/tree's allocation {host: gpus}, or None when Slurm would not start the job now.

    `weights`: Slurm's node Weight= per host (None: all equal). `gpus_tiers`: a whole-job `--gpus=N`
    request (no node count) tiers the nodes by the GPUs they can give (`whole_job_gpus_tiers`, measured
    on 22.05 without node weights; with weights, weight first and then these tiers, which is not
    measured); False keeps the earlier model (every node with a free GPU alike), which the simulator's
    slurm-tree and slurm-tuned policies still use so that their published figures stay comparable."""
    tree, units, need, unit_gpus, rem_nodes, per_node, node_cnt = _prepare(compiled, free, request)
    if gpus_tiers and not per_node and request.nodes is None:
        tiers = whole_job_gpus_tiers(units, need)
        # Equal weights keep the tiers as they are: the same choice as no weights.
        weights = tiers if weights is None else np.asarray(weights, dtype=np.int64) * (int(tiers.max()) + 1) + tiers
    lowest = _lowest_weights(compiled, tree, units, weights)
    top = -1
    for t in range(len(tree.parent)):
        if node_cnt[t] >= rem_nodes and node_cnt[t] > 0 and (
                top == -1 or (tree.level[t] >= tree.level[top] and lowest[t] <= lowest[top])):
            top = t
    if top < 0:
        return None
    in_top = [t for t in tree.leaves if _subtree_of(tree, top, t)]
    under = np.isin(compiled.host_tree_leaf, in_top)
    if int(units[under].sum()) < need:
        return None
    taken: dict[int, int] = {}
    state = [need, rem_nodes]
    dist = {t: 0 for t in in_top}
    cnt = {t: node_cnt[t] for t in range(len(tree.parent)) if _subtree_of(tree, top, t)}
    candidates = in_top
    if weights is not None:
        best_units, lower = _weight_tiers(units * under, need, rem_nodes, weights)
        units = best_units
        if lower.size:
            # The lower tiers' nodes are all taken, as required nodes, in bitmap order.
            for h in lower.tolist():
                g = 1 if per_node else int(units[h])
                taken[h] = g
                state[0] -= g
                state[1] -= 1
            used = sorted({int(compiled.host_tree_leaf[h]) for h in lower.tolist()})
            for leaf in used:  # then what the last tier has on the leaves already used
                _take_nodes(compiled, leaf, units, taken, state, per_node)
                if state[0] <= 0 and state[1] <= 0:
                    return _result(compiled, taken, unit_gpus)
            required = set(used)
            for leaf in used:
                required.update(tree.ancestors[leaf])
            for s in required:
                for t in in_top:
                    d = tree.distance(s, t)
                    dist[t] = INFINITE if d >= INFINITE or dist[t] >= INFINITE else dist[t] + d
            candidates = [t for t in in_top if t not in required]
        # Switch counts are over the considered nodes only (Slurm ands each switch with them).
        cnt = {t: 0 for t in cnt}
        for h in np.nonzero(units > 0)[0].tolist():
            t = int(compiled.host_tree_leaf[h])
            while t >= 0:
                if t in cnt:
                    cnt[t] += 1
                t = tree.parent[t]
    while state[0] > 0 or state[1] > 0:
        best = -1
        for t in candidates:
            best = _choose_best(tree, dist, cnt, state[1], t, best)
        if best < 0:
            return None
        for t in in_top:
            d = tree.distance(best, t)
            dist[t] = INFINITE if d >= INFINITE or dist[t] >= INFINITE else dist[t] + d
        _take_nodes(compiled, best, units, taken, state, per_node)
        cnt[best] = 0
    return _result(compiled, taken, unit_gpus)


def _lowest_weights(compiled: CompiledFabric, tree: _Tree, units: np.ndarray, weights: np.ndarray | None) -> list[int]:
    """Per switch, the lowest weight among its available nodes (0 everywhere without weights)."""
    lowest = [0] * len(tree.parent)
    if weights is None:
        return lowest
    lowest = [INFINITE] * len(tree.parent)
    for h in np.nonzero(units)[0].tolist():
        w = int(weights[h])
        t = int(compiled.host_tree_leaf[h])
        while t >= 0:
            lowest[t] = min(lowest[t], w)
            t = tree.parent[t]
    return lowest


def _weight_tiers(units: np.ndarray, need: int, rem_nodes: int, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(units of the nodes Slurm considers, the lower tiers' hosts it takes whole): weight tiers are
    added lowest first until their nodes hold the request."""
    available = units > 0
    best = np.zeros(units.size, dtype=bool)
    lower = np.zeros(units.size, dtype=bool)
    for w in np.unique(weights[available]).tolist():
        if best.any():
            lower |= best
        best |= available & (weights == w)
        if int(best.sum()) >= rem_nodes and int(units[best].sum()) >= need:
            break
    return np.where(best, units, 0), np.nonzero(lower)[0]


def _choose_best(tree: _Tree, dist: dict[int, int], cnt: dict[int, int], rem_nodes: int, i: int, best: int) -> int:
    if best == -1 or dist[i] >= INFINITE or not cnt[i]:
        return i if (best == -1 and cnt[i] and dist[i] < INFINITE) else best
    tcs = _compare(tree, i, best, rem_nodes, cnt)
    if (dist[i] < dist[best] and tcs >= 0) or (dist[i] == dist[best] and tcs > 0):
        return i
    return best


def _compare(tree: _Tree, i: int, j: int, rem_nodes: int, cnt: dict[int, int]) -> int:
    """Slurm's _topo_compare_switches: 1 when i is the better (tighter fitting) switch."""
    while True:
        i_fit = cnt.get(i, 0) >= rem_nodes
        j_fit = cnt.get(j, 0) >= rem_nodes
        if i_fit and j_fit:
            if cnt.get(i, 0) < cnt.get(j, 0):
                return 1
            if cnt.get(i, 0) > cnt.get(j, 0):
                return -1
            break
        if i_fit:
            return 1
        if j_fit:
            return -1
        if (tree.up(i) != i or tree.up(j) != j) and tree.up(i) != tree.up(j):
            i, j = tree.up(i), tree.up(j)
            continue
        break
    if cnt.get(i, 0) > cnt.get(j, 0):
        return 1
    if cnt.get(i, 0) < cnt.get(j, 0):
        return -1
    if tree.level[i] < tree.level[j]:
        return 1
    if tree.level[i] > tree.level[j]:
        return -1
    return 0


def slurm_dragonfly_reference(compiled: CompiledFabric, free: FreeState, request: Request) -> dict[str, int] | None:
    """Slurm's TopologyParam=dragonfly allocation: one leaf if it suffices, else round-robin over leaves."""
    tree, units, need, unit_gpus, rem_nodes, per_node, node_cnt = _prepare(compiled, free, request)
    if int(units.sum()) < need:
        return None
    leaves = tree.leaves
    if not leaves:
        return None
    best = max(leaves, key=lambda t: (node_cnt[t], -leaves.index(t)))
    on_best = compiled.host_tree_leaf == best
    taken: dict[int, int] = {}
    state = [need, rem_nodes]
    if int(units[on_best].sum()) >= need and node_cnt[best] >= rem_nodes:
        _take_nodes(compiled, best, units, taken, state, per_node)
        return _result(compiled, taken, unit_gpus)
    while state[0] > 0 or state[1] > 0:
        before = len(taken)
        for t in leaves:
            _take_nodes(compiled, t, units, taken, state, per_node, one=True)
            if state[0] <= 0 and state[1] <= 0:
                break
        if len(taken) == before:
            return None
    return _result(compiled, taken, unit_gpus)


def slurm_reference(compiled: CompiledFabric, free: FreeState, request: Request,
                    gpus_tiers: bool = True) -> tuple[str, dict[str, int] | None]:
    """The mode Slurm would run on this fabric, and its allocation (`gpus_tiers`: slurm_tree_reference's)."""
    if compiled.kind is FabricKind.DRAGONFLY:
        return "slurm-dragonfly", slurm_dragonfly_reference(compiled, free, request)
    return "slurm-tree", slurm_tree_reference(compiled, free, request, gpus_tiers=gpus_tiers)
