"""Event-driven replay: FIFO + EASY backfill over flat free-GPU arrays, one placement policy per run.

Scheduler (the same for every policy, so policies differ only in where jobs go and when they may
start): jobs queue in submit order; at each event time the queue head and then its followers start
while they fit (FIFO). When the head does not fit it gets a reservation: the shadow time is the
earliest time enough GPUs (or hosts with enough free GPUs) are free, taking running jobs' requested
time limits as their ends (EASY backfill, Lifka 1995, as Slurm's sched/backfill does with limits). A
later job may start now if it fits now and either ends (by its time limit) before the shadow time or
uses only GPUs that are spare at the shadow time. At most `backfill_depth` jobs behind the head are
tried per pass (Slurm's bf_max_job_test).

Per event the work is O(queue scanned + hosts of the jobs that start or end): free GPUs per host, a
histogram of hosts by free GPUs and the total are updated incrementally; the placement kernels are
the existing ones (`placement.engine.place`, `placement.slurm_reference`).
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from gpupool.errors import InfeasibleError, UsageError
from gpupool.placement.cost import cost_of_arrays
from gpupool.placement.engine import place
from gpupool.placement.model import FreeState, Request
from gpupool.placement.slurm_reference import slurm_reference
from gpupool.simulate.metrics import PolicyMetrics
from gpupool.simulate.speed import SpeedModel
from gpupool.simulate.workload import Job

if TYPE_CHECKING:
    from gpupool.fabric.compiled import CompiledFabric

POLICIES = ("slurm-tree", "gpupool", "gpupool-wait")
STARTED, HELD, BLOCKED = 0, 1, 2
_END, _ARRIVE, _WAKE = 0, 1, 2  # at equal times, ends free resources before arrivals are considered


@dataclass
class SimConfig:
    gpus_per_host: int = 8
    backfill_depth: int = 500  # Slurm's bf_max_job_test default
    wait_time: float = 300.0  # gpupool-wait: the T of --switches=N@T (Slurm's max_switch_wait default)
    wait_leaves: int = 0  # gpupool-wait: the N of --switches=N@T; 0 = the fewest leaves that could hold the job
    partitions: frozenset[str] | None = None  # accepted partitions; None = all
    reorder_window: int = 10000  # jobs read ahead to put small submit-time disorders right
    bin_seconds: float = 3600.0
    record_starts: bool = False  # keep (job id, start, hosts) of every start, for tests and reality checks


@dataclass
class TraceCounts:
    """Jobs of the trace that were not replayed, and why (the same for every policy)."""

    too_large: int = 0
    unknown_partition: int = 0
    reordered: int = 0
    never_started: int = 0
    examples: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"too_large_for_fabric": self.too_large, "unknown_partition": self.unknown_partition,
                "submit_reordered": self.reordered, "never_started": self.never_started,
                "examples": dict(self.examples)}


class _Pending:
    __slots__ = ("job", "held", "multi")

    def __init__(self, job: Job, multi: bool) -> None:
        self.job = job
        self.held = False
        self.multi = multi


class _Running:
    __slots__ = ("job", "start", "hosts", "gpus", "expected_end")

    def __init__(self, job: Job, start: float, hosts: list[int], gpus: list[int], expected_end: float) -> None:
        self.job = job
        self.start = start
        self.hosts = hosts
        self.gpus = gpus
        self.expected_end = expected_end


Placer = Callable[[np.ndarray, Job], "tuple[np.ndarray, np.ndarray, float] | None"]


def make_placer(compiled: CompiledFabric, policy: str) -> Placer:
    """(hosts, GPUs per host, mean pair hops) of the policy's choice on the free array, or None."""
    index = compiled.host_index()
    requests: dict[tuple[int, int], Request] = {}

    def request_of(job: Job) -> Request:
        key = (job.gpus, job.nodes)
        req = requests.get(key)
        if req is None:
            req = Request(gpus=job.gpus) if job.nodes == 0 else Request(nodes=job.nodes, gpus_per_node=job.gpus_per_node)
            requests[key] = req
        return req

    def arrays(allocation: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
        hosts = np.fromiter((index[h] for h in allocation), dtype=np.int64, count=len(allocation))
        gpus = np.fromiter(allocation.values(), dtype=np.int64, count=len(allocation))
        return hosts, gpus

    if policy in ("gpupool", "gpupool-wait"):
        def gpupool_placer(free: np.ndarray, job: Job) -> tuple[np.ndarray, np.ndarray, float] | None:
            try:
                p = place(compiled, FreeState(free_gpus=free, usable=free > 0), request_of(job))
            except InfeasibleError:
                return None
            hosts, gpus = arrays(p.allocation)
            return hosts, gpus, p.cost.mean_hops
        return gpupool_placer
    if policy == "slurm-tree":
        def slurm_placer(free: np.ndarray, job: Job) -> tuple[np.ndarray, np.ndarray, float] | None:
            try:
                _mode, allocation = slurm_reference(compiled, FreeState(free_gpus=free, usable=free > 0),
                                                    request_of(job))
            except InfeasibleError:
                return None
            if not allocation:
                return None
            hosts, gpus = arrays(allocation)
            return hosts, gpus, cost_of_arrays(compiled, hosts, gpus).mean_hops
        return slurm_placer
    raise UsageError(f"unknown policy {policy!r} (known: {', '.join(POLICIES)})")


class _Capacity:
    """Fewest leaves (and groups) that could hold a job on the empty fabric, from per-leaf host counts."""

    def __init__(self, compiled: CompiledFabric) -> None:
        leaf = compiled.host_tree_leaf.astype(np.int64)
        parent = compiled.tree_parent
        up = parent[leaf]
        # A group (pod of a 3-level fat-tree, dragonfly group) is a leaf's parent that is not a root.
        has_groups = bool(up.size) and bool((up >= 0).all()) and bool((parent[up] >= 0).all())
        self.host_leaf = leaf
        self.host_group = up.astype(np.int64) if has_groups else np.full(leaf.size, -1, np.int64)
        self.leaf_hosts = np.cumsum(np.sort(np.bincount(leaf[leaf >= 0]))[::-1])
        if has_groups:
            self.group_hosts = np.cumsum(np.sort(np.bincount(self.host_group))[::-1])
        else:
            self.group_hosts = np.zeros(0, np.int64)

    def min_leaves(self, hosts_needed: int) -> int:
        return int(np.searchsorted(self.leaf_hosts, hosts_needed)) + 1

    def min_groups(self, hosts_needed: int) -> int:
        return int(np.searchsorted(self.group_hosts, hosts_needed)) + 1 if self.group_hosts.size else 0

    def spread(self, hosts: np.ndarray) -> tuple[int, int]:
        leaves = int(np.unique(self.host_leaf[hosts]).size)
        groups = int(np.unique(self.host_group[hosts]).size) if self.group_hosts.size else 0
        return leaves, groups


class Simulator:
    """One policy over one trace; `run` consumes the job iterator and returns the policy's metrics."""

    def __init__(self, compiled: CompiledFabric, policy: str, config: SimConfig, speed: SpeedModel,
                 counts: TraceCounts | None = None) -> None:
        self.compiled = compiled
        self.policy = policy
        self.config = config
        self.speed = speed
        self.counts = counts if counts is not None else TraceCounts()
        self.place = make_placer(compiled, policy)
        self.wait = policy == "gpupool-wait"
        g = config.gpus_per_host
        if g < 1:
            raise UsageError(f"--gpus-per-host must be >= 1, got {g}")
        n = compiled.n_hosts
        if n == 0:
            raise UsageError("the fabric has no hosts to simulate")
        self.free = np.full(n, g, dtype=np.int32)
        self.hist = [0] * (g + 1)  # hosts by free GPUs
        self.hist[g] = n
        self.total_free = n * g
        self.capacity = _Capacity(compiled)
        self.metrics = PolicyMetrics(policy=policy, total_gpus=n * g, bin_seconds=config.bin_seconds)
        self.queue: list[_Pending] = []
        self.running: dict[int, _Running] = {}
        self.ends: list[tuple[float, int]] = []  # (expected end by time limit, running id), sorted
        self.events: list[tuple[float, int, int, int]] = []  # (time, kind, seq, running id)
        self.seq = 0
        self.now = 0.0
        # running id -> (leaves, extra leaves, mean pair hops, speed factor, timed out, multi-host)
        self._info: dict[int, tuple[int, int, float, float, bool, bool]] = {}
        self.starts: list[tuple[str, float, list[str]]] = []

    # ------------------------------------------------------------------ free state
    def _hosts_with(self, k: int) -> int:
        return sum(self.hist[k:])

    def _take(self, hosts: list[int], gpus: list[int], sign: int) -> None:
        free, hist = self.free, self.hist
        for h, g in zip(hosts, gpus, strict=True):
            before = int(free[h])
            after = before + sign * g
            free[h] = after
            hist[before] -= 1
            hist[after] += 1
            self.total_free += sign * g

    def _fits_by_count(self, job: Job) -> bool:
        if job.nodes == 0:
            return self.total_free >= job.gpus
        return self.total_free >= job.gpus and self._hosts_with(job.gpus_per_node) >= job.nodes

    # ------------------------------------------------------------------ admission
    def _admit(self, job: Job) -> _Pending | None:
        counts, cfg = self.counts, self.config
        if cfg.partitions is not None and job.partition not in cfg.partitions:
            counts.unknown_partition += 1
            counts.examples.setdefault("unknown_partition", f"job {job.job_id} (partition {job.partition!r})")
            return None
        g = cfg.gpus_per_host
        n = self.compiled.n_hosts
        if job.gpus > n * g or job.nodes > n or (job.nodes and job.gpus_per_node > g):
            counts.too_large += 1
            counts.examples.setdefault("too_large", f"job {job.job_id} ({job.gpus} GPUs on {job.nodes or 'any'} "
                                                    f"hosts; fabric: {n} hosts x {g} GPUs)")
            return None
        multi = job.nodes > 1 or job.gpus > g
        return _Pending(job, multi)

    # ------------------------------------------------------------------ starting jobs
    def _try_start(self, pj: _Pending, now: float) -> int:
        job = pj.job
        if not self._fits_by_count(job):
            return BLOCKED
        choice = self.place(self.free, job)
        if choice is None:
            return BLOCKED
        hosts, gpus, pair_hops = choice
        leaves, groups = self.capacity.spread(hosts)
        hosts_needed = job.nodes or math.ceil(job.gpus / self.config.gpus_per_host)
        min_leaves = self.capacity.min_leaves(hosts_needed)
        if self.wait and pj.multi and now < job.submit + self.config.wait_time:
            allowed = self.config.wait_leaves or min_leaves
            if leaves > allowed:
                if not pj.held:
                    pj.held = True
                    self.metrics.held += 1
                    self._push(job.submit + self.config.wait_time, _WAKE, -1)
                return HELD
        extra_leaves = max(leaves - min_leaves, 0)
        extra_groups = max(groups - self.capacity.min_groups(hosts_needed), 0) if groups else 0
        factor = self.speed.slowdown(job.job_class, job.partition, extra_leaves, extra_groups) if leaves > 1 else 1.0
        runtime = job.duration * factor
        timed_out = runtime > job.time_limit
        runtime = min(runtime, job.time_limit)
        host_list, gpu_list = hosts.tolist(), gpus.tolist()
        self._take(host_list, gpu_list, -1)
        rid = self.seq
        self.seq += 1
        record = _Running(job, now, host_list, gpu_list, now + job.time_limit)
        self.running[rid] = record
        bisect.insort(self.ends, (record.expected_end, rid))
        self._push(now + runtime, _END, rid)
        if self.config.record_starts:
            self.starts.append((job.job_id, now, [self.compiled.host_names[h] for h in host_list]))
        record_info = (leaves, extra_leaves, pair_hops, factor, timed_out, len(host_list) > 1 or pj.multi)
        self._info[rid] = record_info
        return STARTED

    def _push(self, time: float, kind: int, rid: int) -> None:
        self.seq += 1
        heapq.heappush(self.events, (time, kind, self.seq, rid))

    def _finish(self, rid: int, now: float) -> None:
        record = self.running.pop(rid)
        k = bisect.bisect_left(self.ends, (record.expected_end, rid))
        del self.ends[k]
        self._take(record.hosts, record.gpus, +1)
        leaves, extra_leaves, pair_hops, factor, timed_out, multi = self._info.pop(rid)
        job = record.job
        self.metrics.job_done(submit=job.submit, start=record.start, end=now, duration=job.duration, gpus=job.gpus,
                              multi_node=multi, leaves=leaves, extra_leaves=extra_leaves, pair_hops=pair_hops,
                              factor=factor, timed_out=timed_out)

    # ------------------------------------------------------------------ scheduling pass
    def _reservation(self, head: Job, now: float) -> tuple[float, int]:
        """(shadow time, GPUs spare at the shadow time) for the blocked head job."""
        need = head.gpus
        have = self.total_free
        shadow = now
        if head.nodes == 0:
            for end, rid in self.ends:
                if have >= need:
                    break
                have += sum(self.running[rid].gpus)
                shadow = end
            return (shadow if have >= need else math.inf), have - need
        k, n = head.gpus_per_node, head.nodes
        count = self._hosts_with(k)
        overlay: dict[int, int] = {}
        free = self.free
        for end, rid in self.ends:
            if count >= n and have >= need:
                break
            record = self.running[rid]
            for h, g in zip(record.hosts, record.gpus, strict=True):
                before = overlay.get(h)
                if before is None:
                    before = int(free[h])
                after = before + g
                overlay[h] = after
                if before < k <= after:
                    count += 1
                have += g
            shadow = end
        return (shadow if count >= n else math.inf), have - need

    def _schedule(self, now: float) -> None:
        queue = self.queue
        if not queue:
            return
        kept: list[_Pending] = []
        idx = 0
        head: _Pending | None = None
        while idx < len(queue):
            pj = queue[idx]
            idx += 1
            result = self._try_start(pj, now)
            if result == STARTED:
                continue
            kept.append(pj)
            if result == BLOCKED:
                head = pj
                break
        if head is not None and self.total_free > 0 and idx < len(queue):
            shadow, extra = self._reservation(head.job, now)
            stop = min(len(queue), idx + self.config.backfill_depth)
            while idx < stop:
                pj = queue[idx]
                idx += 1
                job = pj.job
                if self.total_free < job.gpus:
                    kept.append(pj)
                    continue
                before_shadow = now + job.time_limit <= shadow
                if not before_shadow and job.gpus > extra:
                    kept.append(pj)
                    continue
                if self._try_start(pj, now) == STARTED:
                    if not before_shadow:
                        extra -= job.gpus
                    if self.total_free == 0:
                        break
                else:
                    kept.append(pj)
        kept.extend(queue[idx:])
        self.queue = kept

    # ------------------------------------------------------------------ main loop
    def run(self, jobs: Iterable[Job]) -> PolicyMetrics:
        source: Iterator[Job] = iter(jobs)
        arrivals: list[tuple[float, int, Job]] = []
        window = max(self.config.reorder_window, 1)
        exhausted = False
        order = 0
        last_time: float | None = None
        metrics = self.metrics

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
            if last_time is not None and self.queue:
                metrics.idle_while_waiting(last_time, now, self.total_free)
            last_time = now
            while self.events and self.events[0][0] <= now:
                _t, kind, _s, rid = heapq.heappop(self.events)
                if kind == _END:
                    self._finish(rid, now)
            while arrivals and arrivals[0][0] <= now:
                submit, _o, job = heapq.heappop(arrivals)
                if submit < now:  # older than the clock: out of order by more than the read-ahead window
                    self.counts.reordered += 1
                    job = replace(job, submit=now)
                if metrics.first_submit is None:
                    metrics.first_submit = job.submit
                pending = self._admit(job)
                if pending is not None:
                    self.queue.append(pending)
                refill()
            self.now = now
            self._schedule(now)
            if not self.events and not arrivals and self.queue:
                self.counts.never_started += len(self.queue)
                self.queue = []
        return metrics


def simulate(compiled: CompiledFabric, jobs_factory: Callable[[], Iterable[Job]], policies: Iterable[str],
             config: SimConfig, speed: SpeedModel) -> tuple[list[PolicyMetrics], TraceCounts]:
    """Each policy over a fresh pass of the trace; trace counts come from the first pass."""
    results: list[PolicyMetrics] = []
    first_counts: TraceCounts | None = None
    for policy in policies:
        counts = TraceCounts()
        sim = Simulator(compiled, policy, config, speed, counts)
        results.append(sim.run(jobs_factory()))
        if first_counts is None:
            first_counts = counts
    return results, first_counts or TraceCounts()
