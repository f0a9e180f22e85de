"""The golden topology.conf files (tests/golden/, written by the code under test with
GPUPOOL_UPDATE_GOLDEN=1) checked by an independent reader (issue 29): each generated fabric's
golden file is read back without gpupool and compared with the generator's own plain data
(tests/oracles.graph_of): every host exactly once, under a switch of its logical leaf (its rail
switches joined through multi-rail hosts), and the Switches= lines form one tree over those leaves.
The DGX capture's golden file is the same export as
test_fuzz_properties.test_real_captures_export_back_to_the_oracle_map[dgx-superpod-ndr.out] checks
against the raw capture (and test_fabric_model.py compares it with the golden file)."""

from __future__ import annotations

import pytest

from gpupool.fabric.generate import dragonfly, fat_tree
from tests import oracles
from tests.helpers import GOLDEN
from tests.unit.test_fuzz_properties import expand_names, host_to_leaf, logical_leaf, read_tree_conf

GENERATED = {
    "fat-tree-8x8x4.topology.conf": (fat_tree(8, 8, 4), 64),
    "fat-tree-3level.topology.conf": (fat_tree(2, 4, 2, pods=2, cores=2), 16),
    "dragonfly-3x2x2.topology.conf": (dragonfly(3, 2, 2, 1), 12),
    "fat-tree-rails.topology.conf": (fat_tree(2, 2, 2, rails=2), 4),
}


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_golden_file_matches_the_generators_fabric(name: str) -> None:
    fabric, hosts = GENERATED[name]
    text = (GOLDEN / name).read_text()
    leaves = read_tree_conf(text)
    mapping = host_to_leaf(leaves)  # asserts every host at most once
    graph = oracles.graph_of(fabric)
    assert sorted(mapping) == graph.hosts and len(mapping) == hosts
    switch_name = {str(i): node.name for i, node in enumerate(fabric.nodes) if node.type == "switch"}
    for host, leaf in mapping.items():
        assert leaf in {switch_name[s] for s in logical_leaf(graph, host)}, (host, leaf)
    # Switches= lines: one tree whose leaves are exactly the Nodes= switches.
    parent: dict[str, str] = {}
    for line in text.splitlines():
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f and not line.startswith("#"))
        for child in expand_names(fields.get("Switches", "")):
            assert child not in parent, f"{child} has two parents"
            parent[child] = fields["SwitchName"]
    roots = {s for s in set(parent.values()) if s not in parent}
    assert len(roots) == 1 and set(leaves) <= set(parent)
    for leaf in leaves:
        seen = {leaf}
        while leaf in parent:
            leaf = parent[leaf]
            assert leaf not in seen
            seen.add(leaf)
        assert leaf in roots
