"""The simulator core gives bit-identical results to the core before the strategy refactor (issue #28).

tests/fixtures/simulate/pin-core.json and pin-core-heavy.json were written by scripts/pin_simulate.py with
the unchanged core (commit b6ece22, see tests/fixtures/simulate/README.md); pin-core.json was committed
before the refactor. Each case
stores its own parameters; this test replays them through today's entry points and compares the whole
state: every metric scalar (exact doubles), histogram bins, utilisation series, pool tallies, trace
counts and a hash of every (job id, start, hosts). Never regenerate the pin to make this pass.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from gpupool.fabric.compiled import CompiledFabric, compile_fabric
from gpupool.fabric.generate import fat_tree
from gpupool.simulate.pooled import PoolLayout, PoolUnit, pool_tallies
from gpupool.simulate.scheduler import SimConfig, Simulator, TraceCounts
from gpupool.simulate.speed import SpeedModel
from gpupool.simulate.synthetic import SyntheticSpec, synthetic_jobs
from gpupool.simulate.workload import read_workload

REPO = Path(__file__).resolve().parents[2]
PIN = [entry for name in ("pin-core.json", "pin-core-heavy.json")
       for entry in json.loads((REPO / "tests/fixtures/simulate" / name).read_text())["cases"]]
# The pin was written before issue #24 gave `gpupool` and `slurm-tuned` a hold for a compact placement: what
# those names replayed then is what `gpupool-hops` (the default goal, no hold) and `slurm-weights` replay now.
RENAMED = {"gpupool": "gpupool-hops", "slurm-tuned": "slurm-weights"}


@cache
def _fabric(leaves: int, hosts_per_leaf: int, spines: int) -> CompiledFabric:
    return compile_fabric(fat_tree(leaves, hosts_per_leaf, spines))


def _histogram(h: Any) -> dict[str, Any]:
    return {"count": h.count, "total": h.total, "small_total": h.small_total, "max": h.max,
            "bins_sha256": hashlib.sha256(h.bins.astype("<i8").tobytes()).hexdigest()}


def _state(metrics: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in vars(metrics).items():
        if hasattr(value, "bins"):
            out[name] = _histogram(value)
        elif name == "wait_by_size":
            out[name] = {k: _histogram(v) for k, v in value.items()}
        elif name.startswith("series_"):
            out[name] = [[k, v] for k, v in sorted(value.items())]
        else:
            out[name] = value
    return json.loads(json.dumps(out))  # the pin's JSON types (tuples as lists, int keys as strings)


def _replay(case: dict[str, Any]) -> dict[str, Any]:
    compiled = _fabric(**case["fabric"])
    g = case["gpus_per_host"]
    config = SimConfig(gpus_per_host=g, backfill=case["backfill"], record_starts=True)
    speed = SpeedModel(model="contention" if case["contention"] else "isolated")
    w = case["workload"]
    if w["kind"] == "synthetic":
        spec = SyntheticSpec(**{k: v for k, v in w.items() if k != "kind"})
        jobs = list(synthetic_jobs(spec, total_gpus=compiled.n_hosts * g, gpus_per_host=g))
    else:
        jobs = list(read_workload(str(REPO / w["path"]), w["format"]))
    layout = None
    if case["pools"]:
        layout = PoolLayout(pools=tuple(PoolUnit(name, tuple(range(first, first + n)), tuple(owners), lend_limit=limit,
                                                 min_runtime=grace)
                                        for name, first, n, owners, limit, grace in case["pools"]))
    counts = TraceCounts()
    sim = Simulator(compiled, RENAMED.get(case["policy"], case["policy"]), config, speed, counts, layout)
    metrics = sim.run(jobs)
    if layout is not None:
        metrics.pools = pool_tallies(sim)
    text = json.dumps([[j, s, h] for j, s, h in sim.starts], separators=(",", ":"))
    metrics.policy = case["policy"]  # the name it was pinned under (RENAMED)
    return {"metrics": _state(metrics), "counts": counts.to_json(), "starts": len(sim.starts),
            "starts_sha256": hashlib.sha256(text.encode()).hexdigest()}


def test_the_pin_covers_every_axis() -> None:
    cases = [entry["case"] for entry in PIN]
    assert {c["policy"] for c in cases} >= {"slurm-tree", "slurm-block", "slurm-tuned", "gpupool", "gpupool-wait",
                                           "gpupool-hops", "gpupool-pack", "pools-nolend", "pools-lend"}
    assert {c["backfill"] for c in cases} == {"easy", "slurm"} and {c["contention"] for c in cases} == {False, True}
    assert {c["workload"]["kind"] for c in cases} == {"synthetic", "file"}
    lend = [e["result"] for e in PIN if e["case"]["policy"] == "pools-lend"]
    assert any(r["metrics"]["preemptions"] > 0 for r in lend)  # the pin exercises preemption and requeue


@pytest.mark.parametrize("index", range(len(PIN)), ids=lambda i: "{policy}-{backfill}-{contention}-{k}-{n}".format(
    k=PIN[i]["case"]["workload"].get("format", "synthetic"), n=PIN[i]["case"]["workload"].get("jobs", 0),
    **PIN[i]["case"]))
def test_the_core_replays_the_pinned_results_bit_identically(index: int) -> None:
    entry = PIN[index]
    got = _replay(entry["case"])
    want = entry["result"]
    assert got["counts"] == want["counts"]
    assert (got["starts"], got["starts_sha256"]) == (want["starts"], want["starts_sha256"])
    assert got["metrics"] == want["metrics"]
