"""Event-driven replay: one scheduler loop over flat free-GPU arrays, one policy per run.

The loop (`Simulator.run`) is the same for every policy: jobs arrive in submit order (small
disorders put right within `reorder_window`), ends and wake-ups are events, and after each event
time one scheduling pass runs. What differs between policies is a set of strategies the policy
registry (`policies.py`) builds: a placer (where a job goes on a free-GPU array), a placement
strategy (whether and where a job starts now, what it may preempt), a backfill strategy (the pass:
EASY or Slurm-like, `strategies.py`; per-unit EASY for pools, `pooled.py`) and an admission strategy
(which jobs queue, bookkeeping at ends, requeues). The simulator holds the state every strategy reads:
the free GPUs per host, the per-host slots of running jobs (their GPUs and limit-ends), the queue,
the running set and the metrics. Shared types are in `core.py`.
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from gpupool.errors import BadRequest, param
from gpupool.placement.objective import PlacementGoal
from gpupool.simulate.contention import Flow, LinkContention
from gpupool.simulate.core import (
    BACKFILL_MODES,
    BLOCKED,
    END,
    HELD,
    STARTED,
    WAKE,
    LeafCapacity,
    Pending,
    Placer,
    Running,
    SimConfig,
    TraceCounts,
)
from gpupool.simulate.policies import REGISTRY, PolicyRegistry, PolicySetup
from gpupool.simulate.policy_metrics import PolicyMetrics
from gpupool.simulate.speed import SPEED_MODELS, SpeedModel
from gpupool.simulate.workload import Job

if TYPE_CHECKING:
    from gpupool.fabric.compiled import CompiledFabric
    from gpupool.simulate.pooled import PoolLayout

__all__ = ["BACKFILL_MODES", "BLOCKED", "HELD", "POLICIES", "STARTED", "WAKE", "SimConfig", "Simulator", "TraceCounts",
           "make_placer", "policy_goal", "simulate"]

# Every registered policy that needs no pools file (the pool policies: `REGISTRY.names(pools=True)`).
POLICIES = REGISTRY.names(pools=False)


def policy_goal(policy: str, config: SimConfig | None = None) -> PlacementGoal | None:
    """The placement goal a gpupool policy plans with (None for Slurm's policies)."""
    return REGISTRY.policy(policy).goal(config)


def make_placer(compiled: CompiledFabric, policy: str, config: SimConfig | None = None) -> Placer:
    """(hosts, GPUs per host, mean pair hops) of the policy's choice on the free array, or None."""
    return REGISTRY.policy(policy).build(PolicySetup(compiled, config or SimConfig())).placer


class Simulator:
    """One policy over one trace; `run` consumes the job iterator and returns the policy's metrics.

    `policy` names a registered policy (`policies.REGISTRY`, or `registry`); `layout` is the pools file
    the pool policies replay."""

    def __init__(self, compiled: CompiledFabric, policy: str, config: SimConfig, speed: SpeedModel,
                 counts: TraceCounts | None = None, layout: PoolLayout | None = None,
                 registry: PolicyRegistry = REGISTRY) -> None:
        self.compiled = compiled
        self.policy = policy
        self.config = config
        self.speed = speed
        self.counts = counts if counts is not None else TraceCounts()
        g = config.gpus_per_host
        if g < 1:
            raise BadRequest(f"{param('gpus_per_host')} must be >= 1, got {g}")
        n = compiled.n_hosts
        if n == 0:
            raise BadRequest("the fabric has no hosts to simulate")
        if config.backfill not in BACKFILL_MODES:
            raise BadRequest(f"unknown backfill {config.backfill!r} (known: {', '.join(BACKFILL_MODES)})")
        # Contention model: shared uplink bundles slow multi-leaf jobs (simulate.contention); None = isolated.
        # Built before the strategies: a placement goal that reads uplink loads gets them from it.
        entry = registry.policy(policy)
        self.contention: LinkContention | None = None
        if speed.model == "contention":
            self.contention = LinkContention(compiled, g)
        elif speed.model != "isolated":
            raise BadRequest(f"unknown speed model {speed.model!r} (known: {', '.join(SPEED_MODELS)})")
        elif (goal := entry.goal(config)) is not None and goal.reads_uplinks:
            self.contention = LinkContention(compiled, g, track_only=True)  # loads for the placement, no slowing
        strategies = entry.build(PolicySetup(compiled, config, layout, loads=self._uplink_load))
        self.place: Placer = strategies.placer
        self.placement = strategies.placement
        self.backfill = strategies.backfill
        self.admission = strategies.admission
        self.free = np.full(n, g, dtype=np.int32)
        self.hist = [0] * (g + 1)  # hosts by free GPUs
        self.hist[g] = n
        self._at_least: list[int] | None = None  # hosts with >= k free GPUs, rebuilt after a change
        # Per host, one slot per running job on it (a job holds >= 1 GPU, so g slots suffice): the job's
        # expected end and GPUs, for the reservation kernels.
        self.slot_end = np.full((n, g), np.inf, dtype=np.float64)
        self.slot_gpus = np.zeros((n, g), dtype=np.int64)
        self.total_free = n * g
        self.capacity = LeafCapacity(compiled)
        self.metrics = PolicyMetrics(policy=policy, total_gpus=n * g, bin_seconds=config.bin_seconds)
        self.metrics.contention_model = speed.model == "contention"
        self._end_seq: dict[int, int] = {}  # running id -> seq of its live end event (older ones are stale)
        self._stopped: Flow | None = None  # the flow of the job `release` freed last (contention model)
        self.queue: list[Pending] = []
        self.running: dict[int, Running] = {}
        self.ends: list[tuple[float, int]] = []  # (expected end by time limit, running id), sorted
        self.events: list[tuple[float, int, int, int]] = []  # (time, kind, seq, running id)
        self.seq = 0
        self.now = 0.0
        # running id -> (leaves, extra leaves, mean pair hops, speed factor, timed out, multi-host)
        self._info: dict[int, tuple[int, int, float, float, bool, bool]] = {}
        self.changed = True  # something ended, woke or was preempted since the last scheduling pass
        self.starts: list[tuple[str, float, list[str]]] = []
        self.last_start: tuple[list[int], list[int]] = ([], [])  # (hosts, GPUs) of the latest start

    # ------------------------------------------------------------------ free state
    def hosts_with(self, k: int) -> int:
        """Hosts with at least k free GPUs."""
        at_least = self._at_least
        if at_least is None:
            at_least = [0] * (len(self.hist) + 1)
            for j in range(len(self.hist) - 1, -1, -1):
                at_least[j] = at_least[j + 1] + self.hist[j]
            self._at_least = at_least
        return at_least[k]

    def _take(self, hosts: list[int], gpus: list[int], sign: int) -> None:
        free, hist = self.free, self.hist
        self._at_least = None
        for h, g in zip(hosts, gpus, strict=True):
            before = int(free[h])
            after = before + sign * g
            free[h] = after
            hist[before] -= 1
            hist[after] += 1
            self.total_free += sign * g

    def fits_by_count(self, job: Job) -> bool:
        """Enough free GPUs in all, and enough hosts with the job's GPUs per node free (placement aside)."""
        if job.nodes == 0:
            return self.total_free >= job.gpus
        return self.total_free >= job.gpus and self.hosts_with(job.gpus_per_node) >= job.nodes

    # ------------------------------------------------------------------ starting and ending runs
    def commit(self, pj: Pending, now: float, host_list: list[int], gpu_list: list[int], pair_hops: float) -> int:
        """Start the job on the chosen hosts; returns its running id."""
        job = pj.job
        leaves, groups = self.capacity.spread(host_list)
        hosts_needed = job.nodes or math.ceil(job.gpus / self.config.gpus_per_host)
        min_leaves = self.capacity.min_leaves(hosts_needed)
        extra_leaves = max(leaves - min_leaves, 0)
        extra_groups = max(groups - self.capacity.min_groups(hosts_needed), 0) if groups else 0
        factor = self.speed.slowdown(job.job_class, job.partition, extra_leaves, extra_groups) if leaves > 1 else 1.0
        runtime = job.duration * factor
        timed_out = runtime > job.time_limit
        runtime = min(runtime, job.time_limit)
        self._take(host_list, gpu_list, -1)
        rid = self.seq
        self.seq += 1
        expected_end = now + job.time_limit
        if self.contention is not None and leaves > 1:
            comm = self.speed.factors(job.job_class, job.partition).comm_fraction
            timing = self.contention.start(rid, now, job.duration * factor, comm, expected_end, host_list, gpu_list)
            if timing is not None:
                end, retimed = timing
                runtime = end - now
                self._retime(retimed)
        slots = []
        for h, g in zip(host_list, gpu_list, strict=True):
            s = int(np.argmin(self.slot_gpus[h]))  # an empty slot (0 GPUs) always exists
            self.slot_gpus[h, s] = g
            self.slot_end[h, s] = expected_end
            slots.append(s)
        record = Running(job, now, host_list, gpu_list, slots, expected_end)
        record.order = pj.order
        self.running[rid] = record
        bisect.insort(self.ends, (record.expected_end, rid))
        self.push(now + runtime, END, rid)
        self._end_seq[rid] = self.seq
        if self.config.record_starts:
            self.starts.append((job.job_id, now, [self.compiled.host_names[h] for h in host_list]))
        record_info = (leaves, extra_leaves, pair_hops, factor, timed_out, len(host_list) > 1 or pj.multi)
        self._info[rid] = record_info
        self.last_start = (host_list, gpu_list)
        return rid

    def _uplink_load(self) -> np.ndarray:
        """Running jobs' Gb/s per uplink bundle, for the `contention` objective (zeros before any job)."""
        if self.contention is None:
            return np.zeros(self.compiled.tree_parent.size, dtype=np.float64)
        return self.contention.load_array()

    def push(self, time: float, kind: int, rid: int) -> None:
        """An event (END of run rid, or WAKE with rid -1: look at the queue again then)."""
        self.seq += 1
        heapq.heappush(self.events, (time, kind, self.seq, rid))

    def _retime(self, retimed: list[tuple[int, float]]) -> None:
        """New end events for jobs whose bandwidth share changed; their earlier end events go stale."""
        for rid, end in retimed:
            self.push(end, END, rid)
            self._end_seq[rid] = self.seq

    def release(self, rid: int) -> tuple[Running, tuple[int, int, float, float, bool, bool]]:
        """Give a running job's GPUs back (at its end, or preempted); returns its record and placement info."""
        record = self.running.pop(rid)
        self._end_seq.pop(rid, None)
        if self.contention is not None:
            self._stopped, retimed = self.contention.stop(rid, self.now)
            self._retime(retimed)
        k = bisect.bisect_left(self.ends, (record.expected_end, rid))
        del self.ends[k]
        self._take(record.hosts, record.gpus, +1)
        for h, slot in zip(record.hosts, record.slots, strict=True):
            self.slot_gpus[h, slot] = 0
            self.slot_end[h, slot] = np.inf
        return record, self._info.pop(rid)

    def finish(self, rid: int, now: float) -> None:
        """Run rid ends now: the admission strategy books it, its GPUs come back, the metrics count it."""
        self.admission.finishing(self, rid, now)
        record, (leaves, extra_leaves, pair_hops, factor, timed_out, multi) = self.release(rid)
        job = record.job
        flow, self._stopped = self._stopped, None
        slowdown = 1.0
        if flow is not None:
            timed_out = flow.timed_out()
            slowdown = flow.slowdown(now)
        self.metrics.job_done(submit=job.submit, start=record.start, end=now, duration=job.duration, gpus=job.gpus,
                              multi_node=multi, leaves=leaves, extra_leaves=extra_leaves, pair_hops=pair_hops,
                              factor=factor, timed_out=timed_out, contention=slowdown)

    # ------------------------------------------------------------------ main loop
    def run(self, jobs: Iterable[Job]) -> PolicyMetrics:
        source: Iterator[Job] = iter(jobs)
        arrivals: list[tuple[float, int, Job]] = []
        window = max(self.config.reorder_window, 1)
        exhausted = False
        order = 0
        last_time: float | None = None
        metrics = self.metrics
        admission, backfill = self.admission, self.backfill

        def refill() -> None:
            nonlocal exhausted, order
            while not exhausted and len(arrivals) < window:
                job = next(source, None)
                if job is None:
                    exhausted = True
                    return
                order += 1
                heapq.heappush(arrivals, (job.submit, order, job))

        refill()
        while True:
            t_event = self.events[0][0] if self.events else math.inf
            t_arrival = arrivals[0][0] if arrivals else math.inf
            now = min(t_event, t_arrival)
            if now == math.inf:
                break
            if last_time is not None and now < last_time:
                now = last_time  # an arrival older than the clock: it was out of order beyond the window
            if last_time is not None:  # GPUs busy since the last event, for the submit-period utilisation
                metrics.elapse(last_time, now, metrics.total_gpus - self.total_free)
            if last_time is not None and self.queue:
                metrics.idle_while_waiting(last_time, now, self.total_free)
            last_time = now
            self.now = now
            while self.events and self.events[0][0] <= now:
                _t, kind, seq, rid = heapq.heappop(self.events)
                if kind == END and rid in self.running:  # a preempted job's end event is stale
                    if self._end_seq[rid] != seq:
                        continue  # superseded when a bandwidth change rescheduled it: nothing happens now
                    self.finish(rid, now)
                self.changed = True
            fresh = 0
            while arrivals and arrivals[0][0] <= now:
                submit, _o, job = heapq.heappop(arrivals)
                if submit < now:  # older than the clock: out of order by more than the read-ahead window
                    self.counts.reordered += 1
                    job = replace(job, submit=now)
                if metrics.first_submit is None:
                    metrics.first_submit = job.submit
                metrics.submitted(now)
                pending = admission.admit(self, job)
                if pending is not None:
                    self.queue.append(pending)
                    fresh += 1
                refill()
            backfill.schedule(self, now, fresh)
            admission.after_pass(self)
            if not self.events and not arrivals and self.queue:
                self.counts.never_started += len(self.queue)
                self.queue = []
        return metrics


def simulate(compiled: CompiledFabric, jobs_factory: Callable[[], Iterable[Job]], policies: Iterable[str],
             config: SimConfig, speed: SpeedModel,
             layout: PoolLayout | None = None) -> tuple[list[PolicyMetrics], TraceCounts]:
    """Each policy over a fresh pass of the trace; trace counts come from the first pass."""
    from gpupool.simulate.pooled import pool_tallies

    results: list[PolicyMetrics] = []
    first_counts: TraceCounts | None = None
    for policy in policies:
        counts = TraceCounts()
        sim = Simulator(compiled, policy, config, speed, counts, layout)
        metrics = sim.run(jobs_factory())
        if REGISTRY.policy(policy).needs_pools:
            metrics.pools = pool_tallies(sim)
        results.append(metrics)
        if first_counts is None:
            first_counts = counts
    return results, first_counts or TraceCounts()
