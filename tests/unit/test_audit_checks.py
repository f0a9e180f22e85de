"""Structural checks on generated designs with one fault injected at a time; healthy designs stay silent."""

from __future__ import annotations

import copy
import random

import pytest

from gpupool.audit import checks
from gpupool.audit.rollup import Finding, status_of
from gpupool.audit.run import audit_fabric
from gpupool.audit.topology import Topo, mode, name_class
from gpupool.fabric.generate import dragonfly, fat_tree
from gpupool.fabric.model import ROLE_UNNAMED, Fabric


def _node(fab: Fabric, name: str) -> int:
    return next(i for i, n in enumerate(fab.nodes) if n.name == name)


def _link(fab: Fabric, a: str, b: str) -> int:
    ia, ib = _node(fab, a), _node(fab, b)
    return next(li for li, lk in enumerate(fab.links) if {lk.a, lk.b} == {ia, ib})


def _remove_links(fab: Fabric, indices: list[int]) -> None:
    for li in sorted(indices, reverse=True):
        del fab.links[li]


def _pairs(findings: list[Finding]) -> set[tuple[str, str]]:
    return {(f.check, f.subject) for f in findings}


HEALTHY = [
    pytest.param(lambda: fat_tree(8, 8, 4), id="fat-tree-2to1"),
    pytest.param(lambda: fat_tree(4, 8, 4, rails=4), id="fat-tree-4rails"),
    pytest.param(lambda: fat_tree(2, 3, 2, pods=2, cores=2), id="fat-tree-3level"),
    pytest.param(lambda: dragonfly(5, 4, 2, 1), id="dragonfly"),
    pytest.param(lambda: fat_tree(1, 4, 1), id="single-leaf"),
]


@pytest.mark.parametrize("make", HEALTHY)
def test_healthy_designs_have_no_findings(make) -> None:  # type: ignore[no-untyped-def]
    fab = make()
    for reference in (None, copy.deepcopy(fab)):
        result = audit_fabric(fab, reference)
        assert result.findings == []
        assert result.status == "OK"


def test_mode_breaks_ties_upwards_and_name_class_ignores_digits() -> None:
    assert mode([2, 2, 3, 3, 1]) == 3
    assert mode([]) is None
    assert name_class("a05-p1-dgx-01-c03") == name_class("a08-p1-dgx-04-c17") == "a#-p#-dgx-#-c#"
    assert name_class("b08-p1-dgx-08-c17") != name_class("a05-p1-dgx-01-c03")


def test_degraded_width_and_speed_are_reported_against_the_majority() -> None:
    fab = fat_tree(4, 4, 2)
    host_link = _link(fab, "leaf02", "gpu006/mlx5_0")
    fab.links[host_link].width = "1x"
    up_link = _link(fab, "leaf03", "spine02")
    fab.links[up_link].speed = "SDR"
    found = checks.check_link_rates(Topo.of(fab))
    assert _pairs(found) == {("link-degraded", f"leaf02 port {fab.links[host_link].a_port}"),
                             ("link-degraded", f"leaf03 port {fab.links[up_link].a_port if fab.links[up_link].a == _node(fab, 'leaf03') else fab.links[up_link].b_port}")}
    text = " ".join(f.message for f in found)
    assert "1x QDR" in text and "4x SDR" in text and "4x QDR" in text


def test_degraded_link_against_a_reference_uses_the_reference_rate() -> None:
    design = fat_tree(2, 2, 1, speed="QDR")
    fab = copy.deepcopy(design)
    for link in fab.links:  # every link slowed: no majority to notice, only the design knows
        link.speed = "DDR"
    result = audit_fabric(fab, design)
    assert {f.check for f in result.findings} == {"link-degraded"}
    # One finding per cause (issue 12): the 4 host links share one (4x DDR, design 4x QDR) and are
    # counted in one finding; the 2 switch links, at most GROUP_ABOVE of a kind, stay one each.
    assert len(fab.links) == 6
    counts = sorted(int(f.details.get("count", 1)) for f in result.findings)  # type: ignore[call-overload]
    assert counts == [1, 1, 4]


def test_missing_uplinks_name_the_spine_and_empty_port_and_total() -> None:
    fab = fat_tree(6, 4, 3)
    li = _link(fab, "leaf04", "spine02")
    port = fab.links[li].a_port if fab.links[li].a == _node(fab, "leaf04") else fab.links[li].b_port
    _remove_links(fab, [li, _link(fab, "leaf05", "spine01")])
    report = checks.check_leaf_uplinks(Topo.of(fab))
    assert _pairs(report.findings) == {("leaf-uplinks-missing", "leaf04"), ("leaf-uplinks-missing", "leaf05")}
    assert report.missing_total == 2
    msg = next(f.message for f in report.findings if f.subject == "leaf04")
    assert f"spine02: 0 of 1, port {port} empty" in msg and "2 uplinks" in msg and "have 3" in msg


