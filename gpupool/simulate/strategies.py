"""The simulator's strategies: placement (where and whether a job starts now), backfill (the scheduling
pass over the queue) and admission (which jobs enter the queue, what happens when a run ends, and
what a pass leaves to requeue). `engine.SimState` runs one loop and holds the free state; a policy
(`policies.py`) is a placer plus one strategy of each kind. The pool policies' strategies are in
`pooled.py`.

Backfill models (`SimConfig.backfill`):

- `slurm` (`SlurmBackfill`), as Slurm's sched/backfill: an availability plan over hosts and time
  (`plan.AvailabilityPlan`) is built from the free GPUs and running jobs' limit-ends; every job
  tested that cannot start now reserves the earliest window where it fits for its whole limit, on
  hosts the reservation pins; a job starts now only if the policy places it on the GPUs that no
  reservation books over [now, now + limit). At most `backfill_depth` jobs behind the first blocked
  one are tested per pass (Slurm's bf_max_job_test).
- `easy` (`EasyBackfill`, default; EASY backfill, Lifka 1995): only the first blocked job (the head)
  reserves: its shadow time is the earliest time enough GPUs (or hosts with enough free GPUs) are free;
  a later job starts now if it fits and either ends (by its limit) before the shadow time or uses only
  GPUs spare then. At most `backfill_depth` jobs behind the head are tried per pass.

Per event the work is O(queue scanned + hosts of the jobs that start or end) for `easy`; `slurm`
adds the plan (rows: running jobs' distinct limit-ends and reservation bounds, times hosts) and a
Numba scan of it per blocked job. When nothing ended or woke since the last pass, only the jobs
that arrived since are tested, against the plan (or shadow) that pass left.
"""

from __future__ import annotations

import math

import numpy as np

from gpupool.simulate.availability import AvailabilityPlan
from gpupool.simulate.core import (
    BLOCKED,
    HELD,
    STARTED,
    WAKE,
    Backfill,
    Pending,
    SimConfig,
    SimState,
    StartRoom,
    fits_array,
)
from gpupool.simulate.reservation_kernels import per_node_shadow
from gpupool.simulate.workload import Job
from gpupool.switch_wait import SwitchWait

__all__ = ["EasyBackfill", "FifoAdmission", "FreePlacement", "SlurmBackfill", "admit_to_fabric", "backfill_for"]


# ---------------------------------------------------------------------------------------------- admission
def admit_to_fabric(sim: SimState, job: Job) -> Pending | None:
    """The job if its partition is replayed and it fits the fabric at all; else counted (with an example)."""
    counts, cfg = sim.counts, sim.config
    if cfg.partitions is not None and job.partition not in cfg.partitions:
        counts.unknown_partition += 1
        counts.examples.setdefault("unknown_partition", f"job {job.job_id} (partition {job.partition!r})")
        return None
    g = cfg.gpus_per_host
    n = sim.compiled.n_hosts
    if job.gpus > n * g or job.nodes > n or (job.nodes and job.gpus_per_node > g):
        counts.too_large += 1
        counts.examples.setdefault("too_large", f"job {job.job_id} ({job.gpus} GPUs on {job.nodes or 'any'} "
                                                f"hosts; fabric: {n} hosts x {g} GPUs)")
        return None
    multi = job.nodes > 1 or job.gpus > g
    return Pending(job, multi)


class FifoAdmission:
    """Every job that fits the fabric queues in submit order; nothing is preempted or requeued."""

    def admit(self, sim: SimState, job: Job) -> Pending | None:
        return admit_to_fabric(sim, job)

    def finishing(self, sim: SimState, rid: int, now: float) -> None:
        return None

    def after_pass(self, sim: SimState) -> None:
        return None


# ---------------------------------------------------------------------------------------------- placement
class FreePlacement:
    """The policy's placer on the free GPUs (or the room a backfill pass leaves). With `hold` (Slurm's
    --switches=N@T: gpupool-wait's configured rule, or the default wait `gpupool submit` and the generated
    job_submit.lua ask for), a multi-host job placed on more than N leaves waits up to T after its submit,
    T = `hold.for_limit(job's time limit)`; N = `hold_leaves`, 0 = the fewest leaves that could hold it."""

    def __init__(self, hold: SwitchWait | None = None, hold_leaves: int = 0) -> None:
        self.hold = hold if hold else None
        self.hold_leaves = hold_leaves

    def try_start(self, sim: SimState, pj: Pending, now: float, room: StartRoom | None = None) -> int:
        job = pj.job
        if room is None:
            if not sim.fits_by_count(job):
                return BLOCKED
            free = sim.free
        else:
            free = room.usable(sim.free)
            if not fits_array(free, job):
                return BLOCKED
        choice = sim.place(free, job)
        if choice is None:
            return BLOCKED
        hosts, gpus, pair_hops = choice
        host_list, gpu_list = hosts.tolist(), gpus.tolist()
        hold = self.hold
        if hold is not None and pj.multi:
            until = job.submit + hold.for_limit(job.time_limit)
            if now < until:
                leaves, _groups = sim.capacity.spread(host_list)
                hosts_needed = job.nodes or math.ceil(job.gpus / sim.config.gpus_per_host)
                allowed = self.hold_leaves or sim.capacity.min_leaves(hosts_needed)
                if leaves > allowed:
                    if not pj.held:
                        pj.held = True
                        sim.metrics.held += 1
                        sim.push(until, WAKE, -1)
                    return HELD
        sim.commit(pj, now, host_list, gpu_list, pair_hops)
        return STARTED

    def could_start_now(self, sim: SimState, job: Job) -> bool:
        return sim.fits_by_count(job)

    def reserve_on(self, sim: SimState, mins: np.ndarray, job: Job) -> tuple[np.ndarray, np.ndarray] | None:
        picked = sim.place(mins, job)
        return None if picked is None else (picked[0], picked[1])


