#!/usr/bin/env python3
"""Does gpupool's placement pay off for the cluster? Paired seeds, per fabric and workload, vs slurm-tree.

    .venv/bin/python scripts/bench_value.py [--seeds 10] [--jobs 1500] [--fabrics ft2,ft3,rail8,dragonfly,selene]
        [--workloads multi,packing] [--policies slurm-tree,slurm-block,gpupool-hops,gpupool-pack]
        [--hop-slack 0] [--contention off|on|FABRIC:on,...] [--cache DIR] [--json FILE]

Every policy replays the same synthetic trace per seed (EASY backfill, the isolated speed model), so
the comparison is paired: per metric (mean wait, p95 wait, mean JCT) the ratio of the policy's mean over
seeds to slurm-tree's, with the 95% delta-method interval of the paired differences (`simulate.stats`,
as `gpupool simulate --seeds` prints it; the issue's "summed over traces"); the JSON also keeps the mean
of the per-seed ratios with its t-interval. A ratio below 1 is better than slurm-tree; an interval
containing 1 is no significant difference.
Fabrics (128 hosts x 8 GPUs unless said): ft2 = 2-level fat-tree 16 leaves x 8 hosts (4 spines, 2:1);
ft2-1to1 = the same with 2 spines x 4 parallel cables (1:1); ft2-4to1 = 2 spines x 1 cable (4:1);
ft3 = 3-level, 4 pods x 4 leaves x 8 hosts (leaves 2:1, pods 8:1); rail8 = rail-optimised, 16 leaf
positions x 8 hosts x 8 rails; dragonfly = 8 groups x 4 routers x 4 hosts, 2 global links per router;
selene = tests/fixtures' Selene capture (when present). `--contention on` replays with the link
contention model (`gpupool simulate --contention on`) instead of the isolated one; `FABRIC:on` sets it
per fabric. `--cache DIR` keeps each run's metrics (one JSON per fabric, workload, model, policy,
jobs and seed), so a later call with another policy reuses the paired baselines.
`slurm-tree-shuffled` (bench only) is slurm-tree with ties between hosts of one leaf broken at random: its
row is the noise floor, how far two equally good placements drift apart on one trace.
Workloads: multi = `synthetic:multi=0.3` (load 0.85); multi15, multi-l70, multi15-l70: 15% multi-node jobs
and/or load 0.7; packing = 1-8 GPU jobs only, at load 2 (at the default
load a queue of single-host jobs never builds). gpupool-pack's size mix is, by default, each
workload's own job-size shares (what `--size-history` learns from a site's sacct). slurm-block's
interval is against slurm-tree too.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import replace
from typing import Any

from gpupool.fabric.compiled import CompiledFabric, compile_fabric
from gpupool.fabric.generate import dragonfly, fat_tree
from gpupool.placement.objective import HopSlack, Objective, PlacementGoal, SizeMix, parse_size_mix
from gpupool.simulate.scheduler import SimConfig, Simulator
from gpupool.simulate.speed import SpeedModel
from gpupool.simulate.stats import paired_difference
from gpupool.simulate.synthetic import parse_spec, synthetic_jobs

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
SELENE = os.path.join(REPO, "tests", "fixtures", "ibnetdiscover", "selene-compute-hdr.out")
WORKLOADS = {
    "multi": "synthetic:multi=0.3",
    # The two loads x two multi-node shares, with `multi` (load 0.85, 30% multi-node jobs):
    "multi15": "synthetic:multi=0.15",
    "multi-l70": "synthetic:multi=0.3,load=0.7",
    "multi15-l70": "synthetic:multi=0.15,load=0.7",
    # Single-host jobs only: at the default load the queue never builds, so this one is offered twice the GPUs.
    "packing": "synthetic:multi=0,load=2,single_gpus=1:30/2:20/3:5/4:20/6:5/8:20",
}
METRICS = (("mean wait", "wait_s", "mean"), ("p95 wait", "wait_s", "p95"), ("mean JCT", "jct_s", "mean"))


def make_fabric(name: str) -> CompiledFabric | None:
    if name == "ft2":
        return compile_fabric(fat_tree(16, 8, 4))
    if name == "ft2-1to1":
        return compile_fabric(fat_tree(16, 8, 2, uplinks=4))
    if name == "ft2-4to1":
        return compile_fabric(fat_tree(16, 8, 2))
    if name == "ft3":
        return compile_fabric(fat_tree(4, 8, 4, pods=4, cores=4))
    if name == "rail8":
        return compile_fabric(fat_tree(16, 8, 4, rails=8))
    if name == "dragonfly":
        return compile_fabric(dragonfly(8, 4, 4, 2))
    if name == "selene":
        if not os.path.exists(SELENE):
            return None
        from gpupool.fabric.discover import discover

        return compile_fabric(discover(ibnetdiscover_file=SELENE))
    raise SystemExit(f"unknown fabric {name}")


def learnt_mix(workload: str, gpus_per_host: int = 8) -> SizeMix:
    """The workload's own job-size shares, as `--size-history` would learn them from its sacct history."""
    import numpy as np

    from gpupool.simulate.synthetic import _weights

    spec = parse_spec(workload)
    counts: dict[int, float] = {}
    single_v, single_w = _weights(spec.single_gpus, "single_gpus")
    for v, w in zip(np.minimum(single_v, gpus_per_host).tolist(), single_w.tolist(), strict=True):
        counts[v] = counts.get(v, 0.0) + (1 - spec.multi) * w
    multi_v, multi_w = _weights(spec.multi_nodes, "multi_nodes")
    for v, w in zip(multi_v.tolist(), multi_w.tolist(), strict=True):
        counts[v * gpus_per_host] = counts.get(v * gpus_per_host, 0.0) + spec.multi * w
    return SizeMix.from_counts(counts, f"learnt from {workload}")


