"""GPU <-> HCA affinity from the PCI hierarchy in sysfs (plus NVML's GPU-GPU levels), `nvidia-smi topo -m` style."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpupool.node.facts import GpuInventory, HcaPort

# Closest first. PIX: one PCIe switch; PXB: several switches; PHB: through the host bridge;
# NODE: between host bridges of one NUMA node; SYS: across the SMP interconnect.
LEVELS = ("X", "PIX", "PXB", "PHB", "NODE", "SYS")
LEVEL_RANK = {name: rank for rank, name in enumerate(LEVELS)}
NVML_LEVELS = {0: "X", 10: "PIX", 20: "PXB", 30: "PHB", 40: "NODE", 50: "SYS"}
LEGEND = {
    "X": "self",
    "PIX": "at most one PCIe switch between them",
    "PXB": "several PCIe switches, no host bridge",
    "PHB": "through a PCIe host bridge (CPU)",
    "NODE": "between PCIe host bridges within one NUMA node",
    "SYS": "across the SMP interconnect between NUMA nodes",
}

_BDF = re.compile(r"^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$")
_ROOT = re.compile(r"^pci[0-9a-f]{4}:[0-9a-f]{2}$")
NVIDIA_VENDOR = "0x10de"


@dataclass(frozen=True)
class PciLocation:
    bus_id: str
    root: str  # the host bridge, e.g. pci0000:17
    chain: tuple[str, ...]  # bridges from the root port down to the device itself
    numa_node: int | None


@dataclass
class TopoGpu:
    index: int
    bus_id: str
    location: PciLocation | None = None


@dataclass
class TopoHca:
    name: str
    bus_id: str
    location: PciLocation | None = None
    ports: list[HcaPort] = field(default_factory=list)


@dataclass
class NodeTopology:
    gpus: list[TopoGpu]
    hcas: list[TopoHca]
    gpu_gpu: dict[tuple[int, int], str]
    gpu_hca: dict[tuple[int, str], str]
    nvlink_domain: dict[str, Any] | None = None  # node.nvlink.fabric_summary: None = in no NVLink domain

    def nearest_hcas(self, gpu: int) -> list[str]:
        """HCAs at the best level from this GPU (ties kept, in name order)."""
        levels = {hca.name: self.gpu_hca.get((gpu, hca.name)) for hca in self.hcas}
        known = {name: LEVEL_RANK[level] for name, level in levels.items() if level}
        if not known:
            return []
        best = min(known.values())
        return sorted(name for name, rank in known.items() if rank == best)

    def as_dict(self) -> dict[str, Any]:
        names = [f"gpu{g.index}" for g in self.gpus] + [h.name for h in self.hcas]
        matrix: dict[str, dict[str, str]] = {}
        for row in names:
            matrix[row] = {col: self.level(row, col) for col in names}
        return {
            "gpus": [{"index": g.index, "bus_id": g.bus_id,
                      "numa_node": g.location.numa_node if g.location else None,
                      "nearest_hcas": self.nearest_hcas(g.index)} for g in self.gpus],
            "hcas": [{"name": h.name, "bus_id": h.bus_id,
                      "numa_node": h.location.numa_node if h.location else None,
                      "ports": [{"port": p.port, "state": p.state, "rate_gbps": p.rate_gbps,
                                 "link_layer": p.link_layer} for p in h.ports]} for h in self.hcas],
            "matrix": matrix,
            "legend": LEGEND,
            "nvlink_domain": self.nvlink_domain,
        }

    def level(self, a: str, b: str) -> str:
        if a == b:
            return "X"
        gpu_a, gpu_b = _gpu_index(a), _gpu_index(b)
        if gpu_a is not None and gpu_b is not None:
            return self.gpu_gpu.get((min(gpu_a, gpu_b), max(gpu_a, gpu_b)), "")
        if gpu_a is not None:
            return self.gpu_hca.get((gpu_a, b), "")
        if gpu_b is not None:
            return self.gpu_hca.get((gpu_b, a), "")
        hca_a = next((h for h in self.hcas if h.name == a), None)
        hca_b = next((h for h in self.hcas if h.name == b), None)
        if hca_a and hca_b and hca_a.location and hca_b.location:
            return pci_level(hca_a.location, hca_b.location)
        return ""


def _gpu_index(name: str) -> int | None:
    return int(name[3:]) if name.startswith("gpu") and name[3:].isdigit() else None


def pci_location(root: str | os.PathLike[str], bus_id: str) -> PciLocation | None:
    """Where a PCI function sits: its host bridge and the bridges above it (None if unknown)."""
    link = Path(root) / "sys/bus/pci/devices" / bus_id
    if not link.exists():
        return None
    real = Path(os.path.realpath(link))
    parts = real.parts
    roots = [i for i, part in enumerate(parts) if _ROOT.match(part)]
    if not roots:
        return None
    start = roots[-1]
    chain = tuple(part for part in parts[start + 1:] if _BDF.match(part))
    return PciLocation(bus_id=bus_id, root=parts[start], chain=chain, numa_node=_numa(real))


def _numa(device: Path) -> int | None:
    try:
        value = int((device / "numa_node").read_text().strip())
    except (OSError, ValueError):
        return None
    return value if value >= 0 else None


def pci_level(a: PciLocation, b: PciLocation) -> str:
    """nvidia-smi's connection type between two PCI functions, from their sysfs positions."""
    if a.bus_id == b.bus_id:
        return "X"
    if a.root != b.root:
        if a.numa_node is None or b.numa_node is None or a.numa_node == b.numa_node:
            return "NODE"
        return "SYS"
    common = 0
    for left, right in zip(a.chain, b.chain, strict=False):
        if left != right:
            break
        common += 1
    if common == 0:
        return "PHB"  # different root ports of one host bridge
    # Steps from each device up to the deepest shared bridge: 2 = one switch (downstream+upstream port).
    up_a, up_b = len(a.chain) - common, len(b.chain) - common
    return "PIX" if max(up_a, up_b) <= 2 else "PXB"


