"""Structural fabric checks: pure functions from a Topo (and optional reference) to findings.

Each check has an id (the `check` of its findings), a fixed severity, and names the switch, port
and host at fault. "Expected" comes from the reference design when one is given, else from the
majority of comparable things (links of the same class, leaves, hosts named alike).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass

from gpupool.audit.findings import CRITICAL, WARNING, Finding
from gpupool.audit.topology import Topo, hca_label, mode, name_class, split_trailing_number
from gpupool.fabric.model import ROLE_HCA, SPEED_GBPS, WIDTH_LANES, Fabric, Link, natural_key

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


# ---------------------------------------------------------------------------------------------
# Links
# ---------------------------------------------------------------------------------------------

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


def check_link_rates(topo: Topo, expected_by_link: dict[int, Link] | None = None) -> list[Finding]:
    """link-degraded: width or speed below the reference's, else below the majority of its class."""
    links = topo.fabric.links
    majority: dict[str, Rate | None] = {}
    for cls_name in ("host", "switch"):
        majority[cls_name] = mode(Rate.of(lk) for lk in links if link_class(topo, lk) == cls_name)
    findings = []
    for li, link in enumerate(links):
        ref = (expected_by_link or {}).get(li)
        expected = Rate.of(ref) if ref is not None else majority[link_class(topo, link)]
        if expected is None:
            continue
        got = Rate.of(link)
        if got.lanes >= expected.lanes and got.lane_gbps >= expected.lane_gbps:
            continue
        subject, where = describe_link(topo, li)
        want = f"{ref.width} {ref.speed}" if ref is not None else _rate_text(links, topo, link_class(topo, link), expected)
        basis = "the reference design has it at" if ref is not None else f"most {link_class(topo, link)} links run at"
        findings.append(Finding("link-degraded", WARNING, subject,
                                f"{where} runs at {link.width} {link.speed} ({link.gbps:g} Gb/s); {basis} {want}",
                                {"width": link.width, "speed": link.speed, "expected": want}))
    return findings


def _rate_text(links: list[Link], topo: Topo, cls_name: str, rate: Rate) -> str:
    for lk in links:
        if link_class(topo, lk) == cls_name and Rate.of(lk) == rate:
            return f"{lk.width} {lk.speed}"
    return f"{rate.lanes}x {rate.lane_gbps:g} Gb/s"


# ---------------------------------------------------------------------------------------------
# Leaves: uplinks and oversubscription
# ---------------------------------------------------------------------------------------------

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
    usual = mode(counts.values()) if len(leaves) >= MIN_PEERS else None
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
        want = (expected_uplinks or {}).get(leaf, usual)
        if want is None or counts[leaf] >= want:
            continue
        missing = want - counts[leaf]
        total += missing
        detail = _spine_shortfall(topo, leaf, per_pair, spine_leaves, spine_ports, cables_per_spine)
        basis = "the reference design has" if expected_uplinks and leaf in expected_uplinks else "its peers have"
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
            text += f", port{'s' if len(usual_ports) > 1 else ''} {_fmt_ports(usual_ports)} empty"
        out.append(text)
    return out


def check_upper_uplinks(topo: Topo, level_of: dict[int, int]) -> list[Finding]:
    """switch-uplinks-missing: a spine (level >= 2 of a fat-tree) with fewer cables to the level above
    than the other switches of its level."""
    by_level: dict[int, dict[int, int]] = defaultdict(dict)
    top = max(level_of.values(), default=0)
    for node, level in level_of.items():
        if 2 <= level < top:
            by_level[level][node] = sum(1 for j, _li in topo.adj[node] if level_of.get(j) == level + 1)
    findings = []
    for level, counts in sorted(by_level.items()):
        if len(counts) < MIN_PEERS:
            continue
        usual = mode(counts.values()) or 0
        for node, have in sorted(counts.items(), key=lambda kv: natural_key(topo.label(kv[0]))):
            if have < usual:
                findings.append(Finding(
                    "switch-uplinks-missing", WARNING, topo.label(node),
                    f"level-{level} switch {topo.label(node)} has {have} cables to level {level + 1}, its peers have "
                    f"{usual}: {_plural(usual - have, 'cable')} missing", {"uplinks": have, "expected": usual}))
    return findings


def _far_end(topo: Topo, li: int, node: int) -> int:
    link = topo.fabric.links[li]
    return link.b if link.a == node else link.a


