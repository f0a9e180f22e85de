"""Results of one simulated policy, accumulated in fixed-size state (memory flat in the trace length).

Means are exact; percentiles and CDFs come from a log-spaced histogram with 200 bins per decade
(values within 1.2% of the exact percentile); values under 1 s share one bin reported as its mean.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

BOUNDED_SLOWDOWN_TAU = 10.0  # seconds: Feitelson's threshold, so very short jobs do not dominate
SIZE_CLASSES = ((1, 1, "1 GPU"), (2, 8, "2-8 GPUs"), (9, 64, "9-64 GPUs"), (65, 1 << 40, ">64 GPUs"))


class LogHistogram:
    """Counts of non-negative values in log bins from 1 s to 1e9 s, plus exact sum, min and max."""

    PER_DECADE = 200
    DECADES = 9

    def __init__(self) -> None:
        self.bins = np.zeros(self.PER_DECADE * self.DECADES + 2, dtype=np.int64)  # [0]: < 1; [-1]: overflow
        self.count = 0
        self.total = 0.0
        self.small_total = 0.0
        self.max = 0.0

    def add(self, value: float) -> None:
        value = max(value, 0.0)
        self.count += 1
        self.total += value
        self.max = max(self.max, value)
        if value < 1.0:
            self.bins[0] += 1
            self.small_total += value
            return
        k = 1 + int(math.log10(value) * self.PER_DECADE)
        self.bins[min(k, self.bins.size - 1)] += 1

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0

    def _value_of_bin(self, k: int) -> float:
        if k == 0:
            return self.small_total / self.bins[0] if self.bins[0] else 0.0
        if k == self.bins.size - 1:
            return self.max
        low = 10 ** ((k - 1) / self.PER_DECADE)
        high = 10 ** (k / self.PER_DECADE)
        return min(math.sqrt(low * high), self.max)

    def quantile(self, q: float) -> float:
        if not self.count:
            return 0.0
        rank = max(1, math.ceil(q * self.count))
        k = int(np.searchsorted(np.cumsum(self.bins), rank))
        return self._value_of_bin(k)

    def cdf(self) -> tuple[np.ndarray, np.ndarray]:
        """(values, cumulative share) at the occupied bins, for plots."""
        occupied = np.nonzero(self.bins)[0]
        if not self.count:
            return np.zeros(0), np.zeros(0)
        values = np.asarray([self._value_of_bin(int(k)) for k in occupied])
        shares = np.cumsum(self.bins)[occupied] / self.count
        return values, shares

    def summary(self) -> dict[str, float]:
        return {"mean": round(self.mean, 3), "p50": round(self.quantile(0.5), 3),
                "p95": round(self.quantile(0.95), 3), "max": round(self.max, 3)}


@dataclass
class PolicyMetrics:
    policy: str
    total_gpus: int
    bin_seconds: float = 3600.0
    jobs: int = 0
    multi_node_jobs: int = 0
    wait: LogHistogram = field(default_factory=LogHistogram)
    jct: LogHistogram = field(default_factory=LogHistogram)
    wait_by_size: dict[str, LogHistogram] = field(default_factory=lambda: {c[2]: LogHistogram() for c in SIZE_CLASSES})
    slowdown_total: float = 0.0
    busy_gpu_seconds: float = 0.0
    idle_waiting_gpu_seconds: float = 0.0
    first_submit: float | None = None
    last_end: float = 0.0
    last_submit: float | None = None
    busy_gpu_seconds_so_far: float = 0.0  # busy GPUs integrated over time, from the first submission
    busy_gpu_seconds_to_last_submit: float = 0.0  # the same, up to the latest submission
    leaves_total: int = 0
    extra_leaves_total: int = 0
    pair_hops_total: float = 0.0
    speed_factor_total: float = 0.0
    contention_model: bool = False  # the run used the contention model (else its figures are None)
    contention_total: float = 0.0  # multi-node jobs: sum of contention slowdowns (simulate.contention)
    contention_slowed: int = 0  # multi-node jobs slowed by shared uplinks at all
    timeouts: int = 0
    held: int = 0  # gpupool-wait: multi-node jobs that waited for a better placement at least once
    preemptions: int = 0  # pool policies: borrower jobs preempted and requeued (they restart from zero)
    lost_gpu_seconds: float = 0.0  # GPU time the preempted runs had used: lost to the requeue
    pools: dict[str, dict[str, float]] = field(default_factory=dict)  # pool policies: per-pool GPU-hours
    series_busy: dict[int, float] = field(default_factory=dict)  # time bin -> busy GPU-seconds
    series_idle: dict[int, float] = field(default_factory=dict)  # time bin -> idle GPU-seconds while jobs waited

    def job_done(self, *, submit: float, start: float, end: float, duration: float, gpus: int, multi_node: bool,
                 leaves: int, extra_leaves: int, pair_hops: float, factor: float, timed_out: bool,
                 contention: float = 1.0) -> None:
        self.jobs += 1
        wait = start - submit
        run = end - start
        self.wait.add(wait)
        self.jct.add(end - submit)
        for low, high, name in SIZE_CLASSES:
            if low <= gpus <= high:
                self.wait_by_size[name].add(wait)
                break
        self.slowdown_total += max(1.0, (wait + run) / max(duration, BOUNDED_SLOWDOWN_TAU))
        self.busy_gpu_seconds += run * gpus
        self.last_end = max(self.last_end, end)
        self._spread(self.series_busy, start, end, gpus)
        if multi_node:
            self.multi_node_jobs += 1
            self.leaves_total += leaves
            self.extra_leaves_total += extra_leaves
            self.pair_hops_total += pair_hops
            self.speed_factor_total += factor
            self.contention_total += contention
            self.contention_slowed += int(contention > 1.0 + 1e-9)
        self.timeouts += int(timed_out)

    def preempted(self, start: float, end: float, gpus: int) -> None:
        """A run cut short by preemption: its GPUs were busy, and all of that work is lost to the requeue."""
        self.preemptions += 1
        self.lost_gpu_seconds += (end - start) * gpus
        self.busy_gpu_seconds += (end - start) * gpus
        self._spread(self.series_busy, start, end, gpus)

    def elapse(self, start: float, end: float, busy_gpus: int) -> None:
        """GPUs held by running jobs over [start, end), for the utilisation over the submit period."""
        if end > start:
            self.busy_gpu_seconds_so_far += (end - start) * busy_gpus

    def submitted(self, time: float) -> None:
        """A job arrived at `time` (the clock): the submit period reaches this far."""
        self.last_submit = time
        self.busy_gpu_seconds_to_last_submit = self.busy_gpu_seconds_so_far

    def idle_while_waiting(self, start: float, end: float, free_gpus: int) -> None:
        if end > start and free_gpus > 0:
            self.idle_waiting_gpu_seconds += (end - start) * free_gpus
            self._spread(self.series_idle, start, end, free_gpus)

    def _spread(self, series: dict[int, float], start: float, end: float, weight: float) -> None:
        """Add weight x overlap of [start, end) with each time bin (a job spans few bins; events are many)."""
        origin = self.first_submit or 0.0
        width = self.bin_seconds
        k = int((start - origin) // width)
        while True:
            lo = origin + k * width
            hi = lo + width
            overlap = min(end, hi) - max(start, lo)
            if overlap > 0:
                series[k] = series.get(k, 0.0) + overlap * weight
            if hi >= end:
                break
            k += 1

    def to_json(self) -> dict[str, Any]:
        span = (self.last_end - (self.first_submit or 0.0)) if self.jobs else 0.0
        capacity = self.total_gpus * span
        # Utilisation over the submit period (first to last submission), the same window for every policy,
        # so the drain after the last submission (a tail with nothing left to start) does not dilute it.
        period = (self.last_submit - self.first_submit) if self.last_submit is not None and \
            self.first_submit is not None else 0.0
        multi = self.multi_node_jobs
        return {
            "policy": self.policy,
            "jobs": self.jobs,
            "multi_node_jobs": multi,
            "wait_s": self.wait.summary(),
            "wait_s_by_size": {name: {"jobs": h.count, **h.summary()} for name, h in self.wait_by_size.items()
                               if h.count},
            "jct_s": self.jct.summary(),
            "bounded_slowdown_mean": round(self.slowdown_total / self.jobs, 4) if self.jobs else 0.0,
            "gpu_utilisation": round(self.busy_gpu_seconds / capacity, 6) if capacity > 0 else 0.0,
            "gpu_utilisation_submit_period": round(self.busy_gpu_seconds_to_last_submit / (self.total_gpus * period), 6)
            if period > 0 else None,
            "makespan_s": round(span, 3),
            "idle_gpu_hours_while_waiting": round(self.idle_waiting_gpu_seconds / 3600.0, 3),
            "mean_leaf_switches_multi_node": round(self.leaves_total / multi, 4) if multi else None,
            "mean_extra_leaf_switches_multi_node": round(self.extra_leaves_total / multi, 4) if multi else None,
            "mean_pair_hops_multi_node": round(self.pair_hops_total / multi, 4) if multi else None,
            "mean_speed_factor_multi_node": round(self.speed_factor_total / multi, 4) if multi else None,
            "mean_contention_slowdown_multi_node": (round(self.contention_total / multi, 4)
                                                    if multi and self.contention_model else None),
            "contention_slowed_share_multi_node": (round(self.contention_slowed / multi, 4)
                                                   if multi and self.contention_model else None),
            "timeouts": self.timeouts,
            "held_for_placement": self.held,
            "preemptions": self.preemptions,
            "gpu_hours_lost_to_requeue": round(self.lost_gpu_seconds / 3600.0, 3),
            **({"pools": {name: {k: round(v, 3) if isinstance(v, float) else v for k, v in tally.items()}
                          for name, tally in self.pools.items()}} if self.pools else {}),
        }

    def utilisation_series(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(bin start hours since the first submit, busy share, idle-while-waiting share) per time bin."""
        keys = sorted(set(self.series_busy) | set(self.series_idle))
        if not keys:
            return np.zeros(0), np.zeros(0), np.zeros(0)
        ks = np.arange(keys[0], keys[-1] + 1)
        cap = self.total_gpus * self.bin_seconds
        busy = np.asarray([self.series_busy.get(int(k), 0.0) for k in ks]) / cap
        idle = np.asarray([self.series_idle.get(int(k), 0.0) for k in ks]) / cap
        return ks * self.bin_seconds / 3600.0, busy, idle
