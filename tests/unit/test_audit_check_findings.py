"""The structural audit checks' findings on small fabrics built by hand, compared whole.

tests/unit/test_audit_checks.py injects one fault into a generated design and asks which checks
fire; here every finding's subject, severity, message and details are written out by hand from a
fabric whose every cable and port number is spelled below (no generator, no gpupool output), so a
wrong count, port, word or boundary in a check fails a test (issue 29: mutation testing of
gpupool/audit/checks/*.py).
"""

from __future__ import annotations

import copy
from types import SimpleNamespace
from typing import Any

import pytest

from gpupool.audit.checks import (
    AUDIT_CHECKS,
    AuditInput,
    CheckInfo,
    Rate,
    all_check_infos,
    audit_check,
    check_dragonfly,
    check_duplicates,
    check_generic_host_names,
    check_host_rails,
    check_hostless_leaves,
    check_leaf_groups,
    check_leaf_uplinks,
    check_link_rates,
    check_loopbacks,
    check_oversubscription,
    check_parse_warnings,
    check_rail_cabling,
    check_unnamed_hcas,
    check_upper_uplinks,
    describe_link,
    fold_oversubscription,
    link_class,
)
from gpupool.audit.checks.dragonfly import reference_pairs
from gpupool.audit.rollup import Finding
from gpupool.audit.topology import Topo
from gpupool.fabric.model import ROLE_HCA, ROLE_SERVICE, ROLE_UNNAMED, Fabric, Link, Node
from gpupool.registry import DuplicateRegistration


class Build:
    """A fabric cable by cable: switches are named, HCAs are `host/label` with description `host label`."""

    def __init__(self) -> None:
        self.fab = Fabric()

    def switch(self, name: str, devid: str | None = None, group: int = -1) -> int:
        index = len(self.fab.nodes)
        self.fab.nodes.append(Node(id=f"S-{index:04d}", type="switch", ports=64, desc=name,
                                   guid=f"0x{0x5000 + index:016x}", name=name, devid=devid, group=group))
        return index

    def hca(self, host: str | None, label: str = "mlx5_0", devid: str | None = None, role: str = ROLE_HCA,
            desc: str | None = None) -> int:
        index = len(self.fab.nodes)
        self.fab.nodes.append(Node(id=f"H-{index:04d}", type="ca", ports=1,
                                   desc=desc if desc is not None else f"{host} {label}",
                                   guid=f"0x{0x9000 + index:016x}", role=role, host=host,
                                   name=f"{host}/{label}" if host else "", devid=devid))
        return index

    def cable(self, a: int, a_port: int, b: int, b_port: int = 1, width: str = "4x", speed: str = "HDR") -> int:
        self.fab.links.append(Link(a, a_port, b, b_port, width, speed))
        return len(self.fab.links) - 1

    def node(self, name: str) -> int:
        return next(i for i, n in enumerate(self.fab.nodes) if n.name == name)

    def link(self, a: str, b: str) -> int:
        ends = {self.node(a), self.node(b)}
        return next(li for li, lk in enumerate(self.fab.links) if {lk.a, lk.b} == ends)

    def link_of(self, hca: str) -> int:
        """The (first) cable of a node."""
        node = self.node(hca)
        return next(li for li, lk in enumerate(self.fab.links) if node in (lk.a, lk.b))

    def unplug(self, a: str, b: str) -> None:
        del self.fab.links[self.link(a, b)]


def two_level(leaves: int, hosts_per_leaf: int, spines: int, speed: str = "HDR", uplinks: int = 1) -> Build:
    """leafNN port h: host h of the leaf (nodeMM, numbered across leaves from 01); cable k (from 1)
    of leafNN to spine s: leaf port hosts_per_leaf + (s - 1) * uplinks + k, spine port
    (NN - 1) * uplinks + k. Links in that order, leaf by leaf."""
    b = Build()
    spine_ids = [b.switch(f"spine{s:02d}") for s in range(1, spines + 1)]
    host = 0
    for n in range(1, leaves + 1):
        leaf = b.switch(f"leaf{n:02d}")
        for h in range(1, hosts_per_leaf + 1):
            host += 1
            b.cable(leaf, h, b.hca(f"node{host:02d}"), speed=speed)
        for s, spine in enumerate(spine_ids, start=1):
            for k in range(1, uplinks + 1):
                b.cable(leaf, hosts_per_leaf + (s - 1) * uplinks + k, spine, (n - 1) * uplinks + k, speed=speed)
    return b


def rail_tree(units: int, hosts_per_unit: int, rails: int, spines: int = 2) -> Build:
    """Rail-optimised: unit u has leaves uNN-railR; host h of the unit (dgxMM, numbered across units)
    plugs HCA mlx5_R into port h of rail leaf R; rail leaf port hosts_per_unit + s: spine s."""
    b = Build()
    spine_ids = [b.switch(f"spine{s:02d}") for s in range(1, spines + 1)]
    host = 0
    leaf_count = 0
    for u in range(1, units + 1):
        leaves = [b.switch(f"u{u:02d}-rail{r}") for r in range(rails)]
        for h in range(1, hosts_per_unit + 1):
            host += 1
            for r, leaf in enumerate(leaves):
                b.cable(leaf, h, b.hca(f"dgx{host:02d}", f"mlx5_{r}"))
        for leaf in leaves:
            leaf_count += 1
            for s, spine in enumerate(spine_ids, start=1):
                b.cable(leaf, hosts_per_unit + s, spine, leaf_count)
    return b


def whole(findings: list[Finding]) -> list[tuple[str, str, str, str, dict[str, Any]]]:
    return [(f.check, str(f.severity), f.subject, f.message, f.details) for f in findings]


# ------------------------------------------------------------------------------------------ common


def test_rate_link_class_and_describe_link() -> None:
    b = two_level(1, 2, 1)
    topo = Topo.of(b.fab)
    assert Rate.of(Link(0, 1, 1, 1, "2x", "EDR")) == Rate(2, 25.78125)
    assert Rate.of(Link(0, 1, 1, 1, "3x", "FOO")) == Rate(4, 0.0)  # unknown width: 4 lanes; unknown speed: 0
    host_link, up_link = b.link("leaf01", "node02/mlx5_0"), b.link("leaf01", "spine01")
    assert link_class(topo, b.fab.links[host_link]) == "host"
    assert link_class(topo, b.fab.links[up_link]) == "switch"
    assert describe_link(topo, host_link) == ("leaf01 port 2", "leaf01 port 2 -- node02/mlx5_0 port 1")
    b.fab.links[up_link] = Link(b.node("spine01"), 1, b.node("leaf01"), 3)  # written from the spine's end
    assert describe_link(Topo.of(b.fab), up_link) == ("leaf01 port 3", "leaf01 port 3 -- spine01 port 1")


# ------------------------------------------------------------------------------------------- links


def test_one_degraded_host_link_and_one_switch_link() -> None:
    b = two_level(4, 4, 2)
    b.fab.links[b.link("leaf02", "node06/mlx5_0")].width = "2x"
    b.fab.links[b.link("leaf03", "spine02")].speed = "EDR"
    assert whole(check_link_rates(Topo.of(b.fab))) == [
        ("link-degraded", "warning", "leaf02 port 2",
         "leaf02 port 2 -- node06/mlx5_0 port 1 runs at 2x HDR (100 Gb/s); host links between these devices run "
         "at 4x HDR", {"width": "2x", "speed": "HDR", "expected": "4x HDR"}),
        ("link-degraded", "warning", "leaf03 port 6",
         "leaf03 port 6 -- spine02 port 3 runs at 4x EDR (103.125 Gb/s); switch links between these devices run "
         "at 4x HDR", {"width": "4x", "speed": "EDR", "expected": "4x HDR"})]


def test_faster_or_wider_links_are_not_degraded() -> None:
    b = two_level(2, 3, 2)
    b.fab.links[b.link("leaf01", "node01/mlx5_0")].speed = "NDR"
    b.fab.links[b.link("leaf02", "node05/mlx5_0")].width = "8x"
    assert check_link_rates(Topo.of(b.fab)) == []


@pytest.mark.parametrize("count", [3, 4])
def test_up_to_three_links_of_one_cause_are_told_one_by_one(count: int) -> None:
    b = two_level(2, 8, 2)
    for h in range(1, count + 1):
        b.fab.links[b.link("leaf01", f"node{h:02d}/mlx5_0")].width = "1x"
    found = check_link_rates(Topo.of(b.fab))
    where = [f"leaf01 port {h} -- node{h:02d}/mlx5_0 port 1" for h in range(1, count + 1)]
    if count == 3:
        assert [(f.subject, f.message) for f in found] == [
            (f"leaf01 port {h}", f"{where[h - 1]} runs at 1x HDR (50 Gb/s); host links between these devices run "
                                 "at 4x HDR") for h in range(1, 4)]
    else:
        assert whole(found) == [
            ("link-degraded", "warning", "4 host links at 1x HDR",
             "4 host links run at 1x HDR; host links between these devices run at 4x HDR: " + "; ".join(where),
             {"count": 4, "speed": "1x HDR", "expected": "4x HDR"})]


def test_more_than_five_links_of_one_cause_show_five() -> None:
    b = two_level(2, 8, 2)
    for h in (1, 2, 3, 4, 5, 6, 7):
        b.fab.links[b.link("leaf01", f"node{h:02d}/mlx5_0")].speed = "EDR"
    [finding] = check_link_rates(Topo.of(b.fab))
    shown = "; ".join(f"leaf01 port {h} -- node{h:02d}/mlx5_0 port 1" for h in range(1, 6))
    assert finding.subject == "7 host links at 4x EDR"
    assert finding.message == ("7 host links run at 4x EDR; host links between these devices run at 4x HDR: "
                               f"{shown} and 2 more")
    b.fab.links[b.link("leaf01", "node07/mlx5_0")].speed = "HDR"
    [finding] = check_link_rates(Topo.of(b.fab))
    assert finding.message.endswith(f"{shown} and 1 more")
    b.fab.links[b.link("leaf01", "node06/mlx5_0")].speed = "HDR"
    [finding] = check_link_rates(Topo.of(b.fab))
    assert finding.message.endswith(f": {shown}")


def test_causes_are_kept_apart_by_class_rate_and_basis() -> None:
    b = two_level(4, 4, 2)
    for h in (1, 2, 3, 4):
        b.fab.links[b.link("leaf01", f"node{h:02d}/mlx5_0")].width = "2x"
    for h in (5, 6, 7, 8):
        b.fab.links[b.link("leaf02", f"node{h:02d}/mlx5_0")].width = "1x"
    found = check_link_rates(Topo.of(b.fab))
    assert [(f.subject, f.details["count"]) for f in found] == [("4 host links at 2x HDR", 4),
                                                                ("4 host links at 1x HDR", 4)]