def check_oversubscription(topo: Topo, max_ratio: float | None = None) -> list[Finding]:
    """leaf-oversubscribed: host-facing bandwidth above uplink bandwidth by more than the design allows."""
    # Service hosts without peers (UFM, login nodes) carry little traffic: count compute HCAs only.
    lone = {h for members in host_peer_classes(topo).values() if len(members) < MIN_PEERS for h in members}
    nodes = topo.fabric.nodes
    ratios: dict[int, tuple[float, float, float]] = {}
    compute_ports: dict[int, int] = {}
    for leaf in topo.leaves:
        downlinks = [li for li in topo.downlinks(leaf)
                     if nodes[_far_end(topo, li, leaf)].host not in lone or nodes[_far_end(topo, li, leaf)].role != ROLE_HCA]
        compute_ports[leaf] = len(downlinks)
        down = sum(topo.fabric.links[li].gbps for li in downlinks)
        up = sum(topo.fabric.links[li].gbps for li in topo.uplinks(leaf))
        ratios[leaf] = (down, up, down / up if up else float("inf"))
    if not ratios:
        return []
    if max_ratio is None:
        # Design ratio: the usual host-port count over the usual uplink count, never below 1:1.
        down_n = mode(compute_ports.values()) or 0
        up_n = mode(len(topo.uplinks(leaf)) for leaf in topo.leaves) or 0
        design = down_n / up_n if up_n else 1.0
        max_ratio = max(1.0, design)
    findings = []
    for leaf, (down, up, ratio) in ratios.items():
        if up == 0 and len(topo.leaves) == 1:
            continue  # a single-switch fabric has no uplinks by design
        if ratio <= max_ratio + 1e-9:
            continue
        shown = "no uplinks" if up == 0 else f"{ratio:.2f}:1"
        findings.append(Finding(
            "leaf-oversubscribed", WARNING, topo.label(leaf),
            f"leaf {topo.label(leaf)} is oversubscribed {shown}: {down:g} Gb/s to "
            f"{compute_ports[leaf]} compute HCAs over {up:g} Gb/s of uplinks (allowed {max_ratio:.2f}:1)",
            {"down_gbps": down, "up_gbps": up, "ratio": None if up == 0 else round(ratio, 4)}))
    return findings


# ---------------------------------------------------------------------------------------------
# Hosts and HCAs
# ---------------------------------------------------------------------------------------------

def host_peer_classes(topo: Topo) -> dict[str, list[str]]:
    classes: dict[str, list[str]] = defaultdict(list)
    for host in topo.hosts():
        classes[name_class(host)].append(host)
    return classes


def check_host_rails(topo: Topo) -> list[Finding]:
    """host-rails-missing: a host with fewer HCAs than the hosts named like it, naming the missing rails."""
    hosts = topo.hosts()
    findings = []
    for _cls, members in sorted(host_peer_classes(topo).items()):
        if len(members) < MIN_PEERS:
            continue
        usual = mode(len(hosts[h]) for h in members) or 0
        full_labels = Counter(hca_label(topo.fabric.nodes[i]) for h in members if len(hosts[h]) == usual
                              for i in hosts[h])
        full_hosts = sum(1 for h in members if len(hosts[h]) == usual)
        expected_labels = {lb for lb, c in full_labels.items() if lb and c * 2 > full_hosts}
        for host in members:
            have = len(hosts[host])
            if have >= usual:
                continue
            labels = {hca_label(topo.fabric.nodes[i]) for i in hosts[host]}
            gone = sorted(expected_labels - labels, key=natural_key)
            where = ", ".join(f"{topo.label(i)} on {topo.port_name(a.switch, a.port)}"
                              for i in hosts[host] for a in topo.switch_ports(i))
            message = f"host {host} has {have} HCAs on the fabric, hosts named like it have {usual}"
            if gone:
                message += f": missing {', '.join(gone)}"
            message += f" (present: {where})"
            findings.append(Finding("host-rails-missing", WARNING, host, message,
                                    {"hcas": have, "expected": usual, "missing": gone}))
    return findings


def check_generic_host_names(topo: Topo) -> list[Finding]:
    """host-name-generic: HCAs whose node description carries an installer default such as `ubuntu`."""
    findings = []
    for host, hcas in topo.hosts().items():
        if not GENERIC_HOST_NAMES.match(host):
            continue
        where = ", ".join(f"{topo.label(i)} on {topo.port_name(a.switch, a.port)}" for i in hcas
                          for a in topo.switch_ports(i))
        findings.append(Finding("host-name-generic", WARNING, host,
                                f"{_plural(len(hcas), 'HCA')} report the default host name {host!r} "
                                f"({where}): set the real host name so Slurm and the audit can place it"))
    return findings


