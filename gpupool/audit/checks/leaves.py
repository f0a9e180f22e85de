"""Theme: leaves and uplinks. leaf-uplinks-missing, switch-uplinks-missing, leaf-oversubscribed,
leaf-group-short, leaf-hostless; leaves are compared only with leaves of their own class."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, replace

from gpupool.audit.checks.common import MIN_PEERS, _far_end, _fmt_ports, _plural
from gpupool.audit.checks.hosts import host_peer_classes
from gpupool.audit.checks.registry import AuditInput, CheckInfo, audit_check
from gpupool.audit.rollup import CRITICAL, INFO, WARNING, Finding
from gpupool.audit.topology import Topo, mode
from gpupool.fabric.model import ROLE_HCA, ROLE_UNNAMED, natural_key


@dataclass
class UplinkReport:
    findings: list[Finding]
    missing_total: int
    leaves_short: int


def check_leaf_uplinks(topo: Topo, expected_uplinks: dict[int, int] | None = None,
                       ignore_links: frozenset[int] = frozenset()) -> UplinkReport:
    """leaf-uplinks-missing: a leaf with fewer uplink cables than its peers (or its reference self),
    listing the spines short of cables and the ports the peers use for them. `ignore_links` are
    left out (dragonfly global links, which the dragonfly check counts per group pair)."""
    leaves = topo.leaves

    def uplinks(leaf: int) -> list[int]:
        return [li for li in topo.uplinks(leaf) if li not in ignore_links]

    counts = {leaf: len(uplinks(leaf)) for leaf in leaves}
    # Leaves are peers only within their class: a management leaf is not a compute leaf short of cables.
    by_class: dict[str, list[int]] = defaultdict(list)
    for leaf in leaves:
        by_class[topo.leaf_class.get(leaf, "compute")].append(leaf)
    usual_of = {cls: mode(counts[lf] for lf in members) if len(members) >= MIN_PEERS else None
                for cls, members in by_class.items()}
    per_pair: dict[tuple[int, int], list[int]] = defaultdict(list)  # (leaf, spine) -> leaf ports
    for leaf in leaves:
        for li in uplinks(leaf):
            link = topo.fabric.links[li]
            spine = link.b if link.a == leaf else link.a
            per_pair[(leaf, spine)].append(topo.port_of(link, leaf))
    cables_per_spine = mode(len(v) for v in per_pair.values()) or 0
    spine_leaves: dict[int, set[int]] = defaultdict(set)
    spine_ports: dict[int, Counter[int]] = defaultdict(Counter)
    for (leaf, spine), ports in per_pair.items():
        spine_leaves[spine].add(leaf)
        spine_ports[spine].update(ports)

    findings = []
    total = 0
    for leaf in leaves:
        want = (expected_uplinks or {}).get(leaf, usual_of[topo.leaf_class.get(leaf, "compute")])
        if want is None or counts[leaf] >= want:
            continue
        missing = want - counts[leaf]
        total += missing
        detail = _spine_shortfall(topo, leaf, per_pair, spine_leaves, spine_ports, cables_per_spine)
        peers = topo.leaf_class.get(leaf, "compute")
        basis = ("the reference design has" if expected_uplinks and leaf in expected_uplinks
                 else f"the other {peers} leaves have")
        message = (f"leaf {topo.label(leaf)} has {counts[leaf]} uplinks, {basis} {want}: "
                   f"{_plural(missing, 'cable')} missing")
        if detail:
            message += " (" + "; ".join(detail) + ")"
        findings.append(Finding("leaf-uplinks-missing", WARNING, topo.label(leaf), message,
                                {"uplinks": counts[leaf], "expected": want, "missing": missing}))
    return UplinkReport(findings, total, len(findings))


def _spine_shortfall(topo: Topo, leaf: int, per_pair: dict[tuple[int, int], list[int]],
                     spine_leaves: dict[int, set[int]], spine_ports: dict[int, Counter[int]],
                     cables_per_spine: int) -> list[str]:
    """Which spines this leaf is short of, and which of its ports the peers use for them."""
    mine = {spine for (lf, spine) in per_pair if lf == leaf}
    if not mine:
        return []  # no cable left to place it in a pod or plane: naming spines would be a guess
    # Spines of this leaf's pod: those shared with the leaves it shares any spine with.
    pod = {lf for spine in mine for lf in spine_leaves[spine]}
    used = topo.used_ports(leaf)
    out = []
    for spine in sorted(spine_leaves, key=lambda s: natural_key(topo.label(s))):
        if len(spine_leaves[spine] & pod) * 2 < len(pod):
            continue
        have = len(per_pair.get((leaf, spine), []))
        if have >= cables_per_spine:
            continue
        peers = len(spine_leaves[spine])
        usual_ports = [p for p, c in spine_ports[spine].items() if c * 2 >= peers and p not in used]
        text = f"{topo.label(spine)}: {have} of {cables_per_spine}"
        if usual_ports:
            # Whose port: the short switch's own (the port its peers use for this peer switch).
            text += (f", port{'s' if len(usual_ports) > 1 else ''} {_fmt_ports(usual_ports)} empty "
                     f"on {topo.label(leaf)}")
        far = _far_empty_ports(topo, leaf, spine, pod, per_pair, spine_leaves, cables_per_spine, cables_per_spine - have)
        if far:
            # The other end: the port of the far switch that its peers use for this same short switch.
            text += f", port{'s' if len(far) > 1 else ''} {_fmt_ports(far)} empty on {topo.label(spine)}"
        out.append(text)
    return out


def _far_end_ports(topo: Topo, near: int, far: int) -> list[int]:
    """The ports of `far` cabled to `near`."""
    return [topo.port_of(topo.fabric.links[li], far) for j, li in topo.adj[far] if j == near]


def _far_empty_ports(topo: Topo, leaf: int, spine: int, pod: set[int], per_pair: dict[tuple[int, int], list[int]],
                     spine_leaves: dict[int, set[int]], cables_per_spine: int, missing: int) -> list[int]:
    """The empty ports of `spine` where the missing cables from `leaf` belong: the ports the other switches
    of its level in the pod use for `leaf` (at least half of them agree, the regular cabling of a pod),
    that are not in use on `spine`. Empty when the peers disagree or more ports would be named than
    cables are missing (naming them would be a guess)."""
    peers = [s for s in spine_leaves if s != spine and len(spine_leaves[s] & pod) * 2 >= len(pod)
             and len(per_pair.get((leaf, s), [])) >= cables_per_spine]
    if not peers:
        return []
    seen: Counter[int] = Counter()
    for s in peers:
        seen.update(set(_far_end_ports(topo, leaf, s)))
    used = topo.used_ports(spine)
    ports = sorted(p for p, c in seen.items() if c * 2 > len(peers) and p not in used)
    return ports if 0 < len(ports) <= missing else []


def check_upper_uplinks(topo: Topo, level_of: dict[int, int]) -> list[Finding]:
    """switch-uplinks-missing: a spine (level >= 2 of a fat-tree) with fewer cables to the level above
    than the other switches of its level."""
    by_level: dict[int, dict[int, int]] = defaultdict(dict)
    # Per level: (switch, upper switch) -> the switch's ports cabled to it, to name both ends below.
    pairs: dict[int, dict[tuple[int, int], list[int]]] = defaultdict(lambda: defaultdict(list))
    top = max(level_of.values(), default=0)
    for node, level in level_of.items():
        if 2 <= level < top:
            by_level[level][node] = sum(1 for j, _li in topo.adj[node] if level_of.get(j) == level + 1)
            for j, li in topo.adj[node]:
                if level_of.get(j) == level + 1:
                    pairs[level][(node, j)].append(topo.port_of(topo.fabric.links[li], node))
    findings = []
    for level, counts in sorted(by_level.items()):
        if len(counts) < MIN_PEERS:
            continue
        usual = mode(counts.values()) or 0
        per_pair = pairs[level]
        cables_per_upper = mode(len(v) for v in per_pair.values()) or 0
        upper_lower: dict[int, set[int]] = defaultdict(set)
        upper_ports: dict[int, Counter[int]] = defaultdict(Counter)
        for (lower, upper), ports in per_pair.items():
            upper_lower[upper].add(lower)
            upper_ports[upper].update(ports)
        for node, have in sorted(counts.items(), key=lambda kv: natural_key(topo.label(kv[0]))):
            if have < usual:
                message = (f"level-{level} switch {topo.label(node)} has {have} cables to level {level + 1}, its "
                           f"peers have {usual}: {_plural(usual - have, 'cable')} missing")
                # The same reading as a short leaf: which upper switches it is short of, and its empty ports.
                detail = _spine_shortfall(topo, node, per_pair, upper_lower, upper_ports, cables_per_upper)
                if detail:
                    message += " (" + "; ".join(detail) + ")"
                findings.append(Finding("switch-uplinks-missing", WARNING, topo.label(node), message,
                                        {"uplinks": have, "expected": usual}))
    return findings


def _is_compute_hca(node: object, lone: set[str]) -> bool:
    role = getattr(node, "role", "")
    return role == ROLE_UNNAMED or (role == ROLE_HCA and getattr(node, "host", None) not in lone)


def check_oversubscription(topo: Topo, max_ratio: float | None = None) -> list[Finding]:
    """leaf-oversubscribed: host-facing bandwidth above uplink bandwidth by more than the design allows."""
    # Service hosts without peers (UFM, login nodes) carry little traffic: count compute HCAs only.
    lone = {h for members in host_peer_classes(topo).values() if len(members) < MIN_PEERS for h in members}
    nodes = topo.fabric.nodes
    ratios: dict[int, tuple[float, float, float]] = {}
    compute_ports: dict[int, int] = {}
    compute_leaves = [leaf for leaf in topo.leaves if topo.leaf_class.get(leaf) == "compute"]
    for leaf in compute_leaves:
        downlinks = [li for li in topo.downlinks(leaf) if _is_compute_hca(nodes[_far_end(topo, li, leaf)], lone)]
        compute_ports[leaf] = len(downlinks)
        down = sum(topo.fabric.links[li].gbps for li in downlinks)
        up = sum(topo.fabric.links[li].gbps for li in topo.uplinks(leaf))
        ratios[leaf] = (down, up, down / up if up else float("inf"))
    if not ratios:
        return []
    if max_ratio is None:
        # Design ratio: the usual host-port count over the usual uplink count, never below 1:1.
        down_n = mode(compute_ports.values()) or 0
        up_n = mode(len(topo.uplinks(leaf)) for leaf in compute_leaves) or 0
        design = down_n / up_n if up_n else 1.0
        max_ratio = max(1.0, design)
    findings = []
    for leaf, (down, up, ratio) in ratios.items():
        if up == 0 and len(compute_leaves) == 1:
            continue  # a single-switch fabric has no uplinks by design
        if ratio <= max_ratio + 1e-9:
            continue
        shown = "no uplinks" if up == 0 else f"{ratio:.2f}:1"
        findings.append(Finding(
            "leaf-oversubscribed", WARNING, topo.label(leaf),
            f"leaf {topo.label(leaf)} is oversubscribed {shown}: {down:g} Gb/s to "
            f"{compute_ports[leaf]} compute HCAs over {up:g} Gb/s of uplinks (allowed {max_ratio:.2f}:1)",
            {"down_gbps": down, "up_gbps": up, "ratio": None if up == 0 else round(ratio, 4),
             "allowed": round(max_ratio, 4), "uplinks": len(topo.uplinks(leaf))}))
    return findings


def fold_oversubscription(uplink_findings: list[Finding], oversubscribed: list[Finding]) -> tuple[
        list[Finding], list[Finding]]:
    """One root cause, one finding: a leaf oversubscribed only because uplink cables are missing
    (with them back, at the speed of its other uplinks, it would be within the allowed ratio) is
    told in its leaf-uplinks-missing finding. Returns (uplink findings, the oversubscription
    findings that remain: those the missing cables do not explain)."""
    short = {f.subject: f for f in uplink_findings}
    kept: list[Finding] = []
    for finding in oversubscribed:
        uplink = short.get(finding.subject)
        details = finding.details
        have = details.get("uplinks") or 0
        if uplink is None or have == 0:
            kept.append(finding)
            continue
        restored = details["up_gbps"] * uplink.details["expected"] / have
        if details["down_gbps"] / restored > details["allowed"] + 1e-9:
            kept.append(finding)  # still oversubscribed with every cable back: a fault of its own
            continue
        short[finding.subject] = replace(uplink, message=f"{uplink.message}; so it is oversubscribed "
                                                          f"{details['ratio']:.2f}:1 (allowed {details['allowed']:.2f}:1)")
    return [short.get(f.subject, f) for f in uplink_findings], kept


def check_leaf_groups(topo: Topo) -> list[Finding]:
    """leaf-group-short: a group of compute rail leaves with fewer leaves than the other groups, whose
    compute hosts all have fewer HCAs than the usual compute host: that rail's leaf switch is missing.
    The claim is checked before it is made: a group of storage appliances or of single-HCA hosts
    is another class of leaf, not a short group."""
    nodes = topo.fabric.nodes
    hosts = topo.hosts()
    groups = {g: members for g, members in topo.group_members().items()
              if all(topo.leaf_class.get(leaf) == "compute" for leaf in members)}
    if len(groups) < MIN_PEERS:
        return []
    usual = mode(len(v) for v in groups.values()) or 0
    cabled = {h: sum(1 for i in hcas if topo.switch_ports(i)) for h, hcas in hosts.items()}
    usual_hcas = mode(cabled.values()) or 0
    findings = []
    for members in groups.values():
        if len(members) >= usual:
            continue
        group_hosts = sorted({host for host in (nodes[ca].host for leaf in members for ca in topo.endpoint_at(leaf).values()
                                                if nodes[ca].role == ROLE_HCA) if host}, key=natural_key)
        if not group_hosts or any(cabled[h] >= usual_hcas for h in group_hosts):
            continue  # some host has all its rails: nothing is missing from this group
        most = max(cabled[h] for h in group_hosts)
        names = ", ".join(topo.label(leaf) for leaf in members)
        message = (f"rail leaf group {names} has {len(members)} leaves, the other groups have {usual}; "
                   f"none of its {len(group_hosts)} named hosts has more than {most} HCAs on the fabric "
                   f"(compute hosts have {usual_hcas}): a rail leaf switch of this group is missing "
                   "(powered off, or all its cables out)")
        findings.append(Finding("leaf-group-short", CRITICAL, names, message,
                                {"leaves": len(members), "expected": usual, "hosts": len(group_hosts)}))
    return findings


def check_hostless_leaves(topo: Topo) -> list[Finding]:
    """leaf-hostless (info): a leaf with no host at all: a management leaf, or its hosts are down
    or not cabled yet. It stays a leaf (level 1); it is not compared with leaves that carry hosts."""
    findings = []
    for leaf in topo.leaves:
        if topo.leaf_class.get(leaf) != "hostless":
            continue
        ups = Counter(topo.label(_far_end(topo, li, leaf)) for li in topo.uplinks(leaf))
        above = ", ".join(f"{name} ({n})" for name, n in sorted(ups.items(), key=lambda kv: natural_key(kv[0])))
        findings.append(Finding("leaf-hostless", INFO, topo.label(leaf),
                                f"leaf {topo.label(leaf)} has no host: {_plural(sum(ups.values()), 'uplink')} "
                                f"to {above or 'nothing'}; a management leaf, or its hosts are down or not cabled yet",
                                {"uplinks": sum(ups.values())}))
    return findings


@audit_check(reports=(
    CheckInfo("leaf-uplinks-missing", "leaves", WARNING, "a leaf with fewer uplinks than the leaves of its class"),
    CheckInfo("switch-uplinks-missing", "leaves", WARNING, "a spine with fewer cables up than its level's peers"),
    CheckInfo("leaf-oversubscribed", "leaves", WARNING, "compute HCA bandwidth above uplink bandwidth"),
))
def _uplinks(audit: AuditInput) -> list[Finding]:
    """Missing uplinks per level and oversubscription together: a leaf oversubscribed only by its
    missing uplinks is said once, in its leaf-uplinks-missing finding."""
    from gpupool.fabric.kinds import FabricKind

    findings: list[Finding] = []
    compiled = audit.compiled
    # The reference's per-cable comparison covers dragonfly routers.
    dragonfly = compiled is not None and compiled.kind is FabricKind.DRAGONFLY
    uplinks = check_leaf_uplinks(audit.topo, None if dragonfly else audit.expected_uplinks, audit.global_links)
    if compiled is not None and compiled.kind is FabricKind.FAT_TREE:
        levels = {int(n): int(lv) for n, lv in zip(compiled.switch_node, compiled.switch_level, strict=True)}
        upper = check_upper_uplinks(audit.topo, levels)
        findings += upper
        # Every missing cable counted once: spine-to-core cables beside the leaves' uplinks.
        audit.totals["missing_switch_uplinks"] = sum(f.details["expected"] - f.details["uplinks"] for f in upper)
        audit.totals["switches_missing_uplinks"] = len(upper)
    short_leaves, oversubscribed = fold_oversubscription(
        uplinks.findings, check_oversubscription(audit.topo, audit.max_oversubscription))
    findings += short_leaves
    audit.totals["missing_uplinks"] = uplinks.missing_total
    audit.totals["leaves_missing_uplinks"] = uplinks.leaves_short
    return findings + oversubscribed


@audit_check("leaf-group-short", "leaves", CRITICAL,
             "a group of rail leaves short of a leaf, whose compute hosts all lack that rail")
def _leaf_group_short(audit: AuditInput) -> list[Finding]:
    return check_leaf_groups(audit.topo)


@audit_check("leaf-hostless", "leaves", INFO, "a leaf with no host at all")
def _leaf_hostless(audit: AuditInput) -> list[Finding]:
    return check_hostless_leaves(audit.topo)
