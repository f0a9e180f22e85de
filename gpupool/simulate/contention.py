"""Link-level contention: multi-leaf jobs share the uplink bundles of the subtrees they span.

Links. Every tree node t of the compiled fabric below a root has an uplink bundle: the switch cables
between its subtree and the rest of the fabric (a leaf's cables to its spines, a pod's spine-to-core
cables, a dragonfly router's or group's links out), of capacity C_t Gb/s per direction
(`CompiledFabric.tree_uplink_gbps`: cable counts x cable rates). Rail leaves of one position form one
logical leaf, so their uplinks form one bundle.

Demand. A job holding g_h GPUs on host h injects w_h = host_gbps_h x g_h / gpus_per_host (its share
of the host's HCAs). Across bundle t it sends d_t = min(W_in, W - W_in), where W_in sums w_h over
its hosts under t and W over all its hosts: the job's own cut at that bundle, which is what an
all-reduce at full injection rate pushes through it (a 7+1 split sends one host's worth, a 4+4
split four). A job inside one leaf crosses no bundle and is never slowed.

Sharing (proportional, not max-min fair: a job's share then depends only on the load of its own
bundles, so a start or end re-rates just the jobs on the bundles it touches). With L_t the summed
demand on bundle t, every job there gets min(1, C_t / L_t) of its demand; a job's bandwidth share
is s = min over its bundles. A job alone on a non-oversubscribed fabric has s = 1.

Progress. A job's work is W = duration x hop factor (the isolated model's runtime, `speed.py`), in
isolated seconds; a fraction c (the class's comm_fraction) of it runs at the share s, so it
progresses at r = 1 / ((1 - c) + c / s) isolated seconds per second. Whenever s changes, the work
done at the old rate is booked up to now and the end is rescheduled; a job still short of its work
at start + time limit is killed then (a timeout), as in the isolated model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from gpupool.placement.congestion import cut_demands, host_chains

if TYPE_CHECKING:
    from gpupool.fabric.compiled import CompiledFabric

CONTENTION_ASSUMPTIONS = {
    "capacity": "uplink bundle of every tree node below a root: cable count x cable rate between its subtree and the rest",
    "demand": "per bundle: min(injection of the job's hosts inside, outside); injection = host HCA Gb/s x GPUs held / "
              "GPUs per host",
    "sharing": "proportional: on a bundle over capacity every job gets capacity / load of its demand; "
               "a job runs at its worst bundle's share",
    "progress": "work = duration x hop factor; rate = 1 / ((1 - comm_fraction) + comm_fraction / share), "
                "re-evaluated at every start and end",
}
_SAME = 1e-12  # shares closer than this are equal: no reschedule


class Flow:
    """A running multi-leaf job's traffic and progress (work in isolated seconds)."""

    __slots__ = ("links", "demands", "comm", "work", "remaining", "last", "share", "rate", "deadline", "start")

    def __init__(self, links: list[int], demands: list[float], comm: float, work: float, now: float,
                 deadline: float) -> None:
        self.links = links
        self.demands = demands
        self.comm = comm
        self.work = work
        self.remaining = work
        self.last = now
        self.start = now
        self.share = 1.0
        self.rate = 1.0
        self.deadline = deadline

    def advance(self, now: float) -> None:
        """Book the work done at the current rate since the last change."""
        if now > self.last:
            self.remaining = max(self.remaining - (now - self.last) * self.rate, 0.0)
            self.last = now

    def set_share(self, share: float) -> None:
        self.share = share
        self.rate = 1.0 / ((1.0 - self.comm) + self.comm / share)

    def end(self) -> float:
        """When the job ends at its current rate: its work done, or its time limit, whichever first."""
        return min(self.last + self.remaining / self.rate, self.deadline)

    def timed_out(self) -> bool:
        return self.remaining > 1e-9 * max(self.work, 1.0)

    def slowdown(self, now: float) -> float:
        """Elapsed time over the isolated seconds of work done: 1 when never slowed."""
        done = self.work - self.remaining
        elapsed = now - self.start
        return elapsed / done if done > 0 and elapsed > 0 else 1.0


