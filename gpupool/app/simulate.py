"""Use case: read a workload, replay it under each policy, and build the result document."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from gpupool.errors import BadInput, BadRequest
from gpupool.placement.objective import HopSlack, Objective, PlacementGoal, SizeMix, parse_size_mix
from gpupool.simulate.policies import REGISTRY
from gpupool.simulate.policy_metrics import PolicyMetrics
from gpupool.simulate.pooled import PoolLayout, PoolUnit
from gpupool.simulate.scheduler import SimConfig, policy_goal, simulate
from gpupool.simulate.speed import SpeedModel
from gpupool.simulate.synthetic import parse_spec, synthetic_jobs
from gpupool.simulate.workload import Job, WorkloadStats, detect_format, read_workload
from gpupool.switch_wait import SwitchWait
from gpupool.validate import maybe_int_text

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
    pools_path: str | None = None  # the pools file `gpupool pool apply` reads, for the pools-* policies
    learn_size_mix: bool = False  # gpupool-pack keeps capacity for the replayed workload's own job sizes
    # A replicate of a trace file (`--seeds N`, app.simulate_seeds): replayed instead of reading the file.
    replicate: TraceReplicate | None = None


@dataclass(frozen=True)
class TraceReplicate:
    """Jobs of one bootstrap replicate of the trace file, and what reading that file counted."""

    jobs: tuple[Job, ...]
    read_stats: WorkloadStats
    fmt: str


def pack_goal(hop_slack: str, size_mix: str | None, gpus_per_host: int) -> PlacementGoal:
    """gpupool-pack's goal: the pack objective with this slack and mix (None: the default mix)."""
    goal = PlacementGoal(objective=Objective.PACK, hop_slack=HopSlack.parse(hop_slack), gpus_per_host=gpus_per_host)
    return replace(goal, size_mix=parse_size_mix(size_mix)) if size_mix else goal


def learnt_size_mix(jobs: Iterable[Job], source: str) -> SizeMix:
    """Job-count shares per GPU count of a workload pass (what `plan --size-history` learns from sacct)."""
    counts: dict[int, float] = {}
    for job in jobs:
        counts[job.gpus] = counts.get(job.gpus, 0.0) + 1.0
    return SizeMix.from_counts(counts, f"learnt from {source}")


def parse_policies(text: str, pools_path: str | None = None) -> list[str]:
    known = REGISTRY.names()
    pool_policies = REGISTRY.names(pools=True)
    names = [p.strip() for p in text.split(",") if p.strip()]
    unknown = [p for p in names if p not in known]
    if unknown or not names:
        raise BadRequest(f"unknown policy {', '.join(unknown) or '(none)'}; choose from {', '.join(known)}")
    pooled = [p for p in names if p in pool_policies]
    if pooled and not pools_path:
        raise BadRequest(f"policy {pooled[0]} needs --pools FILE (the pools file `gpupool pool apply` reads)")
    if pools_path and not pooled:
        raise BadRequest(f"--pools is used by the pool policies only: add {' or '.join(pool_policies)} to --policies")
    return list(dict.fromkeys(names))


def _minutes_as_seconds(value: object) -> float | None:
    return float(value) * 60.0 if isinstance(value, int) and not isinstance(value, bool) else None


def load_pool_layout(path: str, compiled: CompiledFabric, gpus_per_host: int) -> PoolLayout:
    """The pools file as plain data over fabric host indices; errors name the file, line and key (exit 4)."""
    from gpupool.pools.schema import lend_limit_gpus, load_pools_file
    from gpupool.pools.validate import resolve_and_validate

    spec = load_pools_file(path)
    # No Slurm here: hosts resolve on the fabric, and users need not exist on this machine; the
    # same checks as `pool apply`, with every host counted at --gpus-per-host (lend_limit: 500 on 192 GPUs fails).
    resolved = resolve_and_validate(spec, None, lambda: compiled, allow_unknown_users=True,
                                    gpus_per_host=gpus_per_host)
    quota = [p.name for p in spec.pools.values() if p.quota]
    if quota:
        raise spec.error(("pools", quota[0], "quota"),
                         "simulate does not model quota pools (protected per-account shares of shared nodes); "
                         "it would replay them as co-owned: leave them out of the file given to --pools")
    index = compiled.host_index()
    units: list[PoolUnit] = []
    for pool in spec.pools.values():
        names = resolved.hosts[pool.name]
        missing = [h for h in names if h not in index]
        if missing:
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            raise spec.error(("pools", pool.name, "nodes"), f"host(s) not in the fabric: {shown}")
        units.append(PoolUnit(name=pool.name, hosts=tuple(index[h] for h in names), owners=tuple(pool.owners),
                              lend=pool.lend, lend_limit=lend_limit_gpus(pool, len(names) * gpus_per_host),
                              min_runtime=float(pool.min_runtime or 0)))
    if not units:
        raise BadInput(f"{path}: no pools")
    borrow_limits = {a.name: a.borrow_limit for a in spec.accounts.values() if a.borrow_limit is not None}
    return PoolLayout(pools=tuple(units), borrowing=spec.borrowing.enabled,
                      borrow_max_time=_minutes_as_seconds(spec.borrowing.max_time), source=path,
                      borrow_limits=borrow_limits)


