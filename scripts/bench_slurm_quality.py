#!/usr/bin/env python3
"""Placement quality against Slurm itself: on a fragmented testbed, compare gpupool's
pair_hops_sum with the nodes Slurm would pick (`sbatch --test-only`) for the same request.

    eval "$(scripts/testbed env)"
    PYTHONPATH=. .venv/bin/python scripts/bench_slurm_quality.py --cases 200 [--states 20] [--seed 1] [--json]

Each state: cancel the filler jobs, then fragment the cluster with one filler job per chosen host
(random GPU counts), wait until they all run, then evaluate `cases / states` random requests, half
of the shape `-N n --gres=gpu:K` (n >= 2, so topology matters) and half `--gpus=N` (any shape).
For each request:

- gpupool: the library's placement on Slurm's free state (same code as `gpupool plan`);
- Slurm, per-node requests: `sbatch --test-only -N n --gres=gpu:K` on the same state -> node
  list, each with K GPUs;
- Slurm, `--gpus=N` requests: --test-only names the nodes but not the GPUs per node, so the job is
  really submitted (a probe), its per-node GPUs read from `scontrol -d show job`, then cancelled
  and the GPUs awaited back (the state is the same for both);
- cost of both with the placement library's `cost_of` (docs/contract.md pair_hops_sum).

Requests Slurm cannot start now (it prints a start time in the future) are counted apart.
Prints the distribution of (slurm - gpupool) pair_hops_sum and the share of cases where gpupool
is <= Slurm and strictly lower whenever Slurm is above the optimum (gpupool's tree DP is exact).
Exit 0 when >= 99% of comparable cases have gpupool <= Slurm, else 1.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent

FILLER_NAME = "gpupool-filler"


PROBE_NAME = "gpupool-probe"


@dataclass
class Case:
    state: int
    nodes: int | None
    gpus_per_node: int | None
    gpupool: int | None  # pair_hops_sum, None = no placement now
    slurm: int | None  # None = Slurm would not start it now
    optimal: bool
    gpupool_leaves: int | None = None
    slurm_leaves: int | None = None
    slurm_nodes: str = ""
    gpupool_nodes: str = ""
    gpus: int | None = None  # --gpus=N cases


def run(argv: list[str], timeout: float = 30.0) -> Any:
    from gpupool.slurm.invoke import run as slurm_run

    return slurm_run(argv, timeout=timeout)


def wait(predicate: Any, timeout: float, what: str, interval: float = 0.3) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"bench_slurm_quality: timed out waiting for {what}")
        time.sleep(interval)


def clear_fillers(client: Any) -> None:
    run(["scancel", "--name", FILLER_NAME])
    run(["scancel", "--name", PROBE_NAME])

    def gone() -> bool:
        busy = [j for j in client.jobs() if j.name in (FILLER_NAME, PROBE_NAME)
                and j.state.split("+")[0] in ("RUNNING", "PENDING", "COMPLETING", "CONFIGURING")]
        return not busy and all(n.gpus_used == 0 for n in client.node_states())

    wait(gone, 120, "filler jobs to end")


def fragment(client: Any, rng: random.Random, busy_share: float) -> dict[str, int]:
    """One filler job per chosen host with a random GPU count; returns host -> GPUs used."""
    nodes = [n for n in client.node_states() if n.usable and n.gpus_total]
    used: dict[str, int] = {}
    for node in nodes:
        if rng.random() < busy_share:
            gpus = rng.choice([1, 2, 3, 4, 5, 6, 7, 8, 8]) if node.gpus_total >= 8 else rng.randint(1, node.gpus_total)
            used[node.name] = gpus
            run(["sbatch", "--quiet", f"--job-name={FILLER_NAME}", f"--nodelist={node.name}", "--nodes=1",
                 f"--gres=gpu:{gpus}", "--cpus-per-task=1", "--mem=100", "--output=/dev/null", "--wrap", "sleep 3600"])

    def running() -> bool:
        jobs = [j for j in client.jobs() if j.name == FILLER_NAME and j.state.split("+")[0] == "PENDING"]
        return not jobs

    wait(running, 120, "filler jobs to start")
    return used


def evaluate(client: Any, compiled: Any, state: int, nodes: int, per_node: int, script: str) -> Case:
    from gpupool.errors import InfeasibleError
    from gpupool.hostlist import fold as fold_hostlist
    from gpupool.placement.cost import cost_of
    from gpupool.placement.engine import place
    from gpupool.placement.model import FreeState, Request
    from gpupool.slurm.freestate import free_gpus_for_request

    free = free_gpus_for_request(client.node_states())
    ours = None
    try:
        ours = place(compiled, FreeState.from_dict(compiled, free, ignore_unknown=True),
                     Request(gpus_per_node=per_node, nodes=nodes))
    except InfeasibleError:
        ours = None
    test = client.test_only([f"--nodes={nodes}", f"--gres=gpu:{per_node}", "--cpus-per-task=1", "--mem=100"],
                            script)
    theirs = None
    if test.starts_now:
        theirs = cost_of(compiled, dict.fromkeys(test.nodes, per_node))
    return Case(state=state, nodes=nodes, gpus_per_node=per_node,
                gpupool=ours.cost.pair_hops_sum if ours else None,
                slurm=theirs.pair_hops_sum if theirs else None,
                optimal=bool(ours and ours.optimal),
                gpupool_leaves=ours.cost.leaf_switches if ours else None,
                slurm_leaves=theirs.leaf_switches if theirs else None,
                slurm_nodes=fold_hostlist(test.nodes) if test.starts_now else "",
                gpupool_nodes=fold_hostlist(ours.allocation) if ours else "")


def probe_total(client: Any, compiled: Any, gpus: int, timeout: float = 20.0) -> tuple[dict[str, int] | None, float]:
    """Submit `--gpus=N` for real, return Slurm's allocation {host: gpus} (None if it does not start)."""
    from gpupool.slurm.parse import parse_sbatch_output

    before = {n.name: n.gpus_used for n in client.node_states()}
    proc = run(["sbatch", f"--job-name={PROBE_NAME}", f"--gpus={gpus}", "--cpus-per-gpu=1", "--mem-per-gpu=100",
                "--output=/dev/null", "--wrap", "sleep 3600"])
    job_id, _ = parse_sbatch_output(proc.stdout)
    allocation = None
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            job = client.job(job_id)
            base = job.state.split("+")[0]
            if base == "RUNNING":
                allocation = dict(job.allocation)
                break
            if base == "PENDING" and job.reason not in ("None", ""):
                break  # Slurm would not start it now
            time.sleep(0.2)
    finally:
        run(["scancel", job_id])
    if allocation:
        def released() -> bool:
            now = {n.name: n.gpus_used for n in client.node_states()}
            return all(now[h] <= before.get(h, 0) for h in allocation)
        wait(released, 60, f"probe job {job_id} to release its GPUs")
    return allocation, 0.0


