#!/usr/bin/env python3
"""Placement benchmark: quality against exhaustive search and Slurm's own choice, then latency.

  (a) fat-trees: the tree DP against brute force on tiny instances, then on random fragmented states
      (requests 2..1,024 GPUs, with and without --gpus-per-node) against the Slurm-tree reference
      and the graph heuristic (an independent upper bound): pair_hops_sum ratios and distributions
  (b) dragonfly: seed-and-grow against brute force (tiny), its lower bound, and Slurm's dragonfly mode
  (c) in-process latency on a 16,384-host fat-tree at 50% random occupancy (256 and 2,048 GPUs)
  (d) whole-process `gpupool plan` with the fabric and JIT caches warm

Exit status 1 when a target is missed. `--quick` runs smaller counts (for CI smoke tests).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from gpupool.errors import InfeasibleError
from gpupool.fabric.compiled import CompiledFabric, compile_fabric, load_compiled
from gpupool.fabric.generate import dragonfly, fat_tree
from gpupool.fabric.model import Fabric, save_fabric
from gpupool.placement.cost import cost_of
from gpupool.placement.engine import place
from gpupool.placement.model import FreeState, Request
from gpupool.placement.slurm_reference import slurm_dragonfly_reference, slurm_tree_reference
from tests.support.oracles import HostGraph, brute_force, graph_of

FAILURES: list[str] = []


def check(ok: bool, what: str) -> str:
    if not ok:
        FAILURES.append(what)
    return "PASS" if ok else "FAIL"


def fragmented(rng: np.random.Generator, n_hosts: int, gpus: int = 8) -> np.ndarray:
    """Free GPUs per host after random jobs: some hosts full, some idle, the rest partly used."""
    busy = rng.uniform(0.2, 0.8)
    used = rng.binomial(gpus, busy, size=n_hosts)
    full = rng.random(n_hosts) < rng.uniform(0.0, 0.4)
    used[full] = gpus
    down = rng.random(n_hosts) < 0.03
    free = gpus - used
    free[down] = 0
    return free.astype(np.int64)


def random_request(rng: np.random.Generator, free: np.ndarray, lo: int, hi: int) -> Request | None:
    total = int(free.sum())
    top = min(hi, total)
    if top < lo:
        return None
    gpus = int(round(np.exp(rng.uniform(np.log(lo), np.log(top)))))
    if rng.random() < 0.5:
        return Request(gpus=max(lo, gpus))
    k = int(rng.choice([1, 2, 4, 8]))
    hosts = int((free >= k).sum())
    nodes = max(1, min(hosts, -(-gpus // k)))
    if nodes * k < lo or hosts == 0:
        return Request(gpus=max(lo, gpus))
    return Request(nodes=nodes, gpus_per_node=k)


def sample_placement(rng: np.random.Generator, compiled: CompiledFabric,
                     max_gpus: int) -> tuple[FreeState, Request, Any] | None:
    """A random fragmented state, a random request of 2..max_gpus GPUs and gpupool's placement; None if infeasible."""
    free = fragmented(rng, compiled.n_hosts)
    request = random_request(rng, free, 2, max_gpus)
    if request is None:
        return None
    state = FreeState.from_arrays(free)
    try:
        return state, request, place(compiled, state, request)
    except InfeasibleError:
        return None


def percentiles(values: list[float]) -> str:
    if not values:
        return "n/a"
    arr = np.asarray(values)
    qs = np.percentile(arr, [0, 50, 90, 99, 100])
    return "min {:.3f}  p50 {:.3f}  p90 {:.3f}  p99 {:.3f}  max {:.3f}  mean {:.3f}".format(*qs, arr.mean())


def histogram(ratios: list[float]) -> str:
    edges = [1.0, 1.0 + 1e-9, 1.05, 1.1, 1.25, 1.5, 2.0, float("inf")]
    labels = ["=1", "(1,1.05]", "(1.05,1.1]", "(1.1,1.25]", "(1.25,1.5]", "(1.5,2]", ">2"]
    arr = np.asarray(ratios)
    counts = [int((arr <= edges[1]).sum())] + [int(((arr > edges[i]) & (arr <= edges[i + 1])).sum())
                                                for i in range(1, len(edges) - 1)]
    return "  ".join(f"{lab}: {c}" for lab, c in zip(labels, counts, strict=True))


# ---------------------------------------------------------------------------
# (a) fat-trees
# ---------------------------------------------------------------------------

def tiny_pair(fabric: Fabric) -> tuple[CompiledFabric, HostGraph]:
    """A fabric as the engine sees it and as the independent oracle (tests/support/oracles.py) sees it."""
    return compile_fabric(fabric), graph_of(fabric)