def test_the_hardware_caps_the_expected_rate() -> None:
    # NDR switches and NDR HCAs (ConnectX-7, 0x1021), but node02 has a ConnectX-6 (0x101b): HDR at best.
    b = Build()
    leaf, spine = b.switch("leaf01", devid="0xd2f2"), b.switch("spine01", devid="0xd2f2")
    for h in range(1, 5):
        b.cable(leaf, h, b.hca(f"node{h:02d}", devid="0x101b" if h == 2 else "0x1021"), speed="NDR")
    b.cable(leaf, 5, spine, 1, speed="NDR")
    b.fab.links[1].speed = "HDR"
    assert check_link_rates(Topo.of(b.fab)) == []  # HDR is node02's best
    b.fab.links[1].speed = "EDR"
    assert whole(check_link_rates(Topo.of(b.fab))) == [
        ("link-degraded", "warning", "leaf01 port 2",
         "leaf01 port 2 -- node02/mlx5_0 port 1 runs at 4x EDR (103.125 Gb/s); host links between these devices "
         "run at 4x HDR (the most both ends support)",
         {"width": "4x", "speed": "EDR", "expected": "4x HDR (the most both ends support)"})]
    b.fab.links[1].speed, b.fab.links[1].width = "HDR", "2x"
    assert [f.message for f in check_link_rates(Topo.of(b.fab))] == [
        "leaf01 port 2 -- node02/mlx5_0 port 1 runs at 2x HDR (100 Gb/s); host links between these devices "
        "run at 4x HDR (the most both ends support)"]


def test_a_cap_below_the_majority_is_named_by_its_speed() -> None:
    b = Build()
    leaf = b.switch("leaf01")
    for h in range(1, 4):
        b.cable(leaf, h, b.hca(f"node{h:02d}", devid="0x1021"), speed="XDR")
    b.fab.nodes[leaf].devid = "0xd2f2"  # NDR switch: the cap is NDR
    b.fab.links[0].speed = "HDR"
    assert [f.message for f in check_link_rates(Topo.of(b.fab))] == [
        "leaf01 port 1 -- node01/mlx5_0 port 1 runs at 4x HDR (200 Gb/s); host links between these devices "
        "run at 4x NDR (the most both ends support)"]


def test_the_reference_rate_wins_over_the_majority() -> None:
    b = two_level(2, 2, 1)
    li = b.link("leaf02", "node04/mlx5_0")
    reference = Link(0, 1, 1, 1, "4x", "NDR")
    assert whole(check_link_rates(Topo.of(b.fab), {li: reference})) == [
        ("link-degraded", "warning", "leaf02 port 2",
         "leaf02 port 2 -- node04/mlx5_0 port 1 runs at 4x HDR (200 Gb/s); the reference design has it at 4x NDR",
         {"width": "4x", "speed": "HDR", "expected": "4x NDR"})]
    # The reference at this link's own rate: not degraded although the majority is faster.
    b.fab.links[li].speed = "EDR"
    assert check_link_rates(Topo.of(b.fab), {li: Link(0, 1, 1, 1, "4x", "EDR")}) == []


@pytest.mark.parametrize(("label", "width", "degraded"), [
    ("1/2", "2x", False),  # Port/Split: half the lanes by design
    ("1/1/1/2", "2x", False),  # ASIC/Cage/Port/Split
    ("1/1/2", "2x", True),  # not a split-port label
    ("1/2", "1x", True),  # a split port still needs its 2 lanes
    (None, "2x", True),
])
def test_split_ports_run_half_the_lanes(label: str | None, width: str, degraded: bool) -> None:
    b = two_level(1, 4, 1)
    li = b.link("leaf01", "node03/mlx5_0")
    b.fab.links[li].width = width
    if label is not None:
        b.fab.meta["port_labels"] = {f"{b.fab.nodes[b.node('leaf01')].id}:3": label}
    assert [f.subject for f in check_link_rates(Topo.of(b.fab))] == (["leaf01 port 3"] if degraded else [])


def test_a_split_label_on_the_far_end_counts_too() -> None:
    b = two_level(1, 4, 1)
    li = b.link("leaf01", "node03/mlx5_0")
    b.fab.links[li].width = "2x"
    b.fab.meta["port_labels"] = {f"{b.fab.nodes[b.node('node03/mlx5_0')].id}:1": "1/2"}
    assert check_link_rates(Topo.of(b.fab)) == []
    # ... but never against a reference, which names the rate itself.
    assert [f.subject for f in check_link_rates(Topo.of(b.fab), {li: Link(0, 1, 1, 1, "4x", "HDR")})] == [
        "leaf01 port 3"]


def test_loopbacks_are_neither_uplinks_nor_the_majority() -> None:
    b = two_level(2, 2, 2)
    # 5 slow loopback cables on spine01 would make the switch-link majority 1x SDR if they counted.
    spine = b.node("spine01")
    for port in range(10, 20, 2):
        b.cable(spine, port, spine, port + 1, width="1x", speed="SDR")
    b.fab.links[b.link("leaf02", "spine02")].speed = "EDR"
    assert [f.subject for f in check_link_rates(Topo.of(b.fab))] == ["leaf02 port 4"]


def test_loopback_findings() -> None:
    b = two_level(2, 2, 2)
    leaf, spine = b.node("leaf02"), b.node("spine01")
    b.cable(spine, 10, spine, 3, speed="HDR")
    b.cable(spine, 5, spine, 6, width="2x", speed="EDR")
    b.cable(leaf, 7, leaf, 5)
    hca = b.node("node01/mlx5_0")
    b.cable(hca, 1, hca, 2)  # an HCA looped to itself is no switch loopback
    assert whole(check_loopbacks(Topo.of(b.fab))) == [
        ("switch-loopback", "info", "leaf02", "switch leaf02 has 1 loopback cable: ports 5-7 (4xHDR)", {"count": 1}),
        ("switch-loopback", "info", "spine01",
         "switch spine01 has 2 loopback cables: ports 3-10 (4xHDR), 5-6 (2xEDR)", {"count": 2})]
    assert check_loopbacks(Topo.of(two_level(2, 2, 2).fab)) == []


# --------------------------------------------------------------------------------------- discovery


def test_parse_warnings_become_findings() -> None:
    b = two_level(1, 2, 1)
    leaf, hca = b.fab.nodes[b.node("leaf01")].id, b.fab.nodes[b.node("node01/mlx5_0")].id
    b.fab.warnings = [
        f"link-one-sided: {leaf}[3] -> {hca}[1] is listed by one end only (x.out:12)",
        "link-one-sided: S-gone[4] -> H-gone[1]",
        f"link-one-sided:{hca}[1]->{leaf}[9]",
        "host-name-invalid: node description 'a b!' names no legal host",
        "Discovery: something odd",
        "ibwarn-like text without a colon",
        "link-not-active: leaf01/3 is Down: (Init)",
    ]
    assert whole(check_parse_warnings(b.fab)) == [
        ("link-one-sided", "warning", "leaf01 port 3",
         "leaf01 port 3 -> node01/mlx5_0 port 1 is listed by one end only (x.out:12)", {}),
        ("link-one-sided", "warning", "S-gone[4]", "S-gone[4] -> H-gone[1]", {}),
        ("link-one-sided", "warning", "node01/mlx5_0 port 1", "node01/mlx5_0 port 1 -> leaf01 port 9", {}),
        ("host-name-invalid", "warning", "fabric", "host-name-invalid: node description 'a b!' names no legal host",
         {}),
        ("discovery-warning", "warning", "fabric", "Discovery: something odd", {}),
        ("discovery-warning", "warning", "fabric", "ibwarn-like text without a colon", {}),
        ("link-not-active", "warning", "fabric", "link-not-active: leaf01/3 is Down: (Init)", {})]
    b.fab.warnings = []
    assert check_parse_warnings(b.fab) == []


# --------------------------------------------------------------------------------------- dragonfly


def dragonfly_groups(global_links: dict[tuple[int, int], int]) -> tuple[Build, list[int], list[int]]:
    """Three groups of two routers (gG-rR, group G-1), each pair of groups joined by the given number
    of global cables (router 1 of the lower group to router 2 of the higher); one host per router."""
    b = Build()
    routers = {(g, r): b.switch(f"g{g}-r{r}", group=g - 1) for g in (1, 2, 3) for r in (2, 10)}
    port = {node: 1 for node in routers.values()}
    for (g, r), node in routers.items():
        b.cable(node, 1, b.hca(f"node{g}{r}"))
        port[node] = 2
    for g in (1, 2, 3):
        b.cable(routers[(g, 2)], port[routers[(g, 2)]], routers[(g, 10)], port[routers[(g, 10)]])  # local
        port[routers[(g, 2)]] += 1
        port[routers[(g, 10)]] += 1
    for (ga, gb), n in global_links.items():
        for _ in range(n):
            a, z = routers[(ga + 1, 2)], routers[(gb + 1, 10)]
            b.cable(a, port[a], z, port[z])
            port[a] += 1
            port[z] += 1
    switches = sorted(routers.values())
    return b, switches, [b.fab.nodes[s].group for s in switches]


def test_dragonfly_pair_short_of_global_links() -> None:
    b, switches, groups = dragonfly_groups({(0, 1): 2, (0, 2): 2, (1, 2): 1})
    assert whole(check_dragonfly(b.fab, switches, groups)) == [
        ("dragonfly-global-missing", "warning", "group 2 - group 3",
         "dragonfly groups 2 (g2-r2...) and 3 (g3-r2...) have 1 global links, expected 2: 1 missing",
         {"links": 1, "expected": 2})]
    b, switches, groups = dragonfly_groups({(0, 1): 3, (0, 2): 3, (1, 2): 0})
    assert whole(check_dragonfly(b.fab, switches, groups)) == [
        ("dragonfly-global-missing", "critical", "group 2 - group 3",
         "dragonfly groups 2 (g2-r2...) and 3 (g3-r2...) have 0 global links, expected 3: 3 missing; traffic "
         "between them takes an extra group hop", {"links": 0, "expected": 3})]
    b, switches, groups = dragonfly_groups({(0, 1): 2, (0, 2): 2, (1, 2): 2})
    assert check_dragonfly(b.fab, switches, groups) == []


def test_dragonfly_against_expected_pairs_and_unnamed_routers() -> None:
    b, switches, groups = dragonfly_groups({(0, 1): 1, (0, 2): 1, (1, 2): 1})
    expected = {(0, 1): 2, (1, 2): 1}  # (0, 2) not in the reference: the usual count (1)
    for s in switches:
        b.fab.nodes[s].name = ""  # no description: the routers are named by their ids
    assert whole(check_dragonfly(b.fab, switches, groups, expected)) == [
        ("dragonfly-global-missing", "warning", "group 1 - group 2",
         "dragonfly groups 1 (S-0000...) and 2 (S-0002...) have 1 global links, expected 2: 1 missing",
         {"links": 1, "expected": 2})]


def test_dragonfly_ignores_switches_without_a_group_and_one_group() -> None:
    b, switches, groups = dragonfly_groups({(0, 1): 2, (0, 2): 2, (1, 2): 2})
    # A switch outside any group (-1) with cables to groups 1 and 2 is no global link.
    extra = b.switch("mgmt")
    b.cable(extra, 1, switches[0], 20)
    b.cable(extra, 2, switches[2], 20)
    assert check_dragonfly(b.fab, [*switches, extra], [*groups, -1]) == []
    assert check_dragonfly(b.fab, switches, [0] * len(switches)) == []
    assert check_dragonfly(b.fab, switches[:2], [0, -1]) == []


