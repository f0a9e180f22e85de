"""The model of Slurm 22.05's own choice (topology/tree and TopologyParam=dragonfly)."""

from __future__ import annotations

from gpupool.fabric.compiled import compile_fabric
from gpupool.fabric.generate import dragonfly, fat_tree
from gpupool.placement.cost import cost_of
from gpupool.placement.model import FreeState, Request
from gpupool.placement.slurm_reference import (
    slurm_dragonfly_reference,
    slurm_reference,
    slurm_tree_reference,
)

TREE = compile_fabric(fat_tree(3, 4, 2))  # leaf1 gpu001-004, leaf2 gpu005-008, leaf3 gpu009-012


def test_tree_starts_on_the_tightest_leaf_like_slurm() -> None:
    # With --gpus alone Slurm needs one node, so every leaf "fits" and the one with fewest nodes wins
    # (all nodes here can give 8 GPUs, one tier): leaf1 has 1 node, leaf2 2, leaf3 3.
    state = FreeState.from_dict(TREE, {"gpu001": 8, "gpu005": 8, "gpu006": 8, "gpu009": 8, "gpu010": 8,
                                       "gpu011": 8})
    assert slurm_tree_reference(TREE, state, Request(gpus=8)) == {"gpu001": 8}
    assert slurm_tree_reference(TREE, state, Request(gpus=12)) == {"gpu001": 8, "gpu005": 4}


def test_tree_gpus_n_takes_the_nodes_that_give_the_most_first() -> None:
    """sbatch --gpus=N (measured on 22.05, docs/contract.md): nodes are tiered by min(free, N), most first."""
    # N=8: gpu001 can give 2, gpu005-007 8: the 8-tier holds the job, so gpu001's tight leaf is not used.
    state = FreeState.from_dict(TREE, {"gpu001": 2, "gpu005": 8, "gpu006": 8, "gpu007": 8})
    allocation = slurm_tree_reference(TREE, state, Request(gpus=8))
    assert allocation == {"gpu005": 8}
    assert cost_of(TREE, allocation).pair_hops_sum == 0
    # N=4: gpu001 (4 free) and gpu005/006 (8) all give 4: one tier, and leaf1 (1 node) is the tightest.
    # N=5: gpu001 gives 4, the others 5: the 5-tier holds it, on leaf2.
    state = FreeState.from_dict(TREE, {"gpu001": 4, "gpu005": 8, "gpu006": 8})
    assert slurm_tree_reference(TREE, state, Request(gpus=4)) == {"gpu001": 4}
    assert slurm_tree_reference(TREE, state, Request(gpus=5)) == {"gpu005": 5}
    # N=20: the 8-tier (gpu002, gpu009: 16) is short, so it is taken whole and the 7-tier (gpu005) adds 4;
    # gpu001 (6) and gpu010 (3) are never considered.
    state = FreeState.from_dict(TREE, {"gpu001": 6, "gpu002": 8, "gpu005": 7, "gpu009": 8, "gpu010": 3})
    assert slurm_tree_reference(TREE, state, Request(gpus=20)) == {"gpu002": 8, "gpu005": 4, "gpu009": 8}


def test_tree_next_leaf_is_the_closest_then_tightest() -> None:
    compiled = compile_fabric(fat_tree(2, 2, 1, pods=2, cores=1))  # pod1: gpu001-004, pod2: gpu005-008
    state = FreeState.from_dict(compiled, {"gpu001": 1, "gpu003": 1, "gpu004": 1, "gpu005": 1})
    # First leaf: tightest (1 node): leaf1 (gpu001); then the closest: leaf2 in the same pod.
    assert slurm_tree_reference(compiled, state, Request(gpus=3)) == {"gpu001": 1, "gpu003": 1, "gpu004": 1}


def test_tree_with_gpus_per_node_counts_nodes() -> None:
    state = FreeState.from_dict(TREE, {"gpu001": 4, "gpu005": 4, "gpu006": 4, "gpu007": 2})
    allocation = slurm_tree_reference(TREE, state, Request(nodes=2, gpus_per_node=4))
    assert allocation == {"gpu005": 4, "gpu006": 4}


def test_tree_returns_none_when_slurm_could_not_start_the_job() -> None:
    state = FreeState.from_dict(TREE, {"gpu001": 2})
    assert slurm_tree_reference(TREE, state, Request(gpus=3)) is None


def test_dragonfly_uses_one_leaf_when_it_suffices_else_round_robin() -> None:
    compiled = compile_fabric(dragonfly(2, 2, 2, 1))  # routers: gpu001-002, 003-004, 005-006, 007-008
    state = FreeState.from_arrays([0, 1, 4, 4, 1, 0, 1, 0])
    # The router with the most available nodes (gpu003-004) holds 8 GPUs: Slurm stays there.
    assert slurm_dragonfly_reference(compiled, state, Request(gpus=8)) == {"gpu003": 4, "gpu004": 4}
    # 9 GPUs do not fit it: one node per router per pass, in router order.
    assert slurm_dragonfly_reference(compiled, state, Request(gpus=9)) == {
        "gpu002": 1, "gpu003": 4, "gpu004": 2, "gpu005": 1, "gpu007": 1}
    # Ties on node count go to the first router (2 GPUs only), so Slurm spreads round-robin.
    tied = FreeState.from_arrays([1, 1, 4, 4, 1, 0, 1, 0])
    assert len(slurm_dragonfly_reference(compiled, tied, Request(gpus=8)) or {}) > 2
    assert slurm_reference(compiled, state, Request(gpus=8))[0] == "slurm-dragonfly"
