"""Numba kernel of the backfill reservation: when will enough hosts have enough free GPUs?"""

from __future__ import annotations

import numpy as np

from gpupool.jit import njit


@njit(cache=True)
def per_node_shadow(free: np.ndarray, slot_end: np.ndarray, slot_gpus: np.ndarray, k: int, n: int) -> float:
    """Earliest time at which n hosts have k free GPUs, if running jobs end at their slot_end.

    slot_end/slot_gpus[h, s]: expected end and GPUs of the s-th job on host h (0 GPUs: empty slot).
    Returns -inf when n hosts qualify now and inf when they never do.
    """
    hosts, slots = slot_end.shape
    ready = np.empty(hosts, dtype=np.float64)
    for h in range(hosts):
        f = free[h]
        if f >= k:
            ready[h] = -np.inf
            continue
        # Release this host's jobs in end order (selection over its few slots, no allocation).
        taken = 0
        t = np.inf
        while True:
            best = -1
            best_end = np.inf
            for s in range(slots):
                if slot_gpus[h, s] > 0 and not (taken >> s) & 1 and slot_end[h, s] <= best_end:
                    best = s
                    best_end = slot_end[h, s]
            if best < 0:
                break
            taken |= 1 << best
            f += slot_gpus[h, best]
            if f >= k:
                t = best_end
                break
        ready[h] = t
    if n > hosts:
        return np.inf
    return np.partition(ready, n - 1)[n - 1]


# ---------------------------------------------------------------------------------------------------
# Availability plan of Slurm-like backfill: rows are time slices [time[r], time[next[r]]) linked in time
# order (Slurm's node_space map), avail[r, h] the GPUs of host h neither used nor reserved in that slice.
# Row 0 always starts at the pass's `now`; new rows are appended at the end of the arrays and linked in,
# so a split costs O(hosts) instead of shifting every later row.


@njit(cache=True)
def plan_build(free: np.ndarray, slot_end: np.ndarray, slot_gpus: np.ndarray, now: float, time: np.ndarray,
               avail: np.ndarray, nxt: np.ndarray) -> int:
    """Rows from running jobs' expected ends (their limits); returns the rows used, -1 if out of room."""
    hosts, slots = slot_end.shape
    count = 0
    for h in range(hosts):
        for s in range(slots):
            if slot_gpus[h, s] > 0 and slot_end[h, s] < np.inf:
                count += 1
    ends = np.empty(count, dtype=np.float64)
    host = np.empty(count, dtype=np.int64)
    gpus = np.empty(count, dtype=np.int64)
    i = 0
    for h in range(hosts):
        for s in range(slots):
            if slot_gpus[h, s] > 0 and slot_end[h, s] < np.inf:
                ends[i] = max(slot_end[h, s], now)
                host[i] = h
                gpus[i] = slot_gpus[h, s]
                i += 1
    order = np.argsort(ends, kind="mergesort")
    time[0] = now
    avail[0, :] = free
    nxt[0] = -1
    row = 0
    used = 1
    for j in range(count):
        e = ends[order[j]]
        if e > time[row]:
            if used >= time.size:
                return -1
            avail[used, :] = avail[row, :]
            time[used] = e
            nxt[used] = -1
            nxt[row] = used
            row = used
            used += 1
        avail[row, host[order[j]]] += gpus[order[j]]
    return used


@njit(cache=True)
def _plan_row_at(time: np.ndarray, nxt: np.ndarray, t: float) -> int:
    """The row whose slice holds time t (row 0 for any t before it)."""
    r = 0
    while nxt[r] >= 0 and time[nxt[r]] <= t:
        r = nxt[r]
    return r


@njit(cache=True)
def _plan_split(time: np.ndarray, avail: np.ndarray, nxt: np.ndarray, used: int, t: float) -> tuple[int, int]:
    """(row starting exactly at t, rows used); -1 as the row when out of room."""
    r = _plan_row_at(time, nxt, t)
    if time[r] == t:
        return r, used
    if used >= time.size:
        return -1, used
    avail[used, :] = avail[r, :]
    time[used] = t
    nxt[used] = nxt[r]
    nxt[r] = used
    return used, used + 1