def test_reference_pairs_count_the_references_global_links_by_current_group() -> None:
    b, switches, groups = dragonfly_groups({(0, 1): 1, (0, 2): 2, (1, 2): 1})
    reference = copy.deepcopy(b.fab)
    g2, g3 = b.node("g2-r2"), b.node("g3-r10")
    reference.links.append(Link(g2, 30, g3, 30))  # one more 2-3 cable in the design
    reference.links.append(Link(g2, 31, b.node("g2-r10"), 31))  # a local one: not counted
    compiled = SimpleNamespace(switch_node=switches, switch_group=groups)
    assert reference_pairs(b.fab, reference, compiled) == {(0, 1): 1, (0, 2): 2, (1, 2): 2}  # type: ignore[arg-type]
    assert reference_pairs(b.fab, None, compiled) is None  # type: ignore[arg-type]
    # A reference switch the fabric lacks has no group: its cables are not counted.
    reference.nodes.append(Node(id="S-ffff", type="switch", ports=8, guid="0xffff", name="g9-r9"))
    reference.links.append(Link(len(reference.nodes) - 1, 1, g2, 40))
    assert reference_pairs(b.fab, reference, compiled) == {(0, 1): 1, (0, 2): 2, (1, 2): 2}  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------ leaves


def test_a_leaf_short_of_an_uplink_names_the_spine_and_both_empty_ports() -> None:
    b = two_level(4, 2, 2)
    b.unplug("leaf03", "spine02")  # leaf03 port 4 -- spine02 port 3
    report = check_leaf_uplinks(Topo.of(b.fab))
    assert whole(report.findings) == [
        ("leaf-uplinks-missing", "warning", "leaf03",
         "leaf leaf03 has 1 uplinks, the other compute leaves have 2: 1 cable missing (spine02: 0 of 1, port 4 "
         "empty on leaf03, port 3 empty on spine02)", {"uplinks": 1, "expected": 2, "missing": 1})]
    assert (report.missing_total, report.leaves_short) == (1, 1)


def test_parallel_uplinks_all_or_one_of_them_missing() -> None:
    b = two_level(4, 2, 2, uplinks=2)
    b.unplug("leaf03", "spine02")  # leaf03 ports 5, 6 -- spine02 ports 5, 6: the first of the two
    b.unplug("leaf03", "spine02")
    report = check_leaf_uplinks(Topo.of(b.fab))
    assert [f.message for f in report.findings] == [
        "leaf leaf03 has 2 uplinks, the other compute leaves have 4: 2 cables missing (spine02: 0 of 2, ports 5, 6 "
        "empty on leaf03, ports 5, 6 empty on spine02)"]
    assert (report.missing_total, report.leaves_short) == (2, 1)
    b = two_level(4, 2, 2, uplinks=2)
    del b.fab.links[[li for li, lk in enumerate(b.fab.links)
                     if {lk.a, lk.b} == {b.node("leaf03"), b.node("spine02")}][1]]  # leaf03 port 6 -- spine02 port 6
    report = check_leaf_uplinks(Topo.of(b.fab))
    assert [f.message for f in report.findings] == [
        "leaf leaf03 has 3 uplinks, the other compute leaves have 4: 1 cable missing (spine02: 1 of 2, port 6 "
        "empty on leaf03, port 6 empty on spine02)"]


def test_two_leaves_short_add_up() -> None:
    b = two_level(5, 2, 3)
    b.unplug("leaf02", "spine01")
    b.unplug("leaf04", "spine03")
    b.unplug("leaf04", "spine02")
    report = check_leaf_uplinks(Topo.of(b.fab))
    assert [(f.subject, f.details) for f in report.findings] == [
        ("leaf02", {"uplinks": 2, "expected": 3, "missing": 1}), ("leaf04", {"uplinks": 1, "expected": 3, "missing": 2})]
    assert report.findings[1].message == (
        "leaf leaf04 has 1 uplinks, the other compute leaves have 3: 2 cables missing (spine02: 0 of 1, port 4 empty "
        "on leaf04, port 4 empty on spine02; spine03: 0 of 1, port 5 empty on leaf04, port 4 empty on spine03)")
    assert (report.missing_total, report.leaves_short) == (3, 2)


def test_a_leaf_without_any_uplink_names_no_spine() -> None:
    b = two_level(4, 2, 2)
    b.unplug("leaf03", "spine02")
    b.unplug("leaf03", "spine01")
    report = check_leaf_uplinks(Topo.of(b.fab))
    assert [f.message for f in report.findings] == [
        "leaf leaf03 has 0 uplinks, the other compute leaves have 2: 2 cables missing"]


def test_uplinks_against_the_reference_and_too_few_peers() -> None:
    b = two_level(4, 2, 2)
    leaf03 = b.node("leaf03")
    report = check_leaf_uplinks(Topo.of(b.fab), {leaf03: 3})
    assert whole(report.findings) == [
        ("leaf-uplinks-missing", "warning", "leaf03", "leaf leaf03 has 2 uplinks, the reference design has 3: 1 cable "
                                                      "missing", {"uplinks": 2, "expected": 3, "missing": 1})]
    assert check_leaf_uplinks(Topo.of(b.fab), {leaf03: 2}).findings == []
    # Two leaves say nothing about each other; three do.
    two = two_level(2, 2, 2)
    two.unplug("leaf02", "spine02")
    assert check_leaf_uplinks(Topo.of(two.fab)).findings == []
    three = two_level(3, 2, 2)
    three.unplug("leaf02", "spine02")
    assert [f.subject for f in check_leaf_uplinks(Topo.of(three.fab)).findings] == ["leaf02"]


def test_ignored_links_are_not_counted() -> None:
    b = two_level(4, 2, 2)
    ignored = frozenset({b.link("leaf01", "spine01")})
    report = check_leaf_uplinks(Topo.of(b.fab), ignore_links=ignored)
    # The ignored cable still occupies leaf01 port 3 and spine01 port 1: no empty port to name.
    assert [f.message for f in report.findings] == [
        "leaf leaf01 has 1 uplinks, the other compute leaves have 2: 1 cable missing (spine01: 0 of 1)"]


def test_leaves_are_compared_within_their_class() -> None:
    b = two_level(3, 2, 2)
    spines = [b.node("spine01"), b.node("spine02")]
    for n in (1, 2, 3):
        leaf = b.switch(f"storage{n:02d}")
        for h in (1, 2):
            b.cable(leaf, h, b.hca(f"fs{n}{h}", role=ROLE_SERVICE))
        for s, spine in enumerate(spines, start=1):
            if (n, s) != (2, 2):
                b.cable(leaf, 2 + s, spine, 10 + n)
    report = check_leaf_uplinks(Topo.of(b.fab))
    assert [f.message for f in report.findings] == [
        "leaf storage02 has 1 uplinks, the other service leaves have 2: 1 cable missing (spine02: 0 of 1, port 4 "
        "empty on storage02, port 12 empty on spine02)"]


def two_pods_missing(missing: tuple[str, int, int]) -> Build:
    """Pods a and b, each 3 leaves (one host on port 1) x 2 spines: leaf n's port 1+s to spine s's port n,
    but the (pod, leaf, spine) cable `missing`."""
    b = Build()
    for pod in ("a", "b"):
        spines = [b.switch(f"{pod}-spine{s}") for s in (1, 2)]
        for n in (1, 2, 3):
            leaf = b.switch(f"{pod}-leaf{n}")
            b.cable(leaf, 1, b.hca(f"{pod}node{n}"))
            for s, spine in enumerate(spines, start=1):
                if (pod, n, s) != missing:
                    b.cable(leaf, 1 + s, spine, n)
    return b


def test_spines_of_another_pod_are_not_named() -> None:
    b = two_pods_missing(("a", 3, 2))
    report = check_leaf_uplinks(Topo.of(b.fab))
    assert [f.message for f in report.findings] == [
        "leaf a-leaf3 has 1 uplinks, the other compute leaves have 2: 1 cable missing (a-spine2: 0 of 1, port 3 "
        "empty on a-leaf3, port 3 empty on a-spine2)"]


def upper_tree(spines: int = 3, cores: int = 2) -> tuple[Build, dict[int, int]]:
    """spineS port 10 + c -- coreC port S (every spine to every core); each spine also carries leafS
    (leafS port 2 -- spineS port 1) with one host."""
    b = Build()
    core_ids = [b.switch(f"core{c:02d}") for c in range(1, cores + 1)]
    levels = {c: 3 for c in core_ids}
    for s in range(1, spines + 1):
        spine = b.switch(f"spine{s:02d}")
        levels[spine] = 2
        leaf = b.switch(f"leaf{s:02d}")
        levels[leaf] = 1
        b.cable(leaf, 1, b.hca(f"node{s:02d}"))
        b.cable(leaf, 2, spine, 1)
        for c, core in enumerate(core_ids, start=1):
            b.cable(spine, 10 + c, core, s)
    return b, levels


def test_a_spine_short_of_a_core_cable() -> None:
    b, levels = upper_tree()
    b.unplug("spine02", "core02")
    assert whole(check_upper_uplinks(Topo.of(b.fab), levels)) == [
        ("switch-uplinks-missing", "warning", "spine02",
         "level-2 switch spine02 has 1 cables to level 3, its peers have 2: 1 cable missing (core02: 0 of 1, port "
         "12 empty on spine02, port 2 empty on core02)", {"uplinks": 1, "expected": 2})]
    b.unplug("spine02", "core01")
    assert [f.message for f in check_upper_uplinks(Topo.of(b.fab), levels)] == [
        "level-2 switch spine02 has 0 cables to level 3, its peers have 2: 2 cables missing"]


def test_upper_uplinks_need_three_peers_and_a_level_above() -> None:
    b, levels = upper_tree(spines=2)
    b.unplug("spine02", "core02")
    assert check_upper_uplinks(Topo.of(b.fab), levels) == []
    b, levels = upper_tree(spines=3)
    b.unplug("spine02", "core02")
    top_only = {n: (2 if lv == 3 else lv) for n, lv in levels.items()}  # the spines are the top level
    assert check_upper_uplinks(Topo.of(b.fab), top_only) == []
    assert check_upper_uplinks(Topo.of(b.fab), {}) == []


def test_four_levels_compare_each_level_with_the_one_above() -> None:
    b, levels = upper_tree(spines=3, cores=2)
    # Move everything up one level: leaves 2, spines 3, cores 4 (as in a 4-level tree).
    shifted = {n: lv + 1 for n, lv in levels.items()}
    b.unplug("spine03", "core01")
    assert [(f.subject, f.message.split(":")[0]) for f in check_upper_uplinks(Topo.of(b.fab), shifted)] == [
        ("spine03", "level-3 switch spine03 has 1 cables to level 4, its peers have 2")]


