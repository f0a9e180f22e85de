"""Switch levels from the fabric's structure: the up/down layering of a Clos (fat-tree).

Levels are not the distance from host-bearing switches (that pushes hostless leaves up and turns
hosts cabled to a spine into leaves). Instead:
1. leaves start as the switches with endpoints (HCAs, named or not); a switch with endpoints that
   is cabled to two or more such switches, to more of them than each of them is, and carries fewer
   endpoints than each, is a spine carrying a few hosts (storage, UFM). A tie (two lab switches
   cabled together, both with hosts) or a chain of equals is no hierarchy: all stay leaves;
2. levels are the hop distance from the leaves, plus one;
3. a hostless switch on top (level >= 3) whose subtree reaches no leaf that one of its neighbours
   does not reach is a leaf seen upside down (no host yet, or a management leaf): it becomes a leaf
   and the layering is redone. A real core widens the reach (it joins pods); a hostless leaf never
   does. A top switch cabled to one switch only stays a core when real cores share its level.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from gpupool.fabric.model import Fabric


@dataclass
class Layering:
    level: np.ndarray  # int16[S]: 1 = leaf; 0 = no path to any leaf
    leaves: np.ndarray  # bool[S]: switches at level 1
    spine_hosts: np.ndarray  # bool[S]: switches with endpoints that are not leaves (hosts of a spine)
    hostless_leaves: np.ndarray  # bool[S]: leaves without any endpoint
    kind_reason: str  # "" when the layering is a clean Clos, else why it is not


def _csr(n: int, ea: np.ndarray, eb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.concatenate([ea, eb]).astype(np.int64)
    b = np.concatenate([eb, ea]).astype(np.int32)
    order = np.argsort(a, kind="stable")
    ptr = np.zeros(n + 1, dtype=np.int32)
    if a.size:
        np.cumsum(np.bincount(a, minlength=n), out=ptr[1:])
    return ptr, b[order].astype(np.int32)


def _bfs(ptr: np.ndarray, idx: np.ndarray, seeds: np.ndarray, n: int) -> np.ndarray:
    from gpupool.fabric import hop_kernels as kernels

    if n == 0:
        return np.zeros(0, np.int32)
    return kernels.bfs_levels(ptr, idx, seeds.astype(np.int32), n)


def layer_switches(n_sw: int, sw_edges: set[tuple[int, int]] | list[tuple[int, int]], endpoints: np.ndarray,
                   names: list[str], *, clos: bool = True, system_guids: list[str | None] | None = None) -> Layering:
    """Up/down layering of the switch graph; `endpoints[s]` counts the endpoint CAs cabled to switch s.
    `clos=False` (a generated dragonfly) keeps every host-bearing switch a leaf."""
    pairs = np.asarray(list(sw_edges), dtype=np.int64).reshape(-1, 2)
    pairs = pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]  # sorted: the same layering whatever the set order
    ea, eb = pairs[:, 0], pairs[:, 1]
    ptr, idx = _csr(n_sw, ea, eb)
    has_hosts = np.asarray(endpoints, dtype=np.int64) > 0
    leaf = has_hosts.copy()
    nbrs = [idx[ptr[s]:ptr[s + 1]] for s in range(n_sw)]

    # 1. Between host-bearing switches cabled together, a spine carrying a few hosts is one joined
    # to two or more of them, to more than each of them is, and with fewer hosts than each: a tie
    # (two lab switches cabled together) or a chain of equals is no hierarchy, all stay leaves.
    both = leaf[ea] & leaf[eb]
    cc_deg = np.bincount(ea[both], minlength=n_sw) + np.bincount(eb[both], minlength=n_sw)
    if not clos or (cc_deg.max(initial=0) > 0 and _has_triangle(pairs.tolist(), nbrs)):
        cc_deg[:] = 0  # a Clos has no triangles: a dragonfly's routers all stay leaves
    while True:
        s = _spine_carrying_hosts(cc_deg, leaf, nbrs, endpoints, names)
        if s is None:
            break
        leaf[s] = False
        cc_deg[s] = 0
        for t in nbrs[s]:
            if leaf[t] and cc_deg[t] > 0:
                cc_deg[t] -= 1

    # Director chassis: their ASICs are one switch's line and fabric ASICs, never leaves seen upside
    # down; a switch outside the chassis cabled to a line ASIC is an external leaf, hosts or not.
    chassis = chassis_members(names, system_guids, nbrs, has_hosts)
    in_chassis = np.zeros(n_sw, dtype=bool)
    external: set[str] = set()
    if chassis:
        line = np.zeros(n_sw, dtype=bool)
        for members in chassis.values():
            for s, role in members:
                in_chassis[s] = True
                line[s] = role == "L"
        for s in np.nonzero(~in_chassis & ~has_hosts)[0].tolist():
            ns = np.unique(nbrs[s])
            if line[ns].any() and not (has_hosts[ns] & ~in_chassis[ns]).any():
                leaf[s] = True
        for name, members in chassis.items():
            if any(not in_chassis[t] and leaf[t] for s, _role in members for t in nbrs[s].tolist()):
                external.add(name)
                for s, _role in members:
                    leaf[s] = False  # hosts on a line ASIC of a director with external leaves: spine hosts

    # 2-3. Layer from the leaves; fold hostless switches that do not widen the reach down to level 1.
    for _round in range(n_sw + 1):
        dist = _bfs(ptr, idx, np.nonzero(leaf)[0], n_sw)
        upside_down = [s for s in _upside_down_leaves(n_sw, nbrs, dist, leaf, has_hosts) if not in_chassis[s]]
        if not upside_down:
            break
        leaf[upside_down] = True
    level = np.where(dist >= 0, dist + 1, 0).astype(np.int16)
    for name, members in chassis.items():
        # Inside a director: line ASICs one level below its fabric ASICs, above its external leaves.
        base = 2 if name in external else 1
        for s, role in members:
            if level[s] > 0 or name in external:
                level[s] = base if role == "L" else base + 1
    reason = _reason(ea, eb, level, names)
    return Layering(level=level, leaves=level == 1, spine_hosts=has_hosts & (level > 1),
                    hostless_leaves=(level == 1) & ~has_hosts, kind_reason=reason)


MAX_CHASSIS_ASICS = 128  # the largest director (CS8500: 20 line cards x 2 ASICs + 20 fabric ASICs) fits
CHASSIS_ASIC = re.compile(r"^(?P<chassis>.+)/(?P<role>[LS])(?P<slot>\d{1,3})/U\d{1,2}(?:-\d+)?$")


def chassis_members(names: list[str], system_guids: list[str | None] | None = None,
                    nbrs: list[np.ndarray] | None = None, has_hosts: np.ndarray | None = None,
                    ) -> dict[str, list[tuple[int, str]]]:
    """Director chassis -> [(switch index, "L" line ASIC | "S" fabric ASIC)], from switch names
    (`dir1/L07/U1`, `dir1/S01/U1`, from node descriptions `MF0;dir1:MCS8500/L07/U1`), else from a
    system image GUID that several switches share (then an ASIC cabled only inside the chassis is a
    fabric ASIC, the others line ASICs). A chassis needs both line and fabric ASICs."""
    found: dict[str, list[tuple[int, str]]] = {}
    for s, name in enumerate(names):
        m = CHASSIS_ASIC.match(name)
        if m:
            found.setdefault(m.group("chassis"), []).append((s, m.group("role")))
    chassis = {c: m for c, m in found.items() if {r for _s, r in m} == {"L", "S"}}
    if system_guids is not None and nbrs is not None and has_hosts is not None:
        named = {s for members in chassis.values() for s, _role in members}
        by_image: dict[str, list[int]] = {}
        for s, image in enumerate(system_guids):
            if image and s not in named:
                by_image.setdefault(image, []).append(s)
        for image, group in sorted(by_image.items()):
            if int(image, 16) == 0 or not 2 <= len(group) <= MAX_CHASSIS_ASICS:
                continue  # an unset image GUID, or one a whole fabric shares, is no chassis
            inside = set(group)
            roles = {s: "L" if has_hosts[s] or any(int(t) not in inside for t in nbrs[s]) else "S" for s in group}
            # A two-stage chassis: fabric ASICs are cabled to line ASICs only.
            two_stage = all(roles.get(int(t)) == "L" for s, r in roles.items() if r == "S" for t in nbrs[s])
            if set(roles.values()) == {"L", "S"} and two_stage:
                chassis[image] = sorted(roles.items())
    return chassis


def _spine_carrying_hosts(cc_deg: np.ndarray, leaf: np.ndarray, nbrs: list[np.ndarray], endpoints: np.ndarray,
                          names: list[str]) -> int | None:
    """The host-bearing switch that is plainly above its host-bearing neighbours, or None."""
    found = []
    for s in np.nonzero(cc_deg >= 2)[0].tolist():
        below = [int(t) for t in np.unique(nbrs[s]) if leaf[t] and cc_deg[t] > 0]
        if all(cc_deg[s] > cc_deg[t] and endpoints[s] < endpoints[t] for t in below):
            found.append(s)
    if not found:
        return None
    return int(min(found, key=lambda c: (-int(cc_deg[c]), int(endpoints[c]), -len(nbrs[c]), names[c])))


def _has_triangle(edges: list[list[int]], nbrs: list[np.ndarray]) -> bool:
    sets = [set(n.tolist()) for n in nbrs]
    return any(sets[x] & sets[y] for x, y in edges)


def _upside_down_leaves(n_sw: int, nbrs: list[np.ndarray], dist: np.ndarray, leaf: np.ndarray,
                        has_hosts: np.ndarray) -> list[int]:
    """Hostless local maxima at level >= 3 whose set of leaves below equals a neighbour's."""
    top = np.nonzero(~has_hosts & (dist >= 2))[0].tolist()
    cands = [s for s in top if nbrs[s].size and (dist[nbrs[s]] == dist[s] - 1).all()]
    if not cands:
        return []
    dl = dist.tolist()
    nl = [n.tolist() for n in nbrs]
    # Leaves below each switch (strictly descending paths), as Python int bitsets.
    leaf_ids = np.nonzero(leaf)[0]
    reach = [0] * n_sw
    for k, s in enumerate(leaf_ids.tolist()):
        reach[s] = 1 << k
    order = np.argsort(dist, kind="stable")
    for s in order.tolist():
        d = dl[s]
        if d <= 0:
            continue
        acc = 0
        for t in nl[s]:
            if dl[t] == d - 1:
                acc |= reach[t]
        reach[s] = acc
    widening_levels = {dl[s] for s in range(n_sw) if dl[s] >= 2
                       and all(reach[t] != reach[s] for t in nl[s] if dl[t] == dl[s] - 1)}
    out = []
    for s in cands:
        below = reach[s]
        if not any(reach[t] == below for t in nl[s]):
            continue  # it joins what its neighbours do not: a core
        # Cabled to several parallel spines, it is a leaf; cabled to one switch only, it is a leaf
        # unless real cores sit at its level (then it is a core that lost cables).
        if np.unique(nbrs[s]).size >= 2 or int(dist[s]) not in widening_levels:
            out.append(s)
    return out


