"""Independent oracles for tests and benchmarks: docs/contract.md's definitions, computed again.

Nothing here imports gpupool. `read_ibnetdiscover` parses raw `ibnetdiscover` text with its own
minimal regexes; `HostGraph` is the contract's fabric graph (switches and hosts as vertices, a
multi-rail host ONE vertex adjacent to every switch its HCAs plug into; SHARP aggregation nodes and
HCAs whose description names no host are not vertices) with plain BFS distances, its leaf
switches and the structural service hosts as the contract defines them; `brute_force` is
the exhaustive placement optimum over that graph. They share no code with the fabric compiler or
the placement engine, so a bug there cannot hide by being repeated here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Protocol

# `Switch  36 "S-0002c90300000001"  # "leaf01" enhanced port 0 lid 3 lmc 0` / `Ca 1 "H-..."  # "gpu001 mlx5_0"`
_HEADER = re.compile(r'^(Switch|Ca|Router)\s+\d+\s+"([^"]+)"\s*(?:#\s*"([^"]*)")?')
# `[3]  "H-0002c90400000010"[1](2c90400000010)  # ...` (switch side) / `[1](guid)  "S-..."[21]  # ...` (CA side)
_PORT = re.compile(r'^\[(\d+)\](?:\([0-9a-fA-F]+\))?\s+"([^"]+)"\[(\d+)\]')
# Descriptions that name no host: ConnectX factory defaults ("MT4129 ConnectX7 Mellanox
# Technologies") and an unconfigured OS name that every fresh machine shares.
_NO_HOST = re.compile(r"^(MT\d+|localhost(\.localdomain)?)$", re.IGNORECASE)


def host_of(description: str) -> str | None:
    """The host an HCA belongs to, from its node description (`host mlx5_0`, `host HCA-1`)."""
    if "aggregation node" in description.lower():
        return None
    words = description.split()
    if not words or _NO_HOST.match(words[0]):
        return None
    return words[0]


@dataclass
class HostGraph:
    """The contract's fabric graph, kept as switch adjacency plus each host's switches."""

    host_switches: dict[str, set[str]]  # host name -> switch ids its HCAs are cabled to
    switch_links: dict[str, set[str]] = field(default_factory=dict)  # switch id -> neighbour switch ids
    # switch ids with an endpoint cabled to them: any HCA, named or not (SHARP aggregation nodes are none)
    endpoint_switches: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.switch_hosts: dict[str, set[str]] = {}
        for host, switches in self.host_switches.items():
            for s in switches:
                self.switch_hosts.setdefault(s, set()).add(host)
        self._bfs_cache: dict[str, dict[str, int]] = {}

    @property
    def hosts(self) -> list[str]:
        return sorted(self.host_switches)

    def leaf_switches(self) -> set[str]:
        """docs/contract.md's leaf switches (level 1 of the up/down layering), in the simple form the
        captures need: every switch with an endpoint, and every hostless switch cabled to one other
        switch only (a dead end below its spine, such as a management leaf whose hosts are absent)."""
        dead_ends = {s for s, nbrs in self.switch_links.items() if len(nbrs) == 1 and s not in self.endpoint_switches}
        return self.endpoint_switches | {s for switches in self.host_switches.values() for s in switches} | dead_ends

    def service_hosts(self) -> set[str]:
        """docs/contract.md's structural service hosts: hosts cabled to no leaf switch, and, on a
        rail-optimised fabric (most hosts on two or more leaves), hosts whose HCAs all sit on one
        switch that carries no host on two or more leaves."""
        leaves = self.leaf_switches()
        on_leaves = {h: len(switches & leaves) for h, switches in self.host_switches.items()}
        multi = [h for h, n in on_leaves.items() if n >= 2]
        rail_fabric = 2 * len(multi) > len(on_leaves)
        multi_rail_switches = {s for h in multi for s in self.host_switches[h]}
        return {h for h, switches in self.host_switches.items() if on_leaves[h] == 0
                or (rail_fabric and len(switches) == 1 and not switches & multi_rail_switches)}

    def compute(self) -> HostGraph:
        """The graph placement and topology.conf see: compute hosts only (service hosts are no vertex)."""
        service = self.service_hosts()
        return HostGraph(host_switches={h: set(s) for h, s in self.host_switches.items() if h not in service},
                         switch_links=self.switch_links, endpoint_switches=self.endpoint_switches)

    def leaf_count(self, hosts: Iterable[str]) -> int:
        """Placement's `leaf_switches`: distinct switches the HOSTS' HCAs are cabled to."""
        return len({s for h in hosts for s in self.host_switches[h]})

    def distances_from(self, host: str) -> dict[str, int]:
        """Hop distance from HOST to every reachable host (BFS over switches and hosts)."""
        cached = self._bfs_cache.get(host)
        if cached is not None:
            return cached
        seen: dict[tuple[str, str], int] = {("h", host): 0}
        frontier = [("h", host)]
        while frontier:
            following = []
            for kind, name in frontier:
                if kind == "h":
                    nbrs = [("s", s) for s in self.host_switches[name]]
                else:
                    nbrs = [("s", s) for s in self.switch_links.get(name, ())]
                    nbrs += [("h", h) for h in self.switch_hosts.get(name, ())]
                for vertex in nbrs:
                    if vertex not in seen:
                        seen[vertex] = seen[(kind, name)] + 1
                        following.append(vertex)
            frontier = following
        result = {name: d for (kind, name), d in seen.items() if kind == "h"}
        self._bfs_cache[host] = result
        return result

    def distance(self, a: str, b: str) -> int | None:
        """d(a, b), None when no path joins them."""
        return self.distances_from(a).get(b)


def _graph(switches: set[str], cables: Iterable[tuple[str, str]], ca_host: Mapping[str, str],
           endpoints: set[str] | None = None) -> HostGraph:
    """ENDPOINTS: ids of the CAs that are endpoints (named or not); default: the named ones."""
    endpoints = set(ca_host) if endpoints is None else endpoints
    host_switches: dict[str, set[str]] = {}
    switch_links: dict[str, set[str]] = {s: set() for s in switches}
    endpoint_switches: set[str] = set()
    for x, y in cables:
        if x == y:
            continue  # a loopback cable joins a switch to itself
        if x in switches and y in switches:
            switch_links[x].add(y)
            switch_links[y].add(x)
            continue
        for sw, ca in ((x, y), (y, x)):
            if sw in switches and ca in endpoints:
                endpoint_switches.add(sw)
            if sw in switches and ca in ca_host:
                host_switches.setdefault(ca_host[ca], set()).add(sw)
    return HostGraph(host_switches=host_switches, switch_links=switch_links, endpoint_switches=endpoint_switches)


def read_ibnetdiscover(text: str) -> HostGraph:
    """The contract graph of raw `ibnetdiscover` output (default, -g or -s format)."""
    switches: set[str] = set()
    ca_host: dict[str, str] = {}
    endpoints: set[str] = set()
    cables: list[tuple[str, str]] = []
    current: str | None = None
    for line in text.splitlines():
        header = _HEADER.match(line)
        if header:
            kind, current, desc = header.group(1), header.group(2), header.group(3) or ""
            if kind == "Ca":
                if "aggregation node" not in desc.lower():
                    endpoints.add(current)
                host = host_of(desc)
                if host is not None:
                    ca_host[current] = host
            else:
                switches.add(current)
            continue
        port = _PORT.match(line.strip())
        if port and current is not None:
            cables.append((current, port.group(2)))
    return _graph(switches, cables, ca_host, endpoints)


@lru_cache(maxsize=8)
def read_capture(path: str) -> HostGraph:
    with open(path, encoding="utf-8") as handle:
        return read_ibnetdiscover(handle.read())


def graph_of(fabric: Any) -> HostGraph:
    """The contract graph of a generated fabric, from its plain data only: node type and host
    name per node, cables as node index pairs (the generator's own definition of the fabric)."""
    switches = {str(i) for i, node in enumerate(fabric.nodes) if node.type == "switch"}
    ca_host = {str(i): node.host for i, node in enumerate(fabric.nodes) if node.type != "switch" and node.host}
    return _graph(switches, ((str(link.a), str(link.b)) for link in fabric.links), ca_host)


class _RequestLike(Protocol):
    gpus: int | None
    gpus_per_node: int | None
    nodes: int | None
    max_hops: int | None


def brute_force(graph: HostGraph, free: Mapping[str, int], request: _RequestLike,
                max_candidates: int = 2_000_000) -> tuple[int, int] | None:
    """(least pair_hops_sum, least leaf switches at that cost) over every allocation; None if none.

    A request is N GPUs anywhere (`gpus`), or `nodes` hosts x `gpus_per_node` GPUs each; every
    allocation that fits the free GPUs is enumerated and costed from the contract's definitions.
    """
    excluded = set(getattr(request, "exclude", ()) or ())
    free = {h: g for h, g in free.items() if h not in excluded}
    per_node = request.gpus_per_node
    if per_node is None and request.nodes is not None and request.gpus is not None:
        per_node = request.gpus // request.nodes
    if per_node is not None:
        need = request.nodes if request.nodes is not None else (request.gpus or 0) // per_node
        hosts = [h for h in sorted(free) if free[h] >= per_node]
        limits = [1] * len(hosts)
        unit = per_node
    else:
        need = request.gpus or 0
        hosts = [h for h in sorted(free) if free[h] > 0]
        limits = [int(free[h]) for h in hosts]
        unit = 1
    if _count_splits(limits, need) > max_candidates:
        raise ValueError(f"instance too large for brute force ({_count_splits(limits, need)} candidates)")
    dist = [[graph.distance(a, b) for b in hosts] for a in hosts]
    best: tuple[int, int] | None = None
    for split in _splits(limits, need):
        used = [i for i, g in enumerate(split) if g]
        cost = worst = 0
        connected = True
        for k, a in enumerate(used):
            for b in used[k + 1:]:
                d = dist[a][b]
                if d is None:
                    connected = False
                    break
                cost += split[a] * split[b] * unit * unit * d
                worst = max(worst, d)
        if not connected or (request.max_hops is not None and worst > request.max_hops):
            continue
        candidate = (cost, graph.leaf_count(hosts[i] for i in used))
        if best is None or candidate < best:
            best = candidate
    return best


def _splits(limits: list[int], need: int) -> Iterator[tuple[int, ...]]:
    """Every vector g with 0 <= g_i <= limits[i] and sum g == need."""
    current = [0] * len(limits)
    room = [sum(limits[i:]) for i in range(len(limits) + 1)]

    def walk(i: int, left: int) -> Iterator[tuple[int, ...]]:
        if i == len(limits):
            if left == 0:
                yield tuple(current)
            return
        for g in range(max(0, left - room[i + 1]), min(limits[i], left) + 1):
            current[i] = g
            yield from walk(i + 1, left - g)
        current[i] = 0

    if need <= room[0]:
        yield from walk(0, need)


def _count_splits(limits: list[int], need: int) -> int:
    ways = [1] + [0] * need
    for x in limits:
        ways = [sum(ways[t - g] for g in range(min(x, t) + 1)) for t in range(need + 1)]
    return ways[need]


# -- an independent reader of Slurm's topology files (tree and block topology.conf, topology.yaml) --

def expand_names(text: str) -> list[str]:
    """`gpu[001-003,7],x9` -> names; one bracket group per name (what Slurm's tools fold to)."""
    names: list[str] = []
    for piece in re.findall(r"[^,\[]*(?:\[[^\]]*\][^,\[]*)?", text):
        if not piece:
            continue
        m = re.fullmatch(r"([^\[]*)\[([^\]]*)\](.*)", piece)
        if not m:
            names.append(piece)
            continue
        head, ranges, tail = m.groups()
        for part in ranges.split(","):
            lo, _, hi = part.partition("-")
            width = len(lo)
            for n in range(int(lo), int(hi or lo) + 1):
                names.append(f"{head}{n:0{width}d}{tail}")
    return names


def read_tree_conf(text: str) -> dict[str, list[str]]:
    """topology.conf (tree or block): switch/block name -> its Nodes= hosts (in line order)."""
    result: dict[str, list[str]] = {}
    for line in text.splitlines():
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f and not line.startswith("#"))
        name = fields.get("SwitchName") or fields.get("BlockName")
        if name and "Nodes" in fields:
            result.setdefault(name, []).extend(expand_names(fields["Nodes"]))
    return result


