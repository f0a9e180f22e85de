"""Theme: links. link-degraded (width or speed below what the design and both ends' hardware
give), switch-loopback (a cable between two ports of one switch)."""

from __future__ import annotations

from collections import defaultdict

from gpupool.audit.checks.common import Rate, _plural, describe_link, link_class
from gpupool.audit.checks.registry import AuditInput, audit_check
from gpupool.audit.rollup import INFO, WARNING, Finding
from gpupool.audit.topology import Topo, mode
from gpupool.fabric import devices
from gpupool.fabric.model import SPEED_GBPS, Link, Node, natural_key

# Above this many links with one cause, one finding counts them instead of one finding each.
GROUP_ABOVE = 3


def _is_loopback(link: Link) -> bool:
    return link.a == link.b


def check_link_rates(topo: Topo, expected_by_link: dict[int, Link] | None = None) -> list[Finding]:
    """link-degraded: width or speed below the reference's, else below the majority of its class,
    never expecting more than both ends' hardware runs (an FDR switch on an EDR fabric, a ConnectX-2
    at QDR are at their best). Loopback cables are apart. One finding per cause, with a count."""
    links = topo.fabric.links
    nodes = topo.fabric.nodes
    majority: dict[str, Rate | None] = {}
    for cls_name in ("host", "switch"):
        majority[cls_name] = mode(Rate.of(lk) for lk in links if link_class(topo, lk) == cls_name
                                  and not _is_loopback(lk))
    causes: dict[tuple[str, str, str, str], list[tuple[int, str]]] = defaultdict(list)
    labels: dict[str, str] = topo.fabric.meta.get("port_labels") or {}
    for li, link in enumerate(links):
        if _is_loopback(link):
            continue
        ref = (expected_by_link or {}).get(li)
        cls_name = link_class(topo, link)
        expected = Rate.of(ref) if ref is not None else majority[cls_name]
        if expected is None:
            continue
        cap = devices.speed_cap(nodes[link.a].devid, nodes[link.b].devid)
        lane = expected.lane_gbps if cap is None else min(expected.lane_gbps, cap)
        got = Rate.of(link)
        # A split port (ibdiagnet label ASIC/Cage/Port/Split or Port/Split) runs half the lanes by design.
        lanes = max(1, expected.lanes // 2) if ref is None and _split_port(labels, nodes, link) else expected.lanes
        if got.lanes >= lanes and got.lane_gbps >= lane - 1e-9:
            continue
        if ref is not None:
            want, basis = f"{ref.width} {ref.speed}", "the reference design has it at"
        else:
            want, basis = _rate_text(links, topo, cls_name, expected, lane), f"{cls_name} links between these devices run at"
        subject, where = describe_link(topo, li)
        causes[(cls_name, f"{link.width} {link.speed}", want, basis)].append((li, where))
    findings = []
    for (cls_name, got_text, want, basis), members in causes.items():
        if len(members) <= GROUP_ABOVE:
            for li, where in members:
                link = links[li]
                subject, _ = describe_link(topo, li)
                findings.append(Finding("link-degraded", WARNING, subject,
                                        f"{where} runs at {got_text} ({link.gbps:g} Gb/s); {basis} {want}",
                                        {"width": link.width, "speed": link.speed, "expected": want}))
            continue
        shown = "; ".join(where for _li, where in members[:5])
        more = f" and {len(members) - 5} more" if len(members) > 5 else ""
        findings.append(Finding("link-degraded", WARNING, f"{len(members)} {cls_name} links at {got_text}",
                                f"{len(members)} {cls_name} links run at {got_text}; {basis} {want}: {shown}{more}",
                                {"count": len(members), "speed": got_text, "expected": want}))
    return findings


def _split_port(labels: dict[str, str], nodes: list[Node], link: Link) -> bool:
    for node, port in ((link.a, link.a_port), (link.b, link.b_port)):
        label = labels.get(f"{nodes[node].id}:{port}")
        if label and label.count("/") in (1, 3):
            return True
    return False


def _rate_text(links: list[Link], topo: Topo, cls_name: str, rate: Rate, lane: float) -> str:
    if lane < rate.lane_gbps:
        speed = next((s for s, g in SPEED_GBPS.items() if abs(g - lane) < 1e-9), f"{lane:g} Gb/s per lane")
        return f"{rate.lanes}x {speed} (the most both ends support)"
    for lk in links:
        if link_class(topo, lk) == cls_name and Rate.of(lk) == rate:
            return f"{lk.width} {lk.speed}"
    return f"{rate.lanes}x {rate.lane_gbps:g} Gb/s"


def check_loopbacks(topo: Topo) -> list[Finding]:
    """switch-loopback (info): cables from a switch back to itself (test or burn-in loops): they carry
    no traffic between switches, so they are not uplinks and not degraded links."""
    per_switch: dict[int, list[str]] = defaultdict(list)
    for link in topo.fabric.links:
        if _is_loopback(link) and topo.is_switch(link.a):
            lo, hi = sorted((link.a_port, link.b_port))
            per_switch[link.a].append(f"{lo}-{hi} ({link.width}{link.speed})")
    return [Finding("switch-loopback", INFO, topo.label(sw),
                    f"switch {topo.label(sw)} has {_plural(len(pairs), 'loopback cable')}: ports {', '.join(sorted(pairs))}",
                    {"count": len(pairs)})
            for sw, pairs in sorted(per_switch.items(), key=lambda kv: natural_key(topo.label(kv[0])))]


@audit_check("link-degraded", "links", WARNING,
             "a cable below the rate of its class, capped by what both ends' hardware supports")
def _link_degraded(audit: AuditInput) -> list[Finding]:
    return check_link_rates(audit.topo, audit.expected_by_link)


@audit_check("switch-loopback", "links", INFO, "a cable between two ports of one switch")
def _switch_loopback(audit: AuditInput) -> list[Finding]:
    return check_loopbacks(audit.topo)