def _reason(ea: np.ndarray, eb: np.ndarray, level: np.ndarray, names: list[str]) -> str:
    """Why the layering is not a Clos: switches no leaf reaches, or cables that are not up/down."""
    if level.size == 0:
        return "no switches"
    lost = [names[s] for s in np.nonzero(level == 0)[0].tolist()]
    if lost:
        return f"{len(lost)} switches are cabled to no leaf (e.g. {lost[0]})"
    flat = np.nonzero(np.abs(level[ea].astype(np.int64) - level[eb]) != 1)[0]
    if flat.size:
        x, y = int(ea[flat[0]]), int(eb[flat[0]])
        return (f"{flat.size} switch cables do not join adjacent levels "
                f"(e.g. {names[x]} at level {int(level[x])} -- {names[y]} at level {int(level[y])})")
    return ""


def fabric_layering(fabric: Fabric) -> tuple[list[int], Layering]:
    """(switch node indices, their layering) straight from a Fabric."""
    from gpupool.fabric.model import ROLE_AGGREGATION

    switches = fabric.switch_indices()
    pos = {node: i for i, node in enumerate(switches)}
    edges: set[tuple[int, int]] = set()
    endpoints = np.zeros(len(switches), dtype=np.int64)
    nodes = fabric.nodes
    for link in fabric.links:
        a, b = pos.get(link.a), pos.get(link.b)
        if a is not None and b is not None:
            if a != b:
                edges.add((min(a, b), max(a, b)))
        elif a is not None and nodes[link.b].role != ROLE_AGGREGATION:
            endpoints[a] += 1
        elif b is not None and nodes[link.a].role != ROLE_AGGREGATION:
            endpoints[b] += 1
    names = [nodes[s].name or nodes[s].id for s in switches]
    return switches, layer_switches(len(switches), edges, endpoints, names,
                                    clos=fabric.meta.get("generator") != "dragonfly",
                                    system_guids=system_guids(fabric, switches))