def interval(values: list[float]) -> tuple[float, float]:
    """Mean and half-width of the 95% t-interval."""
    from scipy.stats import t

    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, math.inf
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, float(t.ppf(0.975, n - 1)) * sd / math.sqrt(n)


def run_one(compiled: CompiledFabric, policy: str, workload: str, jobs: int, seed: int,
            config: SimConfig, model: str = "isolated", cache: str | None = None,
            cell: str = "") -> dict[str, Any]:
    path = None
    if cache:
        tag = f"{cell}|{workload}|{model}|{policy}|{jobs}|{seed}"
        path = os.path.join(cache, "".join(c if c.isalnum() or c in "-_." else "_" for c in tag) + ".json")
        if os.path.exists(path):
            with open(path, encoding="utf-8") as fh:
                return json.load(fh)
    spec = parse_spec(f"{workload},jobs={jobs},seed={seed}")
    sim = Simulator(compiled, policy, config, SpeedModel(model=model))
    sim.run(synthetic_jobs(spec, total_gpus=sim.metrics.total_gpus, gpus_per_host=config.gpus_per_host))
    result = sim.metrics.to_json()
    if path:
        with open(path + ".tmp", "w", encoding="utf-8") as fh:
            json.dump(result, fh)
        os.replace(path + ".tmp", path)
    return result


def ratio(a: float, b: float) -> float:
    if b <= 0:
        return 1.0 if a <= 0 else math.inf
    return a / b


NOISE_FLOOR = "slurm-tree-shuffled"


def register_noise_floor() -> None:
    """`slurm-tree-shuffled`: slurm-tree with its ties between hosts of a leaf broken at random (seeded), so
    its figures against slurm-tree are the noise floor: how far two equally good policies drift apart on
    the same trace once one tie is broken otherwise (bench only; not a product policy)."""
    import numpy as np

    from gpupool.simulate.placers import chooser_placer, slurm_tree_chooser
    from gpupool.simulate.policies import REGISTRY, SimPolicy, free_strategies

    if NOISE_FLOOR in REGISTRY.names():
        return

    def build(setup):  # type: ignore[no-untyped-def]
        compiled = setup.compiled
        tree = chooser_placer(compiled, slurm_tree_chooser(compiled))
        leaf = compiled.host_tree_leaf.astype(np.int64)
        groups = [np.flatnonzero(leaf == value) for value in np.unique(leaf)]
        order = np.arange(compiled.n_hosts)
        rng = np.random.default_rng(1)

        def placer(free, job):  # type: ignore[no-untyped-def]
            for members in groups:  # position i of the shuffled view is host order[i], of the same leaf
                order[members] = rng.permutation(members)
            choice = tree(free[order], job)
            if choice is None:
                return None
            hosts, gpus, hops = choice
            return order[hosts], gpus, hops
        return free_strategies(placer, setup)
    REGISTRY.register(SimPolicy(NOISE_FLOOR, "slurm-tree, ties broken at random", "bench value only", build))


