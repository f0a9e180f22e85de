"""Node weights: Slurm's weight tiers in the tree emulation, the leaf-fill plan and its export, slurm-weights.

Expected allocations are worked out by hand from Slurm's rules (eval_nodes_tree.c, _eval_nodes_topo):
weight tiers are added lowest first until they hold the request; the lower tiers' nodes are all
taken, as required nodes; the last tier's nodes on the leaves already used come next; then further
leaves, closest first (distance summed over the switches in use), ties to the tightest fit.
"""

from __future__ import annotations

import numpy as np
import pytest

from gpupool.errors import UsageError
from gpupool.fabric.compiled import compile_fabric
from gpupool.fabric.export import export
from gpupool.fabric.generate import fat_tree
from gpupool.fabric.weights import plan_weights
from gpupool.placement.model import FreeState, Request
from gpupool.placement.slurm_reference import slurm_tree_reference
from gpupool.simulate.scheduler import SimConfig, Simulator
from gpupool.simulate.speed import SpeedModel
from gpupool.simulate.workload import Job

TREE = compile_fabric(fat_tree(3, 4, 2))  # leaf01 gpu001-004, leaf02 gpu005-008, leaf03 gpu009-012
LEAF_FILL = np.asarray([1] * 4 + [2] * 4 + [3] * 4)  # the plan, written out by hand


def test_a_lower_weight_leaf_wins_over_the_tighter_one() -> None:
    # leaf01 has 2 available nodes, leaf02 1: unweighted Slurm takes the tightest fit, leaf02.
    state = FreeState.from_dict(TREE, {"gpu001": 8, "gpu002": 8, "gpu005": 8})
    assert slurm_tree_reference(TREE, state, Request(gpus=8)) == {"gpu005": 8}
    # Weighted, tier 1 (leaf01: 16 GPUs) holds the request, so only leaf01's nodes are considered.
    assert slurm_tree_reference(TREE, state, Request(gpus=8), LEAF_FILL) == {"gpu001": 8}


def test_lower_tiers_are_taken_whole_before_the_next_tier() -> None:
    state = FreeState.from_dict(TREE, {"gpu001": 2, "gpu005": 8, "gpu006": 8, "gpu007": 8, "gpu008": 8, "gpu009": 8})
    # Unweighted, the earlier model: leaf01 and leaf03 tie as tightest (1 node), leaf01 first (2 GPUs); then
    # leaf03 (1 node, tighter than leaf02 at the same distance): 8; then leaf02: 6.
    assert slurm_tree_reference(TREE, state, Request(gpus=16), gpus_tiers=False) == {
        "gpu001": 2, "gpu005": 6, "gpu009": 8}
    # Unweighted, --gpus=N as measured on 22.05: the nodes that can give 8 (gpu005-009) hold 16, so gpu001 is
    # not considered; leaf03 (1 such node) is the tightest, then leaf02.
    assert slurm_tree_reference(TREE, state, Request(gpus=16)) == {"gpu005": 8, "gpu009": 8}
    # Weighted: tier 1 (2 GPUs) cannot hold 16, so gpu001 is taken as required and tier 2 added, which
    # holds the rest: leaf03 (tier 3) is never considered.
    assert slurm_tree_reference(TREE, state, Request(gpus=16), LEAF_FILL) == {"gpu001": 2, "gpu005": 8, "gpu006": 6}


def test_the_last_tier_first_fills_the_leaves_already_in_use() -> None:
    free = {f"gpu{i:03d}": 8 for i in range(1, 9)}
    state = FreeState.from_dict(TREE, free)
    request = Request(nodes=3, gpus_per_node=8)
    # Unweighted: leaf01 and leaf02 both fit 3 nodes with 4 each: the first, leaf01.
    assert slurm_tree_reference(TREE, state, request) == {"gpu001": 8, "gpu002": 8, "gpu003": 8}
    # gpu005 alone in the lowest tier: taken as required, then its own leaf's tier-5 nodes in host order.
    weights = np.full(12, 5)
    weights[4] = 1
    assert slurm_tree_reference(TREE, state, request, weights) == {"gpu005": 8, "gpu006": 8, "gpu007": 8}


