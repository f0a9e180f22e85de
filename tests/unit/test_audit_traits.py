"""Audit checks on synthetic fabrics with one real-world trait each; expectations by hand."""

from __future__ import annotations

from gpupool.audit import checks
from gpupool.audit.run import audit_fabric
from gpupool.audit.topology import Topo
from gpupool.fabric.generate import fat_tree
from gpupool.fabric.model import ROLE_HCA, Fabric, Link, Node
from gpupool.fabric.structure import classify_hosts


def _index(fab: Fabric, name: str) -> int:
    return next(i for i, n in enumerate(fab.nodes) if n.name == name)


def _add_host(fab: Fabric, switch: str, host: str, port: int, label: str, speed: str = "QDR") -> int:
    fab.nodes.append(Node(id=f"H-{host}-{label}", type="ca", ports=1, desc=f"{host} {label}", role=ROLE_HCA,
                          host=host, name=f"{host}/{label}"))
    fab.links.append(Link(_index(fab, switch), port, len(fab.nodes) - 1, 1, "4x", speed))
    return len(fab.nodes) - 1


def _checks(fab: Fabric) -> set[tuple[str, str]]:
    return {(f.check, f.subject) for f in audit_fabric(fab).findings}


def test_storage_appliances_on_their_own_leaf_raise_no_short_group_or_rails_finding() -> None:
    fab = fat_tree(4, 3, 2, rails=4)
    stor = len(fab.nodes)
    fab.nodes.append(Node(id="S-stor", type="switch", ports=40, desc="stor", name="stor"))
    fab.links.append(Link(stor, 39, _index(fab, "spine01"), 39, "4x", "QDR"))
    fab.links.append(Link(stor, 40, _index(fab, "spine02"), 39, "4x", "QDR"))
    for k in (1, 2, 3):
        _add_host(fab, "stor", f"nas{k}", 2 * k, "mlx5_0")
        _add_host(fab, "stor", f"nas{k}", 2 * k + 1, "mlx5_1")
    classify_hosts(fab)
    found = _checks(fab)
    assert not any(c in {"leaf-group-short", "host-rails-missing", "leaf-uplinks-missing", "leaf-oversubscribed"}
                   for c, _s in found), found


def test_a_hostless_leaf_is_one_info_finding_not_a_missing_uplink() -> None:
    fab = fat_tree(4, 2, 2)
    gone = {i for i, n in enumerate(fab.nodes) if n.host in {"gpu007", "gpu008"}}
    assert len(gone) == 2  # leaf04's two hosts
    fab.links = [lk for lk in fab.links if lk.a not in gone and lk.b not in gone]
    result = audit_fabric(fab)
    assert [(f.check, f.severity, f.subject) for f in result.findings] == [("leaf-hostless", "info", "leaf04")]
    assert result.status == "OK"


def test_a_link_at_the_most_its_hardware_runs_is_not_degraded() -> None:
    fab = fat_tree(4, 4, 2, speed="EDR")
    old = _index(fab, "leaf04")
    fab.nodes[old].devid = "0xc738"  # SX6036: FDR at most
    for link in fab.links:
        if old in (link.a, link.b):
            link.speed = "FDR"
    assert not any(f.check == "link-degraded" for f in audit_fabric(fab).findings)
    fab.nodes[old].devid = "0xcb20"  # Switch-IB: EDR capable, so FDR is a fault again
    degraded = [f for f in audit_fabric(fab).findings if f.check == "link-degraded"]
    assert degraded and all("FDR" in f.message for f in degraded)


def test_many_links_with_one_cause_are_one_finding_with_a_count() -> None:
    fab = fat_tree(8, 40, 4, speed="HDR")
    slow = [li for li, lk in enumerate(fab.links) if fab.nodes[lk.b].type == "ca" or fab.nodes[lk.a].type == "ca"][:120]
    for li in slow:
        fab.links[li].speed = "EDR"
    degraded = [f for f in audit_fabric(fab).findings if f.check == "link-degraded"]
    assert len(degraded) == 1
    assert degraded[0].details["count"] == 120


def test_hca_names_that_differ_from_the_peers_are_not_crossed_rails() -> None:
    fab = fat_tree(4, 4, 2, rails=2)
    # Rename gpu001's adapters HCA-1/HCA-4 (another naming scheme), cabled on the right rails.
    for node in fab.nodes:
        if node.host == "gpu001":
            node.desc = node.desc.replace("mlx5_0", "HCA-1").replace("mlx5_1", "HCA-4")
    assert [f for f in checks.check_rail_cabling(Topo.of(fab)) if f.check == "rail-crossed"] == []


def test_two_hcas_swapped_between_rail_leaves_are_crossed_rails() -> None:
    fab = fat_tree(4, 4, 2, rails=2)
    hcas = sorted((i for i, n in enumerate(fab.nodes) if n.host == "gpu001"), key=lambda i: fab.nodes[i].desc)
    assert len(hcas) == 2
    a, b = (next(lk for lk in fab.links if h in (lk.a, lk.b)) for h in hcas)
    a_end, b_end = (a.b if a.a == hcas[0] else a.a), (b.b if b.a == hcas[1] else b.a)
    # Swap the switch ends of the two cables.
    for link, sw_old, sw_new in ((a, a_end, b_end), (b, b_end, a_end)):
        if link.a == sw_old:
            link.a = sw_new
        else:
            link.b = sw_new
    crossed = [f for f in checks.check_rail_cabling(Topo.of(fab)) if f.check == "rail-crossed"]
    assert [f.subject for f in crossed] == ["gpu001"]