def test_oversubscription_against_the_design_ratio() -> None:
    b = two_level(4, 8, 4)  # 8 hosts over 4 uplinks: 2:1 by design
    assert check_oversubscription(Topo.of(b.fab)) == []
    b.unplug("leaf01", "spine01")
    assert whole(check_oversubscription(Topo.of(b.fab))) == [
        ("leaf-oversubscribed", "warning", "leaf01",
         "leaf leaf01 is oversubscribed 2.67:1: 1600 Gb/s to 8 compute HCAs over 600 Gb/s of uplinks (allowed 2.00:1)",
         {"down_gbps": 1600.0, "up_gbps": 600.0, "ratio": 2.6667, "allowed": 2.0, "uplinks": 3})]
    assert check_oversubscription(Topo.of(b.fab), max_ratio=8 / 3) == []  # exactly at the limit
    assert [f.details["allowed"] for f in check_oversubscription(Topo.of(b.fab), max_ratio=2.5)] == [2.5]
    # Below 1:1 by design the allowed ratio is still 1:1.
    b = two_level(4, 2, 4)
    for s in ("spine01", "spine02", "spine03"):
        b.unplug("leaf01", s)
    assert [f.message for f in check_oversubscription(Topo.of(b.fab))] == [
        "leaf leaf01 is oversubscribed 2.00:1: 400 Gb/s to 2 compute HCAs over 200 Gb/s of uplinks (allowed 1.00:1)"]
    b.unplug("leaf01", "spine04")
    assert whole(check_oversubscription(Topo.of(b.fab))) == [
        ("leaf-oversubscribed", "warning", "leaf01",
         "leaf leaf01 is oversubscribed no uplinks: 400 Gb/s to 2 compute HCAs over 0 Gb/s of uplinks (allowed 1.00:1)",
         {"down_gbps": 400.0, "up_gbps": 0, "ratio": None, "allowed": 1.0, "uplinks": 0})]


def test_oversubscription_counts_compute_hcas_only() -> None:
    b = two_level(3, 4, 2)  # 4 hosts over 2 uplinks: 2:1
    leaf = b.node("leaf01")
    b.cable(leaf, 20, b.hca("ufm01"))  # a lone service host: not a compute HCA
    b.cable(leaf, 21, b.hca("login01"))
    assert check_oversubscription(Topo.of(b.fab)) == []
    b.cable(leaf, 22, b.hca(None, desc="MT4129 ConnectX7"), speed="HDR")  # unnamed: a compute HCA
    b.fab.nodes[-1].role = ROLE_UNNAMED
    assert [f.message for f in check_oversubscription(Topo.of(b.fab))] == [
        "leaf leaf01 is oversubscribed 2.50:1: 1000 Gb/s to 5 compute HCAs over 400 Gb/s of uplinks (allowed 2.00:1)"]


def test_a_single_switch_has_no_uplinks_by_design() -> None:
    b = Build()
    leaf = b.switch("leaf01")
    for h in range(1, 5):
        b.cable(leaf, h, b.hca(f"node{h:02d}"))
    assert check_oversubscription(Topo.of(b.fab)) == []
    assert check_oversubscription(Topo.of(Build().fab)) == []


def short_leaf(subject: str, expected: int, uplinks: int) -> Finding:
    return Finding("leaf-uplinks-missing", "warning", subject, f"leaf {subject} is short", {"expected": expected,
                                                                                            "uplinks": uplinks})


def oversubscribed(subject: str, down: float, up: float, allowed: float, uplinks: int) -> Finding:
    return Finding("leaf-oversubscribed", "warning", subject, f"leaf {subject} is oversubscribed",
                   {"down_gbps": down, "up_gbps": up, "ratio": round(down / up, 4) if up else None,
                    "allowed": allowed, "uplinks": uplinks})


def test_fold_oversubscription_into_the_missing_uplinks() -> None:
    # leafA: 3 of 4 uplinks, 1600 over 600 (2.67:1); with the 4th back, 1600 over 800 = 2:1, allowed 2: folded.
    # leafB: 3 of 4 uplinks, 1800 over 600; with the 4th back, 2.25:1 > 2: a fault of its own.
    # leafC: oversubscribed without a missing uplink; leafD: no uplink at all.
    uplinks = [short_leaf("leafA", 4, 3), short_leaf("leafB", 4, 3), short_leaf("leafD", 2, 0)]
    over = [oversubscribed("leafA", 1600, 600, 2.0, 3), oversubscribed("leafB", 1800, 600, 2.0, 3),
            oversubscribed("leafC", 900, 400, 2.0, 2), oversubscribed("leafD", 400, 0, 2.0, 0)]
    short, kept = fold_oversubscription(uplinks, over)
    assert [f.message for f in short] == ["leaf leafA is short; so it is oversubscribed 2.67:1 (allowed 2.00:1)",
                                          "leaf leafB is short", "leaf leafD is short"]
    assert [f.details for f in short] == [u.details for u in uplinks]
    assert [f.subject for f in kept] == ["leafB", "leafC", "leafD"]
    assert fold_oversubscription([], []) == ([], [])


def test_a_rail_group_short_of_a_leaf_is_critical() -> None:
    b = rail_tree(4, 2, 3)
    gone = b.node("u02-rail1")
    b.fab.links = [lk for lk in b.fab.links if gone not in (lk.a, lk.b)]
    assert whole(check_leaf_groups(Topo.of(b.fab))) == [
        ("leaf-group-short", "critical", "u02-rail0, u02-rail2",
         "rail leaf group u02-rail0, u02-rail2 has 2 leaves, the other groups have 3; none of its 2 named hosts has "
         "more than 2 HCAs on the fabric (compute hosts have 3): a rail leaf switch of this group is missing "
         "(powered off, or all its cables out)", {"leaves": 2, "expected": 3, "hosts": 2})]


def test_a_short_group_whose_host_has_every_rail_is_not_short() -> None:
    b = rail_tree(4, 2, 3)
    for gone in (b.node("u02-rail1"), b.node("u03-rail1")):
        b.fab.links = [lk for lk in b.fab.links if gone not in (lk.a, lk.b)]
    # dgx03 (unit 2) kept its rail-1 HCA cabled, to a spare port of its own rail-0 leaf: it has 3 HCAs
    # on the fabric, so its group may be another design; unit 3's is short of a leaf.
    b.cable(b.node("u02-rail0"), 9, b.node("dgx03/mlx5_1"))
    assert [f.subject for f in check_leaf_groups(Topo.of(b.fab))] == ["u03-rail0, u03-rail2"]


def test_a_full_group_whose_hosts_each_lost_a_rail_is_not_short() -> None:
    b = rail_tree(4, 2, 3)
    for hca in ("dgx03/mlx5_0", "dgx04/mlx5_2"):  # unit 2 keeps its 3 leaves
        gone = b.node(hca)
        b.fab.links = [lk for lk in b.fab.links if gone not in (lk.a, lk.b)]
    assert check_leaf_groups(Topo.of(b.fab)) == []


def test_leaf_groups_need_three_groups() -> None:
    b = rail_tree(2, 2, 3)
    gone = b.node("u02-rail1")
    b.fab.links = [lk for lk in b.fab.links if gone not in (lk.a, lk.b)]
    assert check_leaf_groups(Topo.of(b.fab)) == []
    b = rail_tree(3, 2, 3)
    gone = b.node("u02-rail1")
    b.fab.links = [lk for lk in b.fab.links if gone not in (lk.a, lk.b)]
    assert [f.subject for f in check_leaf_groups(Topo.of(b.fab))] == ["u02-rail0, u02-rail2"]


def test_a_hostless_leaf_is_told_with_its_uplinks() -> None:
    b = two_level(3, 2, 2)
    mgmt = b.switch("mgmt01")
    b.cable(mgmt, 1, b.node("spine02"), 20)
    b.cable(mgmt, 2, b.node("spine01"), 20)
    b.cable(mgmt, 3, b.node("spine02"), 21)
    assert whole(check_hostless_leaves(Topo.of(b.fab))) == [
        ("leaf-hostless", "info", "mgmt01",
         "leaf mgmt01 has no host: 3 uplinks to spine01 (1), spine02 (2); a management leaf, or its hosts are down or "
         "not cabled yet", {"uplinks": 3})]
    assert check_hostless_leaves(Topo.of(two_level(3, 2, 2).fab)) == []


# ------------------------------------------------------------------------------------------- hosts


def unplug_hca(b: Build, name: str) -> None:
    """The HCA as discovery sees a host that lost it: no cable, no host name."""
    hca = b.node(name)
    b.fab.links = [lk for lk in b.fab.links if hca not in (lk.a, lk.b)]
    node = b.fab.nodes[hca]
    node.role, node.host, node.desc, node.name = ROLE_UNNAMED, None, "", ""


def hosts_on_one_leaf(hcas: dict[str, list[str]]) -> Build:
    """One leaf (leaf01) and one spine; the HCAs of each host in the order given, on leaf ports 1, 2, ..."""
    b = Build()
    leaf = b.switch("leaf01")
    port = 0
    for host, labels in hcas.items():
        for label in labels:
            port += 1
            b.cable(leaf, port, b.hca(host, label))
    b.cable(leaf, 40, b.switch("spine01"), 1)
    return b


def test_a_host_short_of_a_rail_names_it_and_what_is_there() -> None:
    b = rail_tree(1, 4, 4)
    unplug_hca(b, "dgx03/mlx5_2")
    assert whole(check_host_rails(Topo.of(b.fab))) == [
        ("host-rails-missing", "warning", "dgx03",
         "host dgx03 has 3 HCAs on the fabric, hosts named like it have 4: missing mlx5_2 (present: dgx03/mlx5_0 on "
         "u01-rail0 port 3, dgx03/mlx5_1 on u01-rail1 port 3, dgx03/mlx5_3 on u01-rail3 port 3)",
         {"hcas": 3, "expected": 4, "missing": ["mlx5_2"]})]


def test_missing_rails_are_the_labels_most_full_hosts_have() -> None:
    # Full hosts (2 HCAs): mlx5_0 on all four, mlx5_1 on two, mlx5_7 on two: only mlx5_0 is expected.
    b = hosts_on_one_leaf({"cn1": ["mlx5_0", "mlx5_1"], "cn2": ["mlx5_0", "mlx5_1"], "cn3": ["mlx5_0", "mlx5_7"],
                           "cn4": ["mlx5_0", "mlx5_7"], "cn5": ["mlx5_0"], "cn6": ["mlx5_9"]})
    assert [(f.subject, f.message, f.details["missing"]) for f in check_host_rails(Topo.of(b.fab))] == [
        ("cn5", "host cn5 has 1 HCAs on the fabric, hosts named like it have 2 (present: cn5/mlx5_0 on leaf01 port 9)",
         []),
        ("cn6", "host cn6 has 1 HCAs on the fabric, hosts named like it have 2: missing mlx5_0 (present: "
                "cn6/mlx5_9 on leaf01 port 10)", ["mlx5_0"])]
    b = hosts_on_one_leaf({"cn1": ["HCA-10", "HCA-2"], "cn2": ["HCA-10", "HCA-2"], "cn3": ["HCA-3"]})
    assert [(f.message, f.details["missing"]) for f in check_host_rails(Topo.of(b.fab))] == [
        ("host cn3 has 1 HCAs on the fabric, hosts named like it have 2: missing HCA-2, HCA-10 (present: cn3/HCA-3 "
         "on leaf01 port 5)", ["HCA-2", "HCA-10"])]


