"""Switch levels from structure on synthetic fabrics, each with one real-world trait; expectations
written by hand from how the fabric is cabled."""

from __future__ import annotations

from gpupool.fabric.compiled import SYNTHETIC_ROOT, compile_fabric
from gpupool.fabric.export import export_slurm_tree
from gpupool.fabric.generate import fat_tree
from gpupool.fabric.model import ROLE_HCA, Fabric, Link, Node
from gpupool.fabric.structure import classify_hosts


def _index(fab: Fabric, name: str) -> int:
    return next(i for i, n in enumerate(fab.nodes) if n.name == name)


def _add_host(fab: Fabric, switch: str, host: str, port: int, label: str = "mlx5_0") -> None:
    fab.nodes.append(Node(id=f"H-{host}-{label}", type="ca", ports=1, desc=f"{host} {label}", role=ROLE_HCA,
                          host=host, name=f"{host}/{label}"))
    fab.links.append(Link(_index(fab, switch), port, len(fab.nodes) - 1, 1, "4x", "QDR"))


def _levels(fab: Fabric) -> dict[str, int]:
    compiled = compile_fabric(fab)
    return {compiled.switch_names[s]: int(compiled.switch_level[s]) for s in range(compiled.n_switches)}


def test_hosts_cabled_to_a_spine_stay_hosts_of_a_spine() -> None:
    fab = fat_tree(4, 2, 2)  # leaf01..04 with 2 hosts each, spine01..02 above them
    _add_host(fab, "spine01", "storage1", 30)
    _add_host(fab, "spine02", "ufm1", 30)
    levels = _levels(fab)
    assert levels == {"leaf01": 1, "leaf02": 1, "leaf03": 1, "leaf04": 1, "spine01": 2, "spine02": 2}
    compiled = compile_fabric(fab)
    assert compiled.kind == "fat-tree"
    assert SYNTHETIC_ROOT not in export_slurm_tree(compiled)


def test_hostless_leaves_stay_leaves_when_cabled_before_the_servers() -> None:
    fab = fat_tree(6, 2, 3)
    # Servers of leaf03..leaf06 not delivered yet: drop their HCAs and cables.
    gone = {i for i, n in enumerate(fab.nodes) if n.type == "ca" and any(
        (lk.a == i and fab.nodes[lk.b].name in {"leaf03", "leaf04", "leaf05", "leaf06"})
        or (lk.b == i and fab.nodes[lk.a].name in {"leaf03", "leaf04", "leaf05", "leaf06"}) for lk in fab.links)}
    fab.links = [lk for lk in fab.links if lk.a not in gone and lk.b not in gone]
    for i in gone:
        fab.nodes[i].role = "unnamed"
        fab.nodes[i].host = None
    levels = _levels(fab)
    assert levels == {**{f"leaf0{k}": 1 for k in range(1, 7)}, "spine01": 2, "spine02": 2, "spine03": 2}


def test_a_hostless_management_leaf_under_its_own_spine_stays_a_leaf() -> None:
    # Selene's shape in small: pod leaves and spines under cores, plus a management spine under
    # the cores whose only leaf has no host.
    fab = fat_tree(2, 2, 2, pods=2, cores=2)
    mspine = len(fab.nodes)
    fab.nodes.append(Node(id="S-mspine", type="switch", ports=36, desc="mspine", name="mspine"))
    mleaf = len(fab.nodes)
    fab.nodes.append(Node(id="S-mleaf", type="switch", ports=36, desc="mleaf", name="mleaf"))
    for port in (1, 2):
        fab.links.append(Link(mleaf, port, mspine, port, "4x", "QDR"))
    fab.links.append(Link(mspine, 10, _index(fab, "core01"), 30, "4x", "QDR"))
    fab.links.append(Link(mspine, 11, _index(fab, "core02"), 30, "4x", "QDR"))
    levels = _levels(fab)
    assert levels["mleaf"] == 1
    assert levels["mspine"] == 2
    assert levels["core01"] == levels["core02"] == 3
    assert {lv for name, lv in levels.items() if "leaf" in name} == {1}
    assert compile_fabric(fab).kind == "fat-tree"