def test_equal_weights_change_nothing() -> None:
    compiled = compile_fabric(fat_tree(2, 3, 1, pods=2, cores=1))
    rng = np.random.default_rng(7)
    for _ in range(200):
        free = rng.integers(0, 9, compiled.n_hosts) * (rng.random(compiled.n_hosts) < 0.7)
        state = FreeState.from_arrays(free.tolist())
        for request in (Request(gpus=int(rng.integers(1, 30))), Request(nodes=int(rng.integers(1, 6)), gpus_per_node=8)):
            try:
                expected = slurm_tree_reference(compiled, state, request)
            except Exception as exc:  # infeasible shapes raise the same way with weights
                with pytest.raises(type(exc)):
                    slurm_tree_reference(compiled, state, request, np.full(compiled.n_hosts, 3))
                continue
            assert slurm_tree_reference(compiled, state, request, np.full(compiled.n_hosts, 3)) == expected


def test_weight_plans_in_tree_order() -> None:
    assert plan_weights(TREE, "leaf-fill") == {f"gpu{i:03d}": (i - 1) // 4 + 1 for i in range(1, 13)}
    assert plan_weights(TREE) == {f"gpu{i:03d}": 1 if i <= 4 else 2 for i in range(1, 13)}
    # 3 levels: pod1-leaf01 gpu001-002, pod1-leaf02 gpu003-004, pod2-leaf01 gpu005-006, pod2-leaf02 gpu007-008.
    pods = compile_fabric(fat_tree(2, 2, 1, pods=2, cores=1))
    assert plan_weights(pods, "leaf-fill") == {f"gpu{i:03d}": (i - 1) // 2 + 1 for i in range(1, 9)}
    assert plan_weights(pods, "pack-leaf") == {f"gpu{i:03d}": 1 if i <= 2 else 2 for i in range(1, 9)}
    with pytest.raises(UsageError):
        plan_weights(pods, "no-such-plan")


def test_slurm_weights_export_text() -> None:
    text = export(fat_tree(3, 4, 2), "slurm-weights")
    body = [line for line in text.splitlines() if not line.startswith("#")]
    assert body == ["NodeName=gpu[001-004] Weight=1", "NodeName=gpu[005-012] Weight=2"]
    assert text.startswith("# ")


def _job(job_id: str, submit: float, duration: float, nodes: int) -> Job:
    return Job(job_id=job_id, submit=submit, duration=duration, time_limit=duration, gpus=nodes * 8, nodes=nodes)


@pytest.mark.parametrize(("policy", "b_hosts"), [("slurm-tree", ["gpu005", "gpu006", "gpu007"]),
                                                 ("slurm-weights", ["gpu003", "gpu004", "gpu005"])])
def test_slurm_weights_runs_in_the_simulator(policy: str, b_hosts: list[str]) -> None:
    # pack-leaf: leaf01 Weight=1, leaf02-03 Weight=2. A (2 nodes) lands on leaf01 under both. B (3 nodes)
    # does not fit leaf01's 2 free nodes: slurm-tree takes the tightest leaf that fits (leaf02, first of
    # two ties); slurm-weights must take leaf01's two free nodes (tier 1) first, then one of leaf02 (tier 2,
    # tied with leaf03 on distance and count: the first).
    sim = Simulator(TREE, policy, SimConfig(gpus_per_host=8, record_starts=True), SpeedModel())
    sim.run([_job("a", 0, 100, 2), _job("b", 1, 100, 3)])
    starts = {job_id: sorted(hosts) for job_id, _start, hosts in sim.starts}
    assert starts == {"a": ["gpu001", "gpu002"], "b": b_hosts}


def test_cli_exports_the_weights(run_cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    fab = str(tmp_path / "f.json")
    rc, _out, _ = run_cli("fabric", "generate", "fat-tree", "--leaves", "4", "--hosts-per-leaf", "2", "--spines", "2", "-o", fab)
    assert rc == 0
    rc, out, _ = run_cli("fabric", "export", "--fabric", fab, "--format", "slurm-weights")
    assert rc == 0
    assert [line for line in out.splitlines() if not line.startswith("#")] == [
        "NodeName=gpu[001-002] Weight=1", "NodeName=gpu[003-008] Weight=2"]
