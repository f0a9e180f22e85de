"""Compiled fabric: flat NumPy arrays for placement and audits, cached on disk by content hash.

Vertices of the transit graph are the switches (0..S-1) followed by the multi-rail hosts: a host
with HCAs on several switches is one vertex (docs/contract.md), so it can shorten switch paths.
Single-rail hosts are dead ends and never lie on a shortest path, so they are left out.
Never build a host x host matrix: host distances derive from the switch hop matrix.
"""

from __future__ import annotations

import os
import re
from typing import Any

import numpy as np

from gpupool.fabric import structure

# The record lives in its own module (the cache and fabric.nvlink read it without the compiler); its
# long-standing import path stays this one.
from gpupool.fabric.compiled_fabric import UNREACHABLE as UNREACHABLE
from gpupool.fabric.compiled_fabric import CompiledFabric as CompiledFabric
from gpupool.fabric.kinds import FabricKind
from gpupool.fabric.model import Fabric, load_fabric, natural_key

COMPILED_FORMAT = 7  # bump whenever the cached arrays change: 6 adds uplink capacities and NVLink domains; 7: director chassis layering (issue 25)
# The one switch name gpupool makes up: the root Slurm needs above several top switches that no
# real switch joins (docs/contract.md). Every other name in an export is a real switch's.
SYNTHETIC_ROOT = "gpupool-synthetic-root"


def compile_fabric(fabric: Fabric) -> CompiledFabric:
    from gpupool.fabric import hop_kernels as kernels
    from gpupool.fabric.nvlink import host_domain_array

    switches = fabric.switch_indices()
    sw_pos = {node: i for i, node in enumerate(switches)}
    n_sw = len(switches)
    hosts = fabric.hosts()
    host_names = list(hosts)
    n_hosts = len(host_names)

    hca_host: dict[int, int] = {}
    for h, (_name, hcas) in enumerate(hosts.items()):
        for node in hcas:
            hca_host[node] = h

    host_sw: list[set[int]] = [set() for _ in range(n_hosts)]
    sw_edges: set[tuple[int, int]] = set()
    for link in fabric.links:
        a, b = link.a, link.b
        ta, tb = fabric.nodes[a].type, fabric.nodes[b].type
        if ta == "switch" and tb == "switch":
            if a != b:
                x, y = sw_pos[a], sw_pos[b]
                sw_edges.add((min(x, y), max(x, y)))
        elif ta == "switch" and b in hca_host:
            host_sw[hca_host[b]].add(sw_pos[a])
        elif tb == "switch" and a in hca_host:
            host_sw[hca_host[a]].add(sw_pos[b])

    host_leaf_ptr = np.zeros(n_hosts + 1, dtype=np.int32)
    for h in range(n_hosts):
        host_leaf_ptr[h + 1] = host_leaf_ptr[h] + len(host_sw[h])
    host_leaf_idx = np.fromiter((s for h in range(n_hosts) for s in sorted(host_sw[h])), dtype=np.int32, count=int(host_leaf_ptr[-1]))

    # Transit graph: switches plus multi-rail hosts.
    multi = [h for h in range(n_hosts) if len(host_sw[h]) > 1]
    n_vertices = n_sw + len(multi)
    edge_a: list[int] = []
    edge_b: list[int] = []
    for x, y in sw_edges:
        edge_a.append(x)
        edge_b.append(y)
    for k, h in enumerate(multi):
        for s in host_sw[h]:
            edge_a.append(n_sw + k)
            edge_b.append(s)
    adj_ptr, adj_idx = _csr(n_vertices, np.asarray(edge_a, dtype=np.int32), np.asarray(edge_b, dtype=np.int32))

    hop = kernels.hop_matrix(adj_ptr, adj_idx, n_vertices, n_sw) if n_sw else np.zeros((0, 0), np.int16)

    switch_names = [fabric.nodes[s].name or fabric.nodes[s].id for s in switches]
    layering = structure.layer_switches(n_sw, sw_edges, _endpoint_counts(fabric, sw_pos), switch_names,
                                        clos=fabric.meta.get("generator") != "dragonfly",
                                        system_guids=structure.system_guids(fabric, switches))
    switch_level = layering.level
    generator_groups = np.asarray([fabric.nodes[s].group for s in switches], dtype=np.int32)

    kind, switch_group = _classify(n_sw, sw_edges, switch_level, generator_groups, fabric.meta, switch_names)
    meta = dict(fabric.meta)
    if kind is FabricKind.GRAPH:
        meta["kind_reason"] = layering.kind_reason or "the switch graph is neither a Clos nor a dragonfly"

    host_class = _host_classes(host_sw)
    tree = _logical_tree(n_sw, n_hosts, host_sw, sw_edges, switch_level, switch_group, kind, switch_names)
    tree_parent, tree_level, tree_names, host_tree_leaf, switch_tree_node = tree
    host_domain, domain_names = host_domain_array(host_names, fabric.nvlink_domains)
    ultrametric = _is_ultrametric(hop, host_leaf_ptr, host_leaf_idx, host_class, tree_parent, tree_level, host_tree_leaf)
    tree_uplink_gbps, host_gbps = _link_capacities(fabric, sw_pos, hca_host, n_hosts, switch_tree_node, tree_parent)

    return CompiledFabric(
        host_names=host_names, switch_names=switch_names, switch_node=np.asarray(switches, dtype=np.int32),
        host_leaf_ptr=host_leaf_ptr, host_leaf_idx=host_leaf_idx, adj_ptr=adj_ptr, adj_idx=adj_idx, hop=hop,
        switch_level=switch_level, switch_group=switch_group, host_class=host_class, tree_parent=tree_parent,
        tree_level=tree_level, tree_names=tree_names, host_tree_leaf=host_tree_leaf,
        switch_tree_node=switch_tree_node, tree_uplink_gbps=tree_uplink_gbps, host_gbps=host_gbps, kind=kind,
        ultrametric=ultrametric, meta=meta, host_domain=host_domain, domain_names=domain_names,
    )


