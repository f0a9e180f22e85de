"""Slurm-like backfill's availability plan: per host, the GPUs neither used nor reserved over time.

Slurm's sched/backfill walks pending jobs in priority order over a map of time slices (node_space):
running jobs free their resources at their time limits, each job it tests that cannot start now
reserves the earliest window where it fits for its whole limit, and a later job starts now only where
its [now, now + limit) collides with no earlier reservation. This class holds that map as flat arrays
(rows linked in time order; kernels in `kernels.py`) and chooses the hosts a reservation pins.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from gpupool.simulate.reservation_kernels import plan_build, plan_earliest, plan_take, plan_window


class AvailabilityPlan:
    """Time slices x hosts of unbooked GPUs; row 0 starts at the time of the last `rebuild`."""

    def __init__(self, hosts: int, rows: int = 64) -> None:
        self.hosts = hosts
        self.time = np.zeros(rows, dtype=np.float64)
        self.avail = np.zeros((rows, hosts), dtype=np.int32)
        self.next = np.full(rows, -1, dtype=np.int64)
        self.used = 0
        self._mins = np.zeros(hosts, dtype=np.int32)

    def _grow(self, rows: int) -> None:
        size = self.time.size
        while size < rows:
            size *= 2
        if size == self.time.size:
            return
        time = np.zeros(size, dtype=np.float64)
        avail = np.zeros((size, self.hosts), dtype=np.int32)
        nxt = np.full(size, -1, dtype=np.int64)
        time[:self.used] = self.time[:self.used]
        avail[:self.used] = self.avail[:self.used]
        nxt[:self.used] = self.next[:self.used]
        self.time, self.avail, self.next = time, avail, nxt

    def rebuild(self, free: np.ndarray, slot_end: np.ndarray, slot_gpus: np.ndarray, now: float) -> None:
        """Now: the free GPUs; later: each running job's GPUs come back at its expected (limit) end."""
        self.used = 0
        self._grow(int(np.count_nonzero(slot_gpus)) + 2)
        self.used = plan_build(free, slot_end, slot_gpus, now, self.time, self.avail, self.next)

    def take(self, start: float, end: float, hosts: np.ndarray, gpus: np.ndarray, whole: bool = False) -> None:
        """Book GPUs on hosts over [start, end): a job started now or a reservation (whole: all their GPUs)."""
        self._grow(self.used + 2)
        self.used = plan_take(self.time, self.avail, self.next, self.used, start, end,
                              np.asarray(hosts, dtype=np.int64), np.asarray(gpus, dtype=np.int64), whole)

    def window(self, start: float, end: float, hosts: np.ndarray | None = None) -> np.ndarray:
        """Per host, the fewest unbooked GPUs over [start, end) (a fresh array); only `hosts` are looked
        at when given (the others read 0: callers pass the hosts that could take the job at all)."""
        out = np.empty(self.hosts, dtype=np.int32)
        if hosts is None:
            hosts = np.arange(self.hosts, dtype=np.int64)
        plan_window(self.time, self.avail, self.next, start, end, hosts, out)
        return out

    def reserve(self, after: float, inclusive: bool, limit: float, gpus_per_node: int, nodes: int,
                gpus: int, whole: bool = False, window: float = math.inf,
                choose: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray] | None] | None = None) -> float:
        """Reserve the earliest window (from `after`) where the job fits for its limit, on whole hosts or
        only the GPUs it needs, on the hosts `choose` picks from the window's unbooked GPUs (default, or
        when it picks none: `reservation_hosts`), if it starts within `window` seconds of `after` (Slurm's
        bf_window); returns its start (inf, and nothing booked, when it does not)."""
        mins = self._mins
        start = float(plan_earliest(self.time, self.avail, self.next, after, inclusive, after + window, limit, gpus_per_node,
                                    nodes, gpus, mins))
        if start == math.inf:
            return start
        picked = choose(mins) if choose is not None else None
        hosts, counts = picked if picked is not None else reservation_hosts(mins, gpus_per_node, nodes, gpus)
        self.take(start, start + limit, hosts, counts, whole)
        return start


def reservation_hosts(mins: np.ndarray, gpus_per_node: int, nodes: int, gpus: int) -> tuple[np.ndarray, np.ndarray]:
    """Hosts (and GPUs on each) a reservation pins, given each host's unbooked GPUs over its window.
    n x k jobs: best fit, the n qualifying hosts with the fewest spare GPUs (lowest index first on ties),
    so whole hosts stay whole; any-shape jobs: the hosts with the most GPUs first (fewest hosts)."""
    if nodes:
        fitting = np.flatnonzero(mins >= gpus_per_node)
        chosen = fitting[np.argsort(mins[fitting], kind="stable")[:nodes]]
        return chosen, np.full(chosen.size, gpus_per_node, dtype=np.int64)
    order = np.argsort(-mins.astype(np.int64), kind="stable")
    reach = np.cumsum(mins[order].astype(np.int64))
    m = int(np.searchsorted(reach, gpus)) + 1
    chosen = order[:m]
    counts = mins[chosen].astype(np.int64)
    counts[-1] -= int(reach[m - 1]) - gpus
    return chosen, counts
