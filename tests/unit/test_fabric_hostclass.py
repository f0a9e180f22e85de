"""Compute vs service hosts: by name globs, by an explicit host list, and by structure."""

from __future__ import annotations

from gpupool.fabric.compiled import compile_fabric
from gpupool.fabric.export import export_slurm_tree
from gpupool.fabric.generate import fat_tree
from gpupool.fabric.model import ROLE_HCA, ROLE_SERVICE, Fabric, Link, Node
from gpupool.fabric.structure import classify_hosts


def _index(fab: Fabric, name: str) -> int:
    return next(i for i, n in enumerate(fab.nodes) if n.name == name)


def _add_host(fab: Fabric, switch: str, host: str, port: int, label: str = "mlx5_0") -> None:
    fab.nodes.append(Node(id=f"H-{host}-{label}", type="ca", ports=1, desc=f"{host} {label}", role=ROLE_HCA,
                          host=host, name=f"{host}/{label}"))
    fab.links.append(Link(_index(fab, switch), port, len(fab.nodes) - 1, 1, "4x", "QDR"))


def _service(fab: Fabric) -> set[str]:
    return {n.host for n in fab.nodes if n.role == ROLE_SERVICE and n.host}


def test_a_single_hca_host_on_a_spine_is_a_service_host() -> None:
    fab = fat_tree(3, 2, 2)
    _add_host(fab, "spine01", "ufm1", 30)
    reasons = classify_hosts(fab)
    assert reasons == {"ufm1": "cabled to spines only"}
    assert _service(fab) == {"ufm1"}
    assert "ufm1" not in export_slurm_tree(compile_fabric(fab))


def test_two_hca_appliances_on_their_own_leaf_of_a_rail_fabric_are_service_hosts() -> None:
    fab = fat_tree(2, 3, 2, rails=4)  # 6 DGX-like hosts with 4 HCAs on 4 rail leaves
    storage_leaf = len(fab.nodes)
    fab.nodes.append(Node(id="S-stor", type="switch", ports=40, desc="stor-leaf", name="stor-leaf"))
    fab.links.append(Link(storage_leaf, 39, _index(fab, "spine01"), 39, "4x", "QDR"))
    fab.links.append(Link(storage_leaf, 40, _index(fab, "spine02"), 39, "4x", "QDR"))
    for k in (1, 2):
        _add_host(fab, "stor-leaf", f"nas{k}", 2 * k, "mlx5_0")
        _add_host(fab, "stor-leaf", f"nas{k}", 2 * k + 1, "mlx5_1")
    classify_hosts(fab)
    assert _service(fab) == {"nas1", "nas2"}


def test_a_dgx_that_lost_rails_stays_a_compute_host() -> None:
    fab = fat_tree(2, 3, 2, rails=4)
    victim = [i for i, n in enumerate(fab.nodes) if n.host == "gpu001"][1:]  # keep one HCA only
    assert len(victim) == 3
    fab.links = [lk for lk in fab.links if lk.a not in victim and lk.b not in victim]
    for i in victim:
        fab.nodes[i].role, fab.nodes[i].host = "unnamed", None
    classify_hosts(fab)
    assert _service(fab) == set()


def test_name_globs_set_hosts_apart() -> None:
    fab = fat_tree(2, 2, 1)
    classify_hosts(fab, ["gpu001", "*4"])
    assert _service(fab) == {"gpu001", "gpu004"}


def test_a_single_rail_fabric_keeps_its_single_hca_hosts_compute() -> None:
    fab = fat_tree(4, 4, 2)
    assert classify_hosts(fab) == {}


def test_an_explicit_host_list_wins_over_the_structural_class() -> None:
    from gpupool.fabric.model import restrict_hosts

    fab = fat_tree(3, 2, 2)
    _add_host(fab, "spine01", "ufm1", 30)
    classify_hosts(fab)
    assert _service(fab) == {"ufm1"}
    restrict_hosts(fab, ["gpu001", "ufm1"])
    assert fab.host_names() == ["gpu001", "ufm1"]
