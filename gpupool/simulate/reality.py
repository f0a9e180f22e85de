"""The reality check's comparison: what Slurm did with a trace against what the simulator replays from its
sacct export (scripts/reality_check_simulate.py runs the trace on the testbed; CI judges these figures in
tests/integration/test_simulate_testbed.py; docs/simulate.md, "Checks against real Slurm").
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from gpupool.simulate.core import SimConfig
from gpupool.simulate.scheduler import Simulator
from gpupool.simulate.speed import ClassFactors, SpeedModel
from gpupool.simulate.workload import read_workload

if TYPE_CHECKING:
    from gpupool.fabric.compiled import CompiledFabric


def compare_with_reality(export_path: str, compiled: CompiledFabric, real_nodes: dict[str, list[str]],
                         real_start: dict[str, float], policy: str, modes: dict[str, str] | None = None,
                         backfill: str = "slurm", whole_hosts: bool = True, by_policy: bool = True) -> dict[str, Any]:
    """Replay the sacct -P export at `export_path` with `policy` and compare, per job, the node set Slurm
    chose (`real_nodes`, sorted names) and, per pair of jobs, the order they started in (`real_start`,
    epoch seconds); `modes`: gpupool submit's mode per job id, reported per mode."""
    # No speed model: the export's elapsed times are what happened on these very placements.
    still = SpeedModel(classes={"default": ClassFactors(per_extra_leaf=0.0, per_extra_group=0.0)})
    config = SimConfig(gpus_per_host=8, record_starts=True, backfill=backfill, reserve_whole_hosts=whole_hosts,
                       reserve_by_policy=by_policy)
    sim = Simulator(compiled, policy, config, still)
    jobs = list(read_workload(export_path, "sacct"))
    sim.run(jobs)
    # Until the first job ends, both sides place on nearly the same state (an idle cluster plus the jobs
    # started so far); after it, end times a second apart change ties and the difference cascades.
    first_end = min((real_start[j.job_id] + j.duration for j in jobs if j.job_id in real_start), default=math.inf)
    waited = sum(real_start.get(j.job_id, j.submit) - j.submit >= 2 for j in jobs)  # queued in reality
    sim_start = {job_id: start for job_id, start, _ in sim.starts}
    sim_nodes = {job_id: sorted(hosts) for job_id, _, hosts in sim.starts}
    common = sorted(set(sim_start) & set(real_start), key=int)
    same_nodes = sum(sim_nodes[j] == real_nodes[j] for j in common)
    # Equally good placements: the same number of leaf switches (ties among equal choices break differently
    # once one earlier job ended a second apart, so exact node sets drift while the shapes still agree).
    index = compiled.host_index()
    leaf = compiled.host_tree_leaf.tolist()

    def leaves(hosts: list[str]) -> int:
        return len({leaf[index[h]] for h in hosts})

    same_leaves = sum(leaves(sim_nodes[j]) == leaves(real_nodes[j]) for j in common)
    multi = [j for j in common if len(real_nodes[j]) > 1]
    same_multi = sum(sim_nodes[j] == real_nodes[j] for j in multi)
    early = [j for j in common if real_start[j] < first_end]
    same_early = sum(sim_nodes[j] == real_nodes[j] for j in early)
    pairs = agree = 0
    for i, a in enumerate(common):
        for b in common[i + 1:]:
            real = real_start[a] - real_start[b]
            if real == 0:
                continue
            pairs += 1
            agree += (sim_start[a] - sim_start[b]) * real > 0 or sim_start[a] == sim_start[b]
    waits_real = [real_start[j] for j in common]
    by_mode: dict[str, dict[str, int]] = {}
    for j in common:
        if modes and j in modes:
            row = by_mode.setdefault(modes[j], {"jobs": 0, "same_nodes": 0, "same_leaf_count": 0})
            row["jobs"] += 1
            row["same_nodes"] += sim_nodes[j] == real_nodes[j]
            row["same_leaf_count"] += leaves(sim_nodes[j]) == leaves(real_nodes[j])
    return {"policy": policy, "backfill": backfill, "jobs": len(common), "same_nodes": same_nodes,
            "same_nodes_share": round(same_nodes / len(common), 4) if common else None,
            "same_leaf_count": same_leaves, "same_leaf_count_share": round(same_leaves / len(common), 4) if common else None,
            "multi_node_jobs": len(multi), "multi_node_same_nodes": same_multi,
            "started_before_first_end": len(early), "started_before_first_end_same_nodes": same_early,
            "start_order_pairs": pairs, "start_order_agree": agree,
            "start_order_share": round(agree / pairs, 4) if pairs else None,
            "real_span_s": max(waits_real) - min(waits_real) if waits_real else 0,
            "jobs_that_waited_2s_or_more": waited,
            **({"same_nodes_by_submit_mode": by_mode} if by_mode else {})}
