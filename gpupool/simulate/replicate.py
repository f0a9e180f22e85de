"""Replicates of a recorded trace for `--seeds N`: a day-block bootstrap over submit times.

The trace's submit span is cut into consecutive blocks of one day from the first submission
(`block_seconds`); a replicate has as many blocks as the trace, each drawn with replacement (seeded)
from the trace's blocks and shifted by a whole number of blocks into its slot. Every replicate job is
a trace job (same size, shape, runtime, limit, partition, class and account) with its submit time
moved by whole blocks and its id suffixed `#slot` (a block drawn twice gives distinct ids).

Why one-day blocks: each job keeps its time of day, so the daily cycle of submissions and the
bursts and queues built within a day are kept together; days are the unit that varies (a busy day,
a quiet one). Dependence across day boundaries (a queue carried over night) is cut at block edges,
so intervals may come out somewhat narrow for traces whose queues last for days. A trace shorter than
`MIN_BLOCKS` days is cut into `MIN_BLOCKS` equal blocks instead (the daily cycle is then not kept).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from gpupool.simulate.workload import Job

DAY = 86400.0
MIN_BLOCKS = 7  # fewer blocks than this give replicates too alike to say anything about variation


def block_seconds(jobs: Sequence[Job]) -> float:
    """One day, or the trace's submit span / MIN_BLOCKS when it spans fewer than MIN_BLOCKS days."""
    if not jobs:
        return DAY
    span = max(j.submit for j in jobs) - min(j.submit for j in jobs)
    if span >= MIN_BLOCKS * DAY:
        return DAY
    # Slightly wider than span / MIN_BLOCKS, so the last submission falls inside the last block.
    return max(span / MIN_BLOCKS * (1 + 1e-9), 1.0)


def block_bootstrap(jobs: Sequence[Job], seed: int, block: float) -> list[Job]:
    """A replicate of the trace (see the module doc), in submit order; deterministic per seed."""
    if not jobs:
        return []
    origin = min(j.submit for j in jobs)
    count = max(1, math.floor((max(j.submit for j in jobs) - origin) / block) + 1)
    blocks: list[list[Job]] = [[] for _ in range(count)]
    for job in jobs:
        blocks[min(int((job.submit - origin) // block), count - 1)].append(job)
    for members in blocks:
        members.sort(key=lambda j: j.submit)
    picks = np.random.default_rng(seed).integers(0, count, size=count)
    out: list[Job] = []
    for slot, drawn in enumerate(picks.tolist()):
        shift = (slot - drawn) * block
        out += [replace(j, submit=j.submit + shift, job_id=f"{j.job_id}#{slot}") for j in blocks[drawn]]
    return out
