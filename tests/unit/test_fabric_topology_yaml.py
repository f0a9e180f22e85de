"""topology.yaml checks (what slurmctld 25.05+ refuses) and which topology a partition uses."""

from __future__ import annotations

import pytest

from gpupool.cli.errors import exit_code_for
from gpupool.errors import InputError
from gpupool.fabric.export import export
from gpupool.fabric.generate import fat_tree
from gpupool.fabric.topology_yaml import topologies, topology_kind

GOOD = """\
- topology: tree1
  cluster_default: true
  tree:
    switches:
      - switch: top
        children: leaf[1-2]
      - switch: leaf1
        nodes: gpu[001-002]
      - switch: leaf2
        nodes: gpu[003-004]
- topology: blk
  block:
    block_sizes: [2, 4]
    blocks:
      - block: b1
        nodes: gpu[001-002]
      - block: b2
        nodes: gpu[003-004]
- topology: none
  flat: true
"""


def test_a_valid_file_names_every_topology_and_its_kind() -> None:
    assert topologies(GOOD) == {"tree1": "tree", "blk": "block", "none": "flat"}


@pytest.mark.parametrize(("text", "why"), [
    ("", "no topology"),
    ("# only a comment\n", "no topology"),
    ("---\n[]\n", "no topology"),
    (GOOD + "- topology: blk\n  flat: true\n", "'blk' defined twice"),
    (GOOD.replace("block: b2", "block: b1"), "block 'b1' defined twice"),
    (GOOD.replace("switch: leaf2", "switch: leaf1"), "switch 'leaf1' defined twice"),
    (GOOD.replace("nodes: gpu[003-004]\n- topology: none", "nodes: gpu[002-004]\n- topology: none"),
     "node gpu002 is in blocks 'b1' and 'b2'"),
    ("- topology: t\n  cluster_default: true\n", "no tree, block or flat"),
    ("- topology: t\n  block:\n    blocks: []\n", "lists no blocks"),
    (GOOD.replace("- topology: blk\n", "- topology: blk\n  cluster_default: true\n"), "more than one cluster_default"),
    ("- topology: t\n  block:\n    blocks:\n      - block: b\n        nodes: gpu[1-\n", "cannot read node list"),
])
def test_what_slurm_refuses_is_refused_with_exit_4(text: str, why: str) -> None:
    with pytest.raises(InputError) as info:
        topologies(text)
    assert why in info.value.message
    assert exit_code_for(info.value) == 4


def test_the_same_node_in_two_switches_of_a_tree_is_fine() -> None:
    # A tree lists hosts under leaves only once in practice, but Slurm does not refuse repeats there.
    assert topologies(GOOD.replace("nodes: gpu[003-004]", "nodes: gpu[002-004]", 1))["tree1"] == "tree"


def test_which_topology_a_partition_uses() -> None:
    assert topology_kind({"PartitionName": "p", "Topology": "blk"}, "", GOOD) == "block"
    assert topology_kind({"PartitionName": "p"}, "", GOOD) == "tree"  # the cluster default
    assert topology_kind({"PartitionName": "p", "Topology": "(null)"}, "", GOOD) == "tree"
    no_default = GOOD.replace("  cluster_default: true\n", "")
    assert topology_kind({"PartitionName": "p"}, "", no_default) == "tree"  # the first one
    with pytest.raises(InputError, match="Topology=nosuch is not in topology.yaml"):
        topology_kind({"PartitionName": "p", "Topology": "nosuch"}, "", GOOD)
    assert topology_kind({"PartitionName": "p"}, "topology/block") == "block"
    assert topology_kind({"PartitionName": "p"}, "topology/tree") == "tree"
    assert topology_kind({"PartitionName": "p"}, "topology/flat") == "flat"
    assert topology_kind({"PartitionName": "p"}, "") == "flat"


def test_gpupools_own_yaml_export_passes_the_check() -> None:
    text = export(fat_tree(4, 8, 2), "slurm-yaml")
    kinds = topologies(text)
    assert kinds["tree"] == "tree"