def check_duplicates(topo: Topo) -> list[Finding]:
    """duplicate-guid / duplicate-name: two nodes claiming the same GUID, HCA name or switch description."""
    nodes = topo.fabric.nodes
    findings = []
    by_guid: dict[str, list[int]] = defaultdict(list)
    for i, n in enumerate(nodes):
        if n.guid:
            by_guid[n.guid.lower()].append(i)
    for guid, idx in sorted(by_guid.items()):
        if len(idx) > 1:
            findings.append(Finding("duplicate-guid", CRITICAL, guid,
                                    f"GUID {guid} is used by {len(idx)} nodes: "
                                    + ", ".join(f"{nodes[i].id} ({nodes[i].desc!r})" for i in idx)))
    by_name: dict[str, list[int]] = defaultdict(list)
    for i, n in enumerate(nodes):
        if n.type == "switch":
            if n.desc and " " not in n.desc.strip():
                by_name[f"switch {n.desc.strip()}"].append(i)
        elif n.role == ROLE_HCA and n.host:
            by_name[f"{n.host}/{hca_label(n) or '?'}"].append(i)
    for name, idx in sorted(by_name.items()):
        if len(idx) > 1:
            where = ", ".join(f"{nodes[i].guid or nodes[i].id}" for i in idx)
            subject = name.removeprefix("switch ")
            findings.append(Finding("duplicate-name", WARNING, subject,
                                    f"{len(idx)} nodes are named {subject!r} ({where}): "
                                    "two machines share a name or a description was copied"))
    return findings


def check_rail_cabling(topo: Topo) -> list[Finding]:
    """rail-crossed: an HCA on a rail leaf whose other hosts plug in a different HCA (swapped rails);
    host-port-mismatch: one HCA of a multi-rail host on another port number than its other rails,
    in a fabric cabled port-aligned (host at the same port on each rail leaf)."""
    nodes = topo.fabric.nodes
    hosts = topo.hosts()
    classes = {h: name_class(h) for h in hosts}
    findings: list[Finding] = []

    crossed: dict[str, list[str]] = defaultdict(list)
    for leaf in topo.leaves:
        by_class: dict[str, list[int]] = defaultdict(list)
        for _port, ca in topo.endpoint_at(leaf).items():
            node = nodes[ca]
            if node.role == ROLE_HCA and node.host:
                by_class[classes[node.host]].append(ca)
        for members in by_class.values():
            labels = Counter(hca_label(nodes[i]) for i in members)
            top, count = labels.most_common(1)[0] if labels else ("", 0)
            if len(members) < MIN_PEERS or not top or count * 4 < len(members) * 3:
                continue
            for ca in members:
                lb = hca_label(nodes[ca])
                if lb != top:
                    port = next(a.port for a in topo.switch_ports(ca) if a.switch == leaf)
                    crossed[nodes[ca].host or ""].append(
                        f"{lb} is on {topo.port_name(leaf, port)}, where the other hosts plug in {top}")
    for host, notes in sorted(crossed.items(), key=lambda kv: natural_key(kv[0])):
        findings.append(Finding("rail-crossed", WARNING, host,
                                f"host {host} has rails crossed: " + "; ".join(notes)))

    multi = {h: [(i, a) for i in hcas for a in topo.switch_ports(i)] for h, hcas in hosts.items() if len(hcas) > 1}
    aligned = sum(1 for atts in multi.values() if len({a.port for _i, a in atts}) == 1)
    if len(multi) < MIN_PEERS or aligned * 5 < len(multi) * 4:
        return findings
    for host, atts in sorted(multi.items(), key=lambda kv: natural_key(kv[0])):
        ports = Counter(a.port for _i, a in atts)
        usual, count = ports.most_common(1)[0]
        if count * 2 <= len(atts):
            continue
        odd = [(i, a) for i, a in atts if a.port != usual]
        if not odd:
            continue
        text = "; ".join(f"{hca_label(nodes[i]) or topo.label(i)} is on {topo.port_name(a.switch, a.port)}"
                         for i, a in odd)
        findings.append(Finding("host-port-mismatch", WARNING, host,
                                f"host {host} uses port {usual} on its other rail leaves, but {text}: "
                                "the cable is on the wrong port"))
    return findings


