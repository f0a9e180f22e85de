"""Synthetic GPU workload: job sizes, heavy-tailed durations, Poisson arrivals with a daily cycle.

The shapes follow what published GPU-cluster trace studies report qualitatively (docs/simulate.md
cites them): most jobs use one GPU (Philly, ATC'19; Helios, SC'21), a minority of multi-node jobs
holds a large share of GPU time (Helios; Acme, NSDI'24), durations are heavy-tailed (log-normal
fits), and submissions follow a daily cycle (Helios). The default numbers are ASSUMPTIONS chosen to
have those shapes, not values fitted to any one trace; every one can be set (`synthetic:key=value`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, fields

import numpy as np

from gpupool.errors import BadRequest
from gpupool.simulate.workload import Job, WorkloadStats

DAY = 86400.0


@dataclass
class SyntheticSpec:
    jobs: int = 1000
    seed: int = 1
    load: float = 0.85  # offered GPU load as a share of the fabric's GPUs (before the daily cycle)
    multi: float = 0.15  # share of jobs that span several whole hosts
    single_gpus: str = "1:70/2:10/4:10/8:10"  # GPUs of single-host jobs, value:weight
    multi_nodes: str = "2:45/4:30/8:15/16:7/32:3"  # hosts of multi-host jobs, value:weight
    median_s: float = 1800.0  # median runtime of single-host jobs
    sigma: float = 1.8  # log-normal shape of runtimes (heavy tail)
    multi_scale: float = 2.0  # multi-host jobs run this many times longer (median)
    max_s: float = 7 * DAY  # runtime cap
    overestimate: float = 3.0  # mean factor of time limit over runtime (uniform 1 .. 2x-1)
    amplitude: float = 0.5  # daily cycle: rate x (1 + amplitude x cos(2 pi (hour - peak) / 24))
    peak_hour: float = 14.0
    comm_heavy: float = 0.5  # share of multi-host jobs in the "comm-heavy" speed class
    accounts: str = ""  # accounts jobs are drawn from, name:weight (`vision:50/nlp:30/speech:20`); "" = none


def parse_spec(text: str) -> SyntheticSpec:
    """`synthetic` or `synthetic:jobs=5000,load=0.9,multi=0.2,...`."""
    spec = SyntheticSpec()
    _, _, params = text.partition(":")
    known = {f.name: f.type for f in fields(SyntheticSpec)}
    for item in filter(None, (p.strip() for p in params.split(","))):
        key, eq, value = item.partition("=")
        if not eq or key not in known:
            raise BadRequest(f"synthetic workload: unknown setting {item!r} (known: {', '.join(known)})")
        try:
            current = getattr(spec, key)
            setattr(spec, key, type(current)(value) if not isinstance(current, str) else value)
        except ValueError:
            raise BadRequest(f"synthetic workload: {key}={value!r} is not a valid {type(getattr(spec, key)).__name__}") \
                from None
    _check(spec)
    return spec


def _weights(text: str, what: str) -> tuple[np.ndarray, np.ndarray]:
    """`1:70/2:10/4:20` -> (values, normalised weights); `/` because `,` separates settings."""
    values: list[int] = []
    weights: list[float] = []
    for pair in filter(None, (p.strip() for p in text.split("/"))):
        v, _, w = pair.partition(":")
        try:
            values.append(int(v))
            weights.append(float(w) if w else 1.0)
        except ValueError:
            raise BadRequest(f"synthetic workload: {what} {pair!r} is not value:weight") from None
    if not values or min(values) < 1 or min(weights) < 0 or sum(weights) <= 0:
        raise BadRequest(f"synthetic workload: {what} needs positive values with non-negative weights")
    shares = np.asarray(weights, dtype=np.float64)
    return np.asarray(values, dtype=np.int64), shares / shares.sum()


def _check(spec: SyntheticSpec) -> None:
    if spec.jobs < 0 or not spec.load > 0 or not 0 <= spec.multi <= 1 or not 0 <= spec.amplitude < 1:
        raise BadRequest("synthetic workload: need jobs >= 0, load > 0, 0 <= multi <= 1, 0 <= amplitude < 1")
    if spec.median_s <= 0 or spec.sigma < 0 or spec.max_s <= 0 or spec.overestimate < 1 or spec.multi_scale <= 0:
        raise BadRequest("synthetic workload: need median_s > 0, sigma >= 0, max_s > 0, overestimate >= 1")
    _accounts(spec.accounts)


def _accounts(text: str) -> tuple[list[str], np.ndarray]:
    """`vision:50/nlp:30` -> (names, normalised weights); ([], []) for none."""
    names: list[str] = []
    weights: list[float] = []
    for pair in filter(None, (p.strip() for p in text.split("/"))):
        name, _, w = pair.partition(":")
        try:
            weight = float(w) if w else 1.0
        except ValueError:
            raise BadRequest(f"synthetic workload: accounts {pair!r} is not name:weight") from None
        if not name.strip() or weight < 0:
            raise BadRequest(f"synthetic workload: accounts {pair!r} needs a name and a non-negative weight")
        names.append(name.strip())
        weights.append(weight)
    if names and sum(weights) <= 0:
        raise BadRequest("synthetic workload: accounts need a positive weight in total")
    shares = np.asarray(weights, dtype=np.float64)
    return names, (shares / shares.sum() if names else shares)


def synthetic_jobs(spec: SyntheticSpec, *, total_gpus: int, gpus_per_host: int,
                   stats: WorkloadStats | None = None) -> Iterator[Job]:
    """Jobs in submit order; arrivals by thinning a Poisson process at the cycle's peak rate."""
    _check(spec)
    stats = stats if stats is not None else WorkloadStats()
    rng = np.random.default_rng(spec.seed)
    account_rng = np.random.default_rng([spec.seed, 1])
    single_v, single_w = _weights(spec.single_gpus, "single_gpus")
    single_v = np.minimum(single_v, gpus_per_host)
    multi_v, multi_w = _weights(spec.multi_nodes, "multi_nodes")
    account_names, account_w = _accounts(spec.accounts)
    mean_gpus = (1 - spec.multi) * float(single_v @ single_w) + spec.multi * float(multi_v @ multi_w) * gpus_per_host
    lognormal_mean = spec.median_s * math.exp(spec.sigma ** 2 / 2)
    mean_runtime = min(spec.max_s, lognormal_mean * ((1 - spec.multi) + spec.multi * spec.multi_scale))
    rate = spec.load * total_gpus / max(mean_gpus * mean_runtime, 1e-9)  # jobs per second, on average
    peak = rate * (1 + spec.amplitude)
    now = 0.0
    made = 0
    while made < spec.jobs:
        # Draw in blocks: one Python-level step per job would dominate the benchmark.
        block = 1024
        gaps = rng.exponential(1.0 / peak, block)
        accept = rng.random(block)
        times = now + np.cumsum(gaps)
        hour = (times / 3600.0) % 24.0
        keep = accept * (1 + spec.amplitude) <= 1 + spec.amplitude * np.cos(2 * np.pi * (hour - spec.peak_hour) / 24)
        now = float(times[-1])
        arrivals = times[keep]
        n = min(arrivals.size, spec.jobs - made)
        if n == 0:
            continue
        arrivals = arrivals[:n]
        is_multi = rng.random(n) < spec.multi
        gpus = np.where(is_multi, rng.choice(multi_v, n, p=multi_w) * gpus_per_host, rng.choice(single_v, n, p=single_w))
        nodes = np.where(is_multi, gpus // gpus_per_host, 1)
        median = np.where(is_multi, spec.median_s * spec.multi_scale, spec.median_s)
        runtime = np.minimum(np.maximum(np.round(median * np.exp(spec.sigma * rng.standard_normal(n))), 1.0), spec.max_s)
        limit = np.ceil(runtime * rng.uniform(1.0, 2 * spec.overestimate - 1, n) / 60.0) * 60.0
        heavy = is_multi & (rng.random(n) < spec.comm_heavy)
        # A separate generator, so adding accounts leaves every other draw of the same seed unchanged.
        account = account_rng.choice(len(account_names), n, p=account_w) if account_names else np.zeros(n, np.int64)
        for k in range(n):
            made += 1
            stats.lines += 1
            stats.jobs += 1
            yield Job(job_id=str(made), submit=float(arrivals[k]), duration=float(runtime[k]),
                      time_limit=float(limit[k]), gpus=int(gpus[k]), nodes=int(nodes[k]),
                      job_class="comm-heavy" if heavy[k] else "default",
                      account=account_names[account[k]] if account_names else "")