# ---------------------------------------------------------------------------------------------- backfill
def backfill_for(config: SimConfig, n_hosts: int, *, full_passes: bool = False) -> Backfill:
    """The backfill model `config.backfill` names (the caller checked it is one of BACKFILL_MODES)."""
    if config.backfill == "slurm":
        return SlurmBackfill(n_hosts, full_passes=full_passes)
    return EasyBackfill()


class EasyBackfill:
    """EASY backfill: the first blocked job reserves its shadow time; later jobs start if they do not delay it."""

    def __init__(self) -> None:
        self.stable: tuple[int, float, int] | None = None  # (head index, shadow, spare) of a blocked queue

    def reservation(self, sim: SimState, head: Job, now: float) -> tuple[float, int]:
        """(shadow time, GPUs spare at the shadow time) for the blocked head job."""
        need = head.gpus
        have = sim.total_free
        if head.nodes == 0:
            shadow = now
            for end, rid in sim.ends:
                if have >= need:
                    break
                have += sim.running[rid].total
                shadow = end
            return (shadow if have >= need else math.inf), have - need
        shadow = float(per_node_shadow(sim.free, sim.slot_end, sim.slot_gpus, head.gpus_per_node, head.nodes))
        if shadow == math.inf:
            return math.inf, 0
        shadow = max(shadow, now)
        have += int(sim.slot_gpus[sim.slot_end <= shadow].sum())
        return shadow, max(have - need, 0)

    def schedule(self, sim: SimState, now: float, fresh: int) -> None:
        """One pass; `fresh` jobs were appended since the last one. When nothing ended, woke or started
        since then, every older job would fail exactly as before, so only the fresh ones are tried."""
        queue = sim.queue
        stable = self.stable
        depth = sim.config.backfill_depth
        if not queue:
            self.stable = None
            return
        if not sim.changed and stable is not None and fresh <= len(queue):
            head_index, shadow, extra = stable
            first = max(len(queue) - fresh, head_index + 1)
            stop = min(len(queue), head_index + 1 + depth)
            if first < stop and sim.total_free > 0:
                started = [False] * len(queue)
                extra = self._backfill(sim, queue, first, stop, now, shadow, extra, started)
                if any(started):
                    sim.queue = [pj for pj, s in zip(queue, started, strict=True) if not s]
                    sim.changed = True  # a start changes the free state: the next pass is a full one
            self.stable = (head_index, shadow, extra)
            return
        sim.changed = False
        self.stable = None
        try_start = sim.placement.try_start
        kept: list[Pending] = []
        idx = 0
        head: Pending | None = None
        while idx < len(queue):
            pj = queue[idx]
            idx += 1
            result = try_start(sim, pj, now)
            if result == STARTED:
                continue
            kept.append(pj)
            if result == BLOCKED:
                head = pj
                break
        if head is None:
            sim.queue = kept
            return
        head_index = len(kept) - 1
        shadow, extra = self.reservation(sim, head.job, now)
        stop = min(len(queue), idx + depth)
        started = [False] * len(queue)
        if sim.total_free > 0 and idx < stop:
            extra = self._backfill(sim, queue, idx, stop, now, shadow, extra, started)
        kept.extend(pj for pj, s in zip(queue[idx:], started[idx:], strict=True) if not s)
        sim.queue = kept
        self.stable = None if any(started) else (head_index, shadow, extra)

    @staticmethod
    def _backfill(sim: SimState, queue: list[Pending], first: int, stop: int, now: float, shadow: float, extra: int,
                  started: list[bool]) -> int:
        """Start the jobs of queue[first:stop] that fit now without delaying the head; returns the spare left."""
        try_start = sim.placement.try_start
        for idx in range(first, stop):
            job = queue[idx].job
            if sim.total_free < job.gpus:
                continue
            before_shadow = now + job.time_limit <= shadow
            if not before_shadow and job.gpus > extra:
                continue
            if job.nodes and sim.hosts_with(job.gpus // job.nodes) < job.nodes:
                continue
            if try_start(sim, queue[idx], now) == STARTED:
                started[idx] = True
                if not before_shadow:
                    extra -= job.gpus
                if sim.total_free == 0:
                    break
        return extra


class SlurmBackfill:
    """Slurm-like backfill over an availability plan: every blocked job tested reserves its earliest window.

    `full_passes`: test the whole queue at every pass (a placement that preempts changes the free state
    in ways the plan of the last pass does not know; a preempted run stays booked in the plan until the
    next pass, which rebuilds it)."""

    def __init__(self, n_hosts: int, *, full_passes: bool = False) -> None:
        self.plan = AvailabilityPlan(n_hosts)
        self.full_passes = full_passes
        self.plan_ok = False  # nothing ended or woke since the last pass: its bookings still hold
        self.plan_built = False  # the plan was built in this pass (it is built only once a reservation is needed)
        self.blocked = False  # the pass met a blocked job (later ones count against backfill_depth)
        self.tested = 0  # jobs tested after the first blocked one in this pass
        # Blocked jobs whose reservations are not booked yet, in queue order: (from when, start then allowed, job).
        # A reservation matters only to a later job that could start now, so they are booked when one comes.
        self.deferred: list[tuple[float, bool, Job]] = []

    def schedule(self, sim: SimState, now: float, fresh: int) -> None:
        """Slurm-like pass; `fresh` jobs were appended since the last one. When nothing ended or woke since
        then, the plan (with the last pass's starts and reservations) still holds and every older job
        would fail exactly as before, so only the fresh ones are tested, after the older ones."""
        queue = sim.queue
        if not queue:
            self.plan_ok = False
            return
        if sim.changed or not self.plan_ok or fresh > len(queue) or self.full_passes:
            sim.changed = False
            self.plan_built = False
            self.blocked = False
            self.tested = 0
            self.deferred = []
            first = 0
        else:
            first = len(queue) - fresh
        self.plan_ok = True
        if first >= len(queue) or (sim.total_free == 0 and not self.full_passes):
            return
        started = self._pass(sim, queue, first, now)
        if started:
            sim.queue = [pj for idx, pj in enumerate(queue) if idx not in started]

    def _pass(self, sim: SimState, queue: list[Pending], first: int, now: float) -> set[int]:
        """Test queue[first:] in order: start what fits now without colliding with an earlier reservation,
        give every other job tested a reservation; returns the indices started."""
        plan = self.plan
        depth = sim.config.backfill_depth
        placement = sim.placement
        started: set[int] = set()
        for idx in range(first, len(queue)):
            if sim.total_free == 0 and not self.full_passes:
                break  # nothing more can start now; a later start needs an end, and so a rebuilt plan
            if self.blocked:
                if self.tested >= depth:
                    break
                self.tested += 1
            pj = queue[idx]
            job = pj.job
            end = now + job.time_limit
            result = BLOCKED
            fits = placement.could_start_now(sim, job)
            if fits:
                # Before any reservation the window's minimum is the free array itself.
                room = None
                if self.blocked:
                    self._book_deferred(sim, now)
                    # Only hosts with room for the job now can take it now: the plan is read for those alone
                    # (a placement that preempts reads every host: a busy one may be freed for the job).
                    hosts = None if self.full_passes else np.flatnonzero(
                        sim.free >= (job.gpus_per_node if job.nodes else 1))
                    room = StartRoom(gpus=plan.window(now, end, hosts))
                result = placement.try_start(sim, pj, now, room)
                if result == STARTED:
                    if self.plan_built:  # else the plan, when built, reads this start from the slot arrays
                        hosts_started, gpus_started = sim.last_start
                        plan.take(now, end, np.asarray(hosts_started), np.asarray(gpus_started))
                    started.add(idx)
                    continue
                if result == HELD:
                    continue
                fits = room is None or room.gpus is None or fits_array(room.gpus, job)  # only the placement failed
            self.blocked = True
            self.deferred.append((now, not fits, job))
        return started

    def _book_deferred(self, sim: SimState, now: float) -> None:
        """Book the reservations of the blocked jobs tested so far, in queue order (building the plan from
        the free GPUs and running jobs' limit-ends first, when this pass has not yet)."""
        plan = self.plan
        if not self.plan_built:
            plan.rebuild(sim.free, sim.slot_end, sim.slot_gpus, now)
            self.plan_built = True
        config = sim.config
        whole = config.reserve_whole_hosts
        placement = sim.placement
        for after, inclusive, job in self.deferred:
            choose = None
            if config.reserve_by_policy:
                def choose(mins: np.ndarray, job: Job = job) -> tuple[np.ndarray, np.ndarray] | None:
                    return placement.reserve_on(sim, mins, job)
            plan.reserve(after, inclusive, job.time_limit, job.gpus_per_node if job.nodes else 0, job.nodes, job.gpus,
                         whole, config.backfill_window, choose)
        self.deferred = []