def test_host_rails_need_three_hosts_named_alike() -> None:
    b = hosts_on_one_leaf({"cn1": ["mlx5_0", "mlx5_1"], "cn2": ["mlx5_0"], "login1": ["mlx5_0", "mlx5_1"],
                           "x-a": ["mlx5_0"], "x-b": ["mlx5_0"], "x-c": ["mlx5_0"]})
    assert check_host_rails(Topo.of(b.fab)) == []


def test_generic_host_names() -> None:
    b = hosts_on_one_leaf({"ubuntu": ["mlx5_0", "mlx5_1"], "LocalHost.LocalDomain": ["mlx5_0"], "dgx-01": ["mlx5_0"],
                           "node": ["mlx5_0"], "nodes": ["mlx5_0"]})
    # Hosts in natural order (upper case first); `dgx-01` and `nodes` are real names.
    assert whole(check_generic_host_names(Topo.of(b.fab))) == [
        ("host-name-generic", "warning", "LocalHost.LocalDomain",
         "1 HCA report the default host name 'LocalHost.LocalDomain' (LocalHost.LocalDomain/mlx5_0 on leaf01 port 3): "
         "set the real host name so Slurm and the audit can place it", {}),
        ("host-name-generic", "warning", "node",
         "1 HCA report the default host name 'node' (node/mlx5_0 on leaf01 port 5): set the real host name so Slurm "
         "and the audit can place it", {}),
        ("host-name-generic", "warning", "ubuntu",
         "2 HCAs report the default host name 'ubuntu' (ubuntu/mlx5_0 on leaf01 port 1, ubuntu/mlx5_1 on leaf01 "
         "port 2): set the real host name so Slurm and the audit can place it", {})]


def test_duplicate_guids_and_names() -> None:
    b = hosts_on_one_leaf({"cn1": ["mlx5_0"], "cn2": ["mlx5_0"], "cn3": ["mlx5_0", "mlx5_0"], "cn4": ["mlx5_0"]})
    nodes = b.fab.nodes
    cn1, cn2, cn4 = b.node("cn1/mlx5_0"), b.node("cn2/mlx5_0"), b.node("cn4/mlx5_0")
    nodes[cn1].guid, nodes[cn2].guid = "0xABC", "0xabc"
    nodes[cn4].guid = None
    twins = [i for i, n in enumerate(nodes) if n.name == "cn3/mlx5_0"]
    nodes[twins[1]].guid = None
    leaf2 = b.switch("leaf01")  # a second switch described "leaf01"
    b.switch("core switch")  # descriptions with a blank are model strings, not names
    b.switch("core switch")
    nodes[leaf2].guid = None
    assert whole(check_duplicates(Topo.of(b.fab))) == [
        ("duplicate-guid", "critical", "0xabc",
         f"GUID 0xabc is used by 2 nodes: {nodes[cn1].id} ('cn1 mlx5_0'), {nodes[cn2].id} ('cn2 mlx5_0')", {}),
        ("duplicate-name", "warning", "cn3/mlx5_0",
         f"2 nodes are named 'cn3/mlx5_0' ({nodes[twins[0]].guid}, {nodes[twins[1]].id}): two machines share a name or "
         "a description was copied", {}),
        ("duplicate-name", "warning", "leaf01",
         f"2 nodes are named 'leaf01' ({nodes[b.node('leaf01')].guid}, {nodes[leaf2].id}): two machines share a name "
         "or a description was copied", {})]
    assert check_duplicates(Topo.of(two_level(2, 2, 2).fab)) == []


def test_an_unlabelled_hca_is_named_by_its_host_and_a_question_mark() -> None:
    b = hosts_on_one_leaf({"cn1": ["mlx5_0"]})
    for _ in range(2):
        b.cable(b.node("leaf01"), 20 + len(b.fab.links), b.hca("cn9", desc="cn9"))
        b.fab.nodes[-1].name = "cn9"
    assert [(f.check, f.subject) for f in check_duplicates(Topo.of(b.fab))] == [("duplicate-name", "cn9/?")]


def swap_leaf_ends(b: Build, hca_a: str, hca_b: str) -> None:
    """The two HCAs' cables exchange their leaf ends (each HCA now on the other's leaf port)."""
    la, lb = b.fab.links[b.link_of(hca_a)], b.fab.links[b.link_of(hca_b)]
    (la.a, la.a_port), (lb.a, lb.a_port) = (lb.a, lb.a_port), (la.a, la.a_port)


def test_crossed_rails() -> None:
    b = rail_tree(1, 6, 3)
    swap_leaf_ends(b, "dgx02/mlx5_0", "dgx02/mlx5_1")
    assert whole(check_rail_cabling(Topo.of(b.fab))) == [
        ("rail-crossed", "warning", "dgx02",
         "host dgx02 has rails crossed: mlx5_1 is on u01-rail0 port 2, where the other hosts plug in mlx5_0; "
         "mlx5_0 is on u01-rail1 port 2, where the other hosts plug in mlx5_1", {})]


@pytest.mark.parametrize(("hosts", "crossed"), [(4, True), (3, False)])
def test_crossed_rails_need_three_quarters_of_a_leaf_to_agree(hosts: int, crossed: bool) -> None:
    b = rail_tree(1, hosts, 2)
    swap_leaf_ends(b, "dgx02/mlx5_0", "dgx02/mlx5_1")
    assert [f.subject for f in check_rail_cabling(Topo.of(b.fab))] == (["dgx02"] if crossed else [])


def test_crossed_rails_only_among_hosts_labelled_alike() -> None:
    b = rail_tree(1, 4, 2)
    for name in ("dgx02/mlx5_0", "dgx02/mlx5_1"):
        node = b.fab.nodes[b.node(name)]
        node.desc = node.desc.replace("mlx5_", "ib")
        node.name = node.name.replace("mlx5_", "ib")
    swap_leaf_ends(b, "dgx02/ib0", "dgx02/ib1")
    assert check_rail_cabling(Topo.of(b.fab)) == []


def swap_ports(b: Build, hca_a: str, hca_b: str) -> None:
    la, lb = b.fab.links[b.link_of(hca_a)], b.fab.links[b.link_of(hca_b)]
    la.a_port, lb.a_port = lb.a_port, la.a_port


def test_one_hca_on_the_wrong_port() -> None:
    b = rail_tree(2, 6, 3)
    swap_ports(b, "dgx04/mlx5_1", "dgx05/mlx5_1")
    assert whole(check_rail_cabling(Topo.of(b.fab))) == [
        ("host-port-mismatch", "warning", "dgx04", "host dgx04 uses port 4 on its other rail leaves, but mlx5_1 is on "
                                                   "u01-rail1 port 5: the cable is on the wrong port", {}),
        ("host-port-mismatch", "warning", "dgx05", "host dgx05 uses port 5 on its other rail leaves, but mlx5_1 is on "
                                                   "u01-rail1 port 4: the cable is on the wrong port", {})]


@pytest.mark.parametrize(("units", "hosts", "expected"), [
    (1, 5, []),  # 3 of 5 multi-rail hosts port-aligned: 60% < 80%, not a port-aligned fabric
    (2, 5, ["dgx04", "dgx05"]),  # 8 of 10 aligned: exactly 80%
])
def test_port_alignment_must_be_the_fabrics_rule(units: int, hosts: int, expected: list[str]) -> None:
    b = rail_tree(units, hosts, 3)
    swap_ports(b, "dgx04/mlx5_1", "dgx05/mlx5_1")
    assert [f.subject for f in check_rail_cabling(Topo.of(b.fab))] == expected


def test_port_mismatch_needs_three_multi_rail_hosts() -> None:
    b = rail_tree(1, 2, 3)
    swap_ports(b, "dgx01/mlx5_1", "dgx02/mlx5_1")
    assert check_rail_cabling(Topo.of(b.fab)) == []


def test_no_majority_port_no_mismatch() -> None:
    b = rail_tree(2, 4, 2)
    swap_ports(b, "dgx02/mlx5_1", "dgx03/mlx5_1")  # 2 HCAs on 2 ports: which one is wrong?
    assert [f for f in check_rail_cabling(Topo.of(b.fab)) if f.check == "host-port-mismatch"] == []


def unnamed(b: Build, name: str, desc: str = "MT4129 ConnectX7   Mellanox Technologies") -> int:
    hca = b.node(name)
    node = b.fab.nodes[hca]
    node.role, node.host, node.desc, node.name = ROLE_UNNAMED, None, desc, ""
    return hca


def test_an_unnamed_hca_gets_the_host_its_other_rails_name() -> None:
    b = rail_tree(1, 4, 2)
    hca = unnamed(b, "dgx03/mlx5_1")
    guid = b.fab.nodes[hca].guid
    assert whole(check_unnamed_hcas(Topo.of(b.fab))) == [
        ("hca-unnamed", "warning", guid,
         f"HCA {guid} on u01-rail1 port 3 has node description 'MT4129 ConnectX7   Mellanox Technologies', which "
         "names no host; probably dgx03 (its other rail leaves have dgx03 at port 3)",
         {"desc": "MT4129 ConnectX7   Mellanox Technologies", "probable_host": "dgx03"})]


def test_an_unnamed_hca_on_a_port_named_by_the_pattern() -> None:
    b = rail_tree(1, 4, 2)
    hca = b.hca(None, desc="")
    b.fab.nodes[hca].role = ROLE_UNNAMED
    b.cable(b.node("u01-rail1"), 5, hca)
    guid = b.fab.nodes[hca].guid
    assert whole(check_unnamed_hcas(Topo.of(b.fab))) == [
        ("hca-unnamed", "warning", guid,
         f"HCA {guid} on u01-rail1 port 5 has node description '', which names no host; probably dgx05 (hosts on "
         "this leaf group are named after their port numbers (dgx05 at port 5))",
         {"desc": "", "probable_host": "dgx05"})]


def test_an_unnamed_hca_swapped_with_a_named_one() -> None:
    b = rail_tree(1, 4, 3)
    swap_ports(b, "dgx03/mlx5_1", "dgx04/mlx5_1")  # dgx03/mlx5_1 on u01-rail1 port 4, dgx04's on port 3
    hca = unnamed(b, "dgx04/mlx5_1")
    assert [f.message.split("; ", 1)[1] for f in check_unnamed_hcas(Topo.of(b.fab))] == [
        "probably dgx04 (port 3 is dgx03's position, but dgx03 is on port 4 of this leaf: ports 3 and 4 look swapped, "
        "and port 4 is dgx04's position by the naming pattern)"]
    assert check_unnamed_hcas(Topo.of(b.fab))[0].subject == b.fab.nodes[hca].guid


def test_no_guess_without_a_pattern_or_cable() -> None:
    b = rail_tree(1, 3, 2)  # 6 named HCAs but hosts not named after ports beyond what 3 samples per leaf show
    for n, host in enumerate(("alpha", "bravo", "charlie"), start=1):
        for r in (0, 1):
            node = b.fab.nodes[b.node(f"dgx{n:02d}/mlx5_{r}")]
            node.host, node.name, node.desc = host, f"{host}/mlx5_{r}", f"{host} mlx5_{r}"
    hca = b.hca(None, desc="")
    b.fab.nodes[hca].role = ROLE_UNNAMED
    b.cable(b.node("u01-rail1"), 5, hca)
    loose = b.hca(None, desc="x")  # not cabled at all
    b.fab.nodes[loose].role = ROLE_UNNAMED
    b.fab.nodes[loose].guid = None
    found = check_unnamed_hcas(Topo.of(b.fab))
    assert [(f.subject, f.message, f.details) for f in found] == [
        (b.fab.nodes[hca].guid, f"HCA {b.fab.nodes[hca].guid} on u01-rail1 port 5 has node description '', which "
                                "names no host", {"desc": ""}),
        (b.fab.nodes[loose].id, f"HCA {b.fab.nodes[loose].id} on no switch has node description 'x', which names "
                                "no host", {"desc": "x"})]


