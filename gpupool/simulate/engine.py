"""Event-driven replay: FIFO + backfill over flat free-GPU arrays, one placement policy per run.

Scheduler (the same for every policy, so policies differ only in where jobs go and when they may
start): jobs queue in submit order and are tested in that order at each event time, taking running
jobs' requested time limits as their ends. Two backfill models (`SimConfig.backfill`):

- `slurm`, as Slurm's sched/backfill: an availability plan over hosts and time
  (`plan.AvailabilityPlan`) is built from the free GPUs and running jobs' limit-ends; every job
  tested that cannot start now reserves the earliest window where it fits for its whole limit, on
  hosts the reservation pins; a job starts now only if the policy places it on the GPUs that no
  reservation books over [now, now + limit). At most `backfill_depth` jobs behind the first blocked
  one are tested per pass (Slurm's bf_max_job_test).
- `easy` (default; EASY backfill, Lifka 1995): only the first blocked job (the head) reserves: its shadow
  time is the earliest time enough GPUs (or hosts with enough free GPUs) are free; a later job
  starts now if it fits and either ends (by its limit) before the shadow time or uses only GPUs
  spare then. At most `backfill_depth` jobs behind the head are tried per pass.

Per event the work is O(queue scanned + hosts of the jobs that start or end) for `easy`; `slurm`
adds the plan (rows: running jobs' distinct limit-ends and reservation bounds, times hosts) and a
Numba scan of it per blocked job. When nothing ended or woke since the last pass, only the jobs
that arrived since are tested, against the plan (or shadow) that pass left. The placement kernels
are the existing ones (`placement.engine.place`, `placement.slurm_reference`).
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
from gpupool.placement.objective import DEFAULT_GOAL, Objective, PlacementGoal
from gpupool.placement.slurm_reference import slurm_reference
from gpupool.simulate.contention import Flow, LinkContention
from gpupool.simulate.kernels import per_node_shadow
from gpupool.simulate.metrics import PolicyMetrics
from gpupool.simulate.plan import AvailabilityPlan
from gpupool.simulate.speed import SPEED_MODELS, SpeedModel
from gpupool.simulate.workload import Job

if TYPE_CHECKING:
    from gpupool.fabric.compiled import CompiledFabric
    from gpupool.simulate.pooled import PoolLayout

# gpupool: exactly what `plan` does by default (placement.objective.DEFAULT_GOAL); gpupool-hops / gpupool-pack:
# one objective each, whatever the default, so both can be compared in one run.
POLICIES = ("slurm-tree", "slurm-block", "slurm-tuned", "gpupool", "gpupool-wait", "gpupool-hops", "gpupool-pack",
            "gpupool-contention", "gpupool-pack-uplinks", "gpupool-contention-wait")
BACKFILL_MODES = ("slurm", "easy")  # a reservation for every blocked job tested (Slurm's), or the queue head's only
STARTED, HELD, BLOCKED = 0, 1, 2
_END, _ARRIVE, _WAKE = 0, 1, 2  # at equal times, ends free resources before arrivals are considered


@dataclass
class SimConfig:
    gpus_per_host: int = 8
    backfill_depth: int = 500  # Slurm's bf_max_job_test default
    # "slurm": every blocked job tested reserves (sched/backfill); "easy": the head only. EASY stays the default:
    # the Slurm-like plan is closer to Slurm on queued traces but far slower on large loaded ones (docs/simulate.md).
    backfill: str = "easy"
    reserve_whole_hosts: bool = True  # slurm backfill: a reservation books its hosts whole (Slurm's node_space)
    backfill_window: float = 86400.0  # slurm backfill: no reservation starts later than this after now (bf_window)
    reserve_by_policy: bool = True  # slurm backfill: the policy places a reservation on its window (else best fit)
    wait_time: float = 300.0  # gpupool-wait: the T of --switches=N@T (Slurm's max_switch_wait default)
    wait_leaves: int = 0  # gpupool-wait: the N of --switches=N@T; 0 = the fewest leaves that could hold the job
    partitions: frozenset[str] | None = None  # accepted partitions; None = all
    reorder_window: int = 10000  # jobs read ahead to put small submit-time disorders right
    bin_seconds: float = 3600.0
    record_starts: bool = False  # keep (job id, start, hosts) of every start, for tests and reality checks
    # gpupool-pack: the objective's hop slack and size mix (`gpupool` and `gpupool-wait` use plan's default goal)
    pack_goal: PlacementGoal = field(default_factory=lambda: PlacementGoal(objective=Objective.PACK))


@dataclass
class TraceCounts:
    """Jobs of the trace that were not replayed, and why (the same for every policy)."""

    too_large: int = 0
    unknown_partition: int = 0
    reordered: int = 0
    never_started: int = 0
    no_pool: int = 0  # pool policies: the job's account owns no pool and there is no open pool or lending
    too_large_for_pools: int = 0  # pool policies: larger than every set of hosts its account may use
    examples: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"too_large_for_fabric": self.too_large, "unknown_partition": self.unknown_partition,
                "submit_reordered": self.reordered, "never_started": self.never_started,
                "no_pool_for_account": self.no_pool,
                "too_large_for_pools": self.too_large_for_pools,
                "examples": dict(self.examples)}


class _Pending:
    __slots__ = ("job", "held", "multi", "order")

    def __init__(self, job: Job, multi: bool) -> None:
        self.job = job
        self.held = False
        self.multi = multi
        self.order = 0  # admission order: where a requeued job goes back in the queue


class _Running:
    __slots__ = ("job", "start", "hosts", "gpus", "slots", "total", "expected_end", "order")

    def __init__(self, job: Job, start: float, hosts: list[int], gpus: list[int], slots: list[int],
                 expected_end: float) -> None:
        self.job = job
        self.start = start
        self.hosts = hosts
        self.gpus = gpus
        self.slots = slots  # column of each host's row in the slot arrays
        self.total = sum(gpus)
        self.expected_end = expected_end
        self.order = 0


Placer = Callable[[np.ndarray, Job], "tuple[np.ndarray, np.ndarray, float] | None"]


def policy_goal(policy: str, config: SimConfig | None = None) -> PlacementGoal | None:
    """The placement goal a gpupool policy plans with (None for Slurm's policies)."""
    if policy in ("gpupool", "gpupool-wait"):
        return DEFAULT_GOAL
    if policy == "gpupool-hops":
        return PlacementGoal(objective=Objective.HOPS)
    if policy == "gpupool-pack":
        return config.pack_goal if config is not None else PlacementGoal(objective=Objective.PACK)
    if policy in ("gpupool-contention", "gpupool-contention-wait"):
        return PlacementGoal(objective=Objective.CONTENTION)
    if policy == "gpupool-pack-uplinks":
        base = config.pack_goal if config is not None else PlacementGoal(objective=Objective.PACK)
        return replace(base, uplinks=True)
    return None


def make_placer(compiled: CompiledFabric, policy: str, config: SimConfig | None = None,
                loads: Callable[[], np.ndarray] | None = None) -> Placer:
    """(hosts, GPUs per host, mean pair hops) of the policy's choice on the free array, or None; `loads`
    gives the running jobs' uplink loads to a goal that reads them (the `contention` objective)."""
    index = compiled.host_index()
    gpus_per_host = config.gpus_per_host if config is not None else 8
    # Every host has gpus_per_host GPUs configured, as Slurm would tell `plan` (the pack score needs whole hosts).
    totals = np.full(compiled.n_hosts, gpus_per_host, dtype=np.int32)
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

    goal = policy_goal(policy, config)
    if goal is not None:
        read_loads = loads if goal.reads_uplinks else None

        def gpupool_placer(free: np.ndarray, job: Job) -> tuple[np.ndarray, np.ndarray, float] | None:
            state = FreeState(free_gpus=free, usable=free > 0, total_gpus=totals,
                              uplink_load=read_loads() if read_loads is not None else None)
            try:
                p = place(compiled, state, request_of(job), goal)
            except InfeasibleError:
                return None
            hosts, gpus = arrays(p.allocation)
            return hosts, gpus, p.cost.mean_hops
        return gpupool_placer
    if policy in ("slurm-tree", "slurm-block", "slurm-tuned"):
        if policy == "slurm-tree":
            def choose(state: FreeState, request: Request) -> dict[str, int] | None:
                return slurm_reference(compiled, state, request)[1]
        elif policy == "slurm-tuned":
            from gpupool.simulate.tuned import tuned_chooser

            choose = tuned_chooser(compiled)  # Slurm's tree selection with gpupool's node weights
        else:
            from gpupool.fabric.blocks import fabric_blocks
            from gpupool.placement.block import slurm_block_reference

            layout = fabric_blocks(compiled)  # one base block per logical leaf, BlockSizes the fabric supports

            def choose(state: FreeState, request: Request) -> dict[str, int] | None:
                return slurm_block_reference(compiled, state, request, layout)

        def slurm_placer(free: np.ndarray, job: Job) -> tuple[np.ndarray, np.ndarray, float] | None:
            try:
                allocation = choose(FreeState(free_gpus=free, usable=free > 0), request_of(job))
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
        self.host_leaf = leaf.tolist()  # lists: a job has few hosts, and set() on lists beats np.unique there
        self.host_group = up.tolist() if has_groups else [-1] * leaf.size
        self.leaf_hosts = np.cumsum(np.sort(np.bincount(leaf[leaf >= 0]))[::-1])
        if has_groups:
            self.group_hosts = np.cumsum(np.sort(np.bincount(up))[::-1])
        else:
            self.group_hosts = np.zeros(0, np.int64)

    def min_leaves(self, hosts_needed: int) -> int:
        return int(np.searchsorted(self.leaf_hosts, hosts_needed)) + 1

    def min_groups(self, hosts_needed: int) -> int:
        return int(np.searchsorted(self.group_hosts, hosts_needed)) + 1 if self.group_hosts.size else 0

    def spread(self, hosts: list[int]) -> tuple[int, int]:
        leaf = self.host_leaf
        leaves = len({leaf[h] for h in hosts})
        if not self.group_hosts.size:
            return leaves, 0
        group = self.host_group
        return leaves, len({group[h] for h in hosts})


class Simulator:
    """One policy over one trace; `run` consumes the job iterator and returns the policy's metrics."""

    def __init__(self, compiled: CompiledFabric, policy: str, config: SimConfig, speed: SpeedModel,
                 counts: TraceCounts | None = None) -> None:
        self.compiled = compiled
        self.policy = policy
        self.config = config
        self.speed = speed
        self.counts = counts if counts is not None else TraceCounts()
        self.place = make_placer(compiled, policy, config, self._uplink_load)
        self.wait = policy in ("gpupool-wait", "gpupool-contention-wait")  # hold spread jobs (--switches=N@T)
        g = config.gpus_per_host
        if g < 1:
            raise UsageError(f"--gpus-per-host must be >= 1, got {g}")
        n = compiled.n_hosts
        if n == 0:
            raise UsageError("the fabric has no hosts to simulate")
        self.free = np.full(n, g, dtype=np.int32)
        self.hist = [0] * (g + 1)  # hosts by free GPUs
        self.hist[g] = n
        self._at_least: list[int] | None = None  # hosts with >= k free GPUs, rebuilt after a change
        # Per host, one slot per running job on it (a job holds >= 1 GPU, so g slots suffice): the job's
        # expected end and GPUs, for the reservation kernel.
        self.slot_end = np.full((n, g), np.inf, dtype=np.float64)
        self.slot_gpus = np.zeros((n, g), dtype=np.int64)
        self.total_free = n * g
        self.capacity = _Capacity(compiled)
        self.metrics = PolicyMetrics(policy=policy, total_gpus=n * g, bin_seconds=config.bin_seconds)
        # Contention model: shared uplink bundles slow multi-leaf jobs (simulate.contention); None = isolated.
        self.contention: LinkContention | None = None
        if speed.model == "contention":
            self.contention = LinkContention(compiled, g)
            self.metrics.contention_model = True
        elif speed.model != "isolated":
            raise UsageError(f"unknown speed model {speed.model!r} (known: {', '.join(SPEED_MODELS)})")
        elif (goal := policy_goal(policy, config)) is not None and goal.reads_uplinks:
            self.contention = LinkContention(compiled, g, track_only=True)  # loads for the placement, no slowing
        self._end_seq: dict[int, int] = {}  # running id -> seq of its live end event (older ones are stale)
        self._stopped: Flow | None = None  # the flow of the job _release freed last (contention model)
        self.queue: list[_Pending] = []
        self.running: dict[int, _Running] = {}
        self.ends: list[tuple[float, int]] = []  # (expected end by time limit, running id), sorted
        self.events: list[tuple[float, int, int, int]] = []  # (time, kind, seq, running id)
        self.seq = 0
        self.now = 0.0
        # running id -> (leaves, extra leaves, mean pair hops, speed factor, timed out, multi-host)
        self._info: dict[int, tuple[int, int, float, float, bool, bool]] = {}
        self._changed = True  # something ended or woke since the last scheduling pass
        self._stable: tuple[int, float, int] | None = None  # (head index, shadow, spare) of a blocked queue
        self.starts: list[tuple[str, float, list[str]]] = []
        if config.backfill not in BACKFILL_MODES:
            raise UsageError(f"unknown backfill {config.backfill!r} (known: {', '.join(BACKFILL_MODES)})")
        self.plan = AvailabilityPlan(n) if config.backfill == "slurm" else None
        self._plan_ok = False  # nothing ended or woke since the last pass: its bookings still hold
        self._plan_built = False  # the plan was built in this pass (it is built only once a reservation is needed)
        self._blocked = False  # the plan's pass met a blocked job (later ones count against backfill_depth)
        self._tested = 0  # jobs tested after the first blocked one in the plan's pass
        # Blocked jobs whose reservations are not booked yet, in queue order: (from when, start then allowed, job).
        # A reservation matters only to a later job that could start now, so they are booked when one comes.
        self._deferred: list[tuple[float, bool, Job]] = []
        self._last_start: tuple[list[int], list[int]] = ([], [])

    # ------------------------------------------------------------------ free state
    def _hosts_with(self, k: int) -> int:
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

    def _fits_by_count(self, job: Job) -> bool:
        if job.nodes == 0:
            return self.total_free >= job.gpus
        return self.total_free >= job.gpus and self._hosts_with(job.gpus_per_node) >= job.nodes

    @staticmethod
    def _fits_array(free: np.ndarray, job: Job) -> bool:
        if int(free.sum()) < job.gpus:
            return False
        return job.nodes == 0 or int(np.count_nonzero(free >= job.gpus_per_node)) >= job.nodes

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
    def _try_start(self, pj: _Pending, now: float, free: np.ndarray | None = None) -> int:
        """Start the job now if the policy places it on `free` (default: the free GPUs)."""
        job = pj.job
        if free is None:
            if not self._fits_by_count(job):
                return BLOCKED
            free = self.free
        elif not self._fits_array(free, job):
            return BLOCKED
        choice = self.place(free, job)
        if choice is None:
            return BLOCKED
        hosts, gpus, pair_hops = choice
        host_list, gpu_list = hosts.tolist(), gpus.tolist()
        if self.wait and pj.multi and now < job.submit + self.config.wait_time:
            leaves, _groups = self.capacity.spread(host_list)
            hosts_needed = job.nodes or math.ceil(job.gpus / self.config.gpus_per_host)
            allowed = self.config.wait_leaves or self.capacity.min_leaves(hosts_needed)
            if leaves > allowed:
                if not pj.held:
                    pj.held = True
                    self.metrics.held += 1
                    self._push(job.submit + self.config.wait_time, _WAKE, -1)
                return HELD
        self._commit(pj, now, host_list, gpu_list, pair_hops)
        return STARTED

    def _commit(self, pj: _Pending, now: float, host_list: list[int], gpu_list: list[int], pair_hops: float) -> int:
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
        record = _Running(job, now, host_list, gpu_list, slots, expected_end)
        record.order = pj.order
        self.running[rid] = record
        bisect.insort(self.ends, (record.expected_end, rid))
        self._push(now + runtime, _END, rid)
        self._end_seq[rid] = self.seq
        if self.config.record_starts:
            self.starts.append((job.job_id, now, [self.compiled.host_names[h] for h in host_list]))
        record_info = (leaves, extra_leaves, pair_hops, factor, timed_out, len(host_list) > 1 or pj.multi)
        self._info[rid] = record_info
        self._last_start = (host_list, gpu_list)
        return rid

    def _uplink_load(self) -> np.ndarray:
        """Running jobs' Gb/s per uplink bundle, for the `contention` objective (zeros before any job)."""
        if self.contention is None:
            return np.zeros(self.compiled.tree_parent.size, dtype=np.float64)
        return self.contention.load_array()

    def _push(self, time: float, kind: int, rid: int) -> None:
        self.seq += 1
        heapq.heappush(self.events, (time, kind, self.seq, rid))

    def _retime(self, retimed: list[tuple[int, float]]) -> None:
        """New end events for jobs whose bandwidth share changed; their earlier end events go stale."""
        for rid, end in retimed:
            self._push(end, _END, rid)
            self._end_seq[rid] = self.seq

    def _release(self, rid: int) -> tuple[_Running, tuple[int, int, float, float, bool, bool]]:
        """Give a running job's GPUs back; returns its record and placement info."""
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

    def _finish(self, rid: int, now: float) -> None:
        record, (leaves, extra_leaves, pair_hops, factor, timed_out, multi) = self._release(rid)
        job = record.job
        flow, self._stopped = self._stopped, None
        slowdown = 1.0
        if flow is not None:
            timed_out = flow.timed_out()
            slowdown = flow.slowdown(now)
        self.metrics.job_done(submit=job.submit, start=record.start, end=now, duration=job.duration, gpus=job.gpus,
                              multi_node=multi, leaves=leaves, extra_leaves=extra_leaves, pair_hops=pair_hops,
                              factor=factor, timed_out=timed_out, contention=slowdown)

    # ------------------------------------------------------------------ scheduling pass
    def _reservation(self, head: Job, now: float) -> tuple[float, int]:
        """(shadow time, GPUs spare at the shadow time) for the blocked head job."""
        need = head.gpus
        have = self.total_free
        if head.nodes == 0:
            shadow = now
            for end, rid in self.ends:
                if have >= need:
                    break
                have += self.running[rid].total
                shadow = end
            return (shadow if have >= need else math.inf), have - need
        shadow = float(per_node_shadow(self.free, self.slot_end, self.slot_gpus, head.gpus_per_node, head.nodes))
        if shadow == math.inf:
            return math.inf, 0
        shadow = max(shadow, now)
        have += int(self.slot_gpus[self.slot_end <= shadow].sum())
        return shadow, max(have - need, 0)

    def _schedule(self, now: float, fresh: int) -> None:
        if self.plan is not None:
            self._schedule_planned(now, fresh)
        else:
            self._schedule_easy(now, fresh)

    def _schedule_planned(self, now: float, fresh: int) -> None:
        """Slurm-like pass; `fresh` jobs were appended since the last one. When nothing ended or woke since
        then, the plan (with the last pass's starts and reservations) still holds and every older job
        would fail exactly as before, so only the fresh ones are tested, after the older ones."""
        queue = self.queue
        if not queue:
            self._plan_ok = False
            return
        if self._changed or not self._plan_ok or fresh > len(queue):
            self._changed = False
            self._plan_built = False
            self._blocked = False
            self._tested = 0
            self._deferred = []
            first = 0
        else:
            first = len(queue) - fresh
        self._plan_ok = True
        if first >= len(queue) or self.total_free == 0:
            return
        started = self._plan_pass(queue, first, now)
        if started:
            self.queue = [pj for idx, pj in enumerate(queue) if idx not in started]

    def _plan_pass(self, queue: list[_Pending], first: int, now: float) -> set[int]:
        """Test queue[first:] in order: start what fits now without colliding with an earlier reservation,
        give every other job tested a reservation; returns the indices started."""
        plan = self.plan
        assert plan is not None
        depth = self.config.backfill_depth
        started: set[int] = set()
        for idx in range(first, len(queue)):
            if self.total_free == 0:
                break  # nothing more can start now; a later start needs an end, and so a rebuilt plan
            if self._blocked:
                if self._tested >= depth:
                    break
                self._tested += 1
            pj = queue[idx]
            job = pj.job
            end = now + job.time_limit
            result = BLOCKED
            fits = self._fits_by_count(job)
            if fits:
                # Before any reservation the window's minimum is the free array itself.
                window = None
                if self._blocked:
                    self._book_deferred(now)
                    # Only hosts with room for the job now can take it now: the plan is read for those alone.
                    window = plan.window(now, end, np.flatnonzero(self.free >= (job.gpus_per_node if job.nodes else 1)))
                result = self._try_start(pj, now, window)
                if result == STARTED:
                    if self._plan_built:  # else the plan, when built, reads this start from the slot arrays
                        hosts, gpus = self._last_start
                        plan.take(now, end, np.asarray(hosts), np.asarray(gpus))
                    started.add(idx)
                    continue
                if result == HELD:
                    continue
                fits = window is None or self._fits_array(window, job)  # it fitted; only the placement failed
            self._blocked = True
            self._deferred.append((now, not fits, job))
        return started

    def _book_deferred(self, now: float) -> None:
        """Book the reservations of the blocked jobs tested so far, in queue order (building the plan from
        the free GPUs and running jobs' limit-ends first, when this pass has not yet)."""
        plan = self.plan
        assert plan is not None
        if not self._plan_built:
            plan.rebuild(self.free, self.slot_end, self.slot_gpus, now)
            self._plan_built = True
        whole = self.config.reserve_whole_hosts
        for after, inclusive, job in self._deferred:
            choose = None
            if self.config.reserve_by_policy:
                def choose(mins: np.ndarray, job: Job = job) -> tuple[np.ndarray, np.ndarray] | None:
                    picked = self.place(mins, job)
                    return None if picked is None else (picked[0], picked[1])
            plan.reserve(after, inclusive, job.time_limit, job.gpus_per_node if job.nodes else 0, job.nodes, job.gpus,
                         whole, self.config.backfill_window, choose)
        self._deferred = []

    def _schedule_easy(self, now: float, fresh: int) -> None:
        """One pass; `fresh` jobs were appended since the last one. When nothing ended, woke or started
        since then, every older job would fail exactly as before, so only the fresh ones are tried."""
        queue = self.queue
        stable = self._stable
        if not queue:
            self._stable = None
            return
        if not self._changed and stable is not None and fresh <= len(queue):
            head_index, shadow, extra = stable
            first = max(len(queue) - fresh, head_index + 1)
            stop = min(len(queue), head_index + 1 + self.config.backfill_depth)
            if first < stop and self.total_free > 0:
                started = [False] * len(queue)
                extra = self._backfill(queue, first, stop, now, shadow, extra, started)
                if any(started):
                    self.queue = [pj for pj, s in zip(queue, started, strict=True) if not s]
                    self._changed = True  # a start changes the free state: the next pass is a full one
            self._stable = (head_index, shadow, extra)
            return
        self._changed = False
        self._stable = None
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
        if head is None:
            self.queue = kept
            return
        head_index = len(kept) - 1
        shadow, extra = self._reservation(head.job, now)
        stop = min(len(queue), idx + self.config.backfill_depth)
        started = [False] * len(queue)
        if self.total_free > 0 and idx < stop:
            extra = self._backfill(queue, idx, stop, now, shadow, extra, started)
        kept.extend(pj for pj, s in zip(queue[idx:], started[idx:], strict=True) if not s)
        self.queue = kept
        self._stable = None if any(started) else (head_index, shadow, extra)

    def _backfill(self, queue: list[_Pending], first: int, stop: int, now: float, shadow: float, extra: int,
                  started: list[bool]) -> int:
        """Start the jobs of queue[first:stop] that fit now without delaying the head; returns the spare left."""
        for idx in range(first, stop):
            job = queue[idx].job
            if self.total_free < job.gpus:
                continue
            before_shadow = now + job.time_limit <= shadow
            if not before_shadow and job.gpus > extra:
                continue
            if job.nodes and self._hosts_with(job.gpus // job.nodes) < job.nodes:
                continue
            if self._try_start(queue[idx], now) == STARTED:
                started[idx] = True
                if not before_shadow:
                    extra -= job.gpus
                if self.total_free == 0:
                    break
        return extra

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
            if last_time is not None:  # GPUs busy since the last event, for the submit-period utilisation
                metrics.elapse(last_time, now, metrics.total_gpus - self.total_free)
            if last_time is not None and self.queue:
                metrics.idle_while_waiting(last_time, now, self.total_free)
            last_time = now
            self.now = now
            while self.events and self.events[0][0] <= now:
                _t, kind, seq, rid = heapq.heappop(self.events)
                if kind == _END and rid in self.running:  # a preempted job's end event is stale
                    if self._end_seq[rid] != seq:
                        continue  # superseded when a bandwidth change rescheduled it: nothing happens now
                    self._finish(rid, now)
                self._changed = True
            fresh = 0
            while arrivals and arrivals[0][0] <= now:
                submit, _o, job = heapq.heappop(arrivals)
                if submit < now:  # older than the clock: out of order by more than the read-ahead window
                    self.counts.reordered += 1
                    job = replace(job, submit=now)
                if metrics.first_submit is None:
                    metrics.first_submit = job.submit
                metrics.submitted(now)
                pending = self._admit(job)
                if pending is not None:
                    self.queue.append(pending)
                    fresh += 1
                refill()
            self._schedule(now, fresh)
            if not self.events and not arrivals and self.queue:
                self.counts.never_started += len(self.queue)
                self.queue = []
        return metrics


def simulate(compiled: CompiledFabric, jobs_factory: Callable[[], Iterable[Job]], policies: Iterable[str],
             config: SimConfig, speed: SpeedModel,
             layout: PoolLayout | None = None) -> tuple[list[PolicyMetrics], TraceCounts]:
    """Each policy over a fresh pass of the trace; trace counts come from the first pass."""
    from gpupool.simulate.pooled import POOL_POLICIES, PooledSimulator, pool_tallies

    results: list[PolicyMetrics] = []
    first_counts: TraceCounts | None = None
    for policy in policies:
        counts = TraceCounts()
        if policy in POOL_POLICIES:
            if layout is None:
                raise UsageError(f"policy {policy} needs a pools file (--pools)")
            pooled = PooledSimulator(compiled, policy, config, speed, layout, counts)
            metrics = pooled.run(jobs_factory())
            metrics.pools = pool_tallies(pooled)
            results.append(metrics)
        else:
            sim = Simulator(compiled, policy, config, speed, counts)
            results.append(sim.run(jobs_factory()))
        if first_counts is None:
            first_counts = counts
    return results, first_counts or TraceCounts()
