"""Placement objectives: fewest pair hops alone (`hops`), fewest hops that keep capacity placeable (`pack`),
or fewest hops off the uplinks running jobs already load (`contention`, scored in `congestion.py`).

`pack` looks beyond the job. Among placements with the fewest pair hops (or within a hop budget,
`hop_slack`), it picks the one that raises the fabric's *fragmentation* least: the expected number
of free GPUs that a job drawn from the site's size mix could not use (after FGD, ATC'23), summed over
leaves (logical level-1 groups). For one leaf with `hist[f]` hosts of f free GPUs (G GPUs a host,
L hosts in the leaf) and a job of s GPUs:

- s < G (fits on one host): the free GPUs of hosts with fewer than s free (FGD's rule);
- s >= G (k = ceil(s / G) whole hosts): every GPU of partly used hosts, plus the whole free hosts
  left over once the leaf's whole hosts are cut into blocks of min(k, L): G x (W mod min(k, L)).
  A job larger than a leaf counts only an entirely free leaf as usable.

The score is sum_s share_s x frag_s, in integer units (shares scaled to `SHARE_SCALE`), so the
tree DP keeps it exact as one more lexicographic weight between pair hops and leaf switches.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gpupool.errors import BadRequest, param
from gpupool.jit import njit

SHARE_SCALE = 1000  # shares of the size mix in integer thousandths: the score stays an exact int64


class Objective(enum.Enum):
    """What `place` minimises after the request's constraints."""

    HOPS = "hops"  # fewest pair hops, then fewest leaf switches, then best fit
    PACK = "pack"  # fewest pair hops (within the slack), then least added fragmentation for the size mix
    # fewest pair hops, then the least bandwidth added over capacity on uplinks running jobs load (congestion.py)
    CONTENTION = "contention"

    @classmethod
    def parse(cls, text: str) -> Objective:
        try:
            return cls(text.strip().lower())
        except ValueError:
            raise BadRequest(f"unknown objective {text!r} (known: {', '.join(o.value for o in cls)})") from None


@dataclass(frozen=True)
class SizeMix:
    """Job sizes in GPUs and the share of jobs of each size (shares sum to 1)."""

    sizes: tuple[int, ...]
    shares: tuple[float, ...]
    source: str = "default"

    def weights(self) -> tuple[np.ndarray, np.ndarray]:
        """(sizes, integer weights summing to about SHARE_SCALE) for the kernels."""
        sizes = np.asarray(self.sizes, dtype=np.int64)
        weights = np.asarray([round(s * SHARE_SCALE) for s in self.shares], dtype=np.int64)
        return sizes, weights

    def text(self) -> str:
        return ",".join(f"{s}:{w:.3g}" for s, w in zip(self.sizes, self.shares, strict=True))

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "sizes": {str(s): round(w, 6) for s, w in zip(self.sizes, self.shares,
                                                                                      strict=True)}}

    @classmethod
    def from_counts(cls, counts: dict[int, float], source: str) -> SizeMix:
        """A mix from job counts (or any non-negative weights) per size in GPUs."""
        kept = {int(s): float(w) for s, w in counts.items() if w > 0 and s > 0}
        total = sum(kept.values())
        if not kept or total <= 0:
            raise BadRequest(f"size mix from {source}: no job sizes")
        ordered = sorted(kept)
        return cls(sizes=tuple(ordered), shares=tuple(kept[s] / total for s in ordered), source=source)


def parse_size_mix(text: str) -> SizeMix:
    """`1:0.3,8:0.3,32:0.2,64:0.2` (GPUs:share; shares are normalised, `/` may separate too)."""
    counts: dict[int, float] = {}
    for item in filter(None, (p.strip() for p in text.replace("/", ",").split(","))):
        size, colon, share = item.partition(":")
        try:
            gpus = int(size)
            weight = float(share) if colon else 1.0
        except ValueError:
            raise BadRequest(f"{param('size_mix')} {item!r}: expected GPUS:SHARE, e.g. 1:0.3,8:0.3,32:0.2,64:0.2") from None
        if gpus < 1 or gpus > 1 << 20 or not math.isfinite(weight) or weight < 0:
            raise BadRequest(f"{param('size_mix')} {item!r}: GPUs must be positive and the share finite and >= 0")
        counts[gpus] = counts.get(gpus, 0.0) + weight
    if not counts or sum(counts.values()) <= 0:
        raise BadRequest(f"{param('size_mix')} needs at least one GPUS:SHARE with a positive share")
    return SizeMix.from_counts(counts, "given")


