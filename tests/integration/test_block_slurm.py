"""topology/block on a real slurmctld. On 25.05+ a testbed with gpupool's topology.yaml (tree as
the cluster default, blocks beside it) and a partition `blk` with Topology=block; on 23.11-25.04
`TopologyPlugin=topology/block` with gpupool's slurm-block topology.conf (partition `gpu`).

Over random fragmented states (random nodes drained), `gpupool plan --partition P` must never
use more base blocks than Slurm's own choice (`sbatch --test-only` on the same state), gpupool's
model of that choice (`slurm_reference`, which `simulate --policies slurm-block` replays) must pick
Slurm's exact nodes in at least 95% of the states, and jobs
`gpupool submit` places must run on exactly the planned nodes. On about every fifth state the
same is checked for a job with `--segment=S` (every S nodes in one base block). Blocks are read from the file
Slurm loaded by the test's own reader, never from gpupool.

Knobs: GPUPOOL_TEST_BLOCK_STATES (default 30 states), GPUPOOL_TEST_BLOCK_SEED (default 13).
"""

from __future__ import annotations

import json
import os
import random
import re
import time
from datetime import datetime

import pytest
import yaml

from tests.integration.conftest import SLURM_RELEASE, Testbed, wait_until

RELEASE = tuple(int(p) for p in SLURM_RELEASE.split("."))
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(RELEASE < (23, 11), reason=f"topology/block needs Slurm 23.11+ (this run: {SLURM_RELEASE})"),
]
YAML = RELEASE >= (25, 5)  # topology.yaml and per-partition topologies
PARTITION = "blk" if YAML else "gpu"
NODES = 64  # 8 leaves x 8 hosts: 8 base blocks, aggregated by 2, 4 and 8


def expand(hostlist: str) -> list[str]:
    """gpu[001-003,007],gpu010 -> names (the test's own reader: last bracket only)."""
    names: list[str] = []
    for prefix, ranges, single in re.findall(r"([^,\[]+)\[([^\]]+)\]|([^,\[\]]+)", hostlist):
        if single:
            names.append(single)
            continue
        for part in ranges.split(","):
            low, _, high = part.partition("-")
            for i in range(int(low), int(high or low) + 1):
                names.append(f"{prefix}{i:0{len(low)}d}")
    return names


def blocks_of(bed: Testbed) -> tuple[list[list[str]], list[int]]:
    """Base blocks and BlockSizes of the file Slurm loaded."""
    if YAML:
        doc = yaml.safe_load((bed.state_dir / "etc" / "topology.yaml").read_text())
        block = next(t for t in doc if t["topology"] == "block")["block"]
        return [expand(b["nodes"]) for b in block["blocks"]], sorted(block["block_sizes"])
    text = (bed.state_dir / "etc" / "topology.conf").read_text()
    blocks = [expand(nodes) for nodes in re.findall(r"^BlockName=\S+ Nodes=(\S+)", text, re.M)]
    sizes = re.search(r"^BlockSizes=(\S+)", text, re.M)
    assert sizes, text
    return blocks, sorted(int(x) for x in sizes.group(1).split(","))


def blocks_used(blocks: list[list[str]], hosts: list[str]) -> int:
    return sum(1 for members in blocks if set(members) & set(hosts))


def slurm_choice(bed: Testbed, nodes: int, gpus: int, segment: int | None = None) -> list[str] | None:
    """Where Slurm would start the job now (None: not now)."""
    extra = [f"--segment={segment}"] if segment else []
    proc = bed.run(["sbatch", "--test-only", "-p", PARTITION, "-N", str(nodes), f"--gres=gpu:{gpus}", *extra,
                    "--wrap", "true"], timeout=60)
    text = proc.stderr + proc.stdout
    found = re.search(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d).*?nodes (\S+)", text)
    if not found:
        return None
    start = datetime.fromisoformat(found.group(1)).timestamp()
    return expand(found.group(2)) if start <= time.time() + 60 else None