class LinkContention:
    """Loads of the fabric's uplink bundles and the flows on them, updated incrementally."""

    def __init__(self, compiled: CompiledFabric, gpus_per_host: int, track_only: bool = False) -> None:
        self.capacity: list[float] = compiled.tree_uplink_gbps.tolist()
        self.load = [0.0] * len(self.capacity)
        self.on_link: list[set[int]] = [set() for _ in self.capacity]
        # Per host: its leaf and the ancestors that have an uplink bundle (roots have none); the placement
        # objective `contention` reads the same chains and demand rule (placement.congestion).
        self.host_chain = host_chains(compiled)
        self.gbps_per_gpu = (compiled.host_gbps / gpus_per_host).tolist()
        self.flows: dict[int, Flow] = {}
        # Loads only (the isolated speed model with a placement that reads them): no job is ever slowed.
        self.track_only = track_only
        self._tracked: dict[int, tuple[list[int], list[float]]] = {}

    def demands(self, hosts: list[int], gpus: list[int]) -> tuple[list[int], list[float]]:
        """(bundles the job crosses, its demand on each in Gb/s)."""
        return cut_demands(self.host_chain, self.gbps_per_gpu, hosts, gpus)

    def load_array(self) -> np.ndarray:
        """The current load per tree node (Gb/s), as `placement.congestion.bundle_loads` computes it."""
        return np.asarray(self.load, dtype=np.float64)

    def _share(self, flow: Flow) -> float:
        share = 1.0
        capacity, load = self.capacity, self.load
        for t in flow.links:
            if load[t] > capacity[t]:
                share = min(share, capacity[t] / load[t])
        return share

    def _retime(self, rids: set[int], now: float) -> list[tuple[int, float]]:
        """Re-rate the given flows; (running id, new end) of those whose share changed."""
        out: list[tuple[int, float]] = []
        for rid in rids:
            flow = self.flows[rid]
            share = self._share(flow)
            if abs(share - flow.share) > _SAME:
                flow.advance(now)
                flow.set_share(share)
                out.append((rid, flow.end()))
        return out

    def start(self, rid: int, now: float, work: float, comm: float, deadline: float, hosts: list[int],
              gpus: list[int]) -> tuple[float, list[tuple[int, float]]] | None:
        """Add a starting job's flow: (its end, (id, new end) of every other job re-rated), or None when
        it crosses no bundle (then it runs as in the isolated model)."""
        links, demands = self.demands(hosts, gpus)
        if not links:
            return None
        if self.track_only:
            for t, d in zip(links, demands, strict=True):
                self.load[t] += d
                self.on_link[t].add(rid)
            self._tracked[rid] = (links, demands)
            return None
        flow = Flow(links, demands, comm, work, now, deadline)
        touched: set[int] = set()
        capacity, load, on_link = self.capacity, self.load, self.on_link
        for t, d in zip(links, demands, strict=True):
            load[t] += d
            if load[t] > capacity[t]:
                touched |= on_link[t]  # their share on t fell
            on_link[t].add(rid)
        self.flows[rid] = flow
        flow.set_share(self._share(flow))
        return flow.end(), self._retime(touched, now)

    def stop(self, rid: int, now: float) -> tuple[Flow | None, list[tuple[int, float]]]:
        """Remove a job's flow as it ends or is preempted: (its flow, booked up to now, or None when it had
        none; (id, new end) of every job re-rated)."""
        tracked = self._tracked.pop(rid, None) if self.track_only else None
        if tracked is not None:
            for t, d in zip(*tracked, strict=True):
                users = self.on_link[t]
                users.discard(rid)
                self.load[t] = self.load[t] - d if users else 0.0
            return None, []
        flow = self.flows.pop(rid, None)
        if flow is None:
            return None, []
        flow.advance(now)
        touched: set[int] = set()
        capacity, load, on_link = self.capacity, self.load, self.on_link
        for t, d in zip(flow.links, flow.demands, strict=True):
            before = load[t]
            users = on_link[t]
            users.discard(rid)
            load[t] = before - d if users else 0.0  # an idle bundle carries exactly nothing (no float residue)
            if before > capacity[t]:
                touched |= users  # their share on t rose
        return flow, self._retime(touched, now)