def test_two_host_bearing_switches_cabled_together_keep_all_their_hosts() -> None:
    # A small lab: leaf01 (3 hosts) cabled to spine01, which carries 2 compute hosts of its own.
    # Neither switch is above the other (one cable each way): both stay leaves, no host is set apart.
    fab = fat_tree(1, 3, 1)
    _add_host(fab, "spine01", "lab1", 20)
    _add_host(fab, "spine01", "lab2", 21)
    compiled = compile_fabric(fab)
    assert _levels(fab) == {"leaf01": 1, "spine01": 1}
    assert classify_hosts(fab) == {}
    assert sorted(compiled.host_names) == ["gpu001", "gpu002", "gpu003", "lab1", "lab2"]
    assert compiled.kind == "graph"  # two leaves joined directly: not an up/down cable
    assert export_slurm_tree(compiled).splitlines()[1:] == [
        "SwitchName=leaf01 Nodes=gpu[001-003]",
        "SwitchName=spine01 Nodes=lab[1-2]",
        f"SwitchName={SYNTHETIC_ROOT} Switches=leaf01,spine01"]


def _flat(names_hosts: list[tuple[str, int]], cables: list[tuple[str, str]]) -> Fabric:
    fab = Fabric()
    for name, _n in names_hosts:
        fab.nodes.append(Node(id=f"S-{name}", type="switch", ports=36, desc=name, name=name))
    for port, (x, y) in enumerate(cables, start=1):
        fab.links.append(Link(_index(fab, x), port, _index(fab, y), port, "4x", "QDR"))
    for name, n in names_hosts:
        for k in range(n):
            _add_host(fab, name, f"{name}-h{k}", 20 + k)
    return fab


def test_a_chain_of_equal_lab_switches_is_no_hierarchy() -> None:
    # sw1 - sw2 - sw3, two compute hosts each: sw2 is cabled to more host-bearing switches, but
    # carries as many hosts as they do, so nothing says it is a spine carrying a few service hosts.
    fab = _flat([("sw1", 2), ("sw2", 2), ("sw3", 2)], [("sw1", "sw2"), ("sw2", "sw3")])
    assert _levels(fab) == {"sw1": 1, "sw2": 1, "sw3": 1}
    assert classify_hosts(fab) == {}
    assert len(compile_fabric(fab).host_names) == 6


def test_a_switch_above_three_leaves_with_one_host_of_its_own_is_a_spine() -> None:
    fab = _flat([("core", 1), ("sw1", 2), ("sw2", 2), ("sw3", 2)],
                [("core", "sw1"), ("core", "sw2"), ("core", "sw3")])
    assert _levels(fab) == {"core": 2, "sw1": 1, "sw2": 1, "sw3": 1}
    assert compile_fabric(fab).kind == "fat-tree"
    assert classify_hosts(fab) == {"core-h0": "cabled to spines only"}


def test_graph_says_why() -> None:
    from gpupool.fabric.export import summary

    fab = fat_tree(4, 2, 2)
    # A cable between the two spines: not an up/down (Clos) cable.
    fab.links.append(Link(_index(fab, "spine01"), 30, _index(fab, "spine02"), 30, "4x", "QDR"))
    compiled = compile_fabric(fab)
    assert compiled.kind == "graph"
    doc = summary(fab, compiled)
    assert doc["kind_reason"] == ("1 switch cables do not join adjacent levels "
                                  "(e.g. spine01 at level 2 -- spine02 at level 2)")


def test_the_ufm_lab_keeps_every_host_on_both_of_its_switches() -> None:
    # ufm-lab-small-hdr-fdr.out, read by hand: r-ufm-sw95 (MQM8700) carries r-dcs96 HCA-1/2, and
    # r-ufm-sw226 (SX6036) carries r-dcs96 HCA-3/4 and r-dmz-ufm128/131/134/137 (2 HCAs each); one
    # cable joins the two switches. Both carry hosts, neither is above the other: 2 leaves, 5 hosts.
    from gpupool.fabric.export import summary
    from gpupool.fabric.ibnetdiscover import parse_ibnetdiscover
    from tests.support.helpers import FIXTURES

    path = FIXTURES / "ibnetdiscover" / "ufm-lab-small-hdr-fdr.out"
    fab = parse_ibnetdiscover(path.read_text(), str(path))
    compiled = compile_fabric(fab)
    assert _levels(fab) == {"r-ufm-sw95": 1, "r-ufm-sw226": 1}
    assert compiled.host_names == ["r-dcs96", "r-dmz-ufm128", "r-dmz-ufm131", "r-dmz-ufm134", "r-dmz-ufm137"]
    assert summary(fab, compiled)["host_classes"] == {"compute": 5, "service": 0}