def set_drained(bed: Testbed, drained: list[str], before: list[str]) -> None:
    """Drain exactly `drained` (resuming `before`) and wait until slurmctld shows it: right after
    `scontrol update`, 26.05 may still answer --test-only from the previous node states."""
    if before:
        bed.run(["scontrol", "update", f"nodename={','.join(before)}", "state=resume"], check=True)
    if drained:
        bed.run(["scontrol", "update", f"nodename={','.join(drained)}", "state=drain", "reason=gpupool-test"],
                check=True)

    def settled() -> bool:
        states = bed.node_states()
        return ({n for n, (s, _) in states.items() if s.startswith("drain")} == set(drained)
                and all(s == "idle" for n, (s, _) in states.items() if n not in drained))

    wait_until(settled, 30, interval=0.2, message="the drained nodes to settle")
    time.sleep(0.5)  # sinfo can show the new states before the scheduler's node bitmaps follow


def check_segment(bed: Testbed, blocks: list[list[str]], drained: list[str], rng: random.Random,
                  seg: dict[str, int], report: list[str], case: int) -> None:
    """On the current state, a job of whole segments: gpupool must keep every segment in one base
    block, never use more base blocks than Slurm's `--test-only --segment=S` choice, and place
    what Slurm can start now; the first feasible one is submitted and must run on the plan."""
    k = bed.gpus_per_node
    base = len(blocks[0])
    size = rng.choice([2, base // 2, base])
    nodes = size * rng.randint(2, max(2, 24 // size))
    theirs = slurm_choice(bed, nodes, k, size)
    proc = bed.run(["gpupool", "plan", "--partition", PARTITION, "--nodes", str(nodes), "--gpus-per-node", str(k),
                    "--segment", str(size), "--json"], timeout=120)
    assert proc.returncode in (0, 1), proc.stderr
    doc = json.loads(proc.stdout)
    seg["compared"] += 1
    if theirs is not None:
        seg["slurm_now"] += 1
        assert doc["feasible"], f"state {case}: Slurm starts {nodes} nodes --segment={size} on {theirs}: {doc}"
        # Slurm's own choice keeps each segment in one base block too (the test's reading of its rule).
        assert all(len(set(m) & set(theirs)) % size == 0 for m in blocks), theirs
        seg["reference_same"] += sorted(doc["slurm_reference"]["allocation"]) == sorted(theirs)
    if not doc["feasible"]:
        report.append(f"{case}: {nodes} nodes --segment={size}: neither can start it now")
        return
    ours = list(doc["allocation"])
    assert len(ours) == nodes and not set(ours) & set(drained)
    assert all(len(set(m) & set(ours)) % size == 0 for m in blocks), ours
    mine = blocks_used(blocks, ours)
    slurm = blocks_used(blocks, theirs) if theirs is not None else None
    report.append(f"{case}: {nodes} nodes --segment={size}: gpupool {mine} blocks, Slurm {slurm} blocks")
    if slurm is not None:
        assert mine <= slurm, f"state {case}: --segment={size}: gpupool {ours} uses {mine} blocks, Slurm {theirs}"
        seg["fewer"] += mine < slurm
    if seg["submitted"]:
        return
    proc = bed.run(["gpupool", "submit", "--partition", PARTITION, "--nodes", str(nodes), "--gpus-per-node",
                    str(k), "--json", "--", f"--segment={size}", "--wrap", "sleep 60"], timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["job_state"] == "RUNNING" and f"--segment={size}" in out["sbatch"], out
    pin = "--nodelist=" if RELEASE >= (25, 11) else "--exclude="  # 24.11 refuses -w with several segments
    assert any(a.startswith(pin) for a in out["sbatch"]), out
    ran = bed.run(["squeue", "-h", "-j", out["job_id"], "-o", "%N"], check=True).stdout.strip()
    assert sorted(expand(ran)) == sorted(ours), f"segment job {out['job_id']} ran on {ran}, planned {ours}"
    bed.cancel_all()
    wait_until(lambda: all(s.startswith(("idle", "drain")) for s, _ in bed.node_states().values()), 60,
               message="nodes free again")
    seg["submitted"] += 1


def test_block_plan_never_uses_more_blocks_than_slurm(make_testbed) -> None:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    bed: Testbed = make_testbed(NODES, "--topology-yaml" if YAML else "--topology-block")
    k = bed.gpus_per_node
    blocks, block_sizes = blocks_of(bed)
    assert sum(len(b) for b in blocks) == NODES and len(blocks) >= 2
    if YAML:
        part = bed.run(["scontrol", "-o", "show", "partition", PARTITION], check=True).stdout
        assert "Topology=block" in part, part
        # Slurm loaded both topologies: the tree is the cluster default, the blocks are gpupool's.
        assert "SwitchName=" in bed.run(["scontrol", "show", "topology"], check=True).stdout
        shown = bed.run(["scontrol", "show", "topology", "block"], check=True).stdout
    else:
        shown = bed.run(["scontrol", "show", "topology"], check=True).stdout
    base = re.findall(r"^BlockName=\S+ .*?Nodes=(\S+) BlockSize=(\d+)", shown, re.M)
    assert [expand(nodes) for nodes, _size in base] == blocks, shown
    aggregated = re.findall(r"^AggregatedBlock=\S+ .*?Nodes=(\S+) BlockSize=(\d+)", shown, re.M)
    sizes = sorted({int(size) for _n, size in base + aggregated})
    assert sizes == block_sizes, shown
    for nodes, size in aggregated:  # aligned runs of consecutive base blocks
        members = expand(nodes)
        first = next(i for i, b in enumerate(blocks) if b[0] == members[0])
        width = int(size) // len(blocks[0])
        assert first % width == 0 and members == [h for b in blocks[first:first + width] for h in b]
    seed = int(os.environ.get("GPUPOOL_TEST_BLOCK_SEED", "13"))
    rng = random.Random(seed)
    states = int(os.environ.get("GPUPOOL_TEST_BLOCK_STATES", "30"))
    drained: list[str] = []
    compared = fewer = submitted = reference_same = 0
    seg_rng = random.Random(seed + 1)  # segment cases draw apart: the states stay those of the seed
    seg = {"compared": 0, "slurm_now": 0, "reference_same": 0, "fewer": 0, "submitted": 0}
    spent = {"state+test-only": 0.0, "plan": 0.0, "submit": 0.0, "segment": 0.0}
    report: list[str] = []
    for case in range(3 * states):
        if compared >= states:
            break
        now = sorted(rng.sample(bed.nodes, rng.randint(NODES // 8, NODES // 4)))
        mark = time.monotonic()
        set_drained(bed, now, drained)
        drained = now
        nodes = rng.randint(2, 30)
        theirs = slurm_choice(bed, nodes, k)
        spent["state+test-only"] += time.monotonic() - mark
        if theirs is None:  # Slurm would not start it now: nothing to compare
            report.append(f"{case}: {nodes} nodes: Slurm would not start it now")
            continue
        mark = time.monotonic()
        proc = bed.run(["gpupool", "plan", "--partition", PARTITION, "--nodes", str(nodes), "--gpus-per-node", str(k),
                        "--json"], timeout=120)
        spent["plan"] += time.monotonic() - mark
        assert proc.returncode in (0, 1), proc.stderr
        doc = json.loads(proc.stdout)
        assert doc["topology"]["kind"] == "block" and doc["topology"]["block_sizes"] == sizes, doc["topology"]
        assert doc["feasible"], f"state {case}: Slurm starts {nodes} nodes on {theirs}, gpupool: {doc.get('error')}"
        reference_same += sorted(doc["slurm_reference"]["allocation"]) == sorted(theirs)
        ours = list(doc["allocation"])
        assert not set(ours) & set(drained)
        mine, slurm = blocks_used(blocks, ours), blocks_used(blocks, theirs)
        report.append(f"{case}: {nodes} nodes: gpupool {mine} blocks, Slurm {slurm} blocks")
        assert mine <= slurm, f"state {case}: gpupool {ours} uses {mine} blocks, Slurm {theirs} {slurm}"
        compared += 1
        fewer += mine < slurm
        if compared % 5 == 2:  # about 6 of the 30 states: the same state with --segment
            mark = time.monotonic()
            check_segment(bed, blocks, drained, seg_rng, seg, report, case)
            spent["segment"] += time.monotonic() - mark
        if compared % 10 == 1:
            mark = time.monotonic()
            proc = bed.run(["gpupool", "submit", "--partition", PARTITION, "--nodes", str(nodes), "--gpus-per-node",
                            str(k), "--json", "--", "--wrap", "sleep 60"], timeout=120)
            assert proc.returncode == 0, proc.stderr
            out = json.loads(proc.stdout)
            assert out["job_state"] == "RUNNING", out
            ran = bed.run(["squeue", "-h", "-j", out["job_id"], "-o", "%N"], check=True).stdout.strip()
            assert sorted(expand(ran)) == sorted(ours), f"job {out['job_id']} ran on {ran}, planned {ours}"
            bed.cancel_all()
            wait_until(lambda: all(s.startswith(("idle", "drain")) for s, _ in bed.node_states().values()), 60,
                       message="nodes free again")
            submitted += 1
            spent["submit"] += time.monotonic() - mark
    print("\n".join(report))
    print(f"compared {compared} states, gpupool fewer blocks in {fewer}, gpupool's model of Slurm's choice "
          f"exact in {reference_same}, submitted {submitted}, {time.monotonic() - started:.0f}s "
          f"({', '.join(f'{key} {value:.0f}s' for key, value in spent.items())})")
    print(f"--segment: compared {seg['compared']} states, Slurm could start {seg['slurm_now']} now, gpupool "
          f"fewer blocks in {seg['fewer']}, gpupool's model exact in {seg['reference_same']}, "
          f"submitted {seg['submitted']}")
    assert compared >= states, f"only {compared} of {case + 1} states could start now"
    if states >= 20:
        assert seg["compared"] >= 4 and seg["submitted"] >= 1, seg
    assert submitted >= 1
    # The simulator's slurm-block policy is this model: it must pick Slurm's own nodes (issue #16: >= 95%).
    assert reference_same >= 0.95 * compared, f"model of Slurm's block choice exact in {reference_same}/{compared}"

    # Nothing fits now (one busy node in every block), everything would later: gpupool submits
    # without a node list and without --switches, waiting for whole base blocks with --segment.
    set_drained(bed, [], drained)
    for members in blocks:
        bed.run(["sbatch", "-p", PARTITION, "-N", "1", "-w", members[0], f"--gres=gpu:{k}", "--wrap", "sleep 300"],
                check=True)
    wait_until(lambda: len(bed.run(["squeue", "-h", "-t", "R", "-o", "%i"]).stdout.split()) == len(blocks),
               60, message="one running job per block")
    size = len(blocks[0])
    proc = bed.run(["gpupool", "submit", "--partition", PARTITION, "--nodes", str(2 * size), "--gpus-per-node",
                    str(k), "--json", "--", "--wrap", "sleep 60"], timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["mode"] == "wait-block" and f"--segment={size}" in out["sbatch"], out
    assert not any(a.startswith(("--switches", "--nodelist")) for a in out["sbatch"]), out
    state = bed.run(["squeue", "-h", "-j", out["job_id"], "-o", "%T"], check=True).stdout.strip()
    assert state == "PENDING", state  # Slurm accepted --segment and waits
    # explain reads the job's segment: gpupool's marker, or (a plain sbatch job) squeue's JSON from 25.11.
    plain = bed.run(["sbatch", "--parsable", "-p", PARTITION, "-N", str(2 * size), f"--gres=gpu:{k}",
                     f"--segment={size}", "--wrap", "sleep 60"], check=True).stdout.strip().split(";")[0]
    for job_id, expected in ((out["job_id"], size), (plain, size if RELEASE >= (25, 11) else None)):
        proc = bed.run(["gpupool", "explain", job_id, "--json"], timeout=120)
        assert proc.returncode == 0, proc.stderr
        explained = json.loads(proc.stdout)
        assert explained["topology"]["kind"] == "block" and explained["asks"]["segment"] == expected, explained
    bed.cancel_all()


NVL_DOMAINS = [[f"gpu{i:03d}" for i in range(start, start + 18)] for start in (1, 19, 37, 55)]


def test_nvlink_domains_are_the_base_blocks(make_testbed, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """4 NVL72-like NVLink domains (18 hosts x 4 GPUs) under 2 IB leaves: the block file Slurm loads
    has one base block per domain (BlockSizes 18,36,72); on an idle cluster a 72-GPU plan uses exactly
    one domain, under tree and block; over random states, `sbatch --test-only --segment=18` and
    `gpupool plan --segment 18` agree on whether the job starts now and on how many domains it uses,
    gpupool's model of Slurm's choice picks Slurm's own nodes, and a submitted job runs on the plan."""
    from gpupool.fabric.generate import add_generated_domains, fat_tree
    from gpupool.fabric.model import save_fabric

    fab = fat_tree(2, 36, 2)
    add_generated_domains(fab, 18)
    path = tmp_path / "nvl72.json"
    save_fabric(fab, str(path))
    bed: Testbed = make_testbed(72, "--fabric", str(path), "--gpus-per-node", "4",
                                "--topology-yaml" if YAML else "--topology-block")
    k = bed.gpus_per_node
    blocks, block_sizes = blocks_of(bed)
    assert blocks == NVL_DOMAINS and block_sizes == [18, 36, 72], (blocks, block_sizes)
    shown = bed.run(["scontrol", "show", "topology", *(["block"] if YAML else [])], check=True).stdout
    base = re.findall(r"^BlockName=\S+ .*?Nodes=(\S+) BlockSize=(\d+)", shown, re.M)
    assert [expand(nodes) for nodes, _size in base] == NVL_DOMAINS and {s for _n, s in base} == {"18"}, shown

    # Idle: 72 GPUs with no node count fill exactly one domain, under block and (25.05+) under the tree.
    for partition in [PARTITION, *(["gpu"] if YAML else [])]:
        proc = bed.run(["gpupool", "plan", "--partition", partition, "--gpus", "72", "--json"], timeout=120)
        assert proc.returncode == 0, proc.stderr
        doc = json.loads(proc.stdout)
        assert sorted(doc["allocation"]) in NVL_DOMAINS, (partition, doc["allocation"])
        assert doc["cost"]["nvlink_domains"] == 1, doc

    seed = int(os.environ.get("GPUPOOL_TEST_BLOCK_SEED", "13"))
    rng = random.Random(seed)
    states = int(os.environ.get("GPUPOOL_TEST_BLOCK_STATES", "30"))
    drained: list[str] = []
    agree = reference_same = starts = submitted = 0
    report: list[str] = []
    for case in range(states):
        # 0-4 busy hosts in random domains: some domains whole, some not.
        now = sorted({rng.choice(rng.choice(NVL_DOMAINS)) for _ in range(rng.randint(0, 4))})
        set_drained(bed, now, drained)
        drained = now
        nodes = 18 * rng.choice([1, 1, 2])
        theirs = slurm_choice(bed, nodes, k, 18)
        proc = bed.run(["gpupool", "plan", "--partition", PARTITION, "--nodes", str(nodes), "--gpus-per-node", str(k),
                        "--segment", "18", "--json"], timeout=120)
        assert proc.returncode in (0, 1), proc.stderr
        doc = json.loads(proc.stdout)
        whole = sum(1 for d in NVL_DOMAINS if not set(d) & set(now))  # the test's own count of idle domains
        assert doc["feasible"] == (whole >= nodes // 18) == (theirs is not None), (case, now, theirs, doc)
        agree += 1
        if theirs is None:
            report.append(f"{case}: {nodes} nodes --segment=18: {whole} whole domains, neither starts it")
            continue
        starts += 1
        ours = list(doc["allocation"])
        assert blocks_used(NVL_DOMAINS, ours) == blocks_used(NVL_DOMAINS, theirs) == nodes // 18, (ours, theirs)
        assert all(set(d) <= set(ours) or not set(d) & set(ours) for d in NVL_DOMAINS), ours  # whole domains
        assert doc["cost"]["nvlink_domains"] == nodes // 18, doc["cost"]
        reference_same += sorted(doc["slurm_reference"]["allocation"]) == sorted(theirs)
        report.append(f"{case}: {nodes} nodes --segment=18: gpupool {sorted(set(ours))[0]}.., Slurm {theirs[0]}..")
        if submitted == 0:
            proc = bed.run(["gpupool", "submit", "--partition", PARTITION, "--nodes", str(nodes), "--gpus-per-node",
                            str(k), "--json", "--", "--segment=18", "--wrap", "sleep 60"], timeout=120)
            assert proc.returncode == 0, proc.stderr
            out = json.loads(proc.stdout)
            assert out["job_state"] == "RUNNING" and "--segment=18" in out["sbatch"], out
            ran = bed.run(["squeue", "-h", "-j", out["job_id"], "-o", "%N"], check=True).stdout.strip()
            assert sorted(expand(ran)) == sorted(ours), f"job {out['job_id']} ran on {ran}, planned {ours}"
            bed.cancel_all()
            wait_until(lambda: all(s.startswith(("idle", "drain")) for s, _ in bed.node_states().values()), 60,
                       message="nodes free again")
            submitted += 1
    print("\n".join(report))
    print(f"NVLink domains: {agree} states agree, Slurm started {starts}, gpupool's model exact in {reference_same}")
    assert starts >= states // 3 and submitted == 1
    assert reference_same >= 0.95 * starts, f"model of Slurm's segment choice exact in {reference_same}/{starts}"
