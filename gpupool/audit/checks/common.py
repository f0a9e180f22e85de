"""Shared pieces of the audit checks: link classes and ends, rates, wording helpers."""

from __future__ import annotations

import re
from dataclasses import dataclass

from gpupool.audit.topology import Topo
from gpupool.fabric.model import SPEED_GBPS, WIDTH_LANES, Link, natural_key

# Host names an OS installer leaves behind: several machines may share them, and none is the real one.
GENERIC_HOST_NAMES = re.compile(
    r"^(localhost(\.localdomain)?|ubuntu|debian|centos|rocky|rhel|redhat|fedora|almalinux|sles|suse|"
    r"linux|dgx|dgxh100|dgxa100|node|host|default|\(none\)|\(null\))$", re.IGNORECASE)

# Below this many peers a majority says nothing.
MIN_PEERS = 3


@dataclass(frozen=True)
class Rate:
    lanes: int
    lane_gbps: float

    @classmethod
    def of(cls, link: Link) -> Rate:
        return cls(WIDTH_LANES.get(link.width, 4), SPEED_GBPS.get(link.speed, 0.0))


def _fmt_ports(ports: list[int]) -> str:
    return ", ".join(str(p) for p in sorted(ports))


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def link_class(topo: Topo, link: Link) -> str:
    return "switch" if topo.is_switch(link.a) and topo.is_switch(link.b) else "host"


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


def describe_link(topo: Topo, li: int) -> tuple[str, str]:
    """(subject, "A port x -- B port y") with the switch (leaf) end first."""
    a, ap, b, bp = link_ends(topo, topo.fabric.links[li])
    return topo.port_name(a, ap), f"{topo.port_name(a, ap)} -- {topo.label(b)} port {bp}"


def _far_end(topo: Topo, li: int, node: int) -> int:
    link = topo.fabric.links[li]
    return link.b if link.a == node else link.a