# The default mix: the job-count shares of `gpupool simulate`'s default synthetic workload (85% single-host
# jobs of 1/2/4/8 GPUs at 70/10/10/10, 15% multi-host of 2/4/8/16/32 x 8 GPUs at 45/30/15/7/3), so plan and
# the simulator assume the same site when nothing better is known.
DEFAULT_SIZE_MIX = SizeMix.from_counts({1: 0.85 * 0.70, 2: 0.85 * 0.10, 4: 0.85 * 0.10, 8: 0.85 * 0.10,
                                        16: 0.15 * 0.45, 32: 0.15 * 0.30, 64: 0.15 * 0.15, 128: 0.15 * 0.07,
                                        256: 0.15 * 0.03}, "default")


@dataclass(frozen=True)
class HopSlack:
    """Extra pair hops `pack` may spend over the fewest: `extra` absolute, or `percent` of the fewest."""

    extra: int = 0
    percent: float = 0.0

    def budget(self, fewest: int) -> int:
        return fewest + max(self.extra, math.floor(fewest * self.percent / 100.0))

    def __bool__(self) -> bool:
        return self.extra > 0 or self.percent > 0

    def text(self) -> str:
        return f"{self.percent:g}%" if self.percent else str(self.extra)

    @classmethod
    def parse(cls, text: str) -> HopSlack:
        """`N` extra pair hops, or `P%` of the fewest."""
        raw = text.strip()
        try:
            if raw.endswith("%"):
                value = float(raw[:-1])
                if not math.isfinite(value) or not 0 <= value <= 1000:
                    raise ValueError(raw)
                return cls(percent=value)
            extra = int(raw)
            if not 0 <= extra <= 1 << 40:
                raise ValueError(raw)
            return cls(extra=extra)
        except ValueError:
            raise BadRequest(f"{param('hop_slack')} {text!r}: expected N extra pair hops (>= 0) or P% of the fewest") from None


# Measured in docs/simulate.md ("A placement that looks beyond the job"): `pack` becomes the default only
# where it is no worse than slurm-tree on every fabric measured.
DEFAULT_OBJECTIVE = Objective.HOPS


@dataclass(frozen=True)
class PlacementGoal:
    """The objective and what it needs: the hop budget and the site's job-size mix."""

    objective: Objective = DEFAULT_OBJECTIVE
    hop_slack: HopSlack = field(default_factory=HopSlack)
    size_mix: SizeMix = DEFAULT_SIZE_MIX
    gpus_per_host: int | None = None  # a whole host's GPUs; None: the largest configured (else free) count
    # pack: after the fragmentation score, the least bandwidth added over capacity on loaded uplinks (congestion.py)
    uplinks: bool = False

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"name": self.objective.value}
        if self.objective is Objective.PACK:
            doc["hop_slack"] = self.hop_slack.text()
            doc["size_mix"] = self.size_mix.to_json()
            if self.uplinks:
                doc["uplinks"] = True
        return doc

    @property
    def reads_uplinks(self) -> bool:
        """Whether the goal scores the running jobs' uplink loads (FreeState.uplink_load)."""
        return self.objective is Objective.CONTENTION or (self.objective is Objective.PACK and self.uplinks)


DEFAULT_GOAL = PlacementGoal()