def check_unnamed_hcas(topo: Topo) -> list[Finding]:
    """hca-unnamed: HCAs whose node description names no host (they drop out of topology.conf),
    with the host they probably belong to when the cabling pattern tells."""
    nodes = topo.fabric.nodes
    hosts = topo.hosts()
    host_on_leaf: dict[tuple[str, int], int] = {}
    for host, hcas in hosts.items():
        for i in hcas:
            for a in topo.switch_ports(i):
                host_on_leaf[(host, a.switch)] = a.port
    usual_port = {host: mode(a.port for i in hcas for a in topo.switch_ports(i)) for host, hcas in hosts.items()}
    templates = {g: _port_name_template(topo, members) for g, members in topo.group_members().items()}
    findings = []
    for ca in sorted(topo.unnamed(), key=lambda i: natural_key(topo.label(i))):
        node = nodes[ca]
        atts = topo.switch_ports(ca)
        where = ", ".join(topo.port_name(a.switch, a.port) for a in atts) or "no switch"
        message = f"HCA {node.guid or node.id} on {where} has node description {node.desc!r}, which names no host"
        guess, reason = (None, "")
        if atts:
            guess, reason = _guess_host(topo, atts[0].switch, atts[0].port, host_on_leaf, usual_port, templates)
        details: dict[str, object] = {"desc": node.desc}
        if guess:
            message += f"; probably {guess} ({reason})"
            details["probable_host"] = guess
        findings.append(Finding("hca-unnamed", WARNING, node.guid or node.id, message, details))
    return findings


def _port_name_template(topo: Topo, leaves: list[int]) -> tuple[str, int, int] | None:
    """(prefix, number - port, digits) when host names in this leaf group follow their port numbers."""
    samples = []
    for leaf in leaves:
        for port, ca in topo.endpoint_at(leaf).items():
            node = topo.fabric.nodes[ca]
            if node.role == ROLE_HCA and node.host and (parts := split_trailing_number(node.host)):
                samples.append((parts[0], int(parts[1]) - port, len(parts[1])))
    if len(samples) < 4:
        return None
    best = mode((p, off) for p, off, _w in samples)
    if best is None:
        return None
    hits = [w for p, off, w in samples if (p, off) == best]
    if len(hits) * 5 < len(samples) * 4:
        return None
    return best[0], best[1], mode(hits) or 1


def _guess_host(topo: Topo, leaf: int, port: int, host_on_leaf: dict[tuple[str, int], int],
                usual_port: dict[str, int | None], templates: dict[int, tuple[str, int, int] | None]) -> tuple[str | None, str]:
    group = topo.leaf_group.get(leaf)
    siblings = [lf for lf in topo.group_members().get(group, []) if lf != leaf] if group is not None else []
    named = set()
    for sib in siblings:
        ca = topo.endpoint_at(sib).get(port)
        host = topo.fabric.nodes[ca].host if ca is not None and topo.fabric.nodes[ca].role == ROLE_HCA else None
        # A sibling cable that is itself on the wrong port says nothing about this port.
        if host and usual_port.get(host) == port:
            named.add(host)
    template = templates.get(group) if group is not None else None

    def by_template(p: int) -> str | None:
        if template is None:
            return None
        prefix, offset, width = template
        number = p + offset
        return f"{prefix}{number:0{width}d}" if number >= 0 else None

    if len(named) == 1:
        host = next(iter(named))
        if (host, leaf) not in host_on_leaf:
            return host, f"its other rail leaves have {host} at port {port}"
        other = host_on_leaf[(host, leaf)]
        candidate = by_template(other)
        if candidate and (candidate, leaf) not in host_on_leaf:
            return candidate, (f"port {port} is {host}'s position, but {host} is on port {other} of this leaf: "
                               f"ports {min(port, other)} and {max(port, other)} look swapped, and port {other} "
                               f"is {candidate}'s position by the naming pattern")
        return None, ""
    if not named:
        candidate = by_template(port)
        if candidate and (candidate, leaf) not in host_on_leaf:
            return candidate, f"hosts on this leaf group are named after their port numbers ({candidate} at port {port})"
    return None, ""