def test_oversubscription_follows_the_design_ratio_and_the_config() -> None:
    fab = fat_tree(4, 8, 4)  # 2:1 by design: not reported
    assert checks.check_oversubscription(Topo.of(fab)) == []
    _remove_links(fab, [_link(fab, "leaf01", "spine01")])  # 8 hosts over 3 uplinks: 2.67:1
    found = checks.check_oversubscription(Topo.of(fab))
    assert _pairs(found) == {("leaf-oversubscribed", "leaf01")}
    assert found[0].details["ratio"] == pytest.approx(8 / 3, rel=1e-3)
    assert _pairs(checks.check_oversubscription(Topo.of(fab), max_ratio=3.0)) == set()
    assert len(checks.check_oversubscription(Topo.of(fab), max_ratio=1.5)) == 4


def test_host_with_a_missing_rail_names_the_missing_hca() -> None:
    fab = fat_tree(2, 4, 2, rails=4)
    victim = _node(fab, "gpu003/mlx5_2")
    _remove_links(fab, [li for li, lk in enumerate(fab.links) if victim in (lk.a, lk.b)])
    fab.nodes[victim].role = ROLE_UNNAMED  # as discovery sees it: the HCA is gone, not a host's
    fab.nodes[victim].host = None
    found = checks.check_host_rails(Topo.of(fab))
    assert _pairs(found) == {("host-rails-missing", "gpu003")}
    assert found[0].details["missing"] == ["mlx5_2"]


def test_unnamed_hca_gets_the_host_its_other_rails_name() -> None:
    fab = fat_tree(2, 4, 2, rails=2)
    hca = _node(fab, "gpu006/mlx5_1")
    node = fab.nodes[hca]
    node.desc, node.role, node.host, node.name = "MT4129 ConnectX7   Mellanox Technologies", ROLE_UNNAMED, None, node.id
    found = checks.check_unnamed_hcas(Topo.of(fab))
    assert _pairs(found) == {("hca-unnamed", node.guid)}
    assert found[0].details["probable_host"] == "gpu006"
    assert "its other rail leaves have gpu006" in found[0].message


def test_generic_host_names_and_duplicates() -> None:
    fab = fat_tree(2, 4, 1)
    a, b = _node(fab, "gpu001/mlx5_0"), _node(fab, "gpu002/mlx5_0")
    for i in (a, b):  # two machines left with the installer's name and the same HCA name
        fab.nodes[i].host, fab.nodes[i].desc, fab.nodes[i].name = "ubuntu", "ubuntu mlx5_0", "ubuntu/mlx5_0"
    fab.nodes[_node(fab, "gpu003/mlx5_0")].guid = fab.nodes[_node(fab, "gpu004/mlx5_0")].guid
    topo = Topo.of(fab)
    assert _pairs(checks.check_generic_host_names(topo)) == {("host-name-generic", "ubuntu")}
    dup = checks.check_duplicates(topo)
    assert _pairs(dup) == {("duplicate-name", "ubuntu/mlx5_0"), ("duplicate-guid", fab.nodes[_node(fab, "gpu004/mlx5_0")].guid)}
    assert status_of(dup) == "CRITICAL"


def test_crossed_rails_and_wrong_port_are_reported_per_host() -> None:
    fab = fat_tree(2, 6, 2, rails=3)
    # Cross gpu002's rails: swap the leaf ends of its two HCA cables.
    l0, l1 = _link(fab, "leaf01-rail0", "gpu002/mlx5_0"), _link(fab, "leaf01-rail1", "gpu002/mlx5_1")
    h0, h1 = _node(fab, "gpu002/mlx5_0"), _node(fab, "gpu002/mlx5_1")
    for li, new in ((l0, h1), (l1, h0)):
        lk = fab.links[li]
        if lk.a in (h0, h1):
            lk.a = new
        else:
            lk.b = new
    # Swap the rail-1 cables of gpu004 and gpu005 on their leaf (ports exchanged).
    l4, l5 = _link(fab, "leaf01-rail1", "gpu004/mlx5_1"), _link(fab, "leaf01-rail1", "gpu005/mlx5_1")
    sw = _node(fab, "leaf01-rail1")
    p4 = fab.links[l4].a_port if fab.links[l4].a == sw else fab.links[l4].b_port
    p5 = fab.links[l5].a_port if fab.links[l5].a == sw else fab.links[l5].b_port
    for li, port in ((l4, p5), (l5, p4)):
        if fab.links[li].a == sw:
            fab.links[li].a_port = port
        else:
            fab.links[li].b_port = port
    found = checks.check_rail_cabling(Topo.of(fab))
    assert _pairs(found) == {("rail-crossed", "gpu002"), ("host-port-mismatch", "gpu004"),
                             ("host-port-mismatch", "gpu005")}