def parse_switches(text: str) -> tuple[int, SwitchWait]:
    """`N@T` as Slurm's --switches: N leaf switches at most (0: the job's minimum); T as seconds, [[H:]M:]S, or
    P% of the job's time limit (what `gpupool submit --switch-wait P%` asks for)."""
    count, _, wait = text.partition("@")
    n = maybe_int_text(count)
    if n is None:
        raise BadRequest(f"--switches {text!r}: expected N@T with N >= 0, e.g. 0@300, 2@1:00:00 or 0@25%")
    rule = SwitchWait.parse(wait, what=f"--switches {text!r}: T") if wait else SwitchWait(seconds=300.0)
    return n, rule


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
    replicate = request.replicate
    if replicate is not None:
        def from_replicate() -> Iterable[Job]:
            if not stats.lines:  # the first pass reports what reading the file counted, and the replicate's jobs
                stats.lines, stats.jobs = replicate.read_stats.lines, len(replicate.jobs)
                stats.skipped, stats.examples = dict(replicate.read_stats.skipped), dict(replicate.read_stats.examples)
            return iter(replicate.jobs)
        return from_replicate, replicate.fmt
    fmt = detect_format(request.workload) if request.fmt == "auto" else request.fmt
    passes = [0]

    def from_file() -> Iterable[Job]:
        counted = stats if passes[0] == 0 else WorkloadStats()
        passes[0] += 1
        return read_workload(request.workload, fmt, counted, gpus_per_processor=request.gpus_per_processor,
                             gpus_per_host=g)
    return from_file, fmt


def _speed_model_json(speed: SpeedModel, compiled: CompiledFabric) -> dict[str, Any]:
    """The speed model as used; with contention, also the uplink bundles' oversubscription per tree level."""
    doc = speed.to_json()
    if speed.model == "contention":
        from gpupool.fabric.compiled import uplink_bundles

        doc["contention"]["links"] = uplink_bundles(compiled)
    return doc


def run_simulation(request: SimulationRequest, compiled: CompiledFabric) -> tuple[dict[str, Any], list[PolicyMetrics]]:
    stats = WorkloadStats()
    factory, fmt = workload_factory(request, compiled, stats)
    packing = {"gpupool-pack", "gpupool-pack-uplinks"} & set(request.policies)
    if request.learn_size_mix and packing:
        request.config = replace(request.config, pack_goal=replace(
            request.config.pack_goal, size_mix=learnt_size_mix(factory(), request.workload)))
    layout = load_pool_layout(request.pools_path, compiled, request.config.gpus_per_host) if request.pools_path else None
    results, counts = simulate(compiled, factory, request.policies, request.config, request.speed, layout)
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
    if counts.no_pool:
        notes.append(f"{counts.no_pool} jobs belong to accounts that own no pool and have no open pool or "
                     f"lending to run on (e.g. {counts.examples.get('no_pool', '')}); the pool policies did not "
                     "replay them")
    if counts.too_large_for_pools:
        notes.append(f"{counts.too_large_for_pools} jobs are larger than all the hosts their account may use under "
                     f"a pool policy (e.g. {counts.examples.get('too_large_for_pools', '')}); they were not replayed")
    if layout is not None:
        in_pools = {h for unit in layout.pools for h in unit.hosts}
        if len(in_pools) < compiled.n_hosts:
            notes.append(f"{compiled.n_hosts - len(in_pools)} of {compiled.n_hosts} hosts are in no pool of "
                         f"{layout.source}: the pool policies leave them idle")
    if results and results[0].multi_node_jobs == 0:
        notes.append("the trace has no multi-node job: placement policies can differ only through "
                     "single-host packing and --gpus jobs split over hosts")
    cfg = request.config
    speed_doc = _speed_model_json(request.speed, compiled)
    if request.speed.model == "contention":
        worst = {level: row["max_oversubscription"] for level, row in speed_doc["contention"]["links"].items()}
        shown = ", ".join(f"{level} up to {ratio:g}:1" for level, ratio in worst.items()) or "none: the fabric has no uplink bundle"
        notes.append(f"speed model: contention (jobs sharing an uplink share its bandwidth; oversubscription "
                     f"{shown}; docs/simulate.md \"Contention model\")")
    doc = {
        "fabric": {"path": request.fabric_path, "hosts": compiled.n_hosts, "gpus_per_host": cfg.gpus_per_host,
                   "gpus": compiled.n_hosts * cfg.gpus_per_host, "kind": compiled.kind},
        "workload": {"source": request.workload, "format": fmt, "stats": stats.to_json()},
        "trace": counts.to_json(),
        "config": {"backfill": cfg.backfill, "backfill_depth": cfg.backfill_depth, "switches": f"{cfg.wait_leaves}@{cfg.switch_wait().text()}",
                   "placement_default": policy_goal("gpupool").to_json(),  # type: ignore[union-attr]
                   **({"pack": cfg.pack_goal.to_json()} if {"gpupool-pack", "gpupool-pack-uplinks"}
                      & set(request.policies) else {}),
                   "partitions": sorted(cfg.partitions) if cfg.partitions is not None else None,
                   "gpus_per_processor": str(request.gpus_per_processor)},
        "speed_model": speed_doc,
        **({"pools": {"path": layout.source, "borrowing": bool(layout.lenders()),
                      "borrow_limits": dict(layout.borrow_limits),
                      "pools": {u.name: {"hosts": len(u.hosts), "owners": list(u.owners), "lend": u.lend,
                                         "lend_limit": u.lend_limit, "min_runtime_s": u.min_runtime}
                                for u in layout.pools}}} if layout is not None else {}),
        "policies": [r.to_json() for r in results],
        "notes": notes,
    }
    return doc, results


