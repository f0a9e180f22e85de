"""Reclaim that preempts the least: plan an owner's job counting borrowed GPUs as free, and among
the placements of minimal pair_hops_sum pick the one that preempts the fewest borrowed GPU-hours
already run (then the fewest jobs). Plain functions over plain data; the Slurm rules that say who is
a borrower and who is protected live in `gpupool.slurm.preempt`.

    outcome = plan_reclaim(free, compiled.host_index(), eligible, borrowers, place_fn)

Preemption is whole-job: preempting a borrower frees its GPUs on every node it holds, and a
multi-node borrower counts once. Slurm picks which candidates to preempt on the nodes a job gets
(in its own candidate order; `sbatch --test-only` lists every preemptible job on them), so a plan
that preempts anything only uses hosts whose every preemptible borrower it counts as preempted:
what it shows is then what Slurm may preempt at most. Protected borrowers (younger than their
min_runtime) are used only when no placement exists without them, and then as few as possible.

Search: the minimal pair_hops_sum P* is what `place_fn` finds with every candidate borrower freed.
Candidate subsets (the borrowers of a set of hosts) are then enumerated in non-decreasing order of
(protected jobs, GPU-seconds, jobs), best-first over host sets, and the first whose freed GPUs
still allow a placement of cost <= P* is the answer (proved least when the enumeration ends within
`max_subsets` placements and the time budget). Past that a greedy pass drops borrowers, heaviest
first, while the cost holds; the result then says `exhaustive: False`.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from gpupool.errors import Unsatisfiable
from gpupool.placement.model import FreeState, Placement

MAX_SUBSETS = 4096
TIME_BUDGET_S = 2.0  # each subset costs one placement: bound the search on large fabrics too


@dataclass(frozen=True)
class Borrower:
    """A running borrowed job: the GPUs it holds per host, how long it has run, and whether its
    min_runtime still protects it."""

    job_id: str
    allocation: Mapping[str, int]  # host -> GPUs it holds (every node of the job)
    run_seconds: int
    protected: bool = False
    exempt_seconds: int = 0
    partition: str = ""
    account: str = ""

    @property
    def gpus(self) -> int:
        return sum(self.allocation.values())

    @property
    def gpu_seconds(self) -> int:
        return self.gpus * self.run_seconds

    @property
    def gpu_hours(self) -> float:
        return self.gpu_seconds / 3600.0

    def to_json(self) -> dict[str, object]:
        return {"job_id": self.job_id, "gpus": self.gpus, "run_seconds": self.run_seconds,
                "gpu_hours": round(self.gpu_hours, 6), "protected": self.protected,
                "partition": self.partition, "account": self.account,
                "allocation": dict(self.allocation)}


@dataclass
class Reclaim:
    """The chosen placement and the borrowers it preempts."""

    placement: Placement
    preempted: list[Borrower]
    candidates: int  # borrowers that could have been preempted
    subsets_tried: int
    exhaustive: bool  # True: no placement of the same cost preempts fewer GPU-hours
    borrowed_free: bool = True  # False when the plan needs no borrowed GPU at all
    notes: list[str] = field(default_factory=list)

    @property
    def gpu_hours(self) -> float:
        return sum(b.gpu_hours for b in self.preempted)

    def to_json(self) -> dict[str, object]:
        return {"jobs": [b.to_json() for b in self.preempted], "count": len(self.preempted),
                "gpu_hours": round(self.gpu_hours, 6),
                "protected": sum(1 for b in self.preempted if b.protected),
                "candidates": self.candidates, "subsets_tried": self.subsets_tried,
                "exhaustive": self.exhaustive}


def freed_state(free: FreeState, host_index: Mapping[str, int], eligible: np.ndarray,
                pool: Sequence[Borrower], chosen: Sequence[Borrower]) -> FreeState:
    """`free` with every GPU of the `chosen` borrowers on `eligible` hosts added (capped at the
    host's total). Once anything is preempted, a host still holding a `pool` borrower that is not
    chosen is left out: Slurm may preempt any preemptible job on the nodes it picks (`--test-only`
    lists them all), so a plan only uses hosts whose every candidate borrower it counts."""
    gpus = free.free_gpus.astype(np.int64).copy()
    chosen_ids = {b.job_id for b in chosen}
    blocked = np.zeros(gpus.size, dtype=np.bool_)
    for b in pool:
        for host, held in b.allocation.items():
            h = host_index.get(host)
            if h is None or not eligible[h] or held <= 0:
                continue
            if b.job_id in chosen_ids:
                gpus[h] += held
            else:
                blocked[h] = True
    if free.total_gpus is not None and free.total_gpus.size == gpus.size:
        gpus = np.minimum(gpus, np.maximum(free.total_gpus, free.free_gpus))
    usable = (free.usable | eligible) & (gpus > 0)
    if chosen_ids:
        usable &= ~blocked
    return FreeState(free_gpus=gpus.astype(np.int32), usable=usable, total_gpus=free.total_gpus)


def _cost(place_fn: Callable[[FreeState], Placement], state: FreeState) -> Placement | None:
    try:
        return place_fn(state)
    except Unsatisfiable:
        return None


def _weight(b: Borrower) -> tuple[int, int, int]:
    return (1 if b.protected else 0, b.gpu_seconds, 1)


def _add(a: tuple[int, int, int], b: tuple[int, int, int]) -> tuple[int, int, int]:
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2])


def plan_reclaim(free: FreeState, host_index: Mapping[str, int], eligible: np.ndarray,
                 borrowers: Sequence[Borrower], place_fn: Callable[[FreeState], Placement], *,
                 max_subsets: int = MAX_SUBSETS, time_budget_s: float = TIME_BUDGET_S,
                 clock: Callable[[], float] = time.monotonic, need_gpus: int = 0) -> Reclaim:
    """The least-preempting placement of minimal pair_hops_sum (module docstring).

    `free`: GPUs free now; `eligible`: hosts that may take the job once borrowers leave (in the
    partition, not drained); `place_fn`: the one planning step (raises Unsatisfiable).
    Raises Unsatisfiable when nothing fits even with every borrower preempted. The exact search
    stops after `max_subsets` placements or `time_budget_s` seconds, whichever comes first.
    `need_gpus` (the request's GPUs) lets subsets that cannot hold it be skipped unplanned."""
    deadline = clock() + time_budget_s
    touching = [b for b in borrowers
                if any(g > 0 and host_index.get(h) is not None and eligible[host_index[h]]
                       for h, g in b.allocation.items())]
    open_ = [b for b in touching if not b.protected]
    pool: list[Borrower] = open_
    best = _cost(place_fn, freed_state(free, host_index, eligible, open_, open_))
    notes: list[str] = []
    if best is None:
        pool = touching
        best = _cost(place_fn, freed_state(free, host_index, eligible, touching, touching))
        if best is None:
            raise Unsatisfiable("nothing fits even with every borrowed job preempted")
        if any(b.protected for b in touching):
            notes.append("no placement exists without preempting a borrower still inside its min_runtime")
    target = best.cost.pair_hops_sum
    items = sorted(pool, key=lambda b: (_weight(b), b.job_id))
    weights = [_weight(b) for b in items]
    tried = 0

    def fits(chosen: Sequence[Borrower]) -> Placement | None:
        nonlocal tried
        tried += 1
        found = _cost(place_fn, freed_state(free, host_index, eligible, pool, chosen))
        return found if found is not None and found.cost.pair_hops_sum <= target else None

    now = fits([])
    if now is not None:
        return Reclaim(now, [], len(touching), tried, True, borrowed_free=False, notes=notes)
    worth_trying = _subset_filter(free, host_index, eligible, items, need_gpus)
    # Once anything is preempted a plan only uses hosts it clears (`freed_state`), so the least
    # subset is the union of the borrowers of some set of hosts. Host sets are enumerated in
    # non-decreasing weight of that union (it only grows as hosts are added: best-first is exact).
    on_host: dict[int, list[int]] = {}
    for i, b in enumerate(items):
        for host, gpus in b.allocation.items():
            h = host_index.get(host)
            if h is not None and eligible[h] and gpus > 0:
                on_host.setdefault(h, []).append(i)
    hosts = sorted(on_host)
    zero = (0, 0, 0)

    def union_weight(members: frozenset[int]) -> tuple[int, int, int]:
        total = zero
        for i in members:
            total = _add(total, weights[i])
        return total

    heap: list[tuple[tuple[int, int, int], tuple[int, ...], int, frozenset[int]]] = []
    for k, h in enumerate(hosts):
        members = frozenset(on_host[h])
        heapq.heappush(heap, (union_weight(members), tuple(sorted(members)), k, members))
    seen: set[frozenset[int]] = set()
    while heap and tried < max_subsets and clock() < deadline:
        _weight_sum, _order, last, members = heapq.heappop(heap)
        for k in range(last + 1, len(hosts)):
            grown = members | frozenset(on_host[hosts[k]])
            heapq.heappush(heap, (union_weight(grown), tuple(sorted(grown)), k, grown))
        if members in seen:
            continue
        seen.add(members)
        subset = tuple(sorted(members))
        if not worth_trying(subset):
            continue
        chosen = [items[i] for i in subset]
        placement = fits(chosen)
        if placement is not None:
            return Reclaim(placement, _needed(placement, free, host_index, chosen), len(touching), tried, True,
                           notes=notes)
    # Budget spent (or, impossibly, every subset failed): drop the heaviest borrowers while the cost holds.
    searched = tried
    kept = list(items)
    placement = best
    # Greedy gets its own budget of the same length: each step keeps a valid plan, so stopping is safe.
    deadline = clock() + time_budget_s
    for b in sorted(items, key=lambda b: (_weight(b), b.job_id), reverse=True):
        if clock() >= deadline:
            break
        trial = [k for k in kept if k is not b]
        found = fits(trial)
        if found is not None:
            kept, placement = trial, found
    return Reclaim(placement, _needed(placement, free, host_index, kept), len(touching), tried, False,
                   notes=notes + [f"searched {searched} borrower subsets within the budget; "
                                  "the rest by dropping the heaviest borrowers first"])


def _subset_filter(free: FreeState, host_index: Mapping[str, int], eligible: np.ndarray,
                   items: Sequence[Borrower], need_gpus: int) -> Callable[[tuple[int, ...]], bool]:
    """A cheap test that skips subsets which cannot be the least: one with a borrower that clears
    no host (every host of it still holds an unchosen borrower) has a lighter subset that plans the
    same; one whose usable hosts hold fewer than `need_gpus` GPUs cannot hold the job at all."""
    on_host: dict[int, set[int]] = {}
    held: dict[int, dict[int, int]] = {}
    for i, b in enumerate(items):
        for host, gpus in b.allocation.items():
            h = host_index.get(host)
            if h is not None and eligible[h] and gpus > 0:
                on_host.setdefault(h, set()).add(i)
                held.setdefault(i, {})[h] = gpus
    free_gpus = np.where(free.usable | eligible, free.free_gpus, 0)
    unblocked_free = int(sum(int(free_gpus[h]) for h in range(free_gpus.size)
                             if h not in on_host and (free.usable[h] or eligible[h])))

    def worth_trying(subset: tuple[int, ...]) -> bool:
        chosen = set(subset)
        cleared = {h for i in subset for h in held.get(i, {}) if on_host[h] <= chosen}
        if any(not cleared.intersection(held.get(i, {})) for i in subset):
            return False
        total = unblocked_free + sum(int(free_gpus[h]) + sum(held[i][h] for i in on_host[h]) for h in cleared)
        return total >= need_gpus

    return worth_trying


def _needed(placement: Placement, free: FreeState, host_index: Mapping[str, int],
            chosen: Sequence[Borrower]) -> list[Borrower]:
    """The chosen borrowers on the placement's hosts (all of them: see `freed_state`); none when
    the placement fits in the free GPUs alone."""
    fits_free = all(host_index.get(h) is not None and bool(free.usable[host_index[h]])
                    and g <= int(free.free_gpus[host_index[h]]) for h, g in placement.allocation.items())
    if fits_free:
        return []
    hosts = set(placement.allocation)
    return sorted((b for b in chosen if hosts.intersection(h for h, g in b.allocation.items() if g > 0)),
                  key=lambda b: b.job_id)