def test_missing_rail_leaf_is_critical() -> None:
    fab = fat_tree(4, 4, 2, rails=3)
    gone = _node(fab, "leaf02-rail1")
    _remove_links(fab, [li for li, lk in enumerate(fab.links) if gone in (lk.a, lk.b)])
    found = checks.check_leaf_groups(Topo.of(fab))
    assert _pairs(found) == {("leaf-group-short", "leaf02-rail0, leaf02-rail2")}
    assert found[0].severity == "critical"


def test_one_sided_link_warning_becomes_a_finding() -> None:
    fab = fat_tree(1, 2, 1)
    leaf, hca = fab.nodes[_node(fab, "leaf01")].id, fab.nodes[_node(fab, "gpu002/mlx5_0")].id
    fab.warnings.append(f"link-one-sided: {leaf}[3] -> {hca}[1] is listed by one end only (x.out:12)")
    fab.warnings.append("link-one-sided: S-gone[4] -> H-gone[1] is listed by one end only (x.out:30)")
    found = checks.check_parse_warnings(fab)
    assert _pairs(found) == {("link-one-sided", "leaf01 port 3"), ("link-one-sided", "S-gone[4]")}
    assert "gpu002/mlx5_0 port 1" in found[0].message and "x.out:12" in found[0].message


def test_dragonfly_group_pair_without_global_link() -> None:
    design = dragonfly(5, 4, 2, 1)
    fab = copy.deepcopy(design)
    groups = {i: n.group for i, n in enumerate(fab.nodes) if n.type == "switch"}
    rng = random.Random(7)
    globals_ = [li for li, lk in enumerate(fab.links) if lk.a in groups and lk.b in groups
                and groups[lk.a] != groups[lk.b]]
    victim = rng.choice(globals_)
    ga, gb = sorted((groups[fab.links[victim].a], groups[fab.links[victim].b]))
    _remove_links(fab, [victim])
    result = audit_fabric(fab)
    pairs = _pairs(result.findings)
    assert ("dragonfly-global-missing", f"group {ga + 1} - group {gb + 1}") in pairs
    assert {c for c, _s in pairs} == {"dragonfly-global-missing"}
    with_ref = audit_fabric(fab, design)
    assert ("dragonfly-global-missing", f"group {ga + 1} - group {gb + 1}") in _pairs(with_ref.findings)
    assert any(f.check == "link-missing" for f in with_ref.findings)


def test_reference_reports_missing_switch_hca_and_cable() -> None:
    design = fat_tree(4, 4, 2)
    fab = copy.deepcopy(design)
    spine = _node(fab, "spine02")
    hca = _node(fab, "gpu007/mlx5_0")
    cable = _link(fab, "leaf04", "spine01")
    lk = fab.links[cable]
    leaf_port = lk.a_port if lk.a == _node(fab, "leaf04") else lk.b_port
    _remove_links(fab, [li for li, lk in enumerate(fab.links) if spine in (lk.a, lk.b) or hca in (lk.a, lk.b)]
                  + [cable])
    fab.nodes[spine].guid = "0xdead"  # not discovered any more: no GUID or name to match
    fab.nodes[spine].name = "gone"
    fab.nodes[hca].guid, fab.nodes[hca].name, fab.nodes[hca].host = "0xbeef", "gone2", None
    result = audit_fabric(fab, design)
    pairs = _pairs(result.findings)
    assert ("switch-missing", "spine02") in pairs
    assert ("hca-missing", "gpu007/mlx5_0") in pairs
    assert ("link-missing", f"leaf04 port {leaf_port}") in pairs
    assert result.totals["missing_links_vs_reference"] == 1
    assert result.status == "CRITICAL"


def test_spine_short_of_core_cables_in_a_three_level_tree() -> None:
    fab = fat_tree(2, 2, 4, pods=2, cores=4)
    spine = _node(fab, "pod2-spine03")
    core_link = next(li for li, lk in enumerate(fab.links) if spine in (lk.a, lk.b)
                     and fab.nodes[lk.b if lk.a == spine else lk.a].name.startswith("core"))
    _remove_links(fab, [core_link])
    result = audit_fabric(fab)
    assert _pairs(result.findings) == {("switch-uplinks-missing", "pod2-spine03")}
