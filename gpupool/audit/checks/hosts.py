"""Theme: hosts and HCAs. host-rails-missing, host-name-generic, duplicate-guid, duplicate-name,
rail-crossed, host-port-mismatch, hca-unnamed; hosts are compared only with compute hosts named alike."""

from __future__ import annotations

from collections import Counter, defaultdict

from gpupool.audit.checks.common import GENERIC_HOST_NAMES, MIN_PEERS, _plural
from gpupool.audit.checks.registry import AuditInput, CheckInfo, audit_check
from gpupool.audit.rollup import CRITICAL, WARNING, Finding
from gpupool.audit.topology import Topo, hca_label, mode, name_class, split_trailing_number
from gpupool.fabric.model import ROLE_HCA, natural_key


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

    # Crossed rails are judged by cabling, not by HCA names: among hosts named alike that name their
    # HCAs alike (same label set), a leaf's usual label tells its rail; a host whose own HCA for that
    # rail is elsewhere while another of its HCAs sits here has two cables swapped.
    label_sets = {h: frozenset(hca_label(nodes[i]) for i in hcas) for h, hcas in hosts.items()}
    crossed: dict[str, list[str]] = defaultdict(list)
    for leaf in topo.leaves:
        by_scheme: dict[tuple[str, frozenset[str]], list[int]] = defaultdict(list)
        for _port, ca in topo.endpoint_at(leaf).items():
            node = nodes[ca]
            if node.role == ROLE_HCA and node.host:
                by_scheme[(classes[node.host], label_sets[node.host])].append(ca)
        for (_cls, scheme), members in by_scheme.items():
            labels = Counter(hca_label(nodes[i]) for i in members)
            top, count = labels.most_common(1)[0] if labels else ("", 0)
            if len(members) < MIN_PEERS or not top or count * 4 < len(members) * 3 or top not in scheme:
                continue
            for ca in members:
                lb = hca_label(nodes[ca])
                if lb != top:
                    port = next(a.port for a in topo.switch_ports(ca) if a.switch == leaf)
                    # An HCA without a label of its own is named by its node (as host-port-mismatch does).
                    crossed[nodes[ca].host or ""].append(
                        f"{lb or topo.label(ca)} is on {topo.port_name(leaf, port)}, where the other hosts plug in {top}")
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


@audit_check("host-rails-missing", "hosts", WARNING, "a compute host with fewer HCAs than the hosts named like it")
def _host_rails_missing(audit: AuditInput) -> list[Finding]:
    return check_host_rails(audit.topo)


@audit_check("host-name-generic", "hosts", WARNING, "HCAs reporting an installer's default host name")
def _host_name_generic(audit: AuditInput) -> list[Finding]:
    return check_generic_host_names(audit.topo)


@audit_check("hca-unnamed", "hosts", WARNING, "an HCA whose node description names no host")
def _hca_unnamed(audit: AuditInput) -> list[Finding]:
    return check_unnamed_hcas(audit.topo)


@audit_check(reports=(
    CheckInfo("duplicate-guid", "hosts", CRITICAL, "two nodes with one GUID"),
    CheckInfo("duplicate-name", "hosts", WARNING, "two nodes with one name"),
))
def _duplicates(audit: AuditInput) -> list[Finding]:
    return check_duplicates(audit.topo)


@audit_check(reports=(
    CheckInfo("rail-crossed", "hosts", WARNING, "two HCAs of one host cabled to each other's rail leaves"),
    CheckInfo("host-port-mismatch", "hosts", WARNING, "one rail of a host on another port number than its others"),
))
def _rail_cabling(audit: AuditInput) -> list[Finding]:
    return check_rail_cabling(audit.topo)
