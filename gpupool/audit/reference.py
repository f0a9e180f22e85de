"""Comparison with a reference fabric (an earlier discovery or a generated design).

Nodes match by GUID, else by name (switch name, `host/hca` for HCAs); cables match by their two
end nodes, preferring the same port numbers, so a design whose port numbering differs still works.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from gpupool.audit.rollup import CRITICAL, WARNING, Finding
from gpupool.audit.topology import Topo, link_ends
from gpupool.fabric.model import ROLE_HCA, Fabric, Link, Node, natural_key


@dataclass
class ReferenceMatch:
    node_map: dict[int, int] = field(default_factory=dict)  # reference node -> current node
    expected_by_link: dict[int, Link] = field(default_factory=dict)  # current link -> reference link
    expected_uplinks: dict[int, int] = field(default_factory=dict)  # current leaf -> reference uplinks
    findings: list[Finding] = field(default_factory=list)
    missing_links: int = 0


def _node_name(node: Node) -> str:
    if node.type == "switch":
        return f"switch:{node.name or node.desc}"
    if node.role == ROLE_HCA and node.host:
        return f"hca:{node.name}"
    return ""


def match_nodes(current: Fabric, reference: Fabric) -> dict[int, int]:
    by_guid = {n.guid.lower(): i for i, n in enumerate(current.nodes) if n.guid}
    by_name: dict[str, int] = {}
    for i, n in enumerate(current.nodes):
        key = _node_name(n)
        if key:
            by_name.setdefault(key, i)
    out: dict[int, int] = {}
    taken: set[int] = set()
    for r, node in enumerate(reference.nodes):
        hit = by_guid.get(node.guid.lower()) if node.guid else None
        if hit is not None and current.nodes[hit].type != node.type:
            hit = None
        if hit is None:
            key = _node_name(node)
            hit = by_name.get(key) if key else None
        if hit is not None and hit not in taken:
            out[r] = hit
            taken.add(hit)
    return out


def compare(topo: Topo, reference: Fabric) -> ReferenceMatch:
    current = topo.fabric
    ref_topo = Topo.of(reference)
    result = ReferenceMatch(node_map=match_nodes(current, reference))
    nmap = result.node_map

    for r, node in enumerate(reference.nodes):
        if r in nmap or not ref_topo.adj[r]:
            continue
        cables = [ref_topo.label(j) for j, _li in ref_topo.adj[r]]
        if node.type == "switch":
            result.findings.append(Finding(
                "switch-missing", CRITICAL, ref_topo.label(r),
                f"switch {ref_topo.label(r)} ({node.guid}) of the reference is not in the fabric: "
                f"{len(cables)} cables lost (to {_fold(cables)})"))
        elif node.role != "aggregation":
            where = ", ".join(f"{ref_topo.port_name(a.switch, a.port)}" for a in ref_topo.switch_ports(r))
            result.findings.append(Finding(
                "hca-missing", CRITICAL, ref_topo.label(r),
                f"HCA {ref_topo.label(r)} ({node.guid}) of the reference is not in the fabric (was on {where}): "
                "its link is down or the host is off", {"host": node.host} if node.host else {}))

    # Current cables by unordered end-node pair, so each reference cable can claim one.
    pool: dict[tuple[int, int], list[int]] = defaultdict(list)
    for li, link in enumerate(current.links):
        pool[(min(link.a, link.b), max(link.a, link.b))].append(li)
    claimed: set[int] = set()
    unmatched: list[Link] = []
    for link in reference.links:
        if link.a not in nmap or link.b not in nmap:
            continue  # reported with the missing node
        ca, cb = nmap[link.a], nmap[link.b]
        candidates = [li for li in pool.get((min(ca, cb), max(ca, cb)), []) if li not in claimed]
        same_ports = [li for li in candidates if _ports_of(current.links[li], ca, cb) == (link.a_port, link.b_port)]
        pick = same_ports[0] if same_ports else candidates[0] if candidates else None
        if pick is None:
            unmatched.append(link)
            continue
        claimed.add(pick)
        result.expected_by_link[pick] = link
    for link in unmatched:
        a, ap, b, bp = link_ends(ref_topo, link)
        host_link = reference.nodes[b].type != "switch"
        subject = f"{ref_topo.label(a)} port {ap}"
        result.findings.append(Finding(
            "link-missing", CRITICAL if host_link else WARNING, subject,
            f"cable {subject} -- {ref_topo.label(b)} port {bp} of the reference is missing or down"
            + (f": {ref_topo.label(b)} has no path through it" if host_link else ""),
            {"host": reference.nodes[b].host} if host_link and reference.nodes[b].host else {}))
    result.missing_links = len(unmatched)

    for r in ref_topo.leaves:
        if r in nmap and nmap[r] in topo.leaves:
            result.expected_uplinks[nmap[r]] = len(ref_topo.uplinks(r))
    return result


def _ports_of(link: Link, a: int, b: int) -> tuple[int, int]:
    return (link.a_port, link.b_port) if link.a == a else (link.b_port, link.a_port)


def _fold(names: list[str]) -> str:
    uniq = sorted(set(names), key=natural_key)
    return ", ".join(uniq[:6]) + (f" and {len(uniq) - 6} more" if len(uniq) > 6 else "")