def evaluate_total(client: Any, compiled: Any, state: int, gpus: int) -> Case:
    from gpupool.errors import InfeasibleError
    from gpupool.hostlist import fold as fold_hostlist
    from gpupool.placement.cost import cost_of
    from gpupool.placement.engine import place
    from gpupool.placement.model import FreeState, Request
    from gpupool.slurm.freestate import free_gpus_for_request

    free = free_gpus_for_request(client.node_states())
    try:
        ours = place(compiled, FreeState.from_dict(compiled, free, ignore_unknown=True), Request(gpus=gpus))
    except InfeasibleError:
        ours = None
    allocation, _ = probe_total(client, compiled, gpus)
    theirs = cost_of(compiled, allocation) if allocation else None
    return Case(state=state, nodes=None, gpus_per_node=None, gpus=gpus,
                gpupool=ours.cost.pair_hops_sum if ours else None,
                slurm=theirs.pair_hops_sum if theirs else None,
                optimal=bool(ours and ours.optimal),
                gpupool_leaves=ours.cost.leaf_switches if ours else None,
                slurm_leaves=theirs.leaf_switches if theirs else None,
                slurm_nodes=fold_hostlist(allocation) if allocation else "",
                gpupool_nodes=fold_hostlist(ours.allocation) if ours else "")


