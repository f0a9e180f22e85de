"""topology/block: blocks and BlockSizes from the fabric, Slurm's block rules, gpupool's fewest-blocks
placement and the emulation of Slurm's own block choice.

Expected values are derived by hand from the generated fabrics (generator naming: hosts gpu001..,
leaves leafNN / podP-leafNN) and from Slurm's rules as eval_nodes_block.c states them, or by a brute
force over block subsets written here, never from gpupool's output. At the end: fabric_blocks on
hand-built logical trees (every order, index and boundary chosen on purpose) and Slurm's own block
files read back, each case worked out in its comment.
"""

from __future__ import annotations

import itertools
import json
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from gpupool.app.submit import SubmitRequest, submit_planned
from gpupool.app.topology import resolve_topology
from gpupool.cli.errors import message_for
from gpupool.cli.main import main
from gpupool.errors import InfeasibleError, InputError, UsageError
from gpupool.fabric.blocks import (
    BlockLayout,
    blocks_from_topology_conf,
    blocks_from_topology_yaml,
    fabric_blocks,
)
from gpupool.fabric.compiled import compile_fabric
from gpupool.fabric.generate import fat_tree
from gpupool.fabric.model import save_fabric
from gpupool.placement.block import block_rule, block_usage, place_block, slurm_block_reference
from gpupool.placement.engine import place
from gpupool.placement.model import FreeState, Request
from gpupool.slurm.fake import FakeSlurm
from gpupool.slurm.models import parse_plan_comment


@pytest.fixture(scope="module")
def four_blocks():  # type: ignore[no-untyped-def]
    return compile_fabric(fat_tree(4, 8, 2))  # leaf01..leaf04, 8 hosts each: gpu001-008, gpu009-016, ...


@pytest.fixture(scope="module")
def eight_blocks():  # type: ignore[no-untyped-def]
    return compile_fabric(fat_tree(8, 8, 4))


def free_of(compiled, free: dict[str, int]) -> FreeState:  # type: ignore[no-untyped-def]
    return FreeState.from_dict(compiled, free)


def hosts(first: int, last: int) -> list[str]:
    return [f"gpu{i:03d}" for i in range(first, last + 1)]


def test_blocks_follow_leaves_and_block_sizes_double_up_to_the_cluster(four_blocks) -> None:  # type: ignore[no-untyped-def]
    layout = fabric_blocks(four_blocks)
    assert [name for name, _ in layout.blocks] == ["leaf01", "leaf02", "leaf03", "leaf04"]
    assert list(layout.blocks[1][1]) == hosts(9, 16)
    assert layout.base_size == 8 and layout.sizes == [8, 16, 32]


def test_block_sizes_skip_a_level_that_would_straddle_scalable_units() -> None:
    # 3 pods x 3 leaves x 2 hosts: blocks pod1-leaf01..03, pod2-..., pod3-...; pairs of blocks
    # (level 1) would join pod1-leaf03 with pod2-leaf01 although a pod holds 3 blocks: no size 4.
    # Groups of 4 blocks cannot fit in a 3-block pod, so 8 nodes is offered, and 16 (<= 18 nodes).
    layout = fabric_blocks(compile_fabric(fat_tree(3, 2, 2, pods=3, cores=2)))
    assert [name for name, _ in layout.blocks][:4] == ["pod1-leaf01", "pod1-leaf02", "pod1-leaf03", "pod2-leaf01"]
    assert layout.sizes == [2, 8, 16]


def test_block_rule_follows_slurms_levels() -> None:
    layout = BlockLayout(blocks=tuple((f"b{i}", tuple(hosts(8 * i + 1, 8 * i + 8))) for i in range(8)),
                         base_size=8, levels=(0, 1, 2, 3))
    small = block_rule(layout, 5)  # fits one base block
    assert (small.width, small.limit_low) == (1, False)
    twelve = block_rule(layout, 12)  # 2 base blocks -> level 1; llblocks of 1 block, at most 2
    assert (twelve.width, twelve.low_width, twelve.max_low, twelve.limit_low) == (2, 1, 2, False)
    twenty = block_rule(layout, 20)  # 3 base blocks -> level 2 (4 blocks); llblocks of 2, at most 2
    assert (twenty.width, twenty.low_width, twenty.max_low, twenty.limit_low) == (4, 2, 2, False)
    sparse = BlockLayout(blocks=layout.blocks, base_size=8, levels=(0, 2))
    nine = block_rule(sparse, 9)  # wants level 1, only 2 offered: 4 blocks, at most 2 single blocks
    assert (nine.width, nine.low_width, nine.max_low, nine.limit_low) == (4, 1, 2, True)
    whole = block_rule(BlockLayout(blocks=layout.blocks, base_size=8, levels=(0, 1)), 40)
    assert whole.level is None and whole.width == 8


def test_slurm_reference_picks_the_tightest_aggregated_block_then_fit(four_blocks) -> None:  # type: ignore[no-untyped-def]
    layout = fabric_blocks(four_blocks)
    # leaf01: 3 free, leaf02: 8, leaf03: 5, leaf04: 8. 10 nodes -> level 1: {leaf01,02} has 11 free,
    # {leaf03,04} 13: Slurm takes the first (fewest free). Inside: no block fits 10, the largest is
    # leaf02 (8); then 2 are left and leaf01 (3) fits: its first two free hosts.
    free = {**dict.fromkeys(hosts(1, 3), 8), **dict.fromkeys(hosts(9, 16), 8), **dict.fromkeys(hosts(17, 21), 8),
            **dict.fromkeys(hosts(25, 32), 8)}
    ref = slurm_block_reference(four_blocks, free_of(four_blocks, free), Request(nodes=10, gpus_per_node=8), layout)
    assert ref is not None and sorted(ref) == hosts(1, 2) + hosts(9, 16)
    ours = place_block(four_blocks, free_of(four_blocks, free), Request(nodes=10, gpus_per_node=8), layout)
    assert block_usage(layout, ours.hosts)["base_blocks"] == 2
    assert set(ours.hosts) <= set(hosts(1, 16))  # the same, fuller aggregated block


