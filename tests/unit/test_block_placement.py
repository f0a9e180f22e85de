"""topology/block: blocks and BlockSizes from the fabric, Slurm's block rules, gpupool's fewest-blocks
placement and the emulation of Slurm's own block choice.

Expected values are derived by hand from the generated fabrics (generator naming: hosts gpu001..,
leaves leafNN / podP-leafNN) and from Slurm's rules as eval_nodes_block.c states them, or by a brute
force over block subsets written here, never from gpupool's output.
"""

from __future__ import annotations

import itertools
import json
import random
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
