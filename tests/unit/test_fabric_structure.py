"""Switch levels from structure on synthetic fabrics, each with one real-world trait; expectations
written by hand from how the fabric is cabled."""

from __future__ import annotations

from gpupool.fabric.compiled import SYNTHETIC_ROOT, compile_fabric
from gpupool.fabric.export import export_slurm_tree
from gpupool.fabric.generate import fat_tree
from gpupool.fabric.model import ROLE_HCA, Fabric, Link, Node


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


def test_two_leaves_cabled_together_is_not_invented_a_root() -> None:
    fab = fat_tree(1, 3, 1)  # leaf01 - spine01: give the spine hosts of its own, as in a small lab
    _add_host(fab, "spine01", "lab1", 20)
    _add_host(fab, "spine01", "lab2", 21)
    compiled = compile_fabric(fab)
    assert compiled.kind == "fat-tree"
    text = export_slurm_tree(compiled)
    assert "top" not in text.split()


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
