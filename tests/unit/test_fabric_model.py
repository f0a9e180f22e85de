"""Generators, compiled arrays, classification, exports and file round trips."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpupool.errors import InputError, UsageError
from gpupool.fabric.compiled import compile_fabric, load_compiled
from gpupool.fabric.export import export, export_ibsim, summary
from gpupool.fabric.generate import dragonfly, fat_tree
from gpupool.fabric.hop_kernels import hop_matrix
from gpupool.fabric.ibnetdiscover import parse_ibnetdiscover
from gpupool.fabric.model import fabric_from_dict, fabric_to_dict, load_fabric, save_fabric
from tests.support.helpers import DGX_FIXTURE, assert_golden


def _brute_distance(fab, a: str, b: str) -> int:  # type: ignore[no-untyped-def]
    """BFS on the CONTRACT graph: switches and hosts as vertices (multi-rail host = one vertex)."""
    vertex = {}
    for i, n in enumerate(fab.nodes):
        vertex[i] = ("host", n.host) if n.role == "hca" else ("node", i)
    adj: dict[tuple, set] = {}
    for lk in fab.links:
        x, y = vertex[lk.a], vertex[lk.b]
        adj.setdefault(x, set()).add(y)
        adj.setdefault(y, set()).add(x)
    start, goal = ("host", a), ("host", b)
    seen = {start: 0}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for u in adj.get(v, ()):
                if u not in seen:
                    # Hosts other than the endpoints are vertices too (CONTRACT); aggregation nodes are dead ends.
                    seen[u] = seen[v] + 1
                    nxt.append(u)
        frontier = nxt
    return seen.get(goal, 32767)


@pytest.mark.parametrize(
    ("fab", "kind", "ultrametric"),
    [
        (fat_tree(4, 3, 2), "fat-tree", True),
        (fat_tree(2, 2, 2, pods=3, cores=2), "fat-tree", True),
        (fat_tree(3, 4, 2, rails=4), "fat-tree", True),
        (dragonfly(5, 3, 2, 2), "dragonfly", False),
    ],
)
def test_host_distances_match_brute_force(fab, kind: str, ultrametric: bool) -> None:  # type: ignore[no-untyped-def]
    c = compile_fabric(fab)
    assert c.kind == kind
    assert c.ultrametric is ultrametric
    names = c.host_names
    rng = np.random.default_rng(1)
    for _ in range(60):
        a, b = rng.integers(0, len(names), 2)
        assert c.host_distance(int(a), int(b)) == (0 if a == b else _brute_distance(fab, names[a], names[b]))


def test_fat_tree_levels_and_counts() -> None:
    c = compile_fabric(fat_tree(4, 8, 4, pods=2, cores=4))
    assert c.n_hosts == 64
    assert sorted(np.unique(c.switch_level, return_counts=True)[1].tolist()) == [4, 8, 8]
    assert c.host_distance(0, 1) == 2  # same leaf
    assert c.host_distance(0, 8) == 4  # same pod
    assert c.host_distance(0, 63) == 6  # across pods


def test_dragonfly_groups_have_global_links_between_every_pair() -> None:
    fab = dragonfly(9, 4, 2, 2)  # 4 routers x 2 global links = 8 = G - 1: one link per group pair
    c = compile_fabric(fab)
    assert c.n_groups() == 9
    pairs = set()
    for lk in fab.links:
        ga, gb = fab.nodes[lk.a].group, fab.nodes[lk.b].group
        if ga >= 0 and gb >= 0 and ga != gb:
            pairs.add((min(ga, gb), max(ga, gb)))
    assert len(pairs) == 36
    assert summary(fab, c)["group_count"] == 9


def test_dragonfly_classified_without_generator_hints() -> None:
    fab = dragonfly(5, 4, 2, 1)
    for n in fab.nodes:
        n.group = -1
    fab.meta = {}
    c = compile_fabric(fab)
    assert c.kind == "dragonfly" and c.n_groups() == 5


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 40), st.floats(0.05, 0.5), st.integers(0, 2**31))
def test_hop_matrix_matches_scipy(n: int, density: float, seed: int) -> None:
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import shortest_path

    rng = np.random.default_rng(seed)
    upper = np.triu(rng.random((n, n)) < density, 1)
    a, b = np.nonzero(upper)
    from gpupool.fabric.compiled import _csr

    ptr, idx = _csr(n, a.astype(np.int32), b.astype(np.int32))
    ours = hop_matrix(ptr, idx, n, n).astype(np.float64)
    ref = shortest_path(csr_matrix((np.ones(a.size), (a, b)), shape=(n, n)), unweighted=True, directed=False)
    ref[np.isinf(ref)] = 32767
    assert np.array_equal(ours, ref)


def test_slurm_tree_export_golden() -> None:
    assert_golden("fat-tree-8x8x4.topology.conf", export(fat_tree(8, 8, 4), "slurm-tree"))
    assert_golden("fat-tree-3level.topology.conf", export(fat_tree(2, 4, 2, pods=2, cores=2), "slurm-tree"))
    assert_golden("dragonfly-3x2x2.topology.conf", export(dragonfly(3, 2, 2, 1), "slurm-tree"))
    assert_golden("fat-tree-rails.topology.conf", export(fat_tree(2, 2, 2, rails=2), "slurm-tree"))


def test_rail_optimised_export_puts_each_node_under_one_leaf() -> None:
    text = export(fat_tree(4, 4, 2, rails=8), "slurm-tree")
    from ClusterShell.NodeSet import NodeSet

    seen: dict[str, int] = {}
    for line in text.splitlines():
        if "Nodes=" in line:
            for node in NodeSet(line.split("Nodes=")[1]):
                seen[node] = seen.get(node, 0) + 1
    assert len(seen) == 16 and set(seen.values()) == {1}
    assert sum(1 for line in text.splitlines() if "Switches=" in line) == 1  # one top switch


def test_dgx_fixture_export_each_host_under_one_leaf() -> None:
    fab = parse_ibnetdiscover(DGX_FIXTURE.read_text(), "dgx")
    c = compile_fabric(fab)
    assert summary(fab, c)["levels"] == {"1": 31, "2": 9}
    text = export(fab, "slurm-tree", compiled=c)
    assert_golden("dgx-superpod.topology.conf", text)
    from ClusterShell.NodeSet import NodeSet

    nodes = [n for line in text.splitlines() if "Nodes=" in line for n in NodeSet(line.split("Nodes=")[1])]
    assert len(nodes) == len(set(nodes)) == c.n_hosts


def test_block_and_yaml_exports() -> None:
    fab = fat_tree(4, 4, 2)
    block = export(fab, "slurm-block")
    assert "BlockName=leaf01 Nodes=gpu[001-004]" in block and "BlockSizes=4,8,16" in block
    yaml_text = export(fab, "slurm-yaml")
    import yaml

    doc = yaml.safe_load(yaml_text)
    assert doc[0]["cluster_default"] is True
    switches = {s["switch"]: s for s in doc[0]["tree"]["switches"]}
    assert switches["spine01"]["children"] == "leaf[01-04]"
    assert doc[1]["block"]["block_sizes"] == [4, 8, 16]


def test_ibsim_export_rejects_ndr_unless_clamped() -> None:
    fab = fat_tree(2, 2, 1, speed="NDR")
    with pytest.raises(UsageError, match="does not simulate NDR"):
        export_ibsim(fab)
    assert "lid 0 4xQDR" in export_ibsim(fab, clamp_speed=True) and "NDR" not in export_ibsim(fab, clamp_speed=True)


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 4), st.integers(1, 4), st.integers(1, 3), st.integers(1, 3))
def test_fabric_file_round_trip(leaves: int, hosts: int, spines: int, rails: int) -> None:
    fab = fat_tree(leaves, hosts, spines, rails=rails)
    again = fabric_from_dict(json.loads(json.dumps(fabric_to_dict(fab))))
    assert export(again, "slurm-tree") == export(fab, "slurm-tree")
    assert fabric_to_dict(again) == fabric_to_dict(fab)


def test_compiled_cache_is_invalidated_by_content(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = str(tmp_path / "f.json")
    save_fabric(fat_tree(2, 2, 1), path)
    assert load_compiled(path).n_hosts == 4
    save_fabric(fat_tree(3, 2, 1), path)
    assert load_compiled(path).n_hosts == 6  # stale cache is never used
    assert load_compiled(path).n_hosts == 6


def test_bad_fabric_files(tmp_path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="not a JSON fabric file"):
        load_fabric(str(bad))
    bad.write_text('{"nodes": []}')
    with pytest.raises(InputError, match="no top-level \"version\""):
        load_fabric(str(bad))
    with pytest.raises(InputError, match="not found"):
        load_fabric(str(tmp_path / "missing.json"))


@pytest.mark.parametrize("args", [(0, 1, 1), (1, 0, 1), (1, 1, 0)])
def test_generator_rejects_nonpositive(args: tuple[int, int, int]) -> None:
    with pytest.raises(UsageError):
        fat_tree(*args)