def sysfs_gpus(root: str | os.PathLike[str]) -> list[str]:
    """NVIDIA display/3D controllers in sysfs, in bus order (NVML's default order)."""
    from gpupool.node.gpucount import pci_nvidia_gpus

    return pci_nvidia_gpus(root) or []


def sysfs_hcas(root: str | os.PathLike[str]) -> dict[str, str]:
    """RDMA device name -> PCI bus id of its function."""
    base = Path(root) / "sys/class/infiniband"
    if not base.is_dir():
        return {}
    found = {}
    for hca in sorted(base.iterdir()):
        device = hca / "device"
        if device.exists():
            found[hca.name] = Path(os.path.realpath(device)).name
    return found




def build_topology(root: str | os.PathLike[str], inventory: GpuInventory | None,
                   hca_ports: list[HcaPort] | None) -> NodeTopology:
    """GPUs from NVML when available (else sysfs), HCAs from sysfs, levels from the PCI tree."""
    if inventory is not None and inventory.gpus:
        gpus = [TopoGpu(g.index, g.bus_id) for g in inventory.gpus]
    else:
        gpus = [TopoGpu(i, bus) for i, bus in enumerate(sysfs_gpus(root))]
    for gpu in gpus:
        gpu.location = pci_location(root, gpu.bus_id) if gpu.bus_id else None
    ports_by_hca: dict[str, list[HcaPort]] = {}
    for port in hca_ports or []:
        ports_by_hca.setdefault(port.hca, []).append(port)
    hcas = [TopoHca(name, bus, pci_location(root, bus), ports_by_hca.get(name, []))
            for name, bus in sysfs_hcas(root).items()]
    gpu_gpu: dict[tuple[int, int], str] = {}
    nvml_levels = inventory.common_ancestor if inventory is not None else {}
    for pos, a in enumerate(gpus):
        for b in gpus[pos + 1:]:
            key = (min(a.index, b.index), max(a.index, b.index))
            if key in nvml_levels and nvml_levels[key] in NVML_LEVELS:
                gpu_gpu[key] = NVML_LEVELS[nvml_levels[key]]
            elif a.location and b.location:
                gpu_gpu[key] = pci_level(a.location, b.location)
    gpu_hca: dict[tuple[int, str], str] = {}
    for gpu in gpus:
        for hca in hcas:
            if gpu.location and hca.location:
                gpu_hca[(gpu.index, hca.name)] = pci_level(gpu.location, hca.location)
    from gpupool.node.nvlink import fabric_summary

    nvlink = fabric_summary(inventory.gpus) if inventory is not None else None
    return NodeTopology(gpus, hcas, gpu_gpu, gpu_hca, nvlink)


def usable_ports(hca: TopoHca) -> list[str]:
    """`hca:port` names NCCL may use: active InfiniBand ports, else every port we know of."""
    active = [p for p in hca.ports if (p.state or "").upper() == "ACTIVE" and p.link_layer == "InfiniBand"]
    chosen = active or hca.ports
    return [f"{hca.name}:{p.port}" for p in chosen] or [f"{hca.name}:1"]


def task_gpus(topology: NodeTopology, ids: list[str] | None) -> list[int]:
    """The task's GPUs as NVML indices, in the order Slurm listed them (all GPUs outside Slurm)."""
    known = {g.index for g in topology.gpus}
    if ids is None:
        return sorted(known)
    return [int(item) for item in ids if item.isdigit() and int(item) in known]


def task_prolog_lines(topology: NodeTopology, env: Mapping[str, str], gpu_ids: list[str] | None) -> list[str]:
    """`export` lines for Slurm's TaskProlog: NCCL_IB_HCA nearest to this task's GPU(s)."""
    gpus = task_gpus(topology, gpu_ids)
    if not gpus or not topology.hcas:
        return []
    local = env.get("SLURM_LOCALID", "")
    tasks_here = _tasks_on_node(env)
    # One rank per GPU but every task sees all GPUs: rank r drives GPU r by convention.
    if len(gpus) > 1 and local.isdigit() and tasks_here == len(gpus) and int(local) < len(gpus):
        focus = [gpus[int(local)]]
    else:
        focus = gpus
    by_name = {h.name: h for h in topology.hcas}
    chosen: list[str] = []
    pairs: list[str] = []
    for gpu in focus:
        nearest = topology.nearest_hcas(gpu)
        pairs.append(f"{gpu}:{','.join(nearest) or '-'}")
        for name in nearest:
            for port in usable_ports(by_name[name]):
                if port not in chosen:
                    chosen.append(port)
    lines = []
    if chosen:
        # A leading '=' makes NCCL match names exactly (mlx5_1 must not also select mlx5_10).
        lines.append(f"export NCCL_IB_HCA=={','.join(chosen)}")
    lines.append(f"export GPUPOOL_GPU_HCA={';'.join(pairs)}")
    return lines


def _tasks_on_node(env: Mapping[str, str]) -> int | None:
    # SLURM_TASKS_PER_NODE looks like "4(x2),2"; the first group is enough for a uniform layout.
    value = env.get("SLURM_NTASKS_PER_NODE") or env.get("SLURM_TASKS_PER_NODE") or ""
    match = re.match(r"(\d+)", value)
    return int(match.group(1)) if match else None
