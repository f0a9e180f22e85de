"""What discovery set apart from the compute fabric, by name and why (`fabric show --set-apart`).

Service hosts, SHARP aggregation nodes, HCAs without a host name, hosts outside --hosts/--slurm,
and switches outside the logical tree (management switches with no compute host below) are kept
out of placement and topology.conf; an admin must be able to see which ones and for what reason.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gpupool.fabric.model import (
    ROLE_AGGREGATION,
    ROLE_EXCLUDED,
    ROLE_SERVICE,
    ROLE_UNNAMED,
    Fabric,
    natural_key,
)

if TYPE_CHECKING:
    from gpupool.fabric.compiled import CompiledFabric

WHY = {
    "service_hosts": "storage, management or login hosts (--service-hosts, cabled to spines only, or alone on a "
                     "single-rail switch): kept out of compute, topology.conf and placement",
    "aggregation_nodes": "SHARP aggregation nodes: the switches' in-network reduction engines, never hosts",
    "unnamed_hcas": "HCAs whose node description names no legal host",
    "excluded_hosts": "hosts outside --hosts / Slurm's node list at discovery",
    "switches_outside_tree": "switches with no compute host below them (management or service switches): "
                             "not part of the logical tree, topology.conf or hop distances",
}


def set_apart(fabric: Fabric, compiled: CompiledFabric) -> dict[str, dict[str, Any]]:
    """Category -> {"count", "names", "why"} for every non-empty category (names in natural order;
    aggregation nodes are named by the switch they sit on)."""
    peer: dict[str, str] = {}  # node id -> the name of what its first cable reaches
    for link in fabric.links:
        a, b = fabric.nodes[link.a], fabric.nodes[link.b]
        peer.setdefault(a.id, b.name or b.id)
        peer.setdefault(b.id, a.name or a.id)
    names: dict[str, set[str]] = {key: set() for key in WHY}
    for node in fabric.nodes:
        if node.role == ROLE_SERVICE and node.host:
            names["service_hosts"].add(node.host)
        elif node.role == ROLE_AGGREGATION:
            names["aggregation_nodes"].add(f"{node.guid or node.id} (on {peer.get(node.id, '?')})")
        elif node.role == ROLE_UNNAMED:
            names["unnamed_hcas"].add(f"{node.guid or node.id} ({node.desc!r})")
        elif node.role == ROLE_EXCLUDED and node.host:
            names["excluded_hosts"].add(node.host)
    names["switches_outside_tree"] = {compiled.switch_names[s] for s, t in enumerate(compiled.switch_tree_node.tolist())
                                      if t < 0}
    return {key: {"count": len(found), "names": sorted(found, key=natural_key), "why": WHY[key]}
            for key, found in names.items() if found}
