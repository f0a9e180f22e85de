"""Numba kernel of the backfill reservation: when will enough hosts have enough free GPUs?"""

from __future__ import annotations

import numpy as np
from numba import njit


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