def system_guids(fabric: Fabric, switches: list[int]) -> list[str | None]:
    """The chassis (system image) GUID of each switch that shares one with others, else None."""
    images: dict[str, str] = fabric.meta.get("chassis_guids") or {}
    if not isinstance(images, dict):
        return [None] * len(switches)
    return [images.get(fabric.nodes[s].id) if isinstance(images.get(fabric.nodes[s].id), str) else None
            for s in switches]


def classify_hosts(fabric: Fabric, service_patterns: Iterable[str] = ()) -> dict[str, str]:
    """Mark service hosts (storage, management, login, UFM) apart from compute hosts: their HCAs get
    role `service`, so they stay out of topology.conf, placement and the compute comparisons.

    A host is a service host when its name matches one of `service_patterns` (fnmatch globs), or by
    structure: all its HCAs sit on spines, or, on a rail-optimised fabric (most hosts spread their
    HCAs over several leaves), all its HCAs sit on one switch that carries no multi-rail host (a
    single-HCA host, a storage appliance with two HCAs on one leaf: not a DGX that lost rails).
    Returns host -> reason for every host it set apart.
    """
    import fnmatch

    from gpupool.fabric.model import ROLE_HCA, ROLE_SERVICE

    patterns = [p for p in service_patterns if p]
    by_host: dict[str, list[int]] = {}
    for i, node in enumerate(fabric.nodes):
        if node.role == ROLE_HCA and node.host:
            by_host.setdefault(node.host, []).append(i)
    if not by_host:
        return {}
    switches, layering = fabric_layering(fabric)
    level = {node: int(layering.level[k]) for k, node in enumerate(switches)}
    host_switches: dict[str, set[int]] = {h: set() for h in by_host}
    owner = {i: h for h, hcas in by_host.items() for i in hcas}
    for link in fabric.links:
        for ca, sw in ((link.a, link.b), (link.b, link.a)):
            if ca in owner and sw in level:
                host_switches[owner[ca]].add(sw)
    leaf_count = {h: sum(1 for s in sws if level[s] == 1) for h, sws in host_switches.items()}
    counts: dict[int, int] = {}
    for n in leaf_count.values():
        counts[n] = counts.get(n, 0) + 1
    usual = max(counts, key=lambda n: (counts[n], -n))  # a tie is no rail fabric
    multi_rail_switches = {s for h, sws in host_switches.items() if leaf_count[h] >= 2 for s in sws}
    reasons: dict[str, str] = {}
    for host, sws in host_switches.items():
        if any(fnmatch.fnmatchcase(host, p) for p in patterns):
            reasons[host] = "name matches --service-hosts"
        elif sws and leaf_count[host] == 0:
            reasons[host] = "cabled to spines only"
        elif usual >= 2 and len(sws) == 1 and not (sws & multi_rail_switches):
            reasons[host] = "all its HCAs on one leaf that carries no multi-rail host"
    for host in reasons:
        for i in by_host[host]:
            fabric.nodes[i].role = ROLE_SERVICE
    return reasons
