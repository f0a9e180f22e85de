"""Use case: read a workload, replay it under each policy, and build the result document."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from gpupool.errors import UsageError
from gpupool.simulate.engine import POLICIES, SimConfig, simulate
from gpupool.simulate.metrics import PolicyMetrics
from gpupool.simulate.speed import SpeedModel
from gpupool.simulate.synthetic import parse_spec, synthetic_jobs
from gpupool.simulate.workload import Job, WorkloadStats, detect_format, read_workload

if TYPE_CHECKING:
    from gpupool.fabric.compiled import CompiledFabric


@dataclass
class SimulationRequest:
    fabric_path: str
    workload: str  # a file, or `synthetic[:key=value,...]`
    policies: list[str]
    fmt: str = "auto"
    config: SimConfig = field(default_factory=SimConfig)
    speed: SpeedModel = field(default_factory=SpeedModel)
    gpus_per_processor: Fraction = Fraction(1)


def parse_policies(text: str) -> list[str]:
    names = [p.strip() for p in text.split(",") if p.strip()]
    unknown = [p for p in names if p not in POLICIES]
    if unknown or not names:
        raise UsageError(f"unknown policy {', '.join(unknown) or '(none)'}; choose from {', '.join(POLICIES)}")
    return list(dict.fromkeys(names))


def parse_switches(text: str) -> tuple[int, float]:
    """`N@T` as Slurm's --switches: N leaf switches at most (0: the job's minimum), T as seconds or [[H:]M:]S."""
    count, _, wait = text.partition("@")
    try:
        n = int(count)
        seconds = _duration(wait) if wait else 300.0
    except ValueError:
        raise UsageError(f"--switches {text!r}: expected N@T, e.g. 0@300 or 2@1:00:00") from None
    if n < 0 or seconds < 0:
        raise UsageError(f"--switches {text!r}: N and T must not be negative")
    return n, seconds


def _duration(text: str) -> float:
    parts = [float(p) for p in text.split(":")]
    if len(parts) > 3:
        raise ValueError(text)
    total = 0.0
    for p in parts:
        total = total * 60 + p
    return total


def workload_factory(request: SimulationRequest, compiled: CompiledFabric,
                     stats: WorkloadStats) -> tuple[Callable[[], Iterable[Job]], str]:
    """A function returning a fresh job iterator (one per policy) and the format name."""
    g = request.config.gpus_per_host
    if request.workload == "synthetic" or request.workload.startswith("synthetic:"):
        spec = parse_spec(request.workload)
        first = [True]

        def synthetic() -> Iterable[Job]:
            counted = stats if first[0] else WorkloadStats()
            first[0] = False
            return synthetic_jobs(spec, total_gpus=compiled.n_hosts * g, gpus_per_host=g, stats=counted)
        return synthetic, "synthetic"
    fmt = detect_format(request.workload) if request.fmt == "auto" else request.fmt
    passes = [0]

    def from_file() -> Iterable[Job]:
        counted = stats if passes[0] == 0 else WorkloadStats()
        passes[0] += 1
        return read_workload(request.workload, fmt, counted, gpus_per_processor=request.gpus_per_processor,
                             gpus_per_host=g)
    return from_file, fmt


def run_simulation(request: SimulationRequest, compiled: CompiledFabric) -> tuple[dict[str, Any], list[PolicyMetrics]]:
    stats = WorkloadStats()
    factory, fmt = workload_factory(request, compiled, stats)
    results, counts = simulate(compiled, factory, request.policies, request.config, request.speed)
    notes: list[str] = []
    if stats.skipped:
        notes.append("not replayed (from the trace): " + ", ".join(f"{n} {why}" for why, n in stats.skipped.items()))
    if counts.too_large:
        notes.append(f"{counts.too_large} jobs larger than the fabric were not replayed "
                     f"(e.g. {counts.examples.get('too_large', '')})")
    if counts.unknown_partition:
        notes.append(f"{counts.unknown_partition} jobs in partitions outside --partition were not replayed "
                     f"(e.g. {counts.examples.get('unknown_partition', '')})")
    if counts.reordered:
        notes.append(f"{counts.reordered} jobs were out of submit order beyond the read-ahead window; "
                     "they were submitted when read")
    if counts.never_started:
        notes.append(f"{counts.never_started} jobs never started")
    if results and results[0].multi_node_jobs == 0:
        notes.append("the trace has no multi-node job: placement policies can differ only through "
                     "single-host packing and --gpus jobs split over hosts")
    cfg = request.config
    doc = {
        "fabric": {"path": request.fabric_path, "hosts": compiled.n_hosts, "gpus_per_host": cfg.gpus_per_host,
                   "gpus": compiled.n_hosts * cfg.gpus_per_host, "kind": compiled.kind},
        "workload": {"source": request.workload, "format": fmt, "stats": stats.to_json()},
        "trace": counts.to_json(),
        "config": {"backfill_depth": cfg.backfill_depth, "switches": f"{cfg.wait_leaves}@{cfg.wait_time:g}",
                   "partitions": sorted(cfg.partitions) if cfg.partitions is not None else None,
                   "gpus_per_processor": str(request.gpus_per_processor)},
        "speed_model": request.speed.to_json(),
        "policies": [r.to_json() for r in results],
        "notes": notes,
    }
    return doc, results