def test_block_plan_refuses_what_spans_two_aggregated_blocks_where_tree_would_not(four_blocks) -> None:  # type: ignore[no-untyped-def]
    layout = fabric_blocks(four_blocks)
    # 4 free in leaf01, 8 free in leaf03: 12 nodes need level 1 (2 blocks), but no aligned pair has 12.
    free = {**dict.fromkeys(hosts(1, 4), 8), **dict.fromkeys(hosts(17, 24), 8)}
    request = Request(nodes=12, gpus_per_node=8)
    tree = place(four_blocks, free_of(four_blocks, free), request)
    assert len(tree.allocation) == 12  # hop distances alone take both leaves
    with pytest.raises(InfeasibleError, match="topology/block"):
        place_block(four_blocks, free_of(four_blocks, free), request, layout)
    assert slurm_block_reference(four_blocks, free_of(four_blocks, free), request, layout) is None
    assert block_usage(layout, list(tree.allocation))["slurm_accepts"] is False


def _random_free_state(rng: random.Random, compiled, layout, share: float):  # type: ignore[no-untyped-def]
    """(free hosts, their FreeState, free hosts per base block): each host wholly free with `share`."""
    free_hosts = [h for h in compiled.host_names if rng.random() < share]
    per_block = [sum(1 for h in members if h in free_hosts) for _n, members in layout.blocks]
    return free_hosts, free_of(compiled, dict.fromkeys(free_hosts, 8)), per_block


def _fewest_blocks_by_brute_force(per_block_free: list[int], nodes: int) -> int | None:
    """Smallest number of base blocks holding `nodes` free nodes inside one aligned group of the
    width Slurm requires (every level offered, 8-node base blocks), by trying every subset."""
    width = 1
    while width * 8 < nodes:
        width *= 2
    best = None
    for first in range(0, len(per_block_free), width):
        group = list(range(first, min(first + width, len(per_block_free))))
        for size in range(1, len(group) + 1):
            if any(sum(per_block_free[b] for b in combo) >= nodes for combo in itertools.combinations(group, size)):
                best = size if best is None else min(best, size)
                break
    return best


def test_block_plan_uses_the_fewest_blocks_and_never_more_than_slurm(eight_blocks) -> None:  # type: ignore[no-untyped-def]
    layout = fabric_blocks(eight_blocks)
    assert layout.sizes == [8, 16, 32, 64]
    rng = random.Random(7)
    checked = 0
    for _ in range(200):
        free_hosts, free, per_block = _random_free_state(rng, eight_blocks, layout, 0.55)
        nodes = rng.randint(2, 30)
        request = Request(nodes=nodes, gpus_per_node=8)
        expected = _fewest_blocks_by_brute_force(per_block, nodes)
        ref = slurm_block_reference(eight_blocks, free, request, layout)
        if expected is None:
            with pytest.raises(InfeasibleError):
                place_block(eight_blocks, free, request, layout)
            assert ref is None
            continue
        ours = place_block(eight_blocks, free, request, layout)
        assert len(ours.allocation) == nodes and set(ours.allocation) <= set(free_hosts)
        usage = block_usage(layout, ours.hosts)
        assert usage["base_blocks"] == expected and usage["slurm_accepts"]
        if ref is not None:
            assert usage["base_blocks"] <= block_usage(layout, list(ref))["base_blocks"]
        checked += 1
    assert checked > 50


def test_block_layouts_read_from_slurms_files() -> None:
    conf = blocks_from_topology_conf("# c\nBlockName=b1 Nodes=gpu[001-004]\nBlockName=b2 Nodes=gpu[005-008]\n"
                                     "BlockSizes=4,8\n")
    assert [n for n, _ in conf.blocks] == ["b1", "b2"] and conf.sizes == [4, 8] and conf.source == "topology.conf"
    text = ("- topology: t\n  cluster_default: true\n  tree:\n    switches:\n      - switch: s\n        nodes: gpu[001-008]\n"
            "- topology: nvl\n  block:\n    block_sizes: [4, 16]\n    blocks:\n      - block: a\n        nodes: gpu[001-004]\n"
            "      - block: b\n        nodes: gpu[005-008]\n")
    yml = blocks_from_topology_yaml(text, "nvl")
    assert list(yml.blocks[1][1]) == hosts(5, 8) and yml.levels == (0, 2)
    with pytest.raises(InputError, match="power of two"):
        blocks_from_topology_conf("BlockName=b1 Nodes=gpu[001-004]\nBlockSizes=4,12\n")
    with pytest.raises(InputError, match="fewer than the base block size"):
        blocks_from_topology_conf("BlockName=b1 Nodes=gpu[001-002]\nBlockSizes=4\n")


def _yaml_for(slurm: FakeSlurm, directory: Path) -> None:
    (directory / "topology.yaml").write_text(
        "- topology: tree\n  cluster_default: true\n  tree:\n    switches:\n      - switch: s\n"
        "        nodes: gpu[001-032]\n"
        "- topology: block\n  block:\n    block_sizes: [8, 16, 32]\n    blocks:\n"
        + "".join(f"      - block: leaf0{i + 1}\n        nodes: gpu[{8 * i + 1:03d}-{8 * i + 8:03d}]\n" for i in range(4)))
    slurm.config_values = {"TopologyPlugin": "topology/tree", "SLURM_CONF": str(directory / "slurm.conf")}