def uplink_bundles(compiled: CompiledFabric) -> dict[str, dict[str, float | int]]:
    """Per logical tree level: uplink bundles, the thinnest one's Gb/s, and the worst oversubscription
    (injection of the hosts under a bundle / its capacity); levels without bundles (roots) are left out."""
    parent = compiled.tree_parent
    under = np.zeros(parent.size, dtype=np.float64)
    for h, leaf in enumerate(compiled.host_tree_leaf.tolist()):
        t = leaf
        while t >= 0:
            under[t] += compiled.host_gbps[h]
            t = int(parent[t])
    capacity = compiled.tree_uplink_gbps
    out: dict[str, dict[str, float | int]] = {}
    for level in sorted({int(x) for x in compiled.tree_level.tolist()}):
        nodes = np.flatnonzero((compiled.tree_level == level) & (capacity > 0))
        if nodes.size == 0:
            continue
        out[f"level{level}"] = {"bundles": int(nodes.size), "min_uplink_gbps": round(float(capacity[nodes].min()), 3),
                                "max_oversubscription": round(float((under[nodes] / capacity[nodes]).max()), 4)}
    return out


def _link_capacities(fabric: Fabric, sw_pos: dict[int, int], hca_host: dict[int, int], n_hosts: int,
                     switch_tree_node: np.ndarray, tree_parent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(Gb/s cut between each tree node's subtree and the rest, Gb/s injection of each host), cable by cable
    (parallel cables add up; each direction of a full-duplex cable carries its rate).

    A switch cable whose ends lie in tree nodes a and b crosses the boundary of every subtree that holds
    one end only: the nodes from a (and from b) up to, not including, their lowest common ancestor."""
    uplink = np.zeros(tree_parent.size, dtype=np.float64)
    hosts = np.zeros(n_hosts, dtype=np.float64)

    def chain(t: int) -> list[int]:
        out = []
        while t >= 0:
            out.append(t)
            t = int(tree_parent[t])
        return out

    chains: dict[int, list[int]] = {}
    for link in fabric.links:
        a, b = link.a, link.b
        if a in sw_pos and b in sw_pos:
            ta, tb = int(switch_tree_node[sw_pos[a]]), int(switch_tree_node[sw_pos[b]])
            if ta < 0 or tb < 0 or ta == tb:
                continue
            up_a = chains.get(ta) or chains.setdefault(ta, chain(ta))
            up_b = chains.get(tb) or chains.setdefault(tb, chain(tb))
            common = set(up_a) & set(up_b)
            for t in (*up_a, *up_b):
                if t not in common:
                    uplink[t] += link.gbps
        elif a in sw_pos and b in hca_host:
            hosts[hca_host[b]] += link.gbps
        elif b in sw_pos and a in hca_host:
            hosts[hca_host[a]] += link.gbps
    return uplink, hosts


def _endpoint_counts(fabric: Fabric, sw_pos: dict[int, int]) -> np.ndarray:
    """Endpoint CAs (HCAs of any host class, named or not; not SHARP aggregation nodes) per switch."""
    from gpupool.fabric.model import ROLE_AGGREGATION

    nodes = fabric.nodes
    # Per node: its switch position, or -1; and whether it is an endpoint CA.
    pos = np.full(len(nodes), -1, dtype=np.int64)
    for node, k in sw_pos.items():
        pos[node] = k
    endpoint = np.fromiter((n.type != "switch" and n.role != ROLE_AGGREGATION for n in nodes), dtype=np.bool_,
                           count=len(nodes))
    a = np.fromiter((lk.a for lk in fabric.links), dtype=np.int64, count=len(fabric.links))
    b = np.fromiter((lk.b for lk in fabric.links), dtype=np.int64, count=len(fabric.links))
    counts = np.zeros(len(sw_pos), dtype=np.int64)
    for sw, ca in ((a, b), (b, a)):
        hit = (pos[sw] >= 0) & endpoint[ca]
        counts += np.bincount(pos[sw][hit], minlength=len(sw_pos))
    return counts


def _csr(n: int, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    src = np.concatenate([a, b]).astype(np.int64)
    dst = np.concatenate([b, a]).astype(np.int32)
    order = np.argsort(src, kind="stable")
    counts = np.bincount(src, minlength=n) if src.size else np.zeros(n, dtype=np.int64)
    ptr = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(counts, out=ptr[1:])
    return ptr, dst[order].astype(np.int32)


def _classify(n_sw: int, sw_edges: set[tuple[int, int]], level: np.ndarray, generator_groups: np.ndarray,
              meta: dict[str, Any], switch_names: list[str]) -> tuple[FabricKind, np.ndarray]:
    """fat-tree when every switch cable joins adjacent levels; dragonfly for dense groups with sparse global links."""
    no_groups = np.full(n_sw, -1, dtype=np.int32)
    if n_sw == 0:
        return FabricKind.GRAPH, no_groups
    same_level = sum(1 for x, y in sw_edges if level[x] == level[y])
    if same_level == 0 and (level > 0).all():
        return FabricKind.FAT_TREE, no_groups
    if meta.get("generator") == "dragonfly" and (generator_groups >= 0).all():
        return FabricKind.DRAGONFLY, generator_groups
    groups = _dense_groups(n_sw, sw_edges)
    if groups is not None:
        # Number groups by their first switch name, so a rediscovered fabric keeps its group names.
        first: dict[int, int] = {}
        for s in range(n_sw):
            g = int(groups[s])
            if g not in first or natural_key(switch_names[s]) < natural_key(switch_names[first[g]]):
                first[g] = s
        order = sorted(first, key=lambda g: natural_key(switch_names[first[g]]))
        renumber = np.empty(len(order), dtype=np.int32)
        for new, old in enumerate(order):
            renumber[old] = new
        return FabricKind.DRAGONFLY, renumber[groups]
    return FabricKind.GRAPH, no_groups


def _dense_groups(n_sw: int, sw_edges: set[tuple[int, int]]) -> np.ndarray | None:
    """Dragonfly groups: components joined by edges inside triangles (intra-group all-to-all)."""
    nbrs: list[set[int]] = [set() for _ in range(n_sw)]
    for x, y in sw_edges:
        nbrs[x].add(y)
        nbrs[y].add(x)
    parent = list(range(n_sw))

    def find(v: int) -> int:
        while parent[v] != v:
            parent[v] = parent[parent[v]]
            v = parent[v]
        return v

    intra = 0
    for x, y in sw_edges:
        if nbrs[x] & nbrs[y]:
            intra += 1
            parent[find(x)] = find(y)
    roots = sorted({find(v) for v in range(n_sw)})
    if len(roots) < 2 or intra == 0:
        return None
    rid = {r: i for i, r in enumerate(roots)}
    groups = np.asarray([rid[find(v)] for v in range(n_sw)], dtype=np.int32)
    sizes = np.bincount(groups)
    if sizes.min() < 2:
        return None
    # Each group must be dense: at least half of its switch pairs cabled.
    inside = np.zeros(len(roots), dtype=np.int64)
    for x, y in sw_edges:
        if groups[x] == groups[y]:
            inside[groups[x]] += 1
    possible = sizes * (sizes - 1) // 2
    if (inside * 2 < possible).any():
        return None
    return groups


def _host_classes(host_sw: list[set[int]]) -> np.ndarray:
    ids: dict[frozenset[int], int] = {}
    out = np.empty(len(host_sw), dtype=np.int32)
    for h, sws in enumerate(host_sw):
        out[h] = ids.setdefault(frozenset(sws), len(ids))
    return out


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, v: int) -> int:
        parent = self.parent
        while parent[v] != v:
            parent[v] = parent[parent[v]]
            v = parent[v]
        return v

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _logical_tree(n_sw: int, n_hosts: int, host_sw: list[set[int]], sw_edges: set[tuple[int, int]],
                  level: np.ndarray, group: np.ndarray, kind: FabricKind, switch_names: list[str]
                  ) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray, np.ndarray]:
    """Collapse the fabric into a tree Slurm understands: leaves joined by shared hosts (rails), then
    each level's switches joined by the switches above them; dragonfly: leaves -> groups -> top."""
    # A host cabled to leaves and spines belongs to its leaves only (its spine cables are extra).
    host_sw = [{s for s in sws if level[s] == 1} or sws for sws in host_sw]
    uf = _UnionFind(n_sw)
    for sws in host_sw:
        first = min(sws) if sws else None
        for s in sws:
            if first is not None:
                uf.union(first, s)
    leaf_switches = sorted({s for sws in host_sw for s in sws})
    parent: list[int] = []
    tlevel: list[int] = []
    names: list[str] = []
    members: list[list[int]] = []
    node_of_sw = np.full(n_sw, -1, dtype=np.int32)

    roots: dict[int, int] = {}
    for s in sorted(leaf_switches, key=lambda s: natural_key(switch_names[s])):
        r = uf.find(s)
        if r not in roots:
            roots[r] = len(parent)
            parent.append(-1)
            tlevel.append(1)
            names.append("")
            members.append([])
        node_of_sw[s] = roots[r]
        members[roots[r]].append(s)
    for t, m in enumerate(members):
        names[t] = _merged_name([switch_names[s] for s in m])
    host_tree_leaf = np.asarray([node_of_sw[min(sws)] if sws else -1 for sws in host_sw], dtype=np.int32)

    nbrs: list[list[int]] = [[] for _ in range(n_sw)]
    for x, y in sw_edges:
        nbrs[x].append(y)
        nbrs[y].append(x)

    current = list(range(len(parent)))  # logical nodes of the level being grouped
    cur_level = 1
    if kind is FabricKind.DRAGONFLY and group.size and (group >= 0).all():
        by_group: dict[int, int] = {}
        for t in current:
            g = int(group[members[t][0]])
            if g not in by_group:
                by_group[g] = len(parent)
                parent.append(-1)
                tlevel.append(2)
                names.append(f"group{g}")
                members.append([])
            parent[t] = by_group[g]
        for s in range(n_sw):
            if node_of_sw[s] < 0:
                node_of_sw[s] = by_group.get(int(group[s]), -1)
        tops = list(by_group.values())
        if len(tops) > 1:
            top = len(parent)
            parent.append(-1)
            tlevel.append(3)
            names.append(SYNTHETIC_ROOT)
            for t in tops:
                parent[t] = top
    else:
        max_level = int(level.max()) if level.size else 0
        while cur_level < max_level:
            above = [s for s in range(n_sw) if level[s] == cur_level + 1]
            if not above:
                break
            luf = _UnionFind(len(parent) + n_sw)
            # Join logical nodes of this level through each switch one level up.
            for s in above:
                for nb in nbrs[s]:
                    t = int(node_of_sw[nb])
                    if t >= 0 and tlevel[t] == cur_level:
                        luf.union(t, len(parent) + s)
            groups: dict[int, list[int]] = {}
            for t in current:
                groups.setdefault(luf.find(t), []).append(t)
            new_current = []
            sw_groups: dict[int, list[int]] = {}
            for s in above:
                sw_groups.setdefault(luf.find(len(parent) + s), []).append(s)
            for key, children in groups.items():
                ups = sw_groups.get(key, [])
                if not ups:
                    continue  # no switch above: this subtree is a root
                t = len(parent)
                parent.append(-1)
                tlevel.append(cur_level + 1)
                names.append(_merged_name([switch_names[s] for s in sorted(ups, key=lambda s: natural_key(switch_names[s]))]))
                members.append(ups)
                for c in children:
                    parent[c] = t
                for s in ups:
                    node_of_sw[s] = t
                new_current.append(t)
            if not new_current:
                break
            current = new_current
            cur_level += 1
        roots_now = [t for t in range(len(parent)) if parent[t] == -1]
        if len(roots_now) > 1 and kind is not FabricKind.FAT_TREE:
            top = len(parent)
            parent.append(-1)
            tlevel.append(max(tlevel) + 1)
            names.append(SYNTHETIC_ROOT)
            for t in roots_now:
                parent[t] = top
    names = _dedupe([slurm_switch_name(n) or f"sw{i}" for i, n in enumerate(names)])
    return (np.asarray(parent, dtype=np.int32), np.asarray(tlevel, dtype=np.int16), names, host_tree_leaf, node_of_sw)


def slurm_switch_name(name: str) -> str:
    """A switch name as Slurm files may carry it: letters, digits and `._-`, anything else `_`
    (a director ASIC `core1-mgt1/L11/U1` becomes `core1-mgt1_L11_U1`; tabs, `=`, `#` never pass)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def _merged_name(names: list[str]) -> str:
    """A logical switch is named after its first member: a real, stable switch name; the fabric
    ASICs of director chassis are named after the first one's director (`dir1/S01/U1`, `dir2/S01/U1` -> `dir1`)."""
    asics = [structure.CHASSIS_ASIC.match(n) for n in names]
    if names and all(m is not None and m.group("role") == "S" for m in asics):
        return asics[0].group("chassis")  # type: ignore[union-attr]
    return names[0] if names else ""


def _dedupe(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for n in names:
        k = seen.get(n, 0)
        out.append(n if k == 0 else f"{n}-{k + 1}")
        seen[n] = k + 1
    return out


def _is_ultrametric(hop: np.ndarray, host_leaf_ptr: np.ndarray, host_leaf_idx: np.ndarray, host_class: np.ndarray,
                    tree_parent: np.ndarray, tree_level: np.ndarray, host_tree_leaf: np.ndarray) -> bool:
    """True when every host distance equals 2 x the level of the hosts' lowest common tree node."""
    n_classes = int(host_class.max()) + 1 if host_class.size else 0
    if n_classes == 0:
        return True
    rep = np.full(n_classes, -1, dtype=np.int64)
    for h in range(host_class.size - 1, -1, -1):
        rep[host_class[h]] = h
    class_leaf = host_tree_leaf[rep]
    if (class_leaf < 0).any():
        return False
    single = np.asarray([host_leaf_ptr[h + 1] - host_leaf_ptr[h] == 1 for h in rep])
    # Hosts of one class share all their switches: distance 2 == 2 x level 1.
    if not single.all():
        # Multi-rail: class distance = 2 + min over switch pairs; computed by a reduced matrix.
        class_sw = [host_leaf_idx[host_leaf_ptr[h]:host_leaf_ptr[h + 1]] for h in rep]
        dist = np.empty((n_classes, n_classes), dtype=np.int32)
        for i in range(n_classes):
            sub = hop[class_sw[i]]
            for j in range(n_classes):
                dist[i, j] = int(sub[:, class_sw[j]].min()) + 2
    else:
        sw = host_leaf_idx[host_leaf_ptr[rep]]
        dist = hop[np.ix_(sw, sw)].astype(np.int32) + 2
    np.fill_diagonal(dist, 2)
    expected = 2 * _lca_levels(tree_parent, tree_level, class_leaf)
    return bool((dist == expected).all())


def _lca_levels(parent: np.ndarray, level: np.ndarray, nodes: np.ndarray) -> np.ndarray:
    """Level of the lowest common ancestor for every pair of the given tree nodes (vectorised)."""
    max_level = int(level.max()) if level.size else 0
    # ancestor[t, k]: ancestor of t at level k+1 (or the node itself), -1 where none.
    ancestor = np.full((parent.size, max_level), -1, dtype=np.int64)
    for t in range(parent.size):
        p = t
        while p >= 0:
            ancestor[t, int(level[p]) - 1] = p
            p = int(parent[p])
    sub = ancestor[nodes]
    result = np.full((nodes.size, nodes.size), 16000, dtype=np.int32)
    for k in range(max_level - 1, -1, -1):
        col = sub[:, k]
        same = (col[:, None] == col[None, :]) & (col[:, None] >= 0)
        result[same] = k + 1
    return result


# ---------------------------------------------------------------------------
# On-disk cache (gpupool.fabric.cache): memory-mapped, keyed by the fabric file's content hash
# ---------------------------------------------------------------------------

_ARRAY_FIELDS = ("switch_node", "host_leaf_ptr", "host_leaf_idx", "adj_ptr", "adj_idx", "hop", "switch_level",
                 "switch_group", "host_class", "tree_parent", "tree_level", "host_tree_leaf", "switch_tree_node",
                 "tree_uplink_gbps", "host_gbps", "host_domain")


def cache_path_for(fabric_path: str) -> str:
    from gpupool.fabric import cache

    return cache.path_beside(fabric_path)


def load_compiled(fabric_path: str, *, use_cache: bool = True) -> CompiledFabric:
    """Compiled form of a fabric file; rebuilt whenever the file's content hash changes."""
    from gpupool.errors import BadInput
    from gpupool.fabric import cache
    from gpupool.fabric.model import fabric_digest

    try:
        st = os.stat(fabric_path)
        if not os.path.isfile(fabric_path):
            raise IsADirectoryError
    except FileNotFoundError:
        raise BadInput(f"{fabric_path}: fabric file not found") from None
    except IsADirectoryError:
        raise BadInput(f"{fabric_path}: fabric file is a directory") from None
    except OSError as exc:
        raise BadInput(f"{fabric_path}: cannot read fabric file ({exc.strerror})") from None
    digests: list[str] = []

    def digest() -> str:
        if not digests:
            try:
                digests.append(fabric_digest(fabric_path))
            except OSError as exc:
                raise BadInput(f"{fabric_path}: cannot read fabric file ({exc.strerror})") from None
        return digests[0]

    if use_cache:
        beside = cache.path_beside(fabric_path)
        cached = _read_cache(beside, st, digest)
        directory = os.path.dirname(beside)
        if cached is None and not (os.path.isdir(directory) and os.access(directory, os.W_OK)):
            cached = _read_cache(cache.path_in_user_cache(digest()), st, digest)  # where _write_cache put it
        if cached is not None:
            return cached
    compiled = compile_fabric(load_fabric(fabric_path))
    if use_cache:
        _write_cache(fabric_path, compiled, digest(), st)
    return compiled


def _read_cache(path: str, st: os.stat_result, digest: Any) -> CompiledFabric | None:
    """The cached compiled fabric, or None when missing, stale or damaged (damage is warned about)."""
    import sys

    from gpupool.fabric import cache

    try:
        compiled, record_stat = cache.read(path, st, digest, _ARRAY_FIELDS, CompiledFabric, COMPILED_FORMAT)
    except (cache.CacheDamaged, OSError, ValueError) as exc:  # any damage: rebuild
        sys.stderr.write(f"gpupool: warning: {path}: damaged fabric cache ignored and rebuilt "
                         f"({type(exc).__name__})\n")
        return None
    if compiled is not None and record_stat:
        # Hashed and old enough: record the file's stat, so the next load maps without hashing.
        cache.write(path, compiled, digest(), st, _ARRAY_FIELDS, COMPILED_FORMAT)
    return compiled


def _write_cache(fabric_path: str, compiled: CompiledFabric, digest: str, st: os.stat_result | None) -> None:
    from gpupool.fabric import cache

    if not cache.write(cache.path_beside(fabric_path), compiled, digest, st, _ARRAY_FIELDS, COMPILED_FORMAT):
        cache.write(cache.path_in_user_cache(digest), compiled, digest, None, _ARRAY_FIELDS, COMPILED_FORMAT)


def store_compiled(fabric_path: str, compiled: CompiledFabric) -> None:
    """Seed the cache right after writing a fabric file, so the next command starts warm."""
    from gpupool.fabric.model import fabric_digest

    _write_cache(fabric_path, compiled, fabric_digest(fabric_path), os.stat(fabric_path))