@dataclass
class SimulateOptions:
    """`simulate`'s options as plain values (what the command was asked), before any is read or checked."""

    fabric_path: str | None  # None: $GPUPOOL_FABRIC or the config file's, resolved after the options are checked
    workload: str
    fmt: str = "auto"
    policies: str = "slurm-tree,gpupool,gpupool-wait"
    hop_slack: str = "0"
    size_mix: str | None = None  # GPUS:SHARE,... or "learn"
    pools_path: str | None = None
    gpus_per_host: int = 8
    switches: str = "0@300"
    partitions: str | None = None
    backfill: str = "easy"
    backfill_depth: int = 500
    gpus_per_processor: str = "1"
    speed_path: str | None = None
    contention: str = "off"
    nccl_path: str | None = None
    comm_fraction: float = 0.3
    nccl_class: str = "default"
    seeds: int = 1


def simulation_request(options: SimulateOptions, resolve_fabric: Callable[[str | None], str]) -> SimulationRequest:
    """The simulation the options describe: policies, scheduler config, the pack goal and the speed
    model (loaded, with `nccl_path` calibrating one class from nccl-tests figures); the fabric file
    (`resolve_fabric(options.fabric_path)`) is found last, after every option has been checked."""
    from gpupool.errors import param
    from gpupool.simulate.speed import calibrate_from_nccl, load_speed_model, read_nccl_points
    from gpupool.simulate.workload import parse_ratio

    chosen = parse_policies(options.policies, options.pools_path)
    wait_leaves, switch_wait = parse_switches(options.switches)
    if options.gpus_per_host < 1:
        raise BadRequest(f"{param('gpus_per_host')} must be >= 1, got {options.gpus_per_host}")
    if options.seeds < 1:
        raise BadRequest(f"{param('seeds')} must be >= 1, got {options.seeds}")
    if options.backfill_depth < 0:
        raise BadRequest(f"{param('backfill_depth')} must be >= 0, got {options.backfill_depth}")
    accepted = (frozenset(p.strip() for p in options.partitions.split(",") if p.strip())
                if options.partitions else None)
    config = SimConfig(gpus_per_host=options.gpus_per_host, backfill=options.backfill,
                       backfill_depth=options.backfill_depth, wait_time=switch_wait.seconds, wait_share=switch_wait.share,
                       wait_leaves=wait_leaves,
                       partitions=accepted)
    learn = options.size_mix == "learn"
    config.pack_goal = pack_goal(options.hop_slack, None if learn else options.size_mix, options.gpus_per_host)
    speed = load_speed_model(options.speed_path) if options.speed_path else SpeedModel()
    speed.model = "contention" if options.contention == "on" else "isolated"
    if options.nccl_path:
        speed.classes[options.nccl_class] = calibrate_from_nccl(read_nccl_points(options.nccl_path),
                                                                options.comm_fraction)
    return SimulationRequest(fabric_path=resolve_fabric(options.fabric_path), workload=options.workload, policies=chosen,
                             fmt=options.fmt, config=config, speed=speed,
                             gpus_per_processor=parse_ratio(options.gpus_per_processor),
                             pools_path=options.pools_path, learn_size_mix=learn)