def summarize(cases: list[Case]) -> dict[str, Any]:
    both = [c for c in cases if c.gpupool is not None and c.slurm is not None]
    only_ours = [c for c in cases if c.gpupool is not None and c.slurm is None]
    only_slurm = [c for c in cases if c.gpupool is None and c.slurm is not None]
    neither = [c for c in cases if c.gpupool is None and c.slurm is None]
    le = [c for c in both if c.gpupool <= c.slurm]  # type: ignore[operator]
    lt = [c for c in both if c.gpupool < c.slurm]  # type: ignore[operator]
    gt = [c for c in both if c.gpupool > c.slurm]  # type: ignore[operator]
    # gpupool's result is proven optimal on trees: Slurm above it means Slurm is above the optimum.
    above_opt = [c for c in both if c.optimal and c.slurm > c.gpupool]  # type: ignore[operator]
    diffs = Counter(c.slurm - c.gpupool for c in both)  # type: ignore[operator]
    ratios = sorted(c.slurm / c.gpupool for c in both if c.gpupool)  # type: ignore[operator]
    return {
        "cases": len(cases), "comparable": len(both),
        "gpupool_le_slurm": len(le), "gpupool_lt_slurm": len(lt), "gpupool_gt_slurm": len(gt),
        "share_le": round(len(le) / len(both), 4) if both else None,
        "slurm_above_optimum": len(above_opt),
        "strictly_lower_where_slurm_above_optimum": all(c.gpupool < c.slurm for c in above_opt),  # type: ignore[operator]
        "only_gpupool_feasible": len(only_ours), "only_slurm_feasible": len(only_slurm), "neither": len(neither),
        "proven_optimal": sum(c.optimal for c in both),
        "diff_distribution": {str(k): v for k, v in sorted(diffs.items())},
        "ratio_slurm_over_gpupool": {
            "median": ratios[len(ratios) // 2] if ratios else None,
            "p90": ratios[int(len(ratios) * 0.9)] if ratios else None,
            "max": ratios[-1] if ratios else None,
        },
        "leaf_switches_total": {"gpupool": sum(c.gpupool_leaves or 0 for c in both),
                                "slurm": sum(c.slurm_leaves or 0 for c in both)},
    }


def run_benchmark(cases: int, states: int, seed: int, busy_share: float = 0.6,
                  max_nodes: int = 8, progress: bool = True, total_share: float = 0.5) -> tuple[list[Case], dict[str, Any]]:
    from gpupool.config import resolve_fabric_path
    from gpupool.fabric.compiled import load_compiled
    from gpupool.slurm.commands import CommandsClient

    client = CommandsClient(timeout=30)
    compiled = load_compiled(resolve_fabric_path(None))
    rng = random.Random(seed)
    out: list[Case] = []
    with tempfile.TemporaryDirectory(prefix="gpupool-bench-") as tmp:
        script = os.path.join(tmp, "job.sh")
        Path(script).write_text("#!/bin/sh\nsleep 1\n")
        per_state = max(1, -(-cases // states))
        state = 0
        try:
            while len(out) < cases:
                clear_fillers(client)
                fragment(client, rng, busy_share)
                for _ in range(min(per_state, cases - len(out))):
                    if total_share and rng.random() < total_share:
                        out.append(evaluate_total(client, compiled, state, rng.randint(3, 8 * max_nodes // 2)))
                        continue
                    nodes = rng.randint(2, max_nodes)
                    per_node = rng.choice([1, 2, 4, 4, 8, 8])
                    out.append(evaluate(client, compiled, state, nodes, per_node, script))
                if progress:
                    print(f"state {state}: {len(out)}/{cases} cases", file=sys.stderr)
                state += 1
        finally:
            clear_fillers(client)
    return out, summarize(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--states", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--busy-share", type=float, default=0.6, help="share of hosts given a filler job")
    parser.add_argument("--max-nodes", type=int, default=8)
    parser.add_argument("--total-share", type=float, default=0.5,
                        help="share of --gpus=N cases (probed by real submission) among all cases")
    parser.add_argument("--json", action="store_true", help="print the summary and every case as JSON")
    args = parser.parse_args()
    if not os.environ.get("SLURM_CONF"):
        print("bench_slurm_quality: SLURM_CONF is not set; run eval \"$(scripts/testbed env)\" first",
              file=sys.stderr)
        return 3
    start = time.monotonic()
    cases, summary = run_benchmark(args.cases, args.states, args.seed, args.busy_share, args.max_nodes,
                                   total_share=args.total_share)
    summary["elapsed_s"] = round(time.monotonic() - start, 1)
    if args.json:
        print(json.dumps({"summary": summary, "cases": [asdict(c) for c in cases]}, indent=2))
    else:
        print(f"cases {summary['cases']}, comparable {summary['comparable']} "
              f"(only gpupool feasible {summary['only_gpupool_feasible']}, only Slurm "
              f"{summary['only_slurm_feasible']}, neither {summary['neither']})")
        print(f"gpupool <= Slurm: {summary['gpupool_le_slurm']} ({summary['share_le']:.1%}); "
              f"strictly lower: {summary['gpupool_lt_slurm']}; higher: {summary['gpupool_gt_slurm']}")
        print(f"Slurm above the optimum in {summary['slurm_above_optimum']} cases; gpupool strictly lower in all "
              f"of them: {summary['strictly_lower_where_slurm_above_optimum']}")
        print("distribution of Slurm - gpupool pair_hops_sum:")
        for diff, count in summary["diff_distribution"].items():
            print(f"  {int(diff):>7d}: {count:4d} {'#' * min(60, count)}")
        r = summary["ratio_slurm_over_gpupool"]
        if r["median"] is not None:
            print(f"Slurm / gpupool pair_hops_sum: median {r['median']:.3f}, p90 {r['p90']:.3f}, max {r['max']:.3f}")
        print(f"leaf switches (sum): gpupool {summary['leaf_switches_total']['gpupool']}, "
              f"Slurm {summary['leaf_switches_total']['slurm']}; elapsed {summary['elapsed_s']}s")
    share = summary["share_le"]
    return 0 if share is not None and share >= 0.99 else 1


if __name__ == "__main__":
    sys.exit(main())
