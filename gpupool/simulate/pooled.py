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

Placement inside the allowed hosts is gpupool's (`placement.engine.place`). These are strategies of the
engine's one loop (`core` holds their protocols): `PoolAdmission` (who may run where, the borrower index,
per-pool tallies, preemption and requeue), `PooledPlacement` (own and open pools, then preemption, then
borrowing), and for backfill either `PerUnitBackfill` (`--backfill easy`: EASY with one reservation per
unit, the first blocked job of each account, so a unit whose head job waits does not hold back the
others) or the Slurm-like `strategies.SlurmBackfill` (`--backfill slurm`), whose reservations the placement
pins on the hosts the job may use. Jobs are attributed by Slurm account.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field

import numpy as np

from gpupool.simulate.core import (
    BLOCKED,
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
from gpupool.simulate.strategies import SlurmBackfill, admit_to_fabric
from gpupool.simulate.workload import Job


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


class PoolAdmission:
    """Admission and preemption for pool policies: who may run where, the borrower index, per-pool tallies,
    and the requeue of preempted borrowers (see the module doc)."""

    def __init__(self, n_hosts: int, config: SimConfig, layout: PoolLayout, *, lending: bool) -> None:
        self.layout = layout
        self.config = config
        self.lending = lending and bool(layout.lenders())
        n = n_hosts
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
        self.requeued: list[Pending] = []

    # ------------------------------------------------------------------ who may run where
    def own_mask(self, account: str) -> np.ndarray:
        return self._own.get(account, self._no_own)

    def can_run(self, job: Job) -> bool:
        return bool(self.own_mask(job.account).any() or self.open_mask.any() or self.can_borrow(job))

    def could_ever_fit(self, job: Job) -> bool:
        """The job fits the hosts it may use on an otherwise empty fabric (as an owner, or as a borrower)."""
        g = self.config.gpus_per_host
        masks = [self.own_mask(job.account) | self.open_mask]
        if self.can_borrow(job):
            masks.append(self.lent_mask)
        hosts_needed = job.nodes or math.ceil(job.gpus / g)
        return any(int(mask.sum()) >= hosts_needed and int(mask.sum()) * g >= job.gpus for mask in masks)

    def can_borrow(self, job: Job) -> bool:
        limit = self.layout.borrow_max_time
        return self.lending and (limit is None or job.time_limit <= limit)

    def within_borrow_limit(self, job: Job) -> bool:
        """The account's borrow_limit leaves room for the whole job (it counts every GPU it borrows)."""
        limit = self.layout.borrow_limits.get(job.account)
        return limit is None or self.borrowed_now.get(job.account, 0) + job.gpus <= limit

    def over_lend_limit(self, hosts: list[int], gpus: list[int]) -> int:
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

    # ------------------------------------------------------------------ Admission
    def admit(self, sim: SimState, job: Job) -> Pending | None:
        pending = admit_to_fabric(sim, job)
        if pending is None:
            return None
        counts = sim.counts
        if not self.can_run(job):
            counts.no_pool += 1
            counts.examples.setdefault("no_pool", f"job {job.job_id} (account {job.account or '(none)'!r})")
            return None
        if not self.could_ever_fit(job):  # it would wait forever and hold a reservation on its pools
            counts.too_large_for_pools += 1
            counts.examples.setdefault("too_large_for_pools", f"job {job.job_id} ({job.gpus} GPUs, account "
                                                              f"{job.account or '(none)'!r})")
            return None
        self._order += 1
        pending.order = self._order
        return pending

    def finishing(self, sim: SimState, rid: int, now: float) -> None:
        self.book(sim, rid, now, lost=False)

    def after_pass(self, sim: SimState) -> None:
        """Preempted borrowers go back to their submit-order place; the next pass is a full one."""
        if self.requeued:
            queue = sim.queue
            for again in self.requeued:
                bisect.insort(queue, again, key=lambda p: p.order)
            self.requeued = []
        sim.changed = True

    # ------------------------------------------------------------------ preemption and bookkeeping
    def may_preempt(self, sim: SimState, rid: int, host: int, now: float) -> bool:
        pool = int(self.host_pool[host])
        grace = self.layout.pools[pool].min_runtime if pool >= 0 else 0.0
        return now - sim.running[rid].start >= grace

    def preemptible(self, sim: SimState, now: float, mask: np.ndarray) -> np.ndarray:
        """GPUs per host held by borrowers that the hosts' owners may preempt now (on `mask` only)."""
        extra = np.zeros(sim.free.size, dtype=np.int32)
        for h in np.flatnonzero(mask).tolist():
            for rid in self.borrowers_on[h]:
                if self.may_preempt(sim, rid, h, now):
                    record = sim.running[rid]
                    extra[h] += record.gpus[record.hosts.index(h)]
        return extra

    def make_room(self, sim: SimState, hosts: list[int], gpus: list[int], now: float) -> None:
        """Preempt borrowers on the chosen hosts, youngest first, until each host has the GPUs it needs."""
        for h, need in zip(hosts, gpus, strict=True):
            if sim.free[h] >= need:
                continue
            victims = sorted((rid for rid in self.borrowers_on[h] if self.may_preempt(sim, rid, h, now)),
                             key=lambda rid: -sim.running[rid].start)
            for rid in victims:
                if sim.free[h] >= need:
                    break
                self.preempt(sim, rid, now)

    def started(self, sim: SimState, rid: int, pj: Pending, now: float, hosts: list[int], gpus: list[int], *,
                borrower: bool) -> None:
        """A borrower is booked as one on every host it holds that its account does not own."""
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
            sim.push(now + grace, WAKE, -1)  # owners may preempt it from then on: look again then

    def book(self, sim: SimState, rid: int, now: float, *, lost: bool) -> None:
        """Per-pool GPU-seconds of a run that ends or is preempted now; drop it from the borrower index."""
        record = sim.running[rid]
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

    def preempt(self, sim: SimState, rid: int, now: float) -> None:
        record = sim.running[rid]
        for h in record.hosts:
            pool = int(self.host_pool[h])
            if rid in self.borrowers_on[h] and pool >= 0:
                self.tally[pool].preempted_here += 1
                break
        self.book(sim, rid, now, lost=True)
        sim.release(rid)
        sim.metrics.preempted(record.start, now, record.total)
        again = Pending(record.job, record.total > self.config.gpus_per_host or len(record.hosts) > 1)
        again.order = record.order
        self.requeued.append(again)
        sim.changed = True


class PooledPlacement:
    """gpupool's placer on the hosts a job may use: its own and the open pools' free GPUs, else (lending)
    its own pools' GPUs after preempting borrowers, else the scavenger partition's free GPUs as a borrower."""

    def __init__(self, pools: PoolAdmission) -> None:
        self.pools = pools

    @staticmethod
    def _place_on(sim: SimState, job: Job, free: np.ndarray, mask: np.ndarray) -> tuple[list[int], list[int], float] | None:
        masked = np.where(mask, free, 0).astype(np.int32)
        if int(masked.sum()) < job.gpus:
            return None
        choice = sim.place(masked, job)
        if choice is None:
            return None
        hosts, gpus, pair_hops = choice
        return hosts.tolist(), gpus.tolist(), pair_hops

    def _start(self, sim: SimState, pj: Pending, now: float, choice: tuple[list[int], list[int], float], *,
               borrower: bool) -> None:
        hosts, gpus, pair_hops = choice
        rid = sim.commit(pj, now, hosts, gpus, pair_hops)
        self.pools.started(sim, rid, pj, now, hosts, gpus, borrower=borrower)

    def try_start(self, sim: SimState, pj: Pending, now: float, room: StartRoom | None = None) -> int:
        pools = self.pools
        job = pj.job
        own = pools.own_mask(job.account)
        if not sim.fits_by_count(job) and not (pools.lending and own.any()):
            return BLOCKED  # not even the free GPUs of the whole fabric would do, and it cannot preempt
        avoid = room.avoid if room is not None else None
        free = sim.free if room is None or room.gpus is None else room.gpus
        owner_mask = own | pools.open_mask
        if avoid is not None:
            owner_mask = owner_mask & ~avoid
        choice = self._place_on(sim, job, free, owner_mask)
        if choice is not None:
            self._start(sim, pj, now, choice, borrower=False)
            return STARTED
        if pools.lending and own.any():
            preemptible = pools.preemptible(sim, now, own if avoid is None else own & ~avoid)
            if preemptible.any():
                choice = self._place_on(sim, job, free + preemptible, owner_mask)
                if choice is not None:
                    pools.make_room(sim, choice[0], choice[1], now)
                    self._start(sim, pj, now, choice, borrower=False)
                    return STARTED
        if pools.can_borrow(job) and pools.within_borrow_limit(job):
            lent = pools.lent_mask if avoid is None else pools.lent_mask & ~avoid
            for _attempt in range(len(pools.layout.pools) + 1):
                choice = self._place_on(sim, job, free, lent)
                if choice is None:
                    break
                over = pools.over_lend_limit(choice[0], choice[1])
                if over < 0:
                    self._start(sim, pj, now, choice, borrower=True)
                    return STARTED
                lent = lent & (pools.host_pool != over)  # that pool has lent all it may: try without it
        return BLOCKED

    def could_start_now(self, sim: SimState, job: Job) -> bool:
        return sim.fits_by_count(job) or (self.pools.lending and bool(self.pools.own_mask(job.account).any()))

    def reserve_on(self, sim: SimState, mins: np.ndarray, job: Job) -> tuple[np.ndarray, np.ndarray] | None:
        """A reservation pins hosts the job may use as an owner (its own and the open pools), else the
        scavenger partition's."""
        mask = self.pools.own_mask(job.account) | self.pools.open_mask
        if not mask.any():
            mask = self.pools.lent_mask
        masked = np.where(mask, mins, 0).astype(np.int32)
        if not fits_array(masked, job):
            return None
        picked = sim.place(masked, job)
        return None if picked is None else (picked[0], picked[1])


class PerUnitBackfill:
    """EASY backfill with one reservation per unit: a full pass each time, in submit order, start what fits;
    the first blocked job of each account reserves its hosts, and a later job may use reserved hosts only
    if it ends (by its limit) before the shadow time or fits in the GPUs spare then."""

    def __init__(self, pools: PoolAdmission) -> None:
        self.pools = pools

    def reserve(self, sim: SimState, job: Job, now: float) -> _Reservation:
        """Shadow time and spare GPUs for a blocked job on the hosts it waits for: its own and the open
        pools (borrowers there count as free: it would preempt them), else the scavenger partition."""
        pools = self.pools
        own = pools.own_mask(job.account)
        mask = own | pools.open_mask
        if not mask.any():
            mask = pools.lent_mask
        rows = mask[:, None]
        borrowed = np.zeros(sim.slot_gpus.shape, dtype=bool)
        if pools.lending:
            for h in np.flatnonzero(own).tolist():
                for rid in pools.borrowers_on[h]:
                    record = sim.running[rid]
                    borrowed[h, record.slots[record.hosts.index(h)]] = True
        slot_gpus = np.where(rows & ~borrowed, sim.slot_gpus, 0)
        free = np.where(mask, sim.free + np.where(borrowed, sim.slot_gpus, 0).sum(axis=1), 0).astype(np.int32)
        have = int(free.sum())
        if job.nodes == 0:
            if have >= job.gpus:
                return _Reservation(mask, now, have - job.gpus)
            ends = sim.slot_end[slot_gpus > 0]
            sizes = slot_gpus[slot_gpus > 0]
            order = np.argsort(ends, kind="stable")
            reach = have + np.cumsum(sizes[order])
            k = int(np.searchsorted(reach, job.gpus))
            if k >= reach.size:
                return _Reservation(mask, math.inf, 0)
            shadow = float(ends[order][k])
        else:
            shadow = float(per_node_shadow(free, sim.slot_end, slot_gpus, job.gpus_per_node, job.nodes))
            if shadow == math.inf:
                return _Reservation(mask, math.inf, 0)
        shadow = max(shadow, now)
        spare = have + int(slot_gpus[sim.slot_end <= shadow].sum()) - job.gpus
        return _Reservation(mask, shadow, max(spare, 0))

    def schedule(self, sim: SimState, now: float, fresh: int) -> None:
        queue = sim.queue
        try_start = sim.placement.try_start
        kept: list[Pending] = []
        reservations: dict[str, _Reservation] = {}
        tried_after_block = 0
        depth = sim.config.backfill_depth
        for pj in queue:
            job = pj.job
            if reservations:
                tried_after_block += 1
                if tried_after_block > depth:
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
            if try_start(sim, pj, now, None if avoid is None else StartRoom(avoid=avoid)) == STARTED:
                for res in spending:
                    res.extra -= job.gpus
                continue
            kept.append(pj)
            if job.account not in reservations:
                reservations[job.account] = self.reserve(sim, job, now)
        sim.queue = kept


def pool_strategies(n_hosts: int, config: SimConfig, layout: PoolLayout, *,
                    lending: bool) -> tuple[PooledPlacement, Backfill, PoolAdmission]:
    """Placement, backfill and admission of a pool policy: per-unit EASY backfill, or `--backfill slurm`'s plan
    (tested in full at every pass: preemption changes the free state between passes)."""
    pools = PoolAdmission(n_hosts, config, layout, lending=lending)
    backfill: Backfill = (SlurmBackfill(n_hosts, full_passes=True) if config.backfill == "slurm"
                          else PerUnitBackfill(pools))
    return PooledPlacement(pools), backfill, pools


def pool_tallies(sim: SimState) -> dict[str, dict[str, float]]:
    """GPU-hours per pool: capacity, used by owners, lent, borrowed; preemptions and requeue losses."""
    pools = sim.admission
    if not isinstance(pools, PoolAdmission):
        return {}
    g = sim.config.gpus_per_host
    span = max(sim.metrics.last_end - (sim.metrics.first_submit or 0.0), 0.0)
    out: dict[str, dict[str, float]] = {}
    for pool, tally in zip(pools.layout.pools, pools.tally, strict=True):
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