@njit(cache=True)
def leaf_fragmentation(hist: np.ndarray, leaf_hosts: int, g: int, sizes: np.ndarray, weights: np.ndarray) -> int:
    """sum_s weight_s x (free GPUs of the leaf a job of s GPUs could not use); hist[f] = hosts with f free."""
    partial = 0
    for f in range(1, g):
        partial += f * hist[f]
    whole = hist[g]
    total = 0
    for i in range(sizes.size):
        s = sizes[i]
        if s < g:
            lost = 0
            for f in range(1, min(s, g)):
                lost += f * hist[f]
        else:
            k = min((s + g - 1) // g, max(leaf_hosts, 1))
            lost = partial + g * (whole % k)
        total += weights[i] * lost
    return total


@njit(cache=True)
def leaf_histograms(host_leaf: np.ndarray, host_free: np.ndarray, n_leaves: int, g: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(hist[leaf, f] of hosts with f free GPUs, capped at g; hosts per leaf) over every host of the fabric."""
    hist = np.zeros((n_leaves, g + 1), dtype=np.int64)
    size = np.zeros(n_leaves, dtype=np.int64)
    for h in range(host_leaf.size):
        t = host_leaf[h]
        if t < 0:
            continue
        size[t] += 1
        hist[t, min(max(host_free[h], 0), g)] += 1
    return hist, size


@njit(cache=True)
def fragmentation_of(host_leaf: np.ndarray, host_free: np.ndarray, n_leaves: int, g: int, sizes: np.ndarray,
                     weights: np.ndarray) -> int:
    """The whole fabric's score: the sum over leaves."""
    hist, size = leaf_histograms(host_leaf, host_free, n_leaves, g)
    total = 0
    for t in range(n_leaves):
        if size[t] > 0:
            total += leaf_fragmentation(hist[t], size[t], g, sizes, weights)
    return total


@njit(cache=True)
def leaf_deltas(need: int, leaf_ptr: np.ndarray, leaf_hosts: np.ndarray, units: np.ndarray, unit_gpus: int,
                host_free: np.ndarray, hist: np.ndarray, size: np.ndarray, g: int, sizes: np.ndarray,
                weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per leaf group v and n = 0..min(need, its units): the score change when n units go to v, on the hosts
    `tree_dp.assign_hosts` would take (fullest first, the remainder on the tightest fit). CSR (ptr, values)."""
    n_tree = leaf_ptr.size - 1
    ptr = np.zeros(n_tree + 1, dtype=np.int64)
    for v in range(n_tree):
        s = 0
        for i in range(leaf_ptr[v], leaf_ptr[v + 1]):
            s += units[leaf_hosts[i]]
        ptr[v + 1] = ptr[v] + min(need, s) + 1
    out = np.zeros(ptr[n_tree], dtype=np.int64)
    work = np.zeros(g + 1, dtype=np.int64)
    for v in range(n_tree):
        cap = ptr[v + 1] - ptr[v] - 1
        if cap <= 0:
            continue
        before = leaf_fragmentation(hist[v], size[v], g, sizes, weights)
        start = leaf_ptr[v]
        end = leaf_ptr[v + 1]
        for n in range(1, cap + 1):
            work[:] = hist[v]
            rest = n
            i = start
            while i < end and units[leaf_hosts[i]] <= rest:
                h = leaf_hosts[i]
                f = min(host_free[h], g)
                work[f] -= 1
                work[max(f - units[h] * unit_gpus, 0)] += 1
                rest -= units[h]
                i += 1
                if rest == 0:
                    break
            if rest > 0:
                best = i
                for j in range(i, end):
                    if units[leaf_hosts[j]] >= rest:
                        best = j
                h = leaf_hosts[best]
                f = min(host_free[h], g)
                work[f] -= 1
                work[max(f - rest * unit_gpus, 0)] += 1
            out[ptr[v] + n] = leaf_fragmentation(work, size[v], g, sizes, weights) - before
    return ptr, out


def whole_counts(host_leaf: np.ndarray, host_free: np.ndarray, n_leaves: int, g: int) -> tuple[int, int]:
    """(entirely free leaves, whole free hosts): what `plan` reports as kept whole."""
    hist, size = leaf_histograms(host_leaf, host_free, n_leaves, g)
    present = size > 0
    return int(((hist[:, g] == size) & present).sum()), int(hist[:, g].sum())


@njit(cache=True)
def best_single_host(need_gpus: int, host_units: np.ndarray, unit_need: int, host_leaf: np.ndarray,
                     host_free: np.ndarray, hist: np.ndarray, size: np.ndarray, g: int, sizes: np.ndarray,
                     weights: np.ndarray) -> int:
    """The host that takes a one-host job (need_gpus GPUs, unit_need of its units) with the least added score;
    ties to the leaf with the fewest free GPUs (best fit, as `hops`), then the tightest host, then host order.
    -1 when no host fits. Exact: every fitting host is scored."""
    n_leaves = hist.shape[0]
    leaf_free = np.zeros(n_leaves, dtype=np.int64)
    for t in range(n_leaves):
        for f in range(g + 1):
            leaf_free[t] += f * hist[t, f]
    best = -1
    best_score = 0
    best_leaf = 0
    best_free = 0
    work = np.zeros(g + 1, dtype=np.int64)
    for h in range(host_units.size):
        if host_units[h] < unit_need or host_leaf[h] < 0:
            continue
        t = host_leaf[h]
        work[:] = hist[t]
        f = min(host_free[h], g)
        work[f] -= 1
        work[max(f - need_gpus, 0)] += 1
        score = leaf_fragmentation(work, size[t], g, sizes, weights) - leaf_fragmentation(hist[t], size[t], g,
                                                                                             sizes, weights)
        if (best < 0 or score < best_score or (score == best_score and leaf_free[t] < best_leaf)
                or (score == best_score and leaf_free[t] == best_leaf and host_free[h] < best_free)):
            best = h
            best_score = score
            best_leaf = leaf_free[t]
            best_free = host_free[h]
    return best
