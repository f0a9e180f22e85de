"""Read-only views of a Fabric that the checks share: leaves, ports, rails, leaf groups, name classes."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from gpupool.fabric.model import (
    ROLE_AGGREGATION,
    ROLE_EXCLUDED,
    ROLE_HCA,
    ROLE_SERVICE,
    ROLE_UNNAMED,
    Fabric,
    Link,
    Node,
    natural_key,
)

T = TypeVar("T", bound=Hashable)

_DIGITS = re.compile(r"\d+")
_TRAILING_NUMBER = re.compile(r"^(.*?)(\d+)$")


def mode(values: Iterable[T]) -> T | None:
    """Most common value; ties go to the largest (a design is rarely below its own majority)."""
    counts = Counter(values)
    if not counts:
        return None
    best = max(counts.values())
    return max((v for v, c in counts.items() if c == best), key=_sortable)


def _sortable(value: object) -> tuple[int, object]:
    return (0, value) if isinstance(value, int | float) else (1, str(value))


def name_class(name: str) -> str:
    """Hosts named alike (digits aside) are peers: `a05-p1-dgx-01-c03` -> `a#-p#-dgx-#-c#`."""
    return _DIGITS.sub("#", name)


def hca_label(node: Node) -> str:
    """The HCA's own name within its host (`mlx5_0`, `HCA-1`), from the node description."""
    words = node.desc.split()
    if len(words) > 1:
        return words[1]
    if "/" in node.name:
        return node.name.split("/", 1)[1]
    return ""


@dataclass
class Attachment:
    """One cable end seen from a switch: which port and which link."""

    switch: int
    port: int
    link: int


@dataclass
class Topo:
    """Derived, read-only structure of a fabric (built once, used by every check)."""

    fabric: Fabric
    adj: list[list[tuple[int, int]]] = field(default_factory=list)
    leaves: list[int] = field(default_factory=list)
    leaf_group: dict[int, int] = field(default_factory=dict)
    leaf_set: frozenset[int] = frozenset()
    level_of: dict[int, int] = field(default_factory=dict)  # switch node -> up/down level (1 = leaf)
    leaf_class: dict[int, str] = field(default_factory=dict)  # leaf -> "compute" | "service" | "hostless"
    _members: dict[int, list[int]] | None = None

    @classmethod
    def of(cls, fabric: Fabric) -> Topo:
        from gpupool.fabric.structure import fabric_layering

        topo = cls(fabric=fabric, adj=fabric.neighbours())
        switches, layering = fabric_layering(fabric)
        topo.level_of = {node: int(layering.level[k]) for k, node in enumerate(switches)}
        topo.leaves = sorted((node for node, lv in topo.level_of.items() if lv == 1),
                             key=lambda i: natural_key(topo.label(i)))
        topo.leaf_set = frozenset(topo.leaves)
        topo.leaf_class = {leaf: topo._class_of(leaf) for leaf in topo.leaves}
        topo.leaf_group = topo._leaf_groups()
        return topo

    def _class_of(self, leaf: int) -> str:
        """compute: carries a compute HCA (or an unnamed one); service: only service/excluded hosts."""
        roles = {self.fabric.nodes[j].role for j, _li in self.adj[leaf] if self.is_endpoint(j)}
        if not roles:
            return "hostless"
        if roles & {ROLE_HCA, ROLE_UNNAMED}:
            return "compute"
        return "service" if roles <= {ROLE_SERVICE, ROLE_EXCLUDED} else "compute"

    # ---- names ----
    def label(self, i: int) -> str:
        node = self.fabric.nodes[i]
        if node.type == "switch":
            return node.name or node.id
        if node.role == ROLE_HCA and node.name:
            return node.name
        return node.guid or node.id

    def port_name(self, switch: int, port: int) -> str:
        return f"{self.label(switch)} port {port}"

    # ---- structure ----
    def is_endpoint(self, i: int) -> bool:
        """A CA that carries traffic for a host (named or not); SHARP aggregation nodes do not."""
        node = self.fabric.nodes[i]
        return node.type != "switch" and node.role != ROLE_AGGREGATION

    def is_switch(self, i: int) -> bool:
        return self.fabric.nodes[i].type == "switch"

    def port_of(self, link: Link, node: int) -> int:
        return link.a_port if link.a == node else link.b_port

    def switch_ports(self, ca: int) -> list[Attachment]:
        """Where an HCA plugs in: (switch, switch port, link) for each of its cables."""
        out = []
        for j, li in self.adj[ca]:
            if self.is_switch(j):
                out.append(Attachment(j, self.port_of(self.fabric.links[li], j), li))
        return out

    def uplinks(self, switch: int) -> list[int]:
        return [li for j, li in self.adj[switch] if self.is_switch(j) and j != switch]

    def downlinks(self, switch: int) -> list[int]:
        return [li for j, li in self.adj[switch] if self.is_endpoint(j)]

    def endpoint_at(self, switch: int) -> dict[int, int]:
        """Switch port -> endpoint CA node cabled there."""
        out = {}
        for j, li in self.adj[switch]:
            if self.is_endpoint(j):
                out[self.port_of(self.fabric.links[li], switch)] = j
        return out

    def used_ports(self, switch: int) -> set[int]:
        return {self.port_of(self.fabric.links[li], switch) for _j, li in self.adj[switch]}

    def hosts(self) -> dict[str, list[int]]:
        return self.fabric.hosts()

    def unnamed(self) -> list[int]:
        return [i for i, n in enumerate(self.fabric.nodes) if n.type != "switch" and n.role == ROLE_UNNAMED]

    def _leaf_groups(self) -> dict[int, int]:
        """Leaves joined by multi-rail hosts form one group (a scalable unit's rail leaves)."""
        parent = {leaf: leaf for leaf in self.leaves}

        def find(v: int) -> int:
            while parent[v] != v:
                parent[v] = parent[parent[v]]
                v = parent[v]
            return v

        for hcas in self.hosts().values():
            switches = sorted({a.switch for h in hcas for a in self.switch_ports(h) if a.switch in parent})
            for s in switches[1:]:
                ra, rb = find(switches[0]), find(s)
                if ra != rb:
                    parent[max(ra, rb)] = min(ra, rb)
        roots = sorted({find(v) for v in self.leaves})
        rid = {r: k for k, r in enumerate(roots)}
        return {leaf: rid[find(leaf)] for leaf in self.leaves}

    def group_members(self) -> dict[int, list[int]]:
        if self._members is None:
            self._members = {}
            for leaf in self.leaves:
                self._members.setdefault(self.leaf_group[leaf], []).append(leaf)
        return self._members


def link_ends(topo: Topo, link: Link) -> tuple[int, int, int, int]:
    """(a, a_port, b, b_port) in a stable order: the switch end first; between switches the leaf,
    then the name that sorts first."""
    a, ap, b, bp = link.a, link.a_port, link.b, link.b_port
    leaves = topo.leaf_set

    def rank(node: int) -> tuple[int, tuple[object, ...]]:
        kind = 0 if node in leaves else 1 if topo.is_switch(node) else 2
        return kind, natural_key(topo.label(node))

    if rank(b) < rank(a):
        a, ap, b, bp = b, bp, a, ap
    return a, ap, b, bp


def split_trailing_number(name: str) -> tuple[str, str] | None:
    m = _TRAILING_NUMBER.match(name)
    return (m.group(1), m.group(2)) if m else None
