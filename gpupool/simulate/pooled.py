"""Pool policies: business units own pools of hosts; with lending, idle GPUs go to others as preemptible borrowers.

What `gpupool pool apply` configures, replayed: each pool is a partition its owner accounts may use
at a high priority tier; pools without owners are open to every account. With borrowing on, the
hosts of every lending pool also form the scavenger partition (every account, lowest tier,
PreemptMode=REQUEUE). Policies:

- `pools-nolend`: a job runs only on its account's own pools and the open pools.
- `pools-lend`: as above first; if that cannot start it, the job preempts borrowers on its own
  pools (Slurm's partition_prio preemption, youngest borrower first, only as many as the placement
  needs); failing that it borrows free GPUs of the scavenger partition. A preempted borrower is
  requeued in its submit-order place and later restarts from zero: the GPU time it had used is lost.

Placement inside the allowed hosts is gpupool's (`placement.engine.place`), and scheduling is the
engine's FIFO + backfill with one reservation per unit (the first blocked job of each account), so
a unit whose head job waits does not hold back the others. Jobs are attributed by Slurm account.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from gpupool.errors import BadRequest
from gpupool.simulate.engine import (
    _WAKE,
    BLOCKED,
    STARTED,
    SimConfig,
    Simulator,
    TraceCounts,
    _Pending,
)
from gpupool.simulate.kernels import per_node_shadow
from gpupool.simulate.speed import SpeedModel
from gpupool.simulate.workload import Job

if TYPE_CHECKING:
    from gpupool.fabric.compiled import CompiledFabric

POOL_POLICIES = ("pools-nolend", "pools-lend")


@dataclass(frozen=True)
class PoolUnit:
    """One pool as plain data: its hosts (fabric indices), the accounts owning it, and its lending terms."""

    name: str
    hosts: tuple[int, ...]
    owners: tuple[str, ...] = ()  # empty: an open pool, every account runs there at owner priority
    lend: bool = True
    lend_limit: int | None = None  # GPUs of this pool lent at once at most; None = no limit
    min_runtime: float = 0.0  # seconds a borrower runs before this pool's owners may preempt it


@dataclass(frozen=True)
class PoolLayout:
    pools: tuple[PoolUnit, ...]
    borrowing: bool = True  # the pools file's borrowing.enabled
    borrow_max_time: float | None = None  # seconds: scavenger MaxTime; longer jobs cannot borrow
    source: str = ""
    borrow_limits: dict[str, int] = field(default_factory=dict)  # account -> GPUs it may hold borrowed at once

    def lenders(self) -> list[PoolUnit]:
        return [p for p in self.pools if p.owners and p.lend] if self.borrowing else []


@dataclass
class _Tally:
    owners: float = 0.0  # GPU-seconds on the pool's hosts by its owners' jobs (or anyone's, for an open pool)
    lent: float = 0.0  # GPU-seconds on the pool's hosts by other accounts' jobs (borrowers)
    borrowed: float = 0.0  # GPU-seconds the owners' jobs ran on other pools' hosts as borrowers
    preempted_here: int = 0  # borrower runs preempted on this pool's hosts
    requeued: int = 0  # runs of the owners' jobs preempted elsewhere and requeued
    lost: float = 0.0  # GPU-seconds those runs had used


@dataclass
class _Reservation:
    mask: np.ndarray  # hosts the reserved job may start on
    shadow: float
    extra: int  # GPUs of `mask` spare at the shadow time


class PooledSimulator(Simulator):
    """The engine with per-account host sets, preemption and requeue (see the module doc)."""

    def __init__(self, compiled: CompiledFabric, policy: str, config: SimConfig, speed: SpeedModel,
                 layout: PoolLayout, counts: TraceCounts | None = None) -> None:
        if policy not in POOL_POLICIES:
            raise BadRequest(f"unknown pool policy {policy!r} (known: {', '.join(POOL_POLICIES)})")
        super().__init__(compiled, "gpupool", config, speed, counts)
        self.policy = policy
        self.metrics.policy = policy
        self.layout = layout
        self.lending = policy == "pools-lend" and bool(layout.lenders())
        n = compiled.n_hosts
        self.host_pool = np.full(n, -1, dtype=np.int64)  # the pool each host belongs to (first listed wins)
        for k, pool in enumerate(layout.pools):
            for h in pool.hosts:
                if self.host_pool[h] < 0:
                    self.host_pool[h] = k
        self.open_mask = np.zeros(n, dtype=bool)
        self.lent_mask = np.zeros(n, dtype=bool)
        for pool in layout.pools:
            if not pool.owners:
                self.open_mask[list(pool.hosts)] = True
        for pool in layout.lenders() if self.lending else []:
            self.lent_mask[list(pool.hosts)] = True
        self.home_of: dict[str, int] = {}  # account -> the first pool it owns (where its borrowing is booked)
        self._own: dict[str, np.ndarray] = {}
        for k, pool in enumerate(layout.pools):
            for account in pool.owners:
                self.home_of.setdefault(account, k)
                mask = self._own.setdefault(account, np.zeros(n, dtype=bool))
                mask[list(pool.hosts)] = True
        self._no_own = np.zeros(n, dtype=bool)
        self.tally = [_Tally() for _ in layout.pools]
        self.lent_now = [0] * len(layout.pools)  # GPUs of each pool held by borrowers now
        self.borrowed_now: dict[str, int] = {}  # account -> GPUs its borrowers hold now (for borrow_limit)
        self.borrowers_on: list[set[int]] = [set() for _ in range(n)]  # running borrower ids per host
        self.borrower: dict[int, bool] = {}  # running id -> started as a borrower
        self._order = 0
        self._requeued: list[_Pending] = []

    # ------------------------------------------------------------------ who may run where
    def own_mask(self, account: str) -> np.ndarray:
        return self._own.get(account, self._no_own)

    def _can_run(self, job: Job) -> bool:
        return bool(self.own_mask(job.account).any() or self.open_mask.any() or self._can_borrow(job))

    def _could_ever_fit(self, job: Job) -> bool:
        """The job fits the hosts it may use on an otherwise empty fabric (as an owner, or as a borrower)."""
        g = self.config.gpus_per_host
        masks = [self.own_mask(job.account) | self.open_mask]
        if self._can_borrow(job):
            masks.append(self.lent_mask)
        hosts_needed = job.nodes or math.ceil(job.gpus / g)
        return any(int(mask.sum()) >= hosts_needed and int(mask.sum()) * g >= job.gpus for mask in masks)

    def _can_borrow(self, job: Job) -> bool:
        limit = self.layout.borrow_max_time
        return self.lending and (limit is None or job.time_limit <= limit)

    def _admit(self, job: Job) -> _Pending | None:
        pending = super()._admit(job)
        if pending is None:
            return None
        if not self._can_run(job):
            self.counts.no_pool += 1
            self.counts.examples.setdefault("no_pool", f"job {job.job_id} (account {job.account or '(none)'!r})")
            return None
        if not self._could_ever_fit(job):  # it would wait forever and hold a reservation on its pools
            self.counts.too_large_for_pools += 1
            self.counts.examples.setdefault("too_large_for_pools", f"job {job.job_id} ({job.gpus} GPUs, account "
                                                                   f"{job.account or '(none)'!r})")
            return None
        self._order += 1
        pending.order = self._order
        return pending

    # ------------------------------------------------------------------ starting, preempting, finishing
    def _place_on(self, job: Job, free: np.ndarray, mask: np.ndarray) -> tuple[list[int], list[int], float] | None:
        masked = np.where(mask, free, 0).astype(np.int32)
        if int(masked.sum()) < job.gpus:
            return None
        choice = self.place(masked, job)
        if choice is None:
            return None
        hosts, gpus, pair_hops = choice
        return hosts.tolist(), gpus.tolist(), pair_hops

    def _preemptible(self, now: float, mask: np.ndarray) -> np.ndarray:
        """GPUs per host held by borrowers that the hosts' owners may preempt now (on `mask` only)."""
        extra = np.zeros(self.free.size, dtype=np.int32)
        for h in np.flatnonzero(mask).tolist():
            for rid in self.borrowers_on[h]:
                if self._may_preempt(rid, h, now):
                    record = self.running[rid]
                    extra[h] += record.gpus[record.hosts.index(h)]
        return extra

    def _may_preempt(self, rid: int, host: int, now: float) -> bool:
        pool = int(self.host_pool[host])
        grace = self.layout.pools[pool].min_runtime if pool >= 0 else 0.0
        return now - self.running[rid].start >= grace

    def _try_start(self, pj: _Pending, now: float, avoid: np.ndarray | None = None) -> int:
        job = pj.job
        own = self.own_mask(job.account)
        if not self._fits_by_count(job) and not (self.lending and own.any()):
            return BLOCKED  # not even the free GPUs of the whole fabric would do, and it cannot preempt
        owner_mask = own | self.open_mask
        if avoid is not None:
            owner_mask = owner_mask & ~avoid
        choice = self._place_on(job, self.free, owner_mask)
        if choice is not None:
            self._start(pj, now, choice, borrower=False)
            return STARTED
        if self.lending and own.any():
            preemptible = self._preemptible(now, own if avoid is None else own & ~avoid)
            if preemptible.any():
                choice = self._place_on(job, self.free + preemptible, owner_mask)
                if choice is not None:
                    self._make_room(choice[0], choice[1], now)
                    self._start(pj, now, choice, borrower=False)
                    return STARTED
        if self._can_borrow(job) and self._within_borrow_limit(job):
            lent = self.lent_mask if avoid is None else self.lent_mask & ~avoid
            for _attempt in range(len(self.layout.pools) + 1):
                choice = self._place_on(job, self.free, lent)
                if choice is None:
                    break
                over = self._over_lend_limit(choice[0], choice[1])
                if over < 0:
                    self._start(pj, now, choice, borrower=True)
                    return STARTED
                lent = lent & (self.host_pool != over)  # that pool has lent all it may: try without it
        return BLOCKED

    def _within_borrow_limit(self, job: Job) -> bool:
        """The account's borrow_limit leaves room for the whole job (it counts every GPU it borrows)."""
        limit = self.layout.borrow_limits.get(job.account)
        return limit is None or self.borrowed_now.get(job.account, 0) + job.gpus <= limit

    def _over_lend_limit(self, hosts: list[int], gpus: list[int]) -> int:
        """A pool whose lend_limit this borrower placement would pass, else -1."""
        taking: dict[int, int] = {}
        for h, g in zip(hosts, gpus, strict=True):
            pool = int(self.host_pool[h])
            taking[pool] = taking.get(pool, 0) + g
        for pool, g in taking.items():
            limit = self.layout.pools[pool].lend_limit if pool >= 0 else None
            if limit is not None and self.lent_now[pool] + g > limit:
                return pool
        return -1

    def _make_room(self, hosts: list[int], gpus: list[int], now: float) -> None:
        """Preempt borrowers on the chosen hosts, youngest first, until each host has the GPUs it needs."""
        for h, need in zip(hosts, gpus, strict=True):
            if self.free[h] >= need:
                continue
            victims = sorted((rid for rid in self.borrowers_on[h] if self._may_preempt(rid, h, now)),
                             key=lambda rid: -self.running[rid].start)
            for rid in victims:
                if self.free[h] >= need:
                    break
                self._preempt(rid, now)

    def _start(self, pj: _Pending, now: float, choice: tuple[list[int], list[int], float], *, borrower: bool) -> None:
        hosts, gpus, pair_hops = choice
        rid = self._commit(pj, now, hosts, gpus, pair_hops)
        # A borrower is booked as one on every host it holds that its account does not own.
        own = self.own_mask(pj.job.account)
        self.borrower[rid] = borrower
        if not borrower:
            return
        grace = 0.0
        for h, g in zip(hosts, gpus, strict=True):
            pool = int(self.host_pool[h])
            if own[h] or pool < 0:
                continue
            self.borrowers_on[h].add(rid)
            self.lent_now[pool] += g
            self.borrowed_now[pj.job.account] = self.borrowed_now.get(pj.job.account, 0) + g
            grace = max(grace, self.layout.pools[pool].min_runtime)
        if grace > 0:
            self._push(now + grace, _WAKE, -1)  # owners may preempt it from then on: look again then

    def _book(self, rid: int, now: float, *, lost: bool) -> None:
        """Per-pool GPU-seconds of a run that ends or is preempted now; drop it from the borrower index."""
        record = self.running[rid]
        job = record.job
        seconds = now - record.start
        own = self.own_mask(job.account)
        home = self.home_of.get(job.account, -1)
        for h, g in zip(record.hosts, record.gpus, strict=True):
            pool = int(self.host_pool[h])
            if pool < 0:
                continue
            if rid in self.borrowers_on[h]:
                self.borrowers_on[h].discard(rid)
                self.lent_now[pool] -= g
                self.borrowed_now[job.account] -= g
            if own[h] or not self.layout.pools[pool].owners:
                self.tally[pool].owners += seconds * g
            else:
                self.tally[pool].lent += seconds * g
                if home >= 0:
                    self.tally[home].borrowed += seconds * g
        if lost and home >= 0:
            self.tally[home].requeued += 1
            self.tally[home].lost += seconds * record.total
        self.borrower.pop(rid, None)

    def _preempt(self, rid: int, now: float) -> None:
        record = self.running[rid]
        for h in record.hosts:
            pool = int(self.host_pool[h])
            if rid in self.borrowers_on[h] and pool >= 0:
                self.tally[pool].preempted_here += 1
                break
        self._book(rid, now, lost=True)
        self._release(rid)
        self.metrics.preempted(record.start, now, record.total)
        again = _Pending(record.job, record.total > self.config.gpus_per_host or len(record.hosts) > 1)
        again.order = record.order
        self._requeued.append(again)
        self._changed = True

    def _finish(self, rid: int, now: float) -> None:
        self._book(rid, now, lost=False)
        super()._finish(rid, now)

    # ------------------------------------------------------------------ reservations and the pass
    def _reserve(self, job: Job, now: float) -> _Reservation:
        """Shadow time and spare GPUs for a blocked job on the hosts it waits for: its own and the open
        pools (borrowers there count as free: it would preempt them), else the scavenger partition."""
        own = self.own_mask(job.account)
        mask = own | self.open_mask
        if not mask.any():
            mask = self.lent_mask
        rows = mask[:, None]
        borrowed = np.zeros(self.slot_gpus.shape, dtype=bool)
        if self.lending:
            for h in np.flatnonzero(own).tolist():
                for rid in self.borrowers_on[h]:
                    record = self.running[rid]
                    borrowed[h, record.slots[record.hosts.index(h)]] = True
        slot_gpus = np.where(rows & ~borrowed, self.slot_gpus, 0)
        free = np.where(mask, self.free + np.where(borrowed, self.slot_gpus, 0).sum(axis=1), 0).astype(np.int32)
        have = int(free.sum())
        if job.nodes == 0:
            if have >= job.gpus:
                return _Reservation(mask, now, have - job.gpus)
            ends = self.slot_end[slot_gpus > 0]
            sizes = slot_gpus[slot_gpus > 0]
            order = np.argsort(ends, kind="stable")
            reach = have + np.cumsum(sizes[order])
            k = int(np.searchsorted(reach, job.gpus))
            if k >= reach.size:
                return _Reservation(mask, math.inf, 0)
            shadow = float(ends[order][k])
        else:
            shadow = float(per_node_shadow(free, self.slot_end, slot_gpus, job.gpus_per_node, job.nodes))
            if shadow == math.inf:
                return _Reservation(mask, math.inf, 0)
        shadow = max(shadow, now)
        spare = have + int(slot_gpus[self.slot_end <= shadow].sum()) - job.gpus
        return _Reservation(mask, shadow, max(spare, 0))

    def _schedule(self, now: float, fresh: int) -> None:
        """A full pass each time: in submit order, start what fits; the first blocked job of each account
        reserves its hosts, and a later job may use reserved hosts only if it ends (by its limit) before
        the shadow time or fits in the GPUs spare then (EASY backfill, one reservation per unit)."""
        queue = self.queue
        kept: list[_Pending] = []
        reservations: dict[str, _Reservation] = {}
        tried_after_block = 0
        for pj in queue:
            job = pj.job
            if reservations:
                tried_after_block += 1
                if tried_after_block > self.config.backfill_depth:
                    kept.append(pj)
                    continue
            avoid: np.ndarray | None = None
            spending: list[_Reservation] = []
            for res in reservations.values():
                if now + job.time_limit <= res.shadow:
                    continue
                if job.gpus <= res.extra:
                    spending.append(res)
                else:
                    avoid = res.mask if avoid is None else avoid | res.mask
            if self._try_start(pj, now, avoid) == STARTED:
                for res in spending:
                    res.extra -= job.gpus
                continue
            kept.append(pj)
            if job.account not in reservations:
                reservations[job.account] = self._reserve(job, now)
        if self._requeued:
            for again in self._requeued:
                bisect.insort(kept, again, key=lambda p: p.order)
            self._requeued = []
        self.queue = kept
        self._changed = True


def pool_tallies(sim: PooledSimulator) -> dict[str, dict[str, float]]:
    """GPU-hours per pool: capacity, used by owners, lent, borrowed; preemptions and requeue losses."""
    g = sim.config.gpus_per_host
    span = max(sim.metrics.last_end - (sim.metrics.first_submit or 0.0), 0.0)
    out: dict[str, dict[str, float]] = {}
    for pool, tally in zip(sim.layout.pools, sim.tally, strict=True):
        out[pool.name] = {
            "gpus": len(pool.hosts) * g,
            "capacity_gpu_hours": len(pool.hosts) * g * span / 3600.0,
            "owner_gpu_hours": tally.owners / 3600.0,
            "lent_gpu_hours": tally.lent / 3600.0,
            "borrowed_gpu_hours": tally.borrowed / 3600.0,
            "borrowers_preempted": tally.preempted_here,
            "owner_jobs_requeued": tally.requeued,
            "gpu_hours_lost_to_requeue": tally.lost / 3600.0,
        }
    return out