# ---------------------------------------------------------------------------------------- registry


def test_audit_check_registers_every_id_it_reports_and_refuses_a_taken_one() -> None:
    rows = (CheckInfo("toy-a", "toys", "warning", "a"), CheckInfo("toy-b", "toys", "info", "b"))

    def run(audit: AuditInput) -> list[Finding]:
        return []

    try:
        assert audit_check(reports=rows)(run) is run
        entry = AUDIT_CHECKS["toy-a"]
        assert (entry.name, entry.reports, entry.run) == ("toy-a", rows, run)
        assert all_check_infos()[-2:] == rows
        with pytest.raises(DuplicateRegistration, match="^audit check id 'toy-b' is already registered$"):
            audit_check("toy-b", "toys", "warning", "again")
        # Several taken: the first in sorted order is named.
        with pytest.raises(DuplicateRegistration, match="^audit check id 'toy-a' is already registered$"):
            audit_check(reports=(CheckInfo("toy-b", "toys", "info", "b"), CheckInfo("toy-a", "toys", "info", "a")))
        assert audit_check("toy-one", "toys", "critical", "one")(run) is run
        assert AUDIT_CHECKS["toy-one"].reports == (CheckInfo("toy-one", "toys", "critical", "one"),)
        assert AUDIT_CHECKS["toy-one"].name == "toy-one"
        assert all_check_infos()[-3:] == (*rows, CheckInfo("toy-one", "toys", "critical", "one"))
    finally:
        for name in ("toy-a", "toy-one"):
            if name in AUDIT_CHECKS:
                AUDIT_CHECKS.unregister(name)
    assert not {"toy-a", "toy-b", "toy-one"} & {c.id for c in all_check_infos()}


def test_audit_input_defaults() -> None:
    fabric = two_level(1, 1, 1).fab
    first, second = AuditInput(fabric, Topo.of(fabric)), AuditInput(fabric, Topo.of(fabric))
    assert (first.reference, first.compiled, first.expected_by_link, first.expected_uplinks,
            first.max_oversubscription) == (None, None, None, None, None)
    assert first.global_links == frozenset() and first.totals == {}
    first.totals["x"] = 1
    assert second.totals == {}  # each run its own totals


# ------------------------------------------------------------------- boundaries of the shortfall detail


def test_dragonfly_lists_of_switches_and_groups_must_pair_up() -> None:
    b, switches, groups = dragonfly_groups({(0, 1): 1, (0, 2): 1, (1, 2): 1})
    with pytest.raises(ValueError):
        check_dragonfly(b.fab, switches, groups[:-1])
    with pytest.raises(ValueError):
        reference_pairs(b.fab, b.fab, SimpleNamespace(switch_node=switches, switch_group=groups[:-1]))  # type: ignore[arg-type]


def test_dragonfly_two_groups_only_against_a_reference() -> None:
    b = Build()
    r1, r2 = b.switch("g1-r1", group=0), b.switch("g2-r1", group=1)
    b.cable(r1, 1, b.hca("node1"))
    b.cable(r2, 1, b.hca("node2"))
    b.cable(r1, 2, r2, 2)
    assert check_dragonfly(b.fab, [r1, r2], [0, 1]) == []  # one pair: it is its own majority
    assert [f.message for f in check_dragonfly(b.fab, [r1, r2], [0, 1], {(0, 1): 2})] == [
        "dragonfly groups 1 (g1-r1...) and 2 (g2-r1...) have 1 global links, expected 2: 1 missing"]


def test_dragonfly_usually_without_global_links_misses_none() -> None:
    b, switches, groups = dragonfly_groups({(0, 1): 1, (0, 2): 0, (1, 2): 0})
    assert check_dragonfly(b.fab, switches, groups) == []


def test_shortfall_lists_spines_in_natural_order() -> None:
    b = two_level(4, 2, 3)
    b.fab.nodes[b.node("spine01")].name = "spine10"  # first built, last by name
    b.unplug("leaf04", "spine10")
    b.unplug("leaf04", "spine02")
    [finding] = check_leaf_uplinks(Topo.of(b.fab)).findings
    assert finding.message == (
        "leaf leaf04 has 1 uplinks, the other compute leaves have 3: 2 cables missing (spine02: 0 of 1, port 4 empty "
        "on leaf04, port 4 empty on spine02; spine10: 0 of 1, port 3 empty on leaf04, port 4 empty on spine10)")


def test_shortfall_names_a_spine_half_the_pod_uses() -> None:
    b = two_level(4, 2, 2)
    b.unplug("leaf03", "spine02")
    b.unplug("leaf04", "spine02")  # spine02 serves leaf01 and leaf02: half the pod
    report = check_leaf_uplinks(Topo.of(b.fab), {b.node("leaf03"): 2})
    assert [f.message for f in report.findings if f.subject == "leaf03"] == [
        "leaf leaf03 has 1 uplinks, the reference design has 2: 1 cable missing (spine02: 0 of 1, port 4 empty on "
        "leaf03, port 3 empty on spine02)"]


def test_shortfall_skips_a_spine_less_than_half_the_pod_uses() -> None:
    b = two_level(5, 2, 2)
    for n in (3, 4, 5):
        b.unplug(f"leaf{n:02d}", "spine02")  # spine02 serves 2 of 5 leaves
    report = check_leaf_uplinks(Topo.of(b.fab), {b.node("leaf03"): 2})
    assert [f.message for f in report.findings if f.subject == "leaf03"] == [
        "leaf leaf03 has 1 uplinks, the reference design has 2: 1 cable missing"]


def test_shortfall_in_the_second_pod() -> None:
    b = two_pods_missing(("b", 3, 2))
    assert [f.message for f in check_leaf_uplinks(Topo.of(b.fab)).findings] == [
        "leaf b-leaf3 has 1 uplinks, the other compute leaves have 2: 1 cable missing (b-spine2: 0 of 1, port 3 "
        "empty on b-leaf3, port 3 empty on b-spine2)"]


def replug_leaf_end(b: Build, leaf: str, spine: str, port: int) -> None:
    link = b.fab.links[b.link(leaf, spine)]
    if link.a == b.node(leaf):
        link.a_port = port
    else:
        link.b_port = port


def test_an_empty_port_is_named_when_at_least_half_the_peers_use_it() -> None:
    b = two_level(5, 2, 2)
    replug_leaf_end(b, "leaf03", "spine02", 7)
    replug_leaf_end(b, "leaf04", "spine02", 7)  # spine02's leaves use port 4 (2 of 4) and port 7 (2 of 4)
    b.unplug("leaf05", "spine02")
    assert [f.message for f in check_leaf_uplinks(Topo.of(b.fab)).findings] == [
        "leaf leaf05 has 1 uplinks, the other compute leaves have 2: 1 cable missing (spine02: 0 of 1, ports 4, 7 "
        "empty on leaf05, port 5 empty on spine02)"]
    b = two_level(4, 2, 2)
    replug_leaf_end(b, "leaf03", "spine02", 7)  # port 4: 2 of 3 peers; port 7: 1 of 3
    b.unplug("leaf04", "spine02")
    assert [f.message for f in check_leaf_uplinks(Topo.of(b.fab)).findings] == [
        "leaf leaf04 has 1 uplinks, the other compute leaves have 2: 1 cable missing (spine02: 0 of 1, port 4 empty "
        "on leaf04, port 4 empty on spine02)"]


def test_far_ports_are_read_at_the_far_switchs_end_of_the_cable() -> None:
    b = two_level(4, 2, 2)
    up = b.link("leaf04", "spine01")
    b.fab.links[up] = Link(b.node("spine01"), 4, b.node("leaf04"), 3)  # written from the spine's end
    b.unplug("leaf04", "spine02")
    assert [f.message for f in check_leaf_uplinks(Topo.of(b.fab)).findings] == [
        "leaf leaf04 has 1 uplinks, the other compute leaves have 2: 1 cable missing (spine02: 0 of 1, port 4 empty "
        "on leaf04, port 4 empty on spine02)"]


def test_no_far_ports_named_when_more_are_empty_than_cables_missing() -> None:
    b = two_level(4, 2, 2, uplinks=2)
    cables = [li for li, lk in enumerate(b.fab.links) if {lk.a, lk.b} == {b.node("leaf03"), b.node("spine02")}]
    b.fab.links[cables[0]].b_port = 20  # leaf03's remaining spine02 cable sits on spine02 port 20
    del b.fab.links[cables[1]]
    # spine02 ports 5 and 6 (leaf03's by the pattern) are both empty, but only one cable is missing.
    assert [f.message for f in check_leaf_uplinks(Topo.of(b.fab)).findings] == [
        "leaf leaf03 has 3 uplinks, the other compute leaves have 4: 1 cable missing (spine02: 1 of 2, port 6 empty "
        "on leaf03)"]


def test_far_ports_need_a_majority_of_the_peer_spines() -> None:
    b = two_level(4, 2, 3, uplinks=2)
    # leaf04's cables: spine01 ports 7, 8; spine03 ports 7, 20 (one re-plugged); spine02 none.
    cables = [li for li, lk in enumerate(b.fab.links) if {lk.a, lk.b} == {b.node("leaf04"), b.node("spine03")}]
    b.fab.links[cables[1]].b_port = 20
    b.unplug("leaf04", "spine02")
    b.unplug("leaf04", "spine02")
    assert [f.message for f in check_leaf_uplinks(Topo.of(b.fab)).findings] == [
        "leaf leaf04 has 4 uplinks, the other compute leaves have 6: 2 cables missing (spine02: 0 of 2, ports 5, 6 "
        "empty on leaf04, port 7 empty on spine02)"]


def test_rate_text_names_a_link_of_its_own_class() -> None:
    b = two_level(3, 4, 2)
    for link in b.fab.links:
        if link_class(Topo.of(b.fab), link) == "switch":
            link.speed = "NDR"
    b.fab.links[b.link("leaf02", "node06/mlx5_0")].width = "2x"
    assert [f.message for f in check_link_rates(Topo.of(b.fab))] == [
        "leaf02 port 2 -- node06/mlx5_0 port 1 runs at 2x HDR (100 Gb/s); host links between these devices run at "
        "4x HDR"]


# --------------------------------------------------------------------------- unnamed HCAs, more guesses


def named_rails(hosts: dict[str, int], rails: int = 2) -> Build:
    """One rail group: leaves rail0..rail{rails-1}; host name -> its port on every rail leaf."""
    b = Build()
    leaves = [b.switch(f"rail{r}") for r in range(rails)]
    for host, port in hosts.items():
        for r, leaf in enumerate(leaves):
            b.cable(leaf, port, b.hca(host, f"mlx5_{r}"))
    spine = b.switch("spine01")
    for r, leaf in enumerate(leaves):
        b.cable(leaf, 40, spine, r + 1)
    return b


