#!/usr/bin/env python3
"""Pin the simulator's results on small bench traces, to prove a core refactor changes nothing.

    PYTHONPATH=$PWD .venv/bin/python scripts/pin_simulate.py [--set core|heavy] [--out FILE]

`--set core` (default: tests/fixtures/simulate/pin-core.json): a 300-job synthetic trace and the sacct fixtures,
every policy, both backfill models, contention off and on. `--set heavy` (pin-core-heavy.json): two loaded
synthetic traces (load 1.3-1.4, short limits, many small borrowers) that reach backfill spare-GPU accounting
and preemption victim order, for the policies and models that exercise them, contention off.

Every case (fabric x workload x policy x backfill x contention) is replayed and its full metric state is
written: every scalar of `PolicyMetrics` (floats as exact JSON doubles), each histogram's count, sum,
max and a SHA-256 of its bins, the utilisation series, the pool tallies, the trace counts, and a
SHA-256 of the (job id, start, hosts) of every start. tests/unit/test_simulate_pin.py replays the
same cases from the parameters stored in the file and asserts bit-identical state. The pin is
written once by the code before a refactor (see tests/fixtures/simulate/README.md for the commit);
never regenerate it to make that test pass.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from typing import Any

CASE_FABRIC = {"leaves": 4, "hosts_per_leaf": 8, "spines": 2}  # 32 hosts x 8 GPUs, 2:1 oversubscribed leaves
POOLS = [  # name, first host, hosts, owners, lend_limit, min_runtime
    ("vision", 0, 12, ["vision"], None, 0.0),
    ("nlp", 12, 10, ["nlp"], 24, 600.0),
    ("open", 22, 10, [], None, 0.0),
]
SYNTHETIC = {"jobs": 300, "seed": 7, "load": 0.95, "multi": 0.25, "multi_nodes": "2:45/4:30/8:15/16:10",
             "median_s": 1200.0, "accounts": "vision:40/nlp:35/speech:25"}
HEAVY = [
    {"kind": "synthetic", "jobs": 600, "seed": 5, "load": 1.3, "multi": 0.15, "single_gpus": "1:50/2:30/4:20",
     "multi_nodes": "2:50/4:30/8:20", "median_s": 1500.0, "overestimate": 1.5, "accounts": "vision:45/nlp:45/speech:10"},
    {"kind": "synthetic", "jobs": 500, "seed": 3, "load": 1.4, "multi": 0.3, "multi_nodes": "2:40/4:30/8:20/16:10",
     "median_s": 900.0, "overestimate": 1.5, "accounts": "vision:40/nlp:35/speech:25"},
]
HEAVY_POLICIES = ["slurm-tree", "gpupool", "gpupool-wait", "pools-nolend", "pools-lend"]
WORKLOADS = [
    {"kind": "synthetic", **SYNTHETIC},
    {"kind": "file", "path": "tests/fixtures/simulate/sacct-P-22.05.txt", "format": "sacct"},
    {"kind": "file", "path": "tests/fixtures/simulate/sacct-json-22.05.json", "format": "sacct-json"},
]
POLICIES = ["slurm-tree", "slurm-block", "slurm-tuned", "gpupool", "gpupool-wait", "gpupool-hops", "gpupool-pack",
            "pools-nolend", "pools-lend"]


def histogram_state(h: Any) -> dict[str, Any]:
    return {"count": h.count, "total": h.total, "small_total": h.small_total, "max": h.max,
            "bins_sha256": hashlib.sha256(h.bins.astype("<i8").tobytes()).hexdigest()}


def metrics_state(m: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in sorted(vars(m).items()):
        if hasattr(value, "bins"):
            out[name] = histogram_state(value)
        elif name == "wait_by_size":
            out[name] = {k: histogram_state(v) for k, v in sorted(value.items())}
        elif name.startswith("series_"):
            out[name] = [[k, v] for k, v in sorted(value.items())]
        else:
            out[name] = value
    return out


def starts_digest(starts: list[tuple[str, float, list[str]]]) -> dict[str, Any]:
    text = json.dumps([[j, s, h] for j, s, h in starts], separators=(",", ":"))
    return {"starts": len(starts), "starts_sha256": hashlib.sha256(text.encode()).hexdigest()}


def run_case(case: dict[str, Any]) -> dict[str, Any]:
    """Replay one case with the core of this checkout: before issue #28's refactor (the pins were written so, at
    commit b6ece22) a PooledSimulator subclass ran the pool policies; after it, Simulator(..., layout=) does."""
    from gpupool.fabric.compiled import compile_fabric
    from gpupool.fabric.generate import fat_tree
    from gpupool.simulate.pooled import PoolLayout, PoolUnit, pool_tallies
    from gpupool.simulate.scheduler import SimConfig, Simulator, TraceCounts
    from gpupool.simulate.speed import SpeedModel
    from gpupool.simulate.synthetic import SyntheticSpec, synthetic_jobs
    from gpupool.simulate.workload import read_workload

    f = case["fabric"]
    compiled = compile_fabric(fat_tree(f["leaves"], f["hosts_per_leaf"], f["spines"]))
    g = case["gpus_per_host"]
    config = SimConfig(gpus_per_host=g, backfill=case["backfill"], record_starts=True)
    speed = SpeedModel(model="contention" if case["contention"] else "isolated")
    counts = TraceCounts()
    w = case["workload"]
    if w["kind"] == "synthetic":
        spec = SyntheticSpec(**{k: v for k, v in w.items() if k != "kind"})
        jobs = list(synthetic_jobs(spec, total_gpus=compiled.n_hosts * g, gpus_per_host=g))
    else:
        jobs = list(read_workload(w["path"], w["format"]))
    sim: Any
    if case["pools"]:
        layout = PoolLayout(pools=tuple(PoolUnit(name, tuple(range(first, first + n)), tuple(owners), lend_limit=limit,
                                                 min_runtime=grace)
                                        for name, first, n, owners, limit, grace in case["pools"]))
        try:
            from gpupool.simulate.pooled import PooledSimulator  # type: ignore[attr-defined]
        except ImportError:  # the strategy core
            sim = Simulator(compiled, case["policy"], config, speed, counts, layout)  # type: ignore[call-arg]
        else:
            sim = PooledSimulator(compiled, case["policy"], config, speed, layout, counts)
        metrics = sim.run(jobs)
        metrics.pools = pool_tallies(sim)
    else:
        sim = Simulator(compiled, case["policy"], config, speed, counts)
        metrics = sim.run(jobs)
    return {"metrics": metrics_state(metrics), "counts": counts.to_json(), **starts_digest(sim.starts)}


def cases(which: str = "core") -> list[dict[str, Any]]:
    out = []
    heavy = which == "heavy"
    for workload in HEAVY if heavy else WORKLOADS:
        for policy in HEAVY_POLICIES if heavy else POLICIES:
            # Pool policies ignored --backfill slurm before the strategy core (they ran their own EASY pass),
            # so only their easy runs are pinned: with slurm they now do what the flag says.
            for backfill in ("easy",) if policy.startswith("pools-") else ("easy", "slurm"):
                for contention in (False,) if heavy else (False, True):
                    out.append({"fabric": CASE_FABRIC, "gpus_per_host": 8, "workload": workload, "policy": policy,
                                "backfill": backfill, "contention": contention,
                                "pools": POOLS if policy.startswith("pools-") else None})
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", dest="which", choices=("core", "heavy"), default="core")
    parser.add_argument("--out", help="default: tests/fixtures/simulate/pin-core.json, or pin-core-heavy.json")
    args = parser.parse_args()
    out = args.out or f"tests/fixtures/simulate/pin-{'core-heavy' if args.which == 'heavy' else 'core'}.json"
    doc = {"about": "simulator state per case, written by scripts/pin_simulate.py; see README.md",
           "cases": [{"case": case, "result": run_case(case)} for case in cases(args.which)]}
    with open(out, "w", encoding="utf-8") as fh:  # one case a line: a diff names the cases that moved
        fh.write('{"about": ' + json.dumps(doc["about"]) + ',\n "cases": [\n')
        fh.write(",\n".join(json.dumps(c, sort_keys=True, separators=(",", ":")) for c in doc["cases"]))
        fh.write("\n]}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