@njit(cache=True)
def plan_take(time: np.ndarray, avail: np.ndarray, nxt: np.ndarray, used: int, start: float, end: float,
              hosts: np.ndarray, gpus: np.ndarray, whole: bool) -> int:
    """Book hosts/GPUs over [start, end) (a start now or a reservation; whole: every GPU the hosts have
    unbooked then, as Slurm's node_space books whole nodes); returns rows used, -1 if out of room."""
    first, used = _plan_split(time, avail, nxt, used, start)
    if first < 0:
        return -1
    if end < np.inf:
        last, used = _plan_split(time, avail, nxt, used, end)
        if last < 0:
            return -1
    r = first
    while r >= 0 and time[r] < end:
        for i in range(hosts.size):
            if whole:
                avail[r, hosts[i]] = min(avail[r, hosts[i]], 0)
            else:
                avail[r, hosts[i]] -= gpus[i]
        r = nxt[r]
    return used


@njit(cache=True)
def plan_window(time: np.ndarray, avail: np.ndarray, nxt: np.ndarray, start: float, end: float,
                hosts: np.ndarray, out: np.ndarray) -> None:
    """out[h] = the fewest GPUs host h (of `hosts`; 0 for the others) has unbooked at any time of [start, end)."""
    r = _plan_row_at(time, nxt, start)
    out[:] = 0
    for i in range(hosts.size):
        out[hosts[i]] = avail[r, hosts[i]]
    r = nxt[r]
    while r >= 0 and time[r] < end:
        for i in range(hosts.size):
            h = hosts[i]
            if avail[r, h] < out[h]:
                out[h] = avail[r, h]
        r = nxt[r]


@njit(cache=True)
def _plan_fits(mins: np.ndarray, k: int, n: int, total: int) -> bool:
    if n == 0:
        have = 0
        for h in range(mins.size):
            have += mins[h]
        return have >= total
    hosts = 0
    for h in range(mins.size):
        if mins[h] >= k:
            hosts += 1
    return hosts >= n


@njit(cache=True)
def plan_earliest(time: np.ndarray, avail: np.ndarray, nxt: np.ndarray, after: float, inclusive: bool,
                  latest: float, limit: float, k: int, n: int, total: int, out: np.ndarray) -> float:
    """Earliest slice start (>= after, or > after; <= latest) where the job fits unbooked GPUs for its whole limit:
    n hosts with k GPUs each (n = 0: `total` GPUs on any hosts). out gets the per-host minimum over that
    window. Only slices where some host gains GPUs can be earliest starts (a slice that only loses GPUs
    is never better than the one before it). inf when it never fits."""
    hosts = out.size
    r = _plan_row_at(time, nxt, after)
    prev = -1  # the slice before r, when it was a permitted start
    first = True
    while r >= 0 and time[r] <= latest:
        candidate = inclusive or not first
        if candidate and prev >= 0:
            candidate = False
            for h in range(hosts):
                if avail[r, h] > avail[prev, h]:
                    candidate = True
                    break
        if candidate and _plan_fits(avail[r], k, n, total):
            start = max(time[r], after)
            end = start + limit
            out[:] = avail[r, :]
            have = 0  # n == 0: GPUs unbooked over the window so far; else hosts with k of them
            for h in range(hosts):
                if n == 0:
                    have += out[h]
                elif out[h] >= k:
                    have += 1
            need = total if n == 0 else n
            q = nxt[r]
            while have >= need and q >= 0 and time[q] < end:
                for h in range(hosts):
                    a = avail[q, h]
                    if a < out[h]:
                        if n == 0:
                            have -= out[h] - a
                        elif out[h] >= k and a < k:
                            have -= 1
                        out[h] = a
                q = nxt[q]
            if have >= need:
                return start
        prev = r if (inclusive or not first) else -1
        first = False
        r = nxt[r]
    return np.inf