def loose_hca(b: Build, leaf: str, port: int) -> int:
    hca = b.hca(None, desc="")
    b.fab.nodes[hca].role = ROLE_UNNAMED
    b.cable(b.node(leaf), port, hca)
    return hca


def guesses(b: Build) -> list[str | None]:
    return [f.details.get("probable_host") for f in check_unnamed_hcas(Topo.of(b.fab))]


def test_the_naming_pattern_with_an_offset() -> None:
    b = named_rails({"dgx11": 1, "dgx12": 2, "dgx13": 3, "dgx14": 4})
    loose_hca(b, "rail1", 5)
    assert guesses(b) == ["dgx15"]


def test_the_naming_pattern_down_to_host_zero() -> None:
    b = named_rails({"dgx01": 3, "dgx02": 4, "dgx03": 5, "dgx04": 6})  # host number = port - 2
    loose_hca(b, "rail1", 2)
    loose_hca(b, "rail1", 1)  # would be host -1: no such name
    assert guesses(b) == ["dgx00", None]


def test_no_pattern_guess_for_a_host_already_on_the_leaf() -> None:
    b = named_rails({"dgx01": 1, "dgx02": 2, "dgx03": 3, "dgx04": 4})
    b.cable(b.node("rail1"), 6, b.hca("dgx05", "mlx5_1"))  # dgx05 on the wrong port of rail1 (its only HCA)
    loose_hca(b, "rail1", 5)
    assert guesses(b) == [None]


def test_a_sibling_cable_on_the_wrong_port_names_no_host() -> None:
    b = named_rails({"dgx01": 1, "dgx02": 2, "dgx03": 3, "dgx04": 4}, rails=3)
    swap_ports(b, "dgx02/mlx5_0", "dgx03/mlx5_0")  # on rail0 dgx02 sits at port 3, dgx03 at port 2
    unnamed(b, "dgx03/mlx5_1")
    assert guesses(b) == ["dgx03"]  # rail0 port 3 is dgx02's mistake; rail2 port 3 names dgx03


def test_no_swap_guess_when_the_patterns_host_is_already_on_the_leaf() -> None:
    b = named_rails({"dgx01": 1, "dgx02": 2, "dgx03": 3, "dgx04": 4, "dgx05": 5}, rails=3)
    rail1 = b.node("rail1")
    for host, port in (("dgx03", 4), ("dgx04", 5), ("dgx05", 3)):
        b.fab.links[b.link("rail1", f"{host}/mlx5_1")].a_port = port
    assert b.fab.links[b.link("rail1", "dgx05/mlx5_1")].a == rail1
    unnamed(b, "dgx05/mlx5_1")
    assert guesses(b) == [None]  # port 3 is dgx03's, dgx03 is on 4, but port 4's host dgx04 is here too


def star_of_spines(leaves: int, b_leaves: tuple[int, ...]) -> Build:
    """leaf1..leafN (host at port 1); spine-a on every leaf (leaf port 2, spine port n); spine-s on
    leaf2..leafN (leaf port 3, spine port n); spine-b on `b_leaves` (leaf port 4, spine port 6 + n)."""
    b = Build()
    a, spine_s, spine_b = b.switch("spine-a"), b.switch("spine-s"), b.switch("spine-b")
    for n in range(1, leaves + 1):
        leaf = b.switch(f"leaf{n}")
        b.cable(leaf, 1, b.hca(f"node{n}"))
        b.cable(leaf, 2, a, n)
        if n > 1:
            b.cable(leaf, 3, spine_s, n)
        if n in b_leaves:
            b.cable(leaf, 4, spine_b, 6 + n)
    return b


def test_far_ports_count_peer_spines_serving_half_the_pod() -> None:
    # leaf1 lacks spine-s. Its peers: spine-a (spine-a port 1 is leaf1's) and spine-b (port 7), which serves
    # leaf1 and leaf2: half the pod, so it votes too and the two disagree: no far port named.
    b = star_of_spines(4, (1, 2))
    report = check_leaf_uplinks(Topo.of(b.fab), {b.node("leaf1"): 3})
    assert [f.message for f in report.findings if f.subject == "leaf1"] == [
        "leaf leaf1 has 2 uplinks, the reference design has 3: 1 cable missing (spine-s: 0 of 1, port 3 empty on "
        "leaf1)"]
    # With 5 leaves spine-b serves 2 of 5, less than half: only spine-a votes, for spine-s port 1.
    b = star_of_spines(5, (1, 2))
    report = check_leaf_uplinks(Topo.of(b.fab), {b.node("leaf1"): 3})
    assert [f.message for f in report.findings if f.subject == "leaf1"] == [
        "leaf leaf1 has 2 uplinks, the reference design has 3: 1 cable missing (spine-s: 0 of 1, port 3 empty on "
        "leaf1, port 1 empty on spine-s)"]


def planes() -> tuple[Build, dict[int, int]]:
    """spine01..03 cabled to core01, core02; spine04..06 to core03, core04 (spine port 10 + core within
    its plane, core port = spine within its plane); each spine above one leaf with one host."""
    b = Build()
    cores = [b.switch(f"core{c:02d}") for c in range(1, 5)]
    levels = {c: 3 for c in cores}
    for s in range(1, 7):
        spine = b.switch(f"spine{s:02d}")
        leaf = b.switch(f"leaf{s:02d}")
        levels[spine], levels[leaf] = 2, 1
        b.cable(leaf, 1, b.hca(f"node{s:02d}"))
        b.cable(leaf, 2, spine, 1)
        plane = cores[:2] if s <= 3 else cores[2:]
        for c, core in enumerate(plane, start=1):
            b.cable(spine, 10 + c, core, (s - 1) % 3 + 1)
    return b, levels


def test_a_spine_short_names_only_the_cores_of_its_plane() -> None:
    b, levels = planes()
    b.unplug("spine02", "core02")
    assert [f.message for f in check_upper_uplinks(Topo.of(b.fab), levels)] == [
        "level-2 switch spine02 has 1 cables to level 3, its peers have 2: 1 cable missing (core02: 0 of 1, port 12 "
        "empty on spine02, port 2 empty on core02)"]


def test_short_spines_in_natural_order() -> None:
    b, levels = planes()
    b.fab.nodes[b.node("spine01")].name = "spine10"
    b.unplug("spine10", "core01")
    b.unplug("spine02", "core02")
    assert [f.subject for f in check_upper_uplinks(Topo.of(b.fab), levels)] == ["spine02", "spine10"]


def test_a_spine_short_of_two_cores() -> None:
    b, levels = upper_tree(spines=3, cores=3)
    b.unplug("spine02", "core02")
    b.unplug("spine02", "core03")
    assert [f.message for f in check_upper_uplinks(Topo.of(b.fab), levels)] == [
        "level-2 switch spine02 has 1 cables to level 3, its peers have 3: 2 cables missing (core02: 0 of 1, port 12 "
        "empty on spine02, port 2 empty on core02; core03: 0 of 1, port 13 empty on spine02, port 2 empty on core03)"]


def test_a_level_with_too_few_switches_does_not_stop_the_next() -> None:
    b, levels = upper_tree(spines=3, cores=2)
    b.unplug("spine02", "core02")
    # Two switches at level 2 (the leaves of spine01 and spine02), the spines at 3, the cores at 4.
    shifted = {n: lv + 1 for n, lv in levels.items() if lv >= 2}
    shifted.update({b.node("leaf01"): 2, b.node("leaf02"): 2})
    assert [f.subject for f in check_upper_uplinks(Topo.of(b.fab), shifted)] == ["spine02"]


def test_spines_usually_without_cables_up_miss_none() -> None:
    b, levels = upper_tree(spines=3, cores=2)
    for s in ("spine02", "spine03"):
        b.unplug(s, "core01")
        b.unplug(s, "core02")
    b.unplug("spine01", "core02")
    assert check_upper_uplinks(Topo.of(b.fab), levels) == []


def test_hostless_leaf_uplinks_in_natural_order() -> None:
    b = two_level(3, 2, 2)
    b.fab.nodes[b.node("spine01")].name = "spine10"
    b.fab.nodes[b.node("spine02")].name = "spine9"
    mgmt = b.switch("mgmt01")
    b.cable(mgmt, 1, b.node("spine10"), 20)
    b.cable(mgmt, 2, b.node("spine9"), 20)
    b.cable(mgmt, 3, b.node("spine10"), 21)
    b.switch("mgmt02")  # powered on, no cable at all: not a leaf (no level), not told
    assert [f.message for f in check_hostless_leaves(Topo.of(b.fab))] == [
        "leaf mgmt01 has no host: 3 uplinks to spine9 (1), spine10 (2); a management leaf, or its hosts are down or "
        "not cabled yet"]


def test_a_one_word_warning_without_a_colon_is_a_discovery_warning() -> None:
    fabric = Fabric(warnings=["oddity"])
    assert whole(check_parse_warnings(fabric)) == [("discovery-warning", "warning", "fabric", "oddity", {})]


def test_hcas_guessed_to_one_host_are_no_duplicate_name() -> None:
    b = hosts_on_one_leaf({"cn1": ["mlx5_0"], "cn2": ["mlx5_0"]})
    for port in (5, 6):
        hca = b.hca(None, desc="MT4129 ConnectX7")
        b.fab.nodes[hca].role, b.fab.nodes[hca].host = ROLE_UNNAMED, "cn3"  # a guess, not a claimed name
        b.cable(b.node("leaf01"), port, hca)
    assert check_duplicates(Topo.of(b.fab)) == []


def test_fold_at_the_allowed_ratio_exactly() -> None:
    # With its missing cable back leafA would run at exactly the allowed ratio (plus the 1e-9 slack): folded.
    uplink = short_leaf("leafA", 1, 1)
    over = Finding("leaf-oversubscribed", "warning", "leafA", "over", {"down_gbps": 2.0 + 1e-9, "up_gbps": 1.0,
                                                                       "ratio": 2.0, "allowed": 2.0, "uplinks": 1})
    short, kept = fold_oversubscription([uplink], [over])
    assert kept == [] and short[0].message == "leaf leafA is short; so it is oversubscribed 2.00:1 (allowed 2.00:1)"


def test_crossed_rails_need_a_labelled_majority() -> None:
    # Each host: one HCA without a label (description and name just the host) and mlx5_1. On leaf01 three
    # unlabelled HCAs and cn4's mlx5_1: the majority has no label, so it names no rail; on leaf02 three
    # mlx5_1 and cn4's unlabelled HCA, named by its node.
    b = Build()
    leaf, other = b.switch("leaf01"), b.switch("leaf02")
    for n in range(1, 5):
        bare = b.hca(f"cn{n}", desc=f"cn{n}")
        b.fab.nodes[bare].name = f"cn{n}"
        labelled = b.hca(f"cn{n}", "mlx5_1")
        first, second = (labelled, bare) if n == 4 else (bare, labelled)
        b.cable(leaf, n, first)
        b.cable(other, n, second)
    b.cable(leaf, 10, b.switch("spine01"), 1)
    assert [(f.subject, f.message) for f in check_rail_cabling(Topo.of(b.fab)) if f.check == "rail-crossed"] == [
        ("cn4", "host cn4 has rails crossed: cn4 is on leaf02 port 4, where the other hosts plug in mlx5_1")]


