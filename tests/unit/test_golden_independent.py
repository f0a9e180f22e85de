"""The golden topology.conf files (tests/golden/, written by the code under test with
GPUPOOL_UPDATE_GOLDEN=1) checked by an independent reader (issue 29): each generated fabric's
golden file is read back without gpupool and compared with the generator's own plain data
(tests/oracles.graph_of): every host exactly once, under a switch of its logical leaf (its rail
switches joined through multi-rail hosts), and the Switches= lines form one tree over those leaves.
The DGX capture's golden file is read the same way and compared with the raw capture
(tests/oracles.read_ibnetdiscover); Selene's has its own reader (test_fabric_selene.py)."""

from __future__ import annotations

import pytest

from gpupool.fabric.generate import dragonfly, fat_tree
from tests.support import oracles
from tests.support.helpers import GOLDEN
from tests.support.oracles import expand_names, host_to_leaf, logical_leaf, read_tree_conf

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


def test_dgx_golden_file_matches_the_raw_capture() -> None:
    import re

    from tests.support.helpers import DGX_FIXTURE

    capture = DGX_FIXTURE.read_text()
    graph = oracles.read_ibnetdiscover(capture)
    # A switch's name is its node description's `MF0;<name>:<model>/U1` part (the capture's own).
    name_of = {sid: re.sub(r"^MF0;([^:]+):.*$", r"\1", desc) for sid, desc in
               re.findall(r'^Switch\s+[0-9]+\s+"(S-[^"]+)"\s*#\s*"([^"]*)"', capture, re.MULTILINE)}
    mapping = host_to_leaf(read_tree_conf((GOLDEN / "dgx-superpod.topology.conf").read_text()))
    assert sorted(mapping) == graph.compute().hosts and len(mapping) == 121
    for host, leaf in mapping.items():
        assert leaf in {name_of[s] for s in logical_leaf(graph, host)}, (host, leaf)