def test_the_partitions_topology_decides(four_blocks, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    slurm = FakeSlurm.uniform(hosts(1, 32))
    slurm.partitions_map["blk"] = hosts(1, 32)
    slurm.partition_fields = {"blk": {"Topology": "block"}}
    _yaml_for(slurm, tmp_path)
    block = resolve_topology(four_blocks, "auto", "blk", lambda: slurm)
    assert block.kind == "block" and block.layout is not None and block.layout.source == "topology.yaml"
    assert "Topology=block" in block.why
    assert resolve_topology(four_blocks, "auto", "gpu", lambda: slurm).kind == "tree"  # cluster default
    (tmp_path / "topology.yaml").unlink()
    slurm.config_values["TopologyPlugin"] = "topology/block"
    (tmp_path / "topology.conf").write_text("BlockName=x Nodes=gpu[001-016]\nBlockName=y Nodes=gpu[017-032]\n")
    from_conf = resolve_topology(four_blocks, "auto", "gpu", lambda: slurm)
    assert from_conf.layout is not None and from_conf.layout.source == "topology.conf"
    assert from_conf.layout.base_size == 16  # Slurm's default: the first block's node count


def test_submit_under_block_pins_within_blocks_and_never_adds_switches(four_blocks, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    slurm = FakeSlurm.uniform(hosts(1, 32), partition="blk")
    slurm.version_tuple = (26, 5, 5)
    slurm.partition_fields = {"blk": {"Topology": "block"}}
    _yaml_for(slurm, tmp_path)
    for host in hosts(1, 4) + hosts(17, 24):  # leaf01 half busy, leaf03 busy
        slurm.use(host, 8)
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/bash\ntrue\n")
    base = {"lock_path": str(tmp_path / "lock"), "verify_timeout": 0.0, "script": str(script), "partition": "blk"}
    out = submit_planned(slurm, four_blocks, SubmitRequest(nodes=12, gpus_per_node=8, **base))
    # Free: gpu005-016 (12 in leaf01+02, one aligned pair) and gpu025-032 (8): the pair takes it.
    assert out.mode == "now" and sorted(out.placement.allocation) == hosts(5, 16)
    assert not any(a.startswith("--switches") for a in slurm.submitted[-1])
    assert out.to_json()["blocks"]["base_blocks"] == 2
    # 16 nodes fit no aligned pair now: wait for two whole base blocks with --segment, no --switches.
    later = submit_planned(slurm, four_blocks, SubmitRequest(nodes=16, gpus_per_node=8, **base))
    assert later.mode == "wait-block"
    args = slurm.submitted[-1]
    assert "--segment=8" in args and not any(a.startswith(("--switches", "--nodelist")) for a in args)
    # The marker records the segment, where `jobs explain` reads it on a Slurm that does not report it.
    assert parse_plan_comment(slurm.jobs_by_id[later.job_id].comment)["segment"] == "8"
    assert "segment" not in parse_plan_comment(slurm.jobs_by_id[out.job_id].comment)


def test_plan_cli_speaks_blocks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fabric = tmp_path / "f.json"
    save_fabric(fat_tree(4, 8, 2), str(fabric))
    free = tmp_path / "free.json"
    free.write_text(json.dumps({**dict.fromkeys(hosts(1, 4), 8), **dict.fromkeys(hosts(9, 16), 8)}))
    args = ["plan", "--fabric", str(fabric), "--free", str(free), "--nodes", "10", "--gpus-per-node", "8",
            "--topology", "block"]
    assert main([*args, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["topology"]["kind"] == "block" and doc["topology"]["block_sizes"] == [8, 16, 32]
    assert doc["blocks"]["base_blocks"] == 2 and doc["slurm_reference"]["mode"] == "slurm-block"
    assert doc["slurm_reference"]["blocks"]["base_blocks"] == 2
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "base block(s)" in text and "slurm-block would use 2" in text


def test_blocks_need_a_compute_host() -> None:
    empty = compile_fabric(fat_tree(1, 1, 1))
    assert fabric_blocks(empty).sizes == [1]
    assert np.asarray(empty.host_tree_leaf).size == 1


def test_block_plan_keeps_max_hops(four_blocks) -> None:  # type: ignore[no-untyped-def]
    layout = fabric_blocks(four_blocks)
    free = free_of(four_blocks, dict.fromkeys(hosts(1, 32), 8))
    # Two hosts of one leaf are 2 hops apart, of two leaves 4: 10 nodes need two leaves.
    with pytest.raises(InfeasibleError, match="within max_hops 2") as info:
        place_block(four_blocks, free, Request(nodes=10, gpus_per_node=8, max_hops=2), layout)
    assert "within --max-hops 2" in message_for(info.value)
    assert place_block(four_blocks, free, Request(nodes=10, gpus_per_node=8, max_hops=4), layout).cost.max_hops == 4


def test_explain_speaks_blocks_and_flags_switches(four_blocks, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from gpupool.app.jobs import explain_job
    from gpupool.slurm.models import JobInfo, JobRequest

    slurm = FakeSlurm.uniform(hosts(1, 32), partition="blk")
    slurm.partition_fields = {"blk": {"Topology": "block"}}
    _yaml_for(slurm, tmp_path)
    for host in hosts(1, 4) + hosts(17, 24):
        slurm.use(host, 8)
    # Pinned across leaf01 and leaf03: 2 base blocks, but not one aligned pair (leaf01+02 or leaf03+04).
    slurm.jobs_by_id["7"] = JobInfo(
        job_id="7", user="alice", state="PENDING", reason="Resources", partition="blk",
        request=JobRequest(nodes=10, gpus_per_node=8, required_nodes="gpu[005-008,025-030]", partition="blk",
                           switches="1@01:00:00"))
    doc = explain_job(slurm, four_blocks, "7").to_json()
    assert doc["topology"]["kind"] == "block"
    assert doc["best_now"]["blocks"]["base_blocks"] == 2 and doc["best_now"]["blocks"]["slurm_accepts"]
    assert set(doc["best_now"]["allocation"]) <= set(hosts(5, 16))  # the one aligned pair with 12 free
    assert doc["pinned"]["blocks"] == {"base_blocks": 2, "block_names": ["leaf01", "leaf04"], "aggregated_blocks": 2,
                                       "level": 1, "slurm_accepts": False}
    assert doc["cost_difference"]["base_blocks"] == 0
    assert any("--switches=1@01:00:00" in n and "ignores" in n for n in doc["notes"])
    assert any("break Slurm's block rules" in n for n in doc["notes"])


def test_explain_plans_with_the_jobs_segment(four_blocks, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from gpupool.app.jobs import explain_job
    from gpupool.slurm.models import JobInfo, JobRequest

    slurm = FakeSlurm.uniform(hosts(1, 32), partition="blk")
    slurm.partition_fields = {"blk": {"Topology": "block"}}
    _yaml_for(slurm, tmp_path)
    for host in set(hosts(1, 32)) - set(_spread_free()):
        slurm.use(host, 8)

    def explain(request: JobRequest, comment: str = "") -> dict:  # type: ignore[type-arg]
        slurm.jobs_by_id["8"] = JobInfo(job_id="8", user="alice", state="PENDING", reason="Resources",
                                        partition="blk", request=request, comment=comment)
        return explain_job(slurm, four_blocks, "8").to_json()

    # Segment 2 as squeue --json reports it (25.11+): leaf04's 6 nodes and a pair of leaf01, worked out
    # by hand in test_segment_plan_takes_whole_segments_per_base_block.
    doc = explain(JobRequest(nodes=8, gpus_per_node=8, partition="blk", segment=2))
    assert doc["asks"]["segment"] == 2
    assert sorted(doc["best_now"]["allocation"]) == hosts(1, 2) + hosts(25, 30)
    assert doc["best_now"]["blocks"]["segment"] == 2 and doc["best_now"]["blocks"]["base_blocks"] == 2
    # The same job submitted by gpupool on a Slurm that does not report it: read from the marker.
    marker = "gpupool:pair_hops_sum=0,leaf_switches=1,max_hops=0,mode=wait-block,segment=2"
    doc = explain(JobRequest(nodes=8, gpus_per_node=8, partition="blk"), marker)
    assert doc["asks"]["segment"] == 2 and sorted(doc["best_now"]["allocation"]) == hosts(1, 2) + hosts(25, 30)
    # Without a segment 8 nodes must share one base block, and none has 8 free.
    doc = explain(JobRequest(nodes=8, gpus_per_node=8, partition="blk"))
    assert doc["asks"]["segment"] is None and doc["best_now"] is None
    assert doc["best_now_reason"].startswith("nothing fits now")
    # A segment that does not divide the node count: Slurm never starts it; said, then planned without.
    doc = explain(JobRequest(nodes=8, gpus_per_node=8, partition="blk", segment=3))
    assert any(n.startswith("Slurm cannot place --segment=3 here") for n in doc["notes"])
    # Pinned nodes with 3 in leaf01: not whole segments of 2.
    doc = explain(JobRequest(nodes=8, gpus_per_node=8, partition="blk", segment=2,
                             required_nodes="gpu[001-003,009-013]"))
    assert doc["pinned"]["blocks"]["slurm_accepts"] is False and doc["pinned"]["blocks"]["segment"] == 2
    assert any("not 2 nodes of a base block per segment" in n for n in doc["notes"])


# --segment: each group of S nodes in one base block, segments anywhere (eval_nodes_block's
# `next_segment` loop places n / S jobs of S nodes one after another).

def _spread_free() -> dict[str, int]:
    # leaf01: gpu001-003 (3 free), leaf02: gpu009-013 (5), leaf03: none, leaf04: gpu025-030 (6)
    return {**dict.fromkeys(hosts(1, 3), 8), **dict.fromkeys(hosts(9, 13), 8), **dict.fromkeys(hosts(25, 30), 8)}


def test_segment_plan_takes_whole_segments_per_base_block(four_blocks) -> None:  # type: ignore[no-untyped-def]
    layout = fabric_blocks(four_blocks)
    free = free_of(four_blocks, _spread_free())
    # 8 nodes without a segment must share one base block: none has 8 free.
    with pytest.raises(InfeasibleError):
        place_block(four_blocks, free, Request(nodes=8, gpus_per_node=8), layout)
    # With --segment 2 the blocks give 2 (leaf01: 3 -> one pair), 4 (leaf02: 5) and 6 (leaf04) nodes;
    # two blocks suffice: leaf04's 6 and one pair more, from leaf01 (the smallest block that covers it).
    ours = place_block(four_blocks, free, Request(nodes=8, gpus_per_node=8, segment=2), layout)
    assert sorted(ours.allocation) == hosts(1, 2) + hosts(25, 30)
    usage = block_usage(layout, ours.hosts, 2)
    assert usage["base_blocks"] == 2 and usage["slurm_accepts"] and usage["segment"] == 2
    # Slurm: each segment in the block with the fewest free nodes >= 2, the later on ties:
    # leaf01 (3) -> gpu001-002; leaf02 (5) -> gpu009-010; leaf02 (3) -> gpu011-012; leaf04 -> gpu025-026.
    ref = slurm_block_reference(four_blocks, free, Request(nodes=8, gpus_per_node=8, segment=2), layout)
    assert ref is not None and sorted(ref) == hosts(1, 2) + hosts(9, 12) + hosts(25, 26)
    assert block_usage(layout, list(ref), 2)["base_blocks"] == 3
    # Three nodes of leaf01 cannot be whole segments of 2.
    assert block_usage(layout, hosts(1, 3) + hosts(9, 13), 2)["slurm_accepts"] is False
    # 14 nodes would need leaf01's odd third node: infeasible now, and for Slurm too.
    with pytest.raises(InfeasibleError, match="segment"):
        place_block(four_blocks, free, Request(nodes=14, gpus_per_node=8, segment=2), layout)
    assert slurm_block_reference(four_blocks, free, Request(nodes=14, gpus_per_node=8, segment=2), layout) is None


def test_segment_sizes_slurm_refuses_are_usage_errors(four_blocks) -> None:  # type: ignore[no-untyped-def]
    layout = fabric_blocks(four_blocks)
    free = free_of(four_blocks, dict.fromkeys(hosts(1, 32), 8))
    for request, why in ((Request(nodes=8, gpus_per_node=8, segment=3), "does not divide"),
                         (Request(nodes=16, gpus_per_node=8, segment=16), "larger than a base block"),
                         (Request(gpus=16, segment=2), "needs a node count"),
                         (Request(nodes=4, gpus_per_node=8, segment=0), "between 1 and")):
        with pytest.raises(UsageError, match=why):
            place_block(four_blocks, free, request, layout)


def _fewest_segment_blocks_by_brute_force(per_block_free: list[int], nodes: int, size: int) -> int | None:
    """Smallest number of base blocks that hold `nodes` nodes in whole segments of `size`, anywhere."""
    whole = [c - c % size for c in per_block_free]
    for count in range(1, len(whole) + 1):
        if any(sum(combo) >= nodes for combo in itertools.combinations(whole, count)):
            return count
    return None


def test_segment_plan_uses_the_fewest_blocks_and_never_more_than_slurm(eight_blocks) -> None:  # type: ignore[no-untyped-def]
    layout = fabric_blocks(eight_blocks)
    rng = random.Random(11)
    checked = 0
    for _ in range(150):
        free_hosts, free, per_block = _random_free_state(rng, eight_blocks, layout, 0.5)
        size = rng.choice([1, 2, 3, 4, 8])
        nodes = size * rng.randint(1, max(1, 24 // size))
        request = Request(nodes=nodes, gpus_per_node=8, segment=size)
        expected = _fewest_segment_blocks_by_brute_force(per_block, nodes, size)
        ref = slurm_block_reference(eight_blocks, free, request, layout)
        if expected is None:
            with pytest.raises(InfeasibleError):
                place_block(eight_blocks, free, request, layout)
            assert ref is None
            continue
        ours = place_block(eight_blocks, free, request, layout)
        assert len(ours.allocation) == nodes and set(ours.allocation) <= set(free_hosts)
        owner = layout.block_of()
        counts = [sum(1 for h in ours.hosts if owner[h] == b) for b in range(len(layout.blocks))]
        assert all(c % size == 0 for c in counts)  # whole segments per base block
        assert sum(1 for c in counts if c) == expected
        assert ref is not None  # a greedy over whole segments never fails where segments fit
        ref_counts = [sum(1 for h in ref if owner[h] == b) for b in range(len(layout.blocks))]
        assert len(ref) == nodes and all(c % size == 0 for c in ref_counts)
        assert expected <= sum(1 for c in ref_counts if c)
        checked += 1
    assert checked > 50


def test_plan_cli_segment(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fabric = tmp_path / "f.json"
    save_fabric(fat_tree(4, 8, 2), str(fabric))
    free = tmp_path / "free.json"
    free.write_text(json.dumps(_spread_free()))
    args = ["plan", "--fabric", str(fabric), "--free", str(free), "--nodes", "8", "--gpus-per-node", "8"]
    assert main([*args, "--topology", "block", "--segment", "2", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["request"]["segment"] == 2 and doc["blocks"]["segment"] == 2
    assert sorted(doc["allocation"]) == hosts(1, 2) + hosts(25, 30)
    assert doc["slurm_reference"]["blocks"]["base_blocks"] == 3
    assert main([*args, "--topology", "block", "--segment", "3"]) == 2
    assert "does not divide" in capsys.readouterr().err
    assert main([*args, "--topology", "block"]) == 1  # no segment: one base block needed
    capsys.readouterr()
    assert main([*args, "--topology", "tree", "--segment", "2", "--json"]) == 0
    captured = capsys.readouterr()
    assert "--segment=2 is ignored by Slurm's topology/tree" in captured.err
    assert json.loads(captured.out)["request"]["segment"] is None


def test_submit_keeps_the_users_segment_and_pins_as_slurm_allows(four_blocks, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/bash\ntrue\n")
    base = {"lock_path": str(tmp_path / "lock"), "verify_timeout": 0.0, "script": str(script), "partition": "blk",
            "dry_run": True}
    for version, pinned_by_list in (((26, 5, 5), True), ((24, 11, 6), False)):
        slurm = FakeSlurm.uniform(hosts(1, 32), partition="blk")
        slurm.version_tuple = version
        slurm.partition_fields = {"blk": {"Topology": "block"}}
        _yaml_for(slurm, tmp_path)
        busy = set(hosts(1, 32)) - set(_spread_free())
        for host in sorted(busy):
            slurm.use(host, 8)
        out = submit_planned(slurm, four_blocks, SubmitRequest(nodes=8, gpus_per_node=8,
                                                               sbatch_args=["--segment=2"], **base))
        assert out.mode == "now" and sorted(out.placement.allocation) == hosts(1, 2) + hosts(25, 30)
        args = out.sbatch_argv
        assert "--segment=2" in args and "--nodes=8" in args
        comment = next(a.split("=", 1)[1] for a in args if a.startswith("--comment="))
        assert parse_plan_comment(comment)["segment"] == "2"
        if pinned_by_list:
            assert "--nodelist=gpu[001-002,025-030]" in args
        else:  # 24.11 refuses -w with several segments: every other block node is excluded
            assert not any(a.startswith("--nodelist") for a in args)
            assert "--exclude=gpu[003-024,031-032]" in args
    with pytest.raises(UsageError, match="does not divide"):
        submit_planned(slurm, four_blocks, SubmitRequest(nodes=8, gpus_per_node=8, sbatch_args=["--segment=3"], **base))


# fabric_blocks on hand-built logical trees: a stand-in with only the fields it reads, so the index
# of every switch and the order of every name is chosen on purpose (a leaf or pod at index 0, names
# whose text order and natural order differ, a switch without hosts, hosts outside every leaf).

@dataclass
class _Logical:
    tree_names: list[str]
    tree_parent: np.ndarray
    host_names: list[str]
    host_tree_leaf: np.ndarray
    host_domain: np.ndarray
    domain_names: list[str]

    def has_nvlink_domains(self) -> bool:
        return bool(self.domain_names)


def _logical(switches: dict[str, str | None], leaf_of: dict[str, str | None],
             domains: dict[str, list[str]] | None = None) -> _Logical:
    """Switches in index order (name -> parent, None for a root), hosts in index order (name -> leaf,
    None for none), NVLink domains in index order (name -> member hosts)."""
    index = {name: i for i, name in enumerate(switches)}
    domain_of = {h: d for d, members in enumerate((domains or {}).values()) for h in members}
    return _Logical(tree_names=list(switches),
                    tree_parent=np.asarray([index[p] if p else -1 for p in switches.values()], dtype=np.int32),
                    host_names=list(leaf_of),
                    host_tree_leaf=np.asarray([index[s] if s else -1 for s in leaf_of.values()], dtype=np.int32),
                    host_domain=np.asarray([domain_of.get(h, -1) for h in leaf_of], dtype=np.int32),
                    domain_names=list(domains or {}))


def _under(*leaves: str | None, per: int = 2) -> dict[str, str | None]:
    """`per` hosts n1, n2, ... under each leaf in turn."""
    return {f"n{i + 1}": leaf for i, leaf in enumerate(leaf for leaf in leaves for _ in range(per))}


LOGICAL_CASES = {
    # Depth-first (a's leaves before the leaf b, although b sorts first by name), children in natural
    # order (x9 before x10), the switch without hosts and the service host left out; blocks of 3, 2
    # and 2 nodes: base 2, 7 nodes: sizes 2 and 4. The one aligned pair (x9, x10) shares `a`; the
    # third block alone is no pair to check.
    "depth-first-natural-order": (
        {"b": "top", "top": None, "a": "top", "x10": "a", "x9": "a", "empty": "a"},
        {"n1": "x10", "n2": "x10", "n3": "x9", "n4": "x9", "n5": "x9", "svc": None, "n6": "b", "n7": "b"}, None,
        [("x9", ("n3", "n4", "n5")), ("x10", ("n1", "n2")), ("b", ("n6", "n7"))], [2, 4]),
    # Pods of 1, 2 and 1 leaves: the pair (p1-l1, p2-l1) spreads over p1 and p2, and p2 holds a whole
    # pair (2 blocks, exactly the width): no 4. Four blocks of 2 nodes: 8 = the whole cluster.
    "pair-straddles-a-pod-of-exactly-two": (
        {"top": None, "p1": "top", "p2": "top", "p3": "top", "p1-l1": "p1", "p2-l1": "p2", "p2-l2": "p2",
         "p3-l1": "p3"},
        _under("p1-l1", "p2-l1", "p2-l2", "p3-l1"), None,
        [("p1-l1", ("n1", "n2")), ("p2-l1", ("n3", "n4")), ("p2-l2", ("n5", "n6")), ("p3-l1", ("n7", "n8"))],
        [2, 8]),
    # 2 pods x 2 leaves, a leaf at index 0: the aligned pairs are the pods (4 offered); the pair
    # (q1-l2, q2-l1) would straddle, but it is not aligned, so it is never checked.
    "aligned-pairs-are-the-pods": (
        {"q1-l1": "q1", "top": None, "q1": "top", "q2": "top", "q1-l2": "q1", "q2-l1": "q2", "q2-l2": "q2"},
        _under("q1-l1", "q1-l2", "q2-l1", "q2-l2"), None,
        [("q1-l1", ("n1", "n2")), ("q1-l2", ("n3", "n4")), ("q2-l1", ("n5", "n6")), ("q2-l2", ("n7", "n8"))],
        [2, 4, 8]),
    # A pod of 3 leaves at index 0 and a pod of 1, one host each: the pair (pod-big-l3, pod-small-l1)
    # straddles pod-big, which holds 3 blocks: no 2; 4 = the whole cluster.
    "a-pod-at-index-0": (
        {"pod-big": "core", "core": None, "pod-big-l1": "pod-big", "pod-big-l2": "pod-big", "pod-big-l3": "pod-big",
         "pod-small": "core", "pod-small-l1": "pod-small"},
        _under("pod-big-l1", "pod-big-l2", "pod-big-l3", "pod-small-l1", per=1), None,
        [("pod-big-l1", ("n1",)), ("pod-big-l2", ("n2",)), ("pod-big-l3", ("n3",)), ("pod-small-l1", ("n4",))],
        [1, 4]),
    # Two trees, roots in natural order (r2 before r10), each with its leaves; blocks of 4, 2, 2 and 2
    # nodes: base 2, 10 nodes; the aligned pairs stay in their tree: 4; 8 = 4 blocks, all of them.
    "two-roots": (
        {"r10": None, "r10-a": "r10", "r10-b": "r10", "r2": None, "r2-b": "r2", "r2-a": "r2"},
        {**_under("r10-a", "r10-b", "r2-b"), "n7": "r2-a", "n8": "r2-a", "n9": "r2-a", "n10": "r2-a"}, None,
        [("r2-a", ("n7", "n8", "n9", "n10")), ("r2-b", ("n5", "n6")), ("r10-a", ("n1", "n2")), ("r10-b", ("n3", "n4"))],
        [2, 4, 8]),
    # NVLink domains: one base block per domain, ordered by the leaf of the domain's first host (L1
    # before L2 by name although L2 is switch 0 and holds host n1), then that host's index; a domain's
    # hosts in host order (nvD lists n8 first); a domain outside every leaf last; n9 in no domain is
    # in no block. Pairs: (nvA, nvD) share L1; (nvB, nvC) have no common switch and nvB's tree (top)
    # holds 3 blocks: no 4; 8 = the whole cluster.
    "nvlink-domains": (
        {"L2": "top", "top": None, "L1": "top"},
        {"n1": "L2", "n2": "L2", "n3": "L1", "n4": "L1", "n5": "L1", "n6": None, "n7": None, "n8": "L1", "n9": "L2"},
        {"nvB": ["n1", "n2"], "nvC": ["n6", "n7"], "nvD": ["n8", "n5"], "nvA": ["n3", "n4"]},
        [("nvA", ("n3", "n4")), ("nvD", ("n5", "n8")), ("nvB", ("n1", "n2")), ("nvC", ("n6", "n7"))], [2, 8]),
    # Two domains per leaf: the aligned pairs are the leaves' domains: 2, and 4 = the cluster.
    "nvlink-domains-two-per-leaf": (
        {"top": None, "L1": "top", "L2": "top"},
        _under("L1", "L1", "L2", "L2", per=1),
        {"dA": ["n1"], "dB": ["n2"], "dC": ["n3"], "dD": ["n4"]},
        [("dA", ("n1",)), ("dB", ("n2",)), ("dC", ("n3",)), ("dD", ("n4",))], [1, 2, 4]),
    # A domain outside every leaf comes last; the pair (dX, dZ) shares L: 2 offered; 3 nodes: no 4.
    "nvlink-domain-outside-every-leaf": (
        {"root": None, "L": "root"},
        {"n1": "L", "n2": None, "n3": "L"},
        {"dX": ["n1"], "dY": ["n2"], "dZ": ["n3"]},
        [("dX", ("n1",)), ("dZ", ("n3",)), ("dY", ("n2",))], [1, 2]),
    # Domains under two roots that are their own leaves (R1 is switch 0): (d1, d2) share R1; (d3, d4)
    # share no switch and R1 holds 3 domains: no 2; 4 = the whole cluster.
    "nvlink-domains-under-two-roots": (
        {"R1": None, "R2": None},
        _under("R1", "R1", "R1", "R2", per=1),
        {"d1": ["n1"], "d2": ["n2"], "d3": ["n3"], "d4": ["n4"]},
        [("d1", ("n1",)), ("d2", ("n2",)), ("d3", ("n3",)), ("d4", ("n4",))], [1, 4]),
}


@pytest.mark.parametrize("case", sorted(LOGICAL_CASES))
def test_fabric_blocks_of_hand_built_trees(case: str) -> None:
    switches, leaf_of, domains, blocks, sizes = LOGICAL_CASES[case]
    layout = fabric_blocks(_logical(switches, leaf_of, domains))  # type: ignore[arg-type]
    assert [(name, tuple(members)) for name, members in layout.blocks] == blocks
    assert layout.base_size == sizes[0] and layout.sizes == sizes and layout.source == "fabric"
    assert layout.levels == tuple((size // sizes[0]).bit_length() - 1 for size in sizes)


def test_fabric_blocks_without_a_host_under_a_leaf_is_bad_input() -> None:
    with pytest.raises(InputError, match="^the fabric has no compute host: there is no block to build$"):
        fabric_blocks(_logical({"top": None, "leaf": "top"}, {"svc1": None, "svc2": None}))  # type: ignore[arg-type]


def test_block_layout_helpers() -> None:
    layout = BlockLayout(blocks=(("x", ("a", "b")), ("y", ("c",))), base_size=3, levels=(0, 2), source="topology.conf")
    assert layout.sizes == [3, 12]
    assert layout.block_of() == {"a": 0, "b": 0, "c": 1}
    assert layout.to_json() == {"source": "topology.conf", "base_blocks": 2, "block_sizes": [3, 12]}


# Slurm's own block files, read back: (text, expected blocks, base size, levels), worked out by hand
# from topology.conf(5) / topology.yaml(5) (BlockSizes: the first size is the base, each size the
# base times a power of two; without BlockSizes the first block's node count and levels 0-4).
CONF_CASES = {
    "comments-and-any-case": (
        "# BlockSizes=1\nblockname=b1 NODES=gpu[001-002]  # BlockSizes=1\n  BlockName=b2 Nodes=gpu[003-005]\n"
        "BLOCKSIZES=2,8,4,4\n# BlockSizes=1 # an old value\n",
        [("b1", ("gpu001", "gpu002")), ("b2", ("gpu003", "gpu004", "gpu005"))], 2, (0, 1, 2)),
    "default-sizes-from-the-first-block": (
        "BlockName=big Nodes=gpu[001-004]\nBlockName=small Nodes=gpu[005-006]\n",
        [("big", ("gpu001", "gpu002", "gpu003", "gpu004")), ("small", ("gpu005", "gpu006"))], 4, (0, 1, 2, 3, 4)),
    "a-block-of-exactly-the-base-size": (  # a hostlist expands sorted, as ClusterShell's NodeSet does
        "BlockName=b1 Nodes=n[1-3]\nBlockName=b2 Nodes=n[4-6],m1\nBlockSizes=3\n",
        [("b1", ("n1", "n2", "n3")), ("b2", ("m1", "n4", "n5", "n6"))], 3, (0,)),
    "single-node-blocks": (
        "BlockName=a Nodes=n1\nBlockName=b Nodes=n2\nBlockSizes=1,2\n", [("a", ("n1",)), ("b", ("n2",))], 1, (0, 1)),
}


@pytest.mark.parametrize("case", sorted(CONF_CASES))
def test_topology_conf_blocks_read_by_hand(case: str) -> None:
    text, blocks, base, levels = CONF_CASES[case]
    layout = blocks_from_topology_conf(text)
    assert [(name, tuple(members)) for name, members in layout.blocks] == blocks
    assert (layout.base_size, layout.levels, layout.source) == (base, levels, "topology.conf")


@pytest.mark.parametrize(("text", "message"), [
    ("", "topology.conf: no block"),
    ("# BlockName=b1 Nodes=n1\nSwitchName=s Nodes=n1\n", "topology.conf: no block"),
    ("BlockName=b1 Nodes=n[1-4]\nBlockSizes=4,x\n", "topology.conf: BlockSizes=4,x is not a list of numbers"),
    ("BlockName=b1 Nodes=n[1-4]\nBlockSizes=4,12\n",
     "topology.conf: BlockSizes 4,12: each size must be the first times a power of two (Slurm refuses it)"),
    ("BlockName=b1 Nodes=n[1-4]\nBlockSizes=4,0\n", "topology.conf: BlockSizes 4,0: each size must be"),
    ("BlockName=b1 Nodes=n[1-4]\nBlockSizes=0\n", "topology.conf: BlockSizes 0: each size must be"),
    ("BlockName=b1 Nodes=n[1-4]\nBlockSizes=4,-8\n", "topology.conf: BlockSizes 4,-8: each size must be"),
    ("BlockName=b1 Nodes=n[1-8]\nBlockSizes=8,4\n", "topology.conf: BlockSizes 8,4: each size must be"),
    ("BlockName=b1 Nodes=n[1-4]\nBlockName=b2 Nodes=n[5-7]\nBlockSizes=4,8\n",
     "topology.conf: a block has 3 nodes, fewer than the base block size 4"),
    ("BlockName=b1\nBlockSizes=1\n", "topology.conf: a block has 0 nodes, fewer than the base block size 1"),
])
def test_topology_conf_that_slurm_refuses(text: str, message: str) -> None:
    with pytest.raises(InputError) as info:
        blocks_from_topology_conf(text)
    assert info.value.message.startswith(message), info.value.message


YAML_TWO_BLOCK_TOPOLOGIES = """\
- not a mapping
- topology: tree
  tree:
    switches:
      - switch: s
        nodes: gpu[001-008]
- topology: first
  block: [not, a, mapping]
- topology: nvl
  block:
    block_sizes: [2, 8]
    blocks:
      - block: 1
        nodes: gpu[001-002]
      - just text
      - block: b
        nodes: gpu[003-006]
      - block: empty
- topology: 5
  block:
    blocks:
      - block: c
        nodes: gpu[007-009]
      - block: d
        nodes: gpu010
"""


@pytest.mark.parametrize(("name", "blocks", "base", "levels"), [
    (None, [("1", ("gpu001", "gpu002")), ("b", ("gpu003", "gpu004", "gpu005", "gpu006")), ("empty", ())], 2, (0, 2)),
    ("nvl", [("1", ("gpu001", "gpu002")), ("b", ("gpu003", "gpu004", "gpu005", "gpu006")), ("empty", ())], 2, (0, 2)),
    ("5", [("c", ("gpu007", "gpu008", "gpu009")), ("d", ("gpu010",))], 3, (0, 1, 2, 3, 4)),
])
def test_topology_yaml_blocks_read_by_hand(name: str | None, blocks: list[tuple[str, tuple[str, ...]]], base: int,
                                           levels: tuple[int, ...]) -> None:
    text = YAML_TWO_BLOCK_TOPOLOGIES
    if name is None:  # the first block topology; its empty block is refused against BlockSizes
        with pytest.raises(InputError, match="^topology.yaml: a block has 0 nodes, fewer than the base block size 2$"):
            blocks_from_topology_yaml(text)
        text = text.replace("      - block: empty\n", "      - block: empty\n        nodes: gpu[011-012]\n")
        blocks = [*blocks[:2], ("empty", ("gpu011", "gpu012"))]
    elif name == "nvl":
        text = text.replace("      - block: empty\n", "")
        blocks = blocks[:2]
    layout = blocks_from_topology_yaml(text, name)
    assert [(n, tuple(members)) for n, members in layout.blocks] == blocks
    assert (layout.base_size, layout.levels, layout.source) == (base, levels, "topology.yaml")


@pytest.mark.parametrize(("text", "name", "message"), [
    ("", None, "topology.yaml has no block topology"),
    ("topology: nvl\nblock: {}\n", None, "topology.yaml has no block topology"),
    ("5\n", None, "topology.yaml has no block topology"),
    (YAML_TWO_BLOCK_TOPOLOGIES, "tree", "topology.yaml has no block topology named 'tree'"),
    (YAML_TWO_BLOCK_TOPOLOGIES, "nosuch", "topology.yaml has no block topology named 'nosuch'"),
    ("- topology: b\n  block:\n    blocks: []\n", None, "topology.yaml: no block"),
])
def test_topology_yaml_without_the_block_topology(text: str, name: str | None, message: str) -> None:
    with pytest.raises(InputError) as info:
        blocks_from_topology_yaml(text, name)
    assert info.value.message == message