def read_topology_yaml(text: str) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """topology.yaml: (tree switch -> nodes, block -> nodes), read line by line (no YAML library)."""
    tree: dict[str, list[str]] = {}
    block: dict[str, list[str]] = {}
    current: dict[str, list[str]] | None = None
    name = ""
    for line in text.splitlines():
        item = line.strip()
        if item.startswith("- topology:"):
            current = tree if item.endswith("tree") else block
        m = re.fullmatch(r'- (switch|block): "(.*)"', item)
        if m:
            name = m.group(2)
        m = re.fullmatch(r'nodes: "(.*)"', item)
        if m and current is not None:
            current.setdefault(name, []).extend(expand_names(m.group(1)))
    return tree, block


def host_to_leaf(groups: dict[str, list[str]]) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for leaf, hosts in groups.items():
        for host in hosts:
            assert host not in mapping, f"{host} listed twice ({mapping[host]}, {leaf})"
            mapping[host] = leaf
    return mapping


def logical_leaf(graph: HostGraph, host: str) -> set[str]:
    """Switches reachable from HOST's switches by hopping through hosts cabled to two or more."""
    seen = set(graph.host_switches[host])
    frontier = list(seen)
    while frontier:
        switch = frontier.pop()
        for other in graph.switch_hosts.get(switch, ()):
            for joined in graph.host_switches[other]:
                if len(graph.host_switches[other]) > 1 and joined not in seen:
                    seen.add(joined)
                    frontier.append(joined)
    return seen