def brute_check(fabrics: dict[str, tuple[CompiledFabric, HostGraph]], rng: np.random.Generator,
                count: int) -> tuple[int, int, int]:
    """(matches, instances, lower-bound violations) of the engine against exhaustive search."""
    matches = total = violations = 0
    names = sorted(fabrics)
    while total < count:
        compiled, oracle = fabrics[names[total % len(names)]]
        free = rng.integers(0, 3, size=compiled.n_hosts)
        state = FreeState.from_arrays(free)
        if rng.random() < 0.4:
            request = Request(nodes=int(rng.integers(1, max(2, (free > 0).sum() + 1))), gpus_per_node=1)
        else:
            request = Request(gpus=int(rng.integers(2, max(3, free.sum() + 1))))
        try:
            best = brute_force(oracle, dict(zip(compiled.host_names, free.tolist(), strict=True)), request)
        except ValueError:
            continue
        if best is None:
            continue
        placement = place(compiled, state, request)
        total += 1
        matches += (placement.cost.pair_hops_sum, placement.cost.leaf_switches) == best
        if placement.lower_bound is not None and placement.lower_bound > best[0]:
            violations += 1
    return matches, total, violations


def fat_tree_quality(states: int, seed: int) -> None:
    print("== (a) fat-tree quality ==")
    rng = np.random.default_rng(seed)
    tiny = {"2-level": tiny_pair(fat_tree(4, 3, 2)), "3-level": tiny_pair(fat_tree(2, 2, 2, pods=3, cores=2)),
            "rails": tiny_pair(fat_tree(3, 3, 2, rails=2))}
    matches, total, _ = brute_check(tiny, rng, max(50, states // 5))
    share = matches / total if total else 0.0
    print(f"tree DP vs brute force (tiny 2-level / 3-level / rail fabrics): {matches}/{total} exact "
          f"({share:.1%}) [{check(matches == total, 'fat-tree DP != brute force')}]")

    fabrics = {
        "3-level 256 hosts": compile_fabric(fat_tree(8, 8, 4, pods=4, cores=4)),
        "2-level 128 hosts": compile_fabric(fat_tree(16, 8, 8)),
        "rail-optimised 4 rails 128 hosts": compile_fabric(fat_tree(8, 16, 4, rails=4)),
    }
    names = sorted(fabrics)
    ratios: list[float] = []
    by_kind: dict[str, list[float]] = {"--gpus": [], "--gpus-per-node": []}
    worse = not_optimal = heuristic_better = done = slurm_declined = zero_cost = zero_but_slurm = 0
    times: list[float] = []
    while done < states:
        compiled = fabrics[names[done % len(names)]]
        sample = sample_placement(rng, compiled, 1024)
        if sample is None:
            continue
        state, request, placement = sample
        done += 1
        times.append(placement.elapsed_ms)
        not_optimal += not placement.optimal
        # An independent upper bound: the graph heuristic must never beat the exact DP.
        if done % 4 == 0:
            from gpupool.placement import engine

            other = _graph_place(engine, compiled, state, request)
            heuristic_better += other < placement.cost.pair_hops_sum
        reference = slurm_tree_reference(compiled, state, request)
        if reference is None:
            slurm_declined += 1
            continue
        theirs = cost_of(compiled, reference).pair_hops_sum
        ours = placement.cost.pair_hops_sum
        worse += ours > theirs
        if ours == 0:
            zero_cost += 1
            zero_but_slurm += theirs > 0
            continue
        ratio = theirs / ours
        ratios.append(ratio)
        by_kind["--gpus-per-node" if request.gpus_per_node else "--gpus"].append(ratio)
    print(f"random fragmented states: {done} (requests 2..1,024 GPUs; fabrics: {', '.join(names)})")
    exact_share = 1 - (not_optimal + heuristic_better) / done
    print(f"exact optimum (DP, proven): {exact_share:.2%} of states; graph heuristic beat the DP: "
          f"{heuristic_better} times [{check(exact_share >= 0.99, 'fat-tree exact share < 99%')}]")
    print(f"never worse than Slurm-tree reference: worse in {worse} of {len(ratios) + zero_cost} "
          f"[{check(worse == 0, 'worse than Slurm tree')}]; Slurm would not start {slurm_declined}")
    print(f"single-host optimum (pair_hops_sum 0): {zero_cost} states; Slurm spread {zero_but_slurm} of them")
    print(f"Slurm-tree pair_hops_sum / gpupool's (states with cost > 0): {percentiles(ratios)}")
    print(f"  distribution: {histogram(ratios)}")
    print(f"  Slurm above the optimum in "
          f"{(sum(r > 1 for r in ratios) + zero_but_slurm) / max(1, len(ratios) + zero_cost):.1%} of requests")
    for kind, values in by_kind.items():
        print(f"  {kind:16s}: {percentiles(values)}")
    print(f"decision time on these fabrics: {percentiles(times)} ms")


def _graph_place(engine: Any, compiled: CompiledFabric, state: FreeState, request: Request) -> int:
    """pair_hops_sum the seed-and-grow heuristic finds on the same instance."""
    units, need, unit_gpus, per_node = engine.host_units(compiled, state, request)
    tie = np.where(units > 0, state.free_gpus, 0).astype(np.int64) if per_node else np.zeros(units.size, np.int64)
    take, *_ = engine._place_graph(compiled, units, tie, need, unit_gpus, per_node, request, "")
    hosts = np.nonzero(take)[0]
    return cost_of_hosts(compiled, hosts, take[hosts] * unit_gpus)


def cost_of_hosts(compiled: CompiledFabric, hosts: np.ndarray, gpus: np.ndarray) -> int:
    from gpupool.placement.cost import cost_of_arrays

    return cost_of_arrays(compiled, hosts, gpus).pair_hops_sum


# ---------------------------------------------------------------------------
# (b) dragonfly
# ---------------------------------------------------------------------------

def dragonfly_quality(states: int, seed: int) -> None:
    print("== (b) dragonfly quality ==")
    rng = np.random.default_rng(seed + 1)
    tiny = {"dragonfly 3x2x2": tiny_pair(dragonfly(3, 2, 2, 1)), "dragonfly 4x2x1": tiny_pair(dragonfly(4, 2, 1, 2))}
    matches, total, violations = brute_check(tiny, rng, max(50, states // 5))
    print(f"seed-and-grow vs brute force (tiny): {matches}/{total} exact ({matches / max(1, total):.1%}); "
          f"lower bound above optimum: {violations} [{check(violations == 0, 'dragonfly lower bound invalid')}]")
    fabrics = {"dragonfly 9 groups x 4 routers x 4 hosts": compile_fabric(dragonfly(9, 4, 4, 2)),
               "dragonfly 17 groups x 8 routers x 8 hosts": compile_fabric(dragonfly(17, 8, 8, 2))}
    names = sorted(fabrics)
    ratios: list[float] = []
    gaps: list[float] = []
    worse = done = 0
    times: list[float] = []
    while done < states:
        compiled = fabrics[names[done % len(names)]]
        sample = sample_placement(rng, compiled, 512)
        if sample is None:
            continue
        state, request, placement = sample
        reference = slurm_dragonfly_reference(compiled, state, request)
        if reference is None:
            continue
        done += 1
        times.append(placement.elapsed_ms)
        ours = placement.cost.pair_hops_sum
        theirs = cost_of(compiled, reference).pair_hops_sum
        worse += ours > theirs
        if ours:
            ratios.append(theirs / ours)
        if placement.lower_bound:
            gaps.append(ours / placement.lower_bound)
    print(f"random fragmented states: {done} (requests 2..512 GPUs; {', '.join(names)})")
    print(f"never worse than Slurm-dragonfly reference: worse in {worse} of {done} "
          f"[{check(worse == 0, 'worse than Slurm dragonfly')}]")
    mean = float(np.mean(ratios)) if ratios else 0.0
    print(f"Slurm-dragonfly pair_hops_sum / gpupool's: mean {mean:.3f} [{check(mean > 1.0, 'not better on average')}]")
    print(f"  {percentiles(ratios)}")
    print(f"  distribution: {histogram(ratios)}")
    print(f"gpupool / lower bound: {percentiles(gaps)}")
    print(f"decision time: {percentiles(times)} ms")


# ---------------------------------------------------------------------------
# (c) latency in process
# ---------------------------------------------------------------------------

def timed(fn: Callable[[], Any], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000.0)
    return out


def latency(runs: int, seed: int) -> str:
    print("== (c) latency in process, warm ==")
    rng = np.random.default_rng(seed + 2)
    t = time.perf_counter()
    fabric = fat_tree(32, 32, 16, pods=16, cores=16)
    compiled = compile_fabric(fabric)
    print(f"fabric: 3-level fat-tree, {compiled.n_hosts} hosts x 8 GPUs, {compiled.n_switches} switches "
          f"(built and compiled in {time.perf_counter() - t:.1f} s)")
    states = [FreeState.from_arrays(8 - rng.binomial(8, 0.5, size=compiled.n_hosts)) for _ in range(8)]
    place(compiled, states[0], Request(gpus=256))  # JIT / cache load
    results = {}
    for gpus, key, target in ((256, "median", 20.0), (2048, "p99", 100.0)):
        samples: list[float] = []
        for i in range(runs):
            state = states[i % len(states)]
            samples += timed(lambda s=state, g=gpus: place(compiled, s, Request(gpus=g)), 1)
        per_node: list[float] = []
        for i in range(max(5, runs // 4)):
            state = states[i % len(states)]
            per_node += timed(lambda s=state, g=gpus: place(compiled, s, Request(nodes=g // 4, gpus_per_node=4)), 1)
        value = statistics.median(samples) if key == "median" else float(np.percentile(samples, 99))
        results[gpus] = value
        print(f"{gpus:5d} GPUs: {key} {value:.2f} ms (target <= {target:.0f} ms) "
              f"[{check(value <= target, f'{gpus}-GPU {key} latency')}]; all: {percentiles(samples)} ms; "
              f"--gpus-per-node 4: median {statistics.median(per_node):.2f} ms")
    d_rng = np.random.default_rng(seed + 3)
    big_df = compile_fabric(dragonfly(33, 16, 32, 1))
    d_states = [FreeState.from_arrays(8 - d_rng.binomial(8, 0.5, size=big_df.n_hosts)) for _ in range(4)]
    place(big_df, d_states[0], Request(gpus=256))
    samples = []
    for i in range(max(5, runs // 4)):
        samples += timed(lambda s=d_states[i % 4]: place(big_df, s, Request(gpus=256)), 1)
    print(f"(info) dragonfly {big_df.n_hosts} hosts, 256 GPUs: {percentiles(samples)} ms")
    return fabric_to_tmp(fabric)


def fabric_to_tmp(fabric: Any) -> str:
    directory = tempfile.mkdtemp(prefix="gpupool-bench-")
    path = os.path.join(directory, "fabric-16k.json")
    save_fabric(fabric, path)
    return path


# ---------------------------------------------------------------------------
# (d) whole process
# ---------------------------------------------------------------------------

def whole_process(fabric_path: str, runs: int, seed: int) -> None:
    print("== (d) whole-process `gpupool plan`, caches warm ==")
    compiled = load_compiled(fabric_path)  # writes the compiled cache beside the fabric
    rng = np.random.default_rng(seed + 4)
    free = 8 - rng.binomial(8, 0.5, size=compiled.n_hosts)
    free_path = os.path.join(os.path.dirname(fabric_path), "free.json")
    with open(free_path, "w", encoding="utf-8") as handle:
        json.dump({h: int(f) for h, f in zip(compiled.host_names, free, strict=True)}, handle)
    gpupool = os.path.join(os.path.dirname(sys.executable), "gpupool")
    argv = [gpupool, "plan", "--gpus", "256", "--fabric", fabric_path, "--free", free_path, "--json"]
    env = dict(os.environ)
    first = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    if first.returncode != 0:
        print(f"gpupool plan failed: {first.stderr.strip()}")
        check(False, "whole-process plan failed")
        return
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(argv, capture_output=True, text=True, env=env, check=True)
        samples.append(time.perf_counter() - t)
    median = statistics.median(samples)
    doc = json.loads(first.stdout)
    print(f"{compiled.n_hosts}-host fabric, 256 GPUs: median {median:.2f} s over {runs} runs "
          f"(target <= 1.5 s) [{check(median <= 1.5, 'whole-process plan latency')}]; "
          f"pair_hops_sum {doc['cost']['pair_hops_sum']}, Slurm-tree reference "
          f"{doc['slurm_reference']['cost']['pair_hops_sum']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--states", type=int, default=1000, help="random fat-tree states (default 1000)")
    parser.add_argument("--dragonfly-states", type=int, default=400)
    parser.add_argument("--runs", type=int, default=100, help="latency samples per request size")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--quick", action="store_true", help="small counts (smoke test)")
    args = parser.parse_args()
    if args.quick:
        args.states, args.dragonfly_states, args.runs = 60, 40, 10
    start = time.perf_counter()
    fat_tree_quality(args.states, args.seed)
    dragonfly_quality(args.dragonfly_states, args.seed)
    fabric_path = latency(args.runs, args.seed)
    whole_process(fabric_path, 3 if args.quick else 5, args.seed)
    print(f"== placement benchmark: {'all targets met' if not FAILURES else 'MISSED: ' + '; '.join(FAILURES)} "
          f"({time.perf_counter() - start:.0f} s) ==")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
