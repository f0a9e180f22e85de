#!/usr/bin/env python3
"""Simulator benchmark: a 50,000-job synthetic trace on a 1,024-host fat-tree, one policy.

    PYTHONPATH=. .venv/bin/python scripts/bench_simulate.py [--jobs 50000] [--policy gpupool] [--backfill slurm|easy]
        [--speed-model isolated|contention|both] [--quick] [--json]

Prints simulated jobs per second (the JIT is warmed on a small run first, so compile time is not
counted), the ratio to the target of 1,000 jobs/s, and peak RSS. The rate is given per wall-clock
second and per CPU second of this process (one thread): on a shared machine the CPU figure is the
one-core speed, and the target is judged on it. Memory must stay flat in the trace
length: the trace is streamed and the metrics are fixed-size, so RSS is also reported after a run
of a tenth of the jobs; the two should be close. One row per speed model (default both: the
isolated model, then the contention model on the same fabric, whose leaves are 2:1 oversubscribed:
32 hosts under 16 spine cables). Exit 1 when the target is missed by any row.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

from gpupool.fabric.compiled import compile_fabric
from gpupool.fabric.generate import fat_tree
from gpupool.simulate.policies import REGISTRY
from gpupool.simulate.scheduler import SimConfig, Simulator
from gpupool.simulate.speed import SpeedModel
from gpupool.simulate.synthetic import SyntheticSpec, synthetic_jobs

TARGET_JOBS_PER_SECOND = 1000.0
GPUS_PER_HOST = 8


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def run(compiled: object, policy: str, jobs: int, seed: int, backfill: str,
        model: str) -> tuple[float, float, dict[str, object]]:
    spec = SyntheticSpec(jobs=jobs, seed=seed)
    config = SimConfig(gpus_per_host=GPUS_PER_HOST, backfill=backfill)
    sim = Simulator(compiled, policy, config, SpeedModel(model=model))  # type: ignore[arg-type]
    trace = synthetic_jobs(spec, total_gpus=sim.metrics.total_gpus, gpus_per_host=GPUS_PER_HOST)
    start, cpu = time.perf_counter(), time.process_time()
    sim.run(trace)
    return time.perf_counter() - start, time.process_time() - cpu, sim.metrics.to_json()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=50_000)
    parser.add_argument("--policy", default="gpupool", choices=REGISTRY.names(pools=False))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--backfill", default="easy", choices=("easy", "slurm"))
    parser.add_argument("--speed-model", default="both", choices=("isolated", "contention", "both"))
    parser.add_argument("--quick", action="store_true", help="5,000 jobs (CI smoke test)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    jobs = 5_000 if args.quick else args.jobs
    compiled = compile_fabric(fat_tree(32, 32, 16))  # 1,024 hosts, 32 leaves, 8,192 GPUs
    models = ("isolated", "contention") if args.speed_model == "both" else (args.speed_model,)
    ok = True
    for model in models:
        ok = bench(compiled, args, jobs, model) and ok
    return 0 if ok else 1


def bench(compiled: object, args: argparse.Namespace, jobs: int, model: str) -> bool:
    run(compiled, args.policy, 200, args.seed + 1, args.backfill, model)  # warm the placement kernels' JIT
    small_seconds, _cpu, _ = run(compiled, args.policy, max(jobs // 10, 1), args.seed, args.backfill, model)
    rss_small = peak_rss_mib()
    seconds, cpu_seconds, metrics = run(compiled, args.policy, jobs, args.seed, args.backfill, model)
    rss = peak_rss_mib()
    wall_rate = jobs / seconds if seconds > 0 else float("inf")
    rate = jobs / cpu_seconds if cpu_seconds > 0 else float("inf")
    doc = {"hosts": 1024, "jobs": jobs, "policy": args.policy, "backfill": args.backfill, "speed_model": model,
           "seconds": round(seconds, 3),
           "cpu_seconds": round(cpu_seconds, 3), "jobs_per_wall_second": round(wall_rate, 1),
           "jobs_per_second": round(rate, 1), "target_jobs_per_second": TARGET_JOBS_PER_SECOND,
           "ratio_to_target": round(rate / TARGET_JOBS_PER_SECOND, 3), "peak_rss_mib": round(rss, 1),
           "peak_rss_mib_after_tenth": round(rss_small, 1), "tenth_seconds": round(small_seconds, 3),
           "gpu_utilisation": metrics["gpu_utilisation"], "mean_wait_s": metrics["wait_s"]["mean"],  # type: ignore[index]
           "mean_contention_slowdown_multi_node": metrics["mean_contention_slowdown_multi_node"]}
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(f"== simulate: {jobs:,} synthetic jobs on a 1,024-host fat-tree, policy {args.policy}, "
              f"{args.backfill} backfill, {model} speed model ==")
        print(f"{rate:,.0f} simulated jobs per CPU second ({cpu_seconds:.1f} CPU s): "
              f"{rate / TARGET_JOBS_PER_SECOND:.2f}x the target of {TARGET_JOBS_PER_SECOND:,.0f} jobs/s on one core")
        print(f"{wall_rate:,.0f} jobs per wall-clock second ({seconds:.1f} s; {os.getloadavg()[0]:.1f} load average)")
        print(f"peak RSS {rss:.0f} MiB (after the {jobs // 10:,}-job run: {rss_small:.0f} MiB)")
        print(f"trace: GPU utilisation {doc['gpu_utilisation']}, mean wait {doc['mean_wait_s']} s"
              + (f", contention slowdown per multi-node job {doc['mean_contention_slowdown_multi_node']}"
                 if model == "contention" else ""))
    return rate >= TARGET_JOBS_PER_SECOND


if __name__ == "__main__":
    sys.exit(main())
