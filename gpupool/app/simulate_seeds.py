"""Use case: `gpupool simulate --seeds N`: replay N replicates of the workload under every policy (the
same replicate for every policy: a paired design), then summarise each metric over the replicates with
confidence intervals, paired differences against the baseline and one verdict per policy.

Replicates: for a synthetic workload, the generator at seeds S, S+1, ..., S+N-1 (S: `--seed`, else the
spec's `seed`); for a trace file, N day-block bootstrap resamples (`simulate.replicate`) seeded the same
way, or with N = 1 the trace itself, unchanged. Replicates run one after another in this process, so
the Numba kernels compiled (or loaded from the cache) for the first are reused by every later one.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from gpupool import __version__
from gpupool.app.simulate import (
    SimulateOptions,
    SimulationRequest,
    TraceReplicate,
    run_simulation,
    simulation_request,
)
from gpupool.errors import BadRequest
from gpupool.simulate.replicate import block_bootstrap, block_seconds
from gpupool.simulate.report import HEADLINE, row_better, table_rows
from gpupool.simulate.stats import summarise, verdict
from gpupool.simulate.synthetic import parse_spec
from gpupool.simulate.workload import WorkloadStats, detect_format, read_workload

if TYPE_CHECKING:
    from gpupool.config import Config
    from gpupool.fabric.compiled import CompiledFabric
    from gpupool.simulate.policy_metrics import PolicyMetrics

CONFIDENCE = 0.95
RELATIVE_DIFFERENCE = ("ratio of means: (mean policy - mean baseline) / mean baseline, "
                       "delta-method interval over the paired seeds")


def is_synthetic(workload: str) -> bool:
    return workload == "synthetic" or workload.startswith("synthetic:")


def _with_seed(workload: str, seed: int) -> str:
    """The synthetic spec with `seed=S` last (a later setting wins over an earlier one)."""
    return f"{workload}{',' if ':' in workload else ':'}seed={seed}"


def _spec_sets_seed(workload: str) -> bool:
    _, _, params = workload.partition(":")
    return any(p.strip().partition("=")[0] == "seed" for p in params.split(","))


def replicate_requests(request: SimulationRequest, seeds: int,
                       first_seed: int | None) -> tuple[list[SimulationRequest], list[int], str, float | None]:
    """(one request per replicate, their seeds, how replicates are made, bootstrap block length or None)."""
    if seeds < 1:
        raise BadRequest(f"--seeds must be >= 1, got {seeds}")
    if is_synthetic(request.workload):
        spec = parse_spec(request.workload)  # a bad spec is a usage error before anything runs
        if first_seed is not None and _spec_sets_seed(request.workload) and spec.seed != first_seed:
            raise BadRequest(f"the seed is given twice (--seed {first_seed} and seed={spec.seed} in --workload); "
                             "give it once")
        start = spec.seed if first_seed is None else first_seed
        seed_list = [start + k for k in range(seeds)]
        method = "independent seeds of the synthetic generator"
        if seeds == 1 and first_seed is None:
            return [request], seed_list, method, None  # today's run, unchanged
        return [replace(request, workload=_with_seed(request.workload, s)) for s in seed_list], seed_list, method, None
    if seeds == 1:
        return [request], [], "the trace itself (one replicate, unchanged)", None
    start = 1 if first_seed is None else first_seed
    seed_list = [start + k for k in range(seeds)]
    fmt = detect_format(request.workload) if request.fmt == "auto" else request.fmt
    read_stats = WorkloadStats()
    # The whole trace in memory (one list of jobs): every replicate is drawn from it.
    jobs = list(read_workload(request.workload, fmt, read_stats, gpus_per_processor=request.gpus_per_processor,
                              gpus_per_host=request.config.gpus_per_host))
    jobs.sort(key=lambda j: j.submit)
    block = block_seconds(jobs)
    requests = [replace(request, replicate=TraceReplicate(tuple(block_bootstrap(jobs, s, block)), read_stats, fmt))
                for s in seed_list]
    method = (f"day-block bootstrap of the trace: blocks of {block / 3600:g} h of submissions, drawn with "
              "replacement, each job keeping its time within its block")
    return requests, seed_list, method, block


def _fabric_summary(doc: dict[str, Any], compiled: CompiledFabric) -> str:
    fabric = doc["fabric"]
    leaves = len({int(x) for x in compiled.host_tree_leaf.tolist() if int(x) >= 0})
    return (f"{fabric['path']}: {fabric['kind']}, {fabric['hosts']} hosts x {fabric['gpus_per_host']} GPUs "
            f"({fabric['gpus']} GPUs), {leaves} logical leaves")


def run_replicates(request: SimulationRequest, compiled: CompiledFabric, seeds: int = 1,
                   first_seed: int | None = None,
                   baseline: str | None = None) -> tuple[dict[str, Any], list[PolicyMetrics]]:
    """The first replicate's document with `statistics` (per-metric intervals, paired differences,
    verdicts) and `assumptions` added; the first replicate's metrics (for the report's plots)."""
    base = baseline or request.policies[0]
    if base not in request.policies:
        raise BadRequest(f"--baseline {base}: not one of --policies ({', '.join(request.policies)})")
    requests, seed_list, method, block = replicate_requests(request, seeds, first_seed)
    doc: dict[str, Any] = {}
    first_results: list[PolicyMetrics] = []
    tables = []
    for k, replicate in enumerate(requests):
        replicate_doc, results = run_simulation(replicate, compiled)
        tables.append(table_rows(replicate_doc))
        if k == 0:
            doc, first_results = replicate_doc, results
    doc["workload"]["source"] = request.workload
    n = len(requests)
    policies = [p["policy"] for p in doc["policies"]]
    labels = [label for table in tables for label, _ in table]
    metrics = summarise(policies, base, tables, {label: row_better(label) for label in labels}, CONFIDENCE)
    doc["statistics"] = {
        "replicates": n,
        "seeds": seed_list,
        "baseline": base,
        "confidence": CONFIDENCE,
        "metrics": metrics,
        "verdicts": {p: verdict(p, base, metrics, HEADLINE, n, CONFIDENCE) for p in policies if p != base},
    }
    cfg = request.config
    doc["assumptions"] = {
        "speed_model": request.speed.to_json(),
        "backfill": {"model": cfg.backfill, "depth": cfg.backfill_depth},
        "switches": doc["config"]["switches"],
        "replicates": n,
        "seeds": seed_list,
        "replicate_method": method,
        "bootstrap_block_s": block,
        "baseline": base,
        "confidence": CONFIDENCE,
        "relative_difference": RELATIVE_DIFFERENCE,
        "gpupool_version": __version__,
        "date_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "fabric": {**doc["fabric"], "summary": _fabric_summary(doc, compiled)},
        "workload": {"source": request.workload, "format": doc["workload"]["format"]},
    }
    if first_seed is not None and not seed_list:
        doc["notes"].append("--seed is used on a trace only with --seeds 2 or more (one replicate is the trace itself)")
    if n > 1:
        doc["notes"].append(f"`policies`, `trace` and the plots are the first replicate's (seed {seed_list[0]}); "
                            f"the table gives means over {n} replicates with 95% confidence intervals")
    return doc, first_results


def run_simulate_command(options: SimulateOptions, config: Config, first_seed: int | None = None,
                         baseline: str | None = None,
                         report_path: str | None = None) -> tuple[dict[str, Any], list[PolicyMetrics]]:
    """`simulate`: build the request, replay every replicate, and write the HTML report when asked."""
    from gpupool.config import resolve_fabric_path
    from gpupool.fabric.compiled import load_compiled
    from gpupool.fsutil import atomic_write_text, check_output_path

    if report_path:
        check_output_path(report_path)  # before the replay, not after it
    request = simulation_request(options, lambda path: resolve_fabric_path(path, config))
    doc, results = run_replicates(request, load_compiled(request.fabric_path), options.seeds, first_seed, baseline)
    if report_path:
        from gpupool.simulate.report import render_html

        atomic_write_text(report_path, render_html(doc, results))
    return doc, results