def test_a_small_scheme_on_a_leaf_does_not_hide_the_next() -> None:
    b = rail_tree(1, 4, 2)
    swap_leaf_ends(b, "dgx02/mlx5_0", "dgx02/mlx5_1")
    login = b.hca("login1")
    b.fab.links.insert(0, Link(b.node("u01-rail0"), 20, login, 1))  # met first on u01-rail0, alone in its class
    assert [f.message for f in check_rail_cabling(Topo.of(b.fab))] == [
        "host dgx02 has rails crossed: mlx5_1 is on u01-rail0 port 2, where the other hosts plug in mlx5_0; "
        "mlx5_0 is on u01-rail1 port 2, where the other hosts plug in mlx5_1"]


def test_unnamed_hcas_in_natural_order_of_their_guids_and_every_port() -> None:
    b = two_level(2, 2, 1)
    first, second = b.hca(None, desc="a"), b.hca(None, desc="b")
    b.fab.nodes[first].guid, b.fab.nodes[second].guid = "0x20", "0x3"
    for hca in (first, second):
        b.fab.nodes[hca].role = ROLE_UNNAMED
    b.cable(b.node("leaf01"), 7, first)
    b.cable(b.node("leaf02"), 7, first, 2)  # a dual-port HCA
    b.cable(b.node("leaf02"), 8, second)
    assert [f.message for f in check_unnamed_hcas(Topo.of(b.fab))] == [
        "HCA 0x3 on leaf02 port 8 has node description 'b', which names no host",
        "HCA 0x20 on leaf01 port 7, leaf02 port 7 has node description 'a', which names no host"]


def test_the_naming_pattern_needs_four_samples() -> None:
    b = named_rails({"dgx01": 1, "dgx02": 2})  # 4 named HCAs: enough
    loose_hca(b, "rail1", 3)
    assert guesses(b) == ["dgx03"]


def test_the_naming_pattern_needs_four_fifths_of_the_samples() -> None:
    b = named_rails({"dgx01": 1, "dgx02": 2})
    b.cable(b.node("rail0"), 5, b.hca("zz09", "mlx5_0"))  # 4 of 5 samples follow dgxNN = port
    loose_hca(b, "rail1", 3)
    assert guesses(b) == ["dgx03"]
    b = named_rails({"dgx01": 1, "dgx02": 2, "dgx03": 3})
    for name, port in (("dgx04", 4), ("zz09", 5), ("zz10", 6), ("zz11", 7)):  # 7 of 10 follow it
        b.cable(b.node("rail0"), port, b.hca(name, "mlx5_0"))
    loose_hca(b, "rail1", 8)
    assert guesses(b) == [None]


# ---------------------------------------------------------------- more boundaries (issue 29 survivors)


def rename_host(b: Build, old: str, new: str) -> None:
    for node in b.fab.nodes:
        if node.host == old:
            label = node.name.split("/", 1)[1]
            node.host, node.name, node.desc = new, f"{new}/{label}", f"{new} {label}"


def reverse(b: Build, li: int) -> None:
    lk = b.fab.links[li]
    b.fab.links[li] = Link(lk.b, lk.b_port, lk.a, lk.a_port, lk.width, lk.speed)


def test_cables_written_from_the_host_end_count_the_same() -> None:
    b = two_level(4, 8, 4)
    b.unplug("leaf01", "spine01")
    reverse(b, b.link("leaf01", "node01/mlx5_0"))
    assert [f.message for f in check_oversubscription(Topo.of(b.fab))] == [
        "leaf leaf01 is oversubscribed 2.67:1: 1600 Gb/s to 8 compute HCAs over 600 Gb/s of uplinks (allowed 2.00:1)"]
    b = two_level(3, 2, 2)
    mgmt = b.switch("mgmt01")
    b.cable(b.node("spine02"), 20, mgmt, 1)  # written from the spine's end
    assert [f.message for f in check_hostless_leaves(Topo.of(b.fab))] == [
        "leaf mgmt01 has no host: 1 uplink to spine02 (1); a management leaf, or its hosts are down or not cabled yet"]


def test_oversubscription_of_a_later_leaf_and_an_exact_ratio() -> None:
    b = two_level(4, 8, 4)
    assert check_oversubscription(Topo.of(b.fab), max_ratio=2.0 - 1e-9) == []  # 2:1 within the 1e-9 slack
    b.unplug("leaf03", "spine01")
    assert [f.subject for f in check_oversubscription(Topo.of(b.fab))] == ["leaf03"]
    b = two_level(4, 8, 3)  # design 8:3
    b.unplug("leaf02", "spine01")
    assert [f.details["allowed"] for f in check_oversubscription(Topo.of(b.fab))] == [2.6667]


def test_three_hosts_named_alike_are_compute_hosts() -> None:
    b = two_level(3, 1, 1)
    b.unplug("leaf01", "spine01")
    assert [f.message for f in check_oversubscription(Topo.of(b.fab))] == [
        "leaf leaf01 is oversubscribed no uplinks: 200 Gb/s to 1 compute HCAs over 0 Gb/s of uplinks (allowed 1.00:1)"]


def test_leaves_without_any_uplink_are_allowed_one_to_one() -> None:
    b = Build()
    for n in (1, 2):
        leaf = b.switch(f"leaf{n:02d}")
        for h in range(1, 5):
            b.cable(leaf, h, b.hca(f"node{n}{h}"))
    assert [f.message for f in check_oversubscription(Topo.of(b.fab))] == [
        f"leaf leaf0{n} is oversubscribed no uplinks: 800 Gb/s to 4 compute HCAs over 0 Gb/s of uplinks (allowed "
        "1.00:1)" for n in (1, 2)]


def test_each_class_of_leaf_has_its_own_usual_uplink_count() -> None:
    b = two_level(3, 2, 2)
    spine01, spine02 = b.node("spine01"), b.node("spine02")
    for n in (1, 2, 3):
        leaf = b.switch(f"storage{n:02d}")
        b.cable(leaf, 1, b.hca(f"fs{n}", role=ROLE_SERVICE))
        b.cable(leaf, 3, spine01, 10 + n)
        b.cable(leaf, 4, spine02, 10 + n)
        if n != 2:
            b.cable(leaf, 5, spine01, 20 + n)  # storage leaves: 3 uplinks; storage02 only 2
    assert [(f.subject, f.details) for f in check_leaf_uplinks(Topo.of(b.fab)).findings] == [
        ("storage02", {"uplinks": 2, "expected": 3, "missing": 1})]


def test_crossed_hosts_in_natural_order() -> None:
    b = rail_tree(1, 8, 3)  # 6 of 8 on each leaf agree
    rename_host(b, "dgx02", "dgx10")
    rename_host(b, "dgx05", "dgx2")
    swap_leaf_ends(b, "dgx10/mlx5_0", "dgx10/mlx5_1")
    swap_leaf_ends(b, "dgx2/mlx5_0", "dgx2/mlx5_1")
    assert [f.subject for f in check_rail_cabling(Topo.of(b.fab))] == ["dgx2", "dgx10"]


def replug(b: Build, hca: str, port: int) -> None:
    b.fab.links[b.link_of(hca)].a_port = port  # rail_tree writes the leaf end first


def test_port_alignment_threshold_is_four_fifths_of_multi_rail_hosts() -> None:
    b = rail_tree(1, 4, 3)
    replug(b, "dgx04/mlx5_1", 9)  # 3 of 4 aligned: 75%
    assert check_rail_cabling(Topo.of(b.fab)) == []
    leaf = b.node("u01-rail0")
    for n in range(10):  # single-HCA hosts are no multi-rail hosts: still 3 of 4
        b.cable(leaf, 20 + n, b.hca(f"cn{n:02d}"))
    assert check_rail_cabling(Topo.of(b.fab)) == []


def test_two_hca_hosts_count_as_multi_rail() -> None:
    b = rail_tree(1, 5, 3)
    for host in ("dgx03", "dgx04", "dgx05"):
        unplug_hca(b, f"{host}/mlx5_2")
    replug(b, "dgx02/mlx5_1", 9)  # 4 of 5 multi-rail hosts aligned
    assert [f.message for f in check_rail_cabling(Topo.of(b.fab))] == [
        "host dgx02 uses port 2 on its other rail leaves, but mlx5_1 is on u01-rail1 port 9: the cable is on the "
        "wrong port"]


def test_port_mismatch_hosts_in_natural_order() -> None:
    b = rail_tree(2, 6, 3)
    rename_host(b, "dgx04", "dgx14")
    rename_host(b, "dgx05", "dgx5")
    swap_ports(b, "dgx14/mlx5_1", "dgx5/mlx5_1")
    assert [f.subject for f in check_rail_cabling(Topo.of(b.fab))] == ["dgx5", "dgx14"]


def test_a_host_split_half_and_half_is_skipped_not_the_end() -> None:
    b = rail_tree(2, 6, 4)
    replug(b, "dgx03/mlx5_2", 9)
    replug(b, "dgx03/mlx5_3", 9)  # 2 on port 3, 2 on port 9: no majority
    replug(b, "dgx08/mlx5_1", 10)
    assert [f.message for f in check_rail_cabling(Topo.of(b.fab))] == [
        "host dgx08 uses port 2 on its other rail leaves, but mlx5_1 is on u02-rail1 port 10: the cable is on the "
        "wrong port"]


def test_two_hcas_on_wrong_ports_and_one_without_a_label() -> None:
    b = rail_tree(2, 6, 5)
    replug(b, "dgx08/mlx5_1", 10)
    replug(b, "dgx08/mlx5_3", 11)
    bare = b.fab.nodes[b.node("dgx08/mlx5_3")]
    bare.desc, bare.name = "dgx08", "dgx08"  # no label: named by its node
    assert [f.message for f in check_rail_cabling(Topo.of(b.fab))] == [
        "host dgx08 uses port 2 on its other rail leaves, but dgx08 is on u02-rail3 port 11; mlx5_1 is on u02-rail1 "
        "port 10: the cable is on the wrong port"]  # the host's HCAs in name order


def test_a_loopback_first_in_the_list_does_not_stop_the_check() -> None:
    b = two_level(2, 2, 2)
    spine = b.node("spine01")
    b.fab.links.insert(0, Link(spine, 10, spine, 11, "1x", "SDR"))
    b.fab.links[b.link("leaf02", "spine02")].speed = "EDR"
    assert [f.subject for f in check_link_rates(Topo.of(b.fab))] == ["leaf02 port 4"]


def test_a_qdr_link_in_an_fdr10_fabric_is_degraded() -> None:
    b = two_level(2, 4, 1, speed="FDR10")
    b.fab.links[b.link("leaf01", "node02/mlx5_0")].speed = "QDR"  # 10 against 10.3125 Gb/s per lane
    assert [f.subject for f in check_link_rates(Topo.of(b.fab))] == ["leaf01 port 2"]
