"""Host health as placement sees it: hosts that must not be used, leaves best avoided.

    health = Health(excluded={"gpu012": "HCA gpu012 HCA-1 not on the fabric"},
                    degraded_leaves={"leaf03": "2 of 4 uplinks missing"})
    placement = place_with_health(compiled, free, request, health)

Excluded hosts are taken out of the free state. Degraded leaves are only a tie-break: a placement
that avoids their hosts is used when its pair_hops_sum is no worse, never at a higher cost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from gpupool.errors import Unsatisfiable
from gpupool.placement.engine import place
from gpupool.placement.model import FreeState, Placement, Request

if TYPE_CHECKING:
    from gpupool.fabric.compiled import CompiledFabric


@dataclass(frozen=True)
class Health:
    """`excluded`: host -> why it cannot take a job; `degraded_leaves`: leaf switch name -> why it is weak."""

    excluded: dict[str, str] = field(default_factory=dict)
    degraded_leaves: dict[str, str] = field(default_factory=dict)

    def merged(self, other: Health) -> Health:
        """Both sources; where both name a host or leaf, the reasons are joined."""
        def join(a: dict[str, str], b: dict[str, str]) -> dict[str, str]:
            out = dict(a)
            for key, why in b.items():
                out[key] = f"{out[key]}; {why}" if key in out and out[key] != why else why
            return out
        return Health(join(self.excluded, other.excluded), join(self.degraded_leaves, other.degraded_leaves))

    def __bool__(self) -> bool:
        return bool(self.excluded or self.degraded_leaves)


def excluded_in_fabric(compiled: CompiledFabric, health: Health) -> dict[str, str]:
    """The excluded hosts this fabric has, in fabric host order (what `plan` reports as skipped)."""
    return {h: health.excluded[h] for h in compiled.host_names if h in health.excluded}


def without_excluded(compiled: CompiledFabric, free: FreeState, health: Health) -> FreeState:
    index = compiled.host_index()
    hosts = np.asarray([index[h] for h in health.excluded if h in index], dtype=np.int64)
    return free.without(hosts) if hosts.size else free


def hosts_on_degraded_leaves(compiled: CompiledFabric, health: Health) -> np.ndarray:
    """Indices of hosts cabled to at least one degraded leaf switch."""
    if not health.degraded_leaves:
        return np.zeros(0, dtype=np.int64)
    weak = np.asarray([name in health.degraded_leaves for name in compiled.switch_names], dtype=np.bool_)
    hosts = [h for h in range(compiled.n_hosts) if weak[compiled.leaves_of(h)].any()]
    return np.asarray(hosts, dtype=np.int64)


def place_with_health(compiled: CompiledFabric, free: FreeState, request: Request, health: Health) -> Placement:
    """The best placement without excluded hosts; off degraded leaves when that costs no pair hop."""
    free = without_excluded(compiled, free, health)
    best = place(compiled, free, request)
    weak = hosts_on_degraded_leaves(compiled, health)
    if weak.size == 0:
        return best
    index = compiled.host_index()
    if not np.isin([index[h] for h in best.allocation], weak).any():
        return best
    try:
        avoiding = place(compiled, free.without(weak), request)
    except Unsatisfiable:
        return best
    if avoiding.cost.pair_hops_sum > best.cost.pair_hops_sum:
        return best
    # Same cost as a placement over the full free state: optimal there means optimal here.
    avoiding.optimal = avoiding.optimal or best.optimal
    avoiding.elapsed_ms += best.elapsed_ms
    avoiding.extra["avoided_degraded_leaves"] = True
    return avoiding
