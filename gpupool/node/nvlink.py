"""A node's multi-node NVLink domain from its GPUs' NVML fabric info (`node topo`, `node check`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gpupool.node.facts import GpuFacts


def registered(gpu: GpuFacts) -> bool:
    """The GPU finished NVLink fabric registration without error: its (cluster, clique) is real."""
    fabric = gpu.nvlink_fabric
    return fabric is not None and fabric.state == "completed" and fabric.status == 0


def fabric_summary(gpus: Sequence[GpuFacts]) -> dict[str, Any] | None:
    """None when no GPU reports NVLink fabric membership (PCIe, HGX: no domain). Otherwise the
    domain all GPUs agree on (`cluster_uuid`, `clique_id`; null when they disagree or none has
    registered), whether every GPU registered (`complete`) and each GPU's own report."""
    members = [g for g in gpus if g.nvlink_fabric is not None]
    if not members:
        return None
    domains = sorted({(g.nvlink_fabric.cluster_uuid, g.nvlink_fabric.clique_id) for g in members if registered(g)
                      and g.nvlink_fabric is not None})
    one = domains[0] if len(domains) == 1 else (None, None)
    return {"cluster_uuid": one[0], "clique_id": one[1], "domains_seen": len(domains),
            "complete": len(domains) == 1 and all(registered(g) for g in gpus),
            "gpus": [{"index": g.index, **(g.nvlink_fabric.to_json() if g.nvlink_fabric else {"state": None})}
                     for g in gpus]}


# NVML_GPU_FABRIC_HEALTH_MASK_*: (shift, value meaning "bad") of the fields gpupool reports.
HEALTH_PROBLEMS = {"bandwidth degraded": (0, 1), "route unhealthy": (4, 1), "global fabric manager disconnected": (14, 2)}


def health_problems(mask: int | None) -> list[str]:
    """Problems a healthMask names (2-bit fields; 0 is "not supported" for each)."""
    if mask is None:
        return []
    return [name for name, (shift, bad) in HEALTH_PROBLEMS.items() if (mask >> shift) & 0x3 == bad]