def check_leaf_groups(topo: Topo) -> list[Finding]:
    """leaf-group-short: a group of rail leaves with fewer leaves than the other groups, whose hosts
    all lack the same rail: that rail's leaf switch is missing from the fabric."""
    nodes = topo.fabric.nodes
    groups = topo.group_members()
    if len(groups) < MIN_PEERS:
        return []
    usual = mode(len(v) for v in groups.values()) or 0
    all_labels: Counter[str] = Counter()
    for hcas in topo.hosts().values():
        all_labels.update({hca_label(nodes[i]) for i in hcas})
    findings = []
    for members in groups.values():
        if len(members) >= usual:
            continue
        group_hosts = sorted({nodes[ca].host for leaf in members for ca in topo.endpoint_at(leaf).values()
                              if nodes[ca].role == ROLE_HCA and nodes[ca].host})
        names = ", ".join(topo.label(leaf) for leaf in members)
        message = f"rail leaf group {names} has {len(members)} leaves, the other groups have {usual}"
        if group_hosts:
            message += f"; none of its {len(group_hosts)} named hosts has more than {len(members)} HCAs on the fabric"
        message += ": a rail leaf switch of this group is missing (powered off, or all its cables out)"
        findings.append(Finding("leaf-group-short", CRITICAL, names, message,
                                {"leaves": len(members), "expected": usual}))
    return findings


# ---------------------------------------------------------------------------------------------
# Parse-time oddities and dragonfly
# ---------------------------------------------------------------------------------------------

_ONE_SIDED = re.compile(r"^link-one-sided:\s*(\S+)\s*->\s*(\S+)\s*(.*)$")


_ID_PORT = re.compile(r"^(.+)\[(\d+)\]$")


def check_parse_warnings(fabric: Fabric) -> list[Finding]:
    """link-one-sided: a cable only one end reports (a flapping port or a stale node record)."""
    topo = Topo.of(fabric)
    index = fabric.index_by_id()

    def readable(end: str) -> str:
        m = _ID_PORT.match(end)
        if m and m.group(1) in index:
            return topo.port_name(index[m.group(1)], int(m.group(2)))
        return end

    findings = []
    for text in fabric.warnings:
        m = _ONE_SIDED.match(text)
        if m:
            subject = readable(m.group(1))
            findings.append(Finding("link-one-sided", WARNING, subject,
                                    f"{subject} -> {readable(m.group(2))} {m.group(3)}".strip()))
        else:
            check = text.split(":", 1)[0] if ":" in text else "discovery-warning"
            findings.append(Finding(check if re.fullmatch(r"[a-z-]+", check) else "discovery-warning", WARNING,
                                    "fabric", text))
    return findings


def check_dragonfly(fabric: Fabric, switch_nodes: list[int], switch_group: list[int],
                    expected_pairs: dict[tuple[int, int], int] | None = None) -> list[Finding]:
    """dragonfly-global-missing: a pair of groups with fewer global links than the others (or the reference)."""
    group_of = {node: g for node, g in zip(switch_nodes, switch_group, strict=True) if g >= 0}
    groups = sorted(set(group_of.values()))
    if len(groups) < 2:
        return []
    members: dict[int, list[str]] = defaultdict(list)
    for node, g in group_of.items():
        members[g].append(fabric.nodes[node].name or fabric.nodes[node].id)
    counts: Counter[tuple[int, int]] = Counter()
    for link in fabric.links:
        ga, gb = group_of.get(link.a), group_of.get(link.b)
        if ga is None or gb is None or ga == gb:
            continue
        counts[(min(ga, gb), max(ga, gb))] += 1
    pairs = [(a, b) for i, a in enumerate(groups) for b in groups[i + 1:]]
    usual = mode(counts[p] for p in pairs) or 0
    findings = []
    for a, b in pairs:
        want = (expected_pairs or {}).get((a, b), usual)
        have = counts[(a, b)]
        if have >= want:
            continue
        first_a = sorted(members[a], key=natural_key)[0]
        first_b = sorted(members[b], key=natural_key)[0]
        severity = CRITICAL if have == 0 else WARNING
        findings.append(Finding("dragonfly-global-missing", severity, f"group {a + 1} - group {b + 1}",
                                f"dragonfly groups {a + 1} ({first_a}...) and {b + 1} ({first_b}...) have "
                                f"{have} global links, expected {want}: {want - have} missing"
                                + ("; traffic between them takes an extra group hop" if have == 0 else ""),
                                {"links": have, "expected": want}))
    return findings
