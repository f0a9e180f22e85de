"""The reality check's comparison (gpupool.simulate.reality), on a hand-made export whose figures are worked out by hand."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from gpupool.fabric.compiled import compile_fabric
from gpupool.fabric.generate import fat_tree
from gpupool.simulate.reality import compare_with_reality

FABRIC = compile_fabric(fat_tree(2, 2, 1))  # gpu001, gpu002 on one leaf; gpu003, gpu004 on the other
HEADER = "JobIDRaw|Partition|Submit|Start|ElapsedRaw|TimelimitRaw|NNodes|AllocTRES|ReqTRES|State"
# 11 fills all four hosts for 10 s; 12 and 13 (two hosts each) wait for it. The replay (slurm-tree) starts
# 11 at 0 and both others at 10, each on one whole leaf (two free hosts of one leaf is the tightest fit).
EXPORT = [
    "11|gpu|2026-11-30T00:00:00|2026-11-30T00:00:00|10|1|4|gres/gpu=32,node=4|gres/gpu=32,node=4|COMPLETED",
    "12|gpu|2026-11-30T00:00:00|2026-11-30T00:00:11|20|1|2|gres/gpu=16,node=2|gres/gpu=16,node=2|COMPLETED",
    "13|gpu|2026-11-30T00:00:01|2026-11-30T00:00:11|5|1|2|gres/gpu=16,node=2|gres/gpu=16,node=2|COMPLETED",
]
T0 = datetime(2026, 11, 30, tzinfo=UTC).timestamp()


def test_compare_with_reality_counts_nodes_leaves_and_start_order(tmp_path: Path) -> None:
    leaf = FABRIC.host_tree_leaf.tolist()
    index = FABRIC.host_index()
    assert leaf[index["gpu001"]] == leaf[index["gpu002"]] != leaf[index["gpu003"]] == leaf[index["gpu004"]]
    path = tmp_path / "sacct.txt"
    path.write_text("\n".join([HEADER, *EXPORT]) + "\n")
    # In "reality" 12 and 13 each spanned both leaves: the replay's one-leaf choices differ in nodes and leaves.
    real_nodes = {"11": ["gpu001", "gpu002", "gpu003", "gpu004"], "12": ["gpu001", "gpu003"], "13": ["gpu002", "gpu004"]}
    real_start = {"11": T0, "12": T0 + 11, "13": T0 + 11}
    doc = compare_with_reality(str(path), FABRIC, real_nodes, real_start, "slurm-tree", {"12": "pinned"})
    assert doc["policy"] == "slurm-tree" and doc["backfill"] == "slurm" and doc["jobs"] == 3
    assert (doc["same_nodes"], doc["same_nodes_share"]) == (1, round(1 / 3, 4))  # job 11 only
    assert (doc["same_leaf_count"], doc["same_leaf_count_share"]) == (1, round(1 / 3, 4))
    assert (doc["multi_node_jobs"], doc["multi_node_same_nodes"]) == (3, 1)
    # The first real end is 11's at T0 + 10: only 11 started before it.
    assert (doc["started_before_first_end"], doc["started_before_first_end_same_nodes"]) == (1, 1)
    # Pairs (11, 12) and (11, 13) started apart in reality and in the same order in the replay; (12, 13) tied.
    assert (doc["start_order_pairs"], doc["start_order_agree"], doc["start_order_share"]) == (2, 2, 1.0)
    assert doc["real_span_s"] == 11
    assert doc["jobs_that_waited_2s_or_more"] == 2  # 12 waited 11 s, 13 waited 10 s
    assert doc["same_nodes_by_submit_mode"] == {"pinned": {"jobs": 1, "same_nodes": 0, "same_leaf_count": 0}}


def test_a_replay_that_reverses_the_order_is_counted_as_disagreeing(tmp_path: Path) -> None:
    path = tmp_path / "sacct.txt"
    path.write_text("\n".join([HEADER, *EXPORT]) + "\n")
    # Reality started 12 before 11 (the replay cannot: 11 holds every host first).
    real_start = {"11": T0 + 30, "12": T0 + 11}
    real_nodes = {"11": ["gpu001", "gpu002", "gpu003", "gpu004"], "12": ["gpu001", "gpu002"]}
    doc = compare_with_reality(str(path), FABRIC, real_nodes, real_start, "slurm-tree", backfill="easy")
    assert doc["jobs"] == 2 and doc["backfill"] == "easy"
    assert (doc["start_order_pairs"], doc["start_order_agree"], doc["start_order_share"]) == (1, 0, 0.0)
    assert "same_nodes_by_submit_mode" not in doc