def compare(runs: list[dict[str, Any]], base: list[dict[str, Any]]) -> tuple[dict[str, Any], str]:
    """Per metric, `runs` against `base` (paired by seed): the row for the JSON and the text of the table."""
    row: dict[str, Any] = {}
    text = ""
    for label, key, q in METRICS:
        ratios = [ratio(r[key][q], b[key][q]) for r, b in zip(runs, base, strict=True)]
        finite = [x for x in ratios if math.isfinite(x)]
        mean, half = interval(finite) if finite else (math.nan, math.nan)
        worse = sum(1 for x in ratios if x > 1.2)
        # Ratio of the means over seeds (summed over traces, as `gpupool simulate --seeds` and the
        # issue's done-when read it), with the delta-method paired interval of simulate.stats.
        diff = paired_difference([r[key][q] for r in runs], [b[key][q] for b in base])
        rel = diff.relative_percent
        rom = 1.0 + (rel.mean or 0.0) / 100.0 if rel is not None else math.nan
        rom_half = (rel.half_width or 0.0) / 100.0 if rel is not None else math.nan
        row[label] = {"ratio_mean": mean, "ci95_half": half, "per_seed": ratios, "seeds_20pct_worse": worse,
                      "ratio_of_means": rom, "ratio_of_means_ci95_half": rom_half}
        text += f"{rom:>12.3f} ± {rom_half:<6.3f}{'*' if abs(rom - 1) > rom_half else ' '}{worse:>3}"
    leaves = [x for x in (r["mean_leaf_switches_multi_node"] for r in runs) if x is not None]
    row["leaf_switches_multi_node"] = sum(leaves) / len(leaves) if leaves else None
    text += f"{row['leaf_switches_multi_node'] or 0:>14.3f}"
    return row, text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=1500)
    parser.add_argument("--fabrics", default="ft2,ft3,rail8,dragonfly,selene")
    parser.add_argument("--workloads", default="multi,packing")
    parser.add_argument("--policies", default="slurm-tree,slurm-block,gpupool-hops,gpupool-pack")
    parser.add_argument("--hop-slack", default="0", help="gpupool-pack's hop slack (N or P%%)")
    parser.add_argument("--size-mix", default="learnt",
                        help="gpupool-pack's size mix: learnt (each workload's own shares), default (the documented "
                             "one), or GPUS:SHARE,...")
    parser.add_argument("--contention", default="off",
                        help="speed model: off (isolated), on (link contention), or FABRIC:on,FABRIC:off,... per fabric")
    parser.add_argument("--against", default="",
                        help="more paired comparisons, POLICY/BASELINE,... (e.g. gpupool/slurm-block), printed "
                             "under each cell's table")
    parser.add_argument("--cache", help="keep (and reuse) each run's metrics in this directory")
    parser.add_argument("--json", dest="json_path", help="write the per-seed figures and intervals here")
    args = parser.parse_args()
    goal = PlacementGoal(objective=Objective.PACK, hop_slack=HopSlack.parse(args.hop_slack))
    if args.size_mix not in ("learnt", "default"):
        goal = replace(goal, size_mix=parse_size_mix(args.size_mix))
    policies = [p for p in args.policies.split(",") if p]
    against = [tuple(item.split("/", 1)) for item in args.against.split(",") if "/" in item]
    if NOISE_FLOOR in policies:
        register_noise_floor()
    if "slurm-tree" not in policies:
        policies.insert(0, "slurm-tree")
    doc: dict[str, Any] = {"seeds": args.seeds, "jobs": args.jobs, "hop_slack": args.hop_slack,
                           "size_mix": args.size_mix, "cells": []}
    if args.cache:
        os.makedirs(args.cache, exist_ok=True)
    contention = {"": args.contention} if ":" not in args.contention else dict(
        item.split(":", 1) for item in args.contention.split(",") if item)
    for fabric_name in args.fabrics.split(","):
        compiled = make_fabric(fabric_name)
        if compiled is None:
            print(f"{fabric_name}: capture not found, skipped")
            continue
        for wname in args.workloads.split(","):
            workload = WORKLOADS[wname]
            mix_goal = replace(goal, size_mix=learnt_mix(workload)) if args.size_mix == "learnt" else goal
            config = SimConfig(pack_goal=mix_goal)
            model = "contention" if contention.get(fabric_name, contention.get("", "off")) == "on" else "isolated"
            started = time.perf_counter()
            per_seed: dict[str, list[dict[str, Any]]] = {p: [] for p in policies}
            for seed in range(1, args.seeds + 1):
                for policy in policies:
                    per_seed[policy].append(run_one(compiled, policy, workload, args.jobs, seed, config, model,
                                                    args.cache, fabric_name))
            cell: dict[str, Any] = {"fabric": fabric_name, "hosts": compiled.n_hosts, "workload": workload,
                                    "speed_model": model,
                                    "size_mix": mix_goal.size_mix.text(), "policies": {}}
            print(f"\n{fabric_name} ({compiled.n_hosts} hosts), {workload}, {model}, jobs={args.jobs}, seeds 1-{args.seeds} "
                  f"({time.perf_counter() - started:.0f} s)")
            print(f"  {'policy':<14}" + "".join(f"{label + ' ratio':>24}" for label, _k, _q in METRICS)
                  + f"{'leaves/multi':>14}")
            base = per_seed["slurm-tree"]
            for policy in policies:
                row, text = compare(per_seed[policy], base)
                cell["policies"][policy] = row
                print(f"  {policy:<14}" + text)
            cell["against"] = {}
            for policy, baseline in against:
                if policy in per_seed and baseline in per_seed and policy != baseline:
                    row, text = compare(per_seed[policy], per_seed[baseline])
                    cell["against"][f"{policy}/{baseline}"] = row
                    print(f"  {policy + ' / ' + baseline:<14}" + text)
            doc["cells"].append(cell)
            sys.stdout.flush()
    print("\nratio = mean over seeds of the policy's figure / mean of slurm-tree's (paired seeds), ± 95% half-width "
          "(delta method; POLICY / BASELINE rows: against that baseline); * = significant; last column per metric: "
          "seeds more than 20% worse than the baseline "
          "(JSON: also the mean of per-seed ratios)")
    if args.json_path:
        with open(args.json_path, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
