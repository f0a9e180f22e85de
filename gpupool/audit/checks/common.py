"""Shared pieces of the audit checks: link classes, rates, wording helpers (a link's ends in a stable
order, which the reference matcher uses too, are gpupool.audit.topology.link_ends)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from gpupool.audit.topology import Topo, link_ends
from gpupool.fabric.model import SPEED_GBPS, WIDTH_LANES, Link

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


def describe_link(topo: Topo, li: int) -> tuple[str, str]:
    """(subject, "A port x -- B port y") with the switch (leaf) end first."""
    a, ap, b, bp = link_ends(topo, topo.fabric.links[li])
    return topo.port_name(a, ap), f"{topo.port_name(a, ap)} -- {topo.label(b)} port {bp}"


def _far_end(topo: Topo, li: int, node: int) -> int:
    link = topo.fabric.links[li]
    return link.b if link.a == node else link.a
