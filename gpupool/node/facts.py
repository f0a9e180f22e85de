"""Plain data collected from a node (GPUs through NVML, HCA ports through sysfs/ibstat)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gpupool.findings import (  # noqa: F401 - re-exported for the node modules
    SEVERITY_CRITICAL,
    SEVERITY_WARNING,
    STATUS_CRITICAL,
    STATUS_OK,
    STATUS_UNKNOWN,
    STATUS_WARNING,
    Finding,
)

# NVML_GPU_FABRIC_STATE_* (nvml.h, nvmlGpuFabricState_t) as gpupool names them.
FABRIC_STATES = {0: "not_supported", 1: "not_started", 2: "in_progress", 3: "completed"}


@dataclass(frozen=True)
class GpuFabric:
    """A GPU's multi-node NVLink fabric membership (NVML's nvmlGpuFabricInfo): the domain is
    (cluster_uuid, clique_id); both mean something only once registration is `completed`."""

    cluster_uuid: str  # "8-4-4-4-12" hex form of the 16 clusterUuid bytes
    clique_id: int
    state: str  # FABRIC_STATES value, or "unknown(N)"
    status: int  # nvmlReturn_t of the registration; meaningful only when completed (0: success)
    health_mask: int | None = None  # NVML_GPU_FABRIC_HEALTH_MASK_* bits (v2 structure and later)

    def to_json(self) -> dict[str, Any]:
        return {"cluster_uuid": self.cluster_uuid, "clique_id": self.clique_id, "state": self.state,
                "status": self.status, "health_mask": self.health_mask}


@dataclass
class GpuFacts:
    """One GPU as NVML reports it; None means "not supported / not reported" for that field."""

    index: int
    name: str = ""
    uuid: str = ""
    bus_id: str = ""
    minor: int | None = None
    ecc_uncorrected_volatile: int | None = None
    remap_pending: bool | None = None
    remap_failure: bool | None = None
    retired_pages_pending: bool | None = None
    temperature_c: int | None = None
    slowdown_c: int | None = None
    throttle_reasons: int | None = None
    nvlink_active: list[bool] = field(default_factory=list)
    # NVLink DL error counters summed over links since driver load: replay, recovery, crc_flit, crc_data.
    nvlink_errors: dict[str, int] = field(default_factory=dict)
    pcie_replay: int | None = None
    pcie_width: int | None = None
    pcie_max_width: int | None = None
    pcie_gen: int | None = None
    pcie_max_gen: int | None = None
    compute_pids: list[int] = field(default_factory=list)
    # Multi-node NVLink fabric membership; None: NVML says the GPU has none (PCIe, HGX) or cannot tell.
    nvlink_fabric: GpuFabric | None = None
    # Field name -> error text, for queries that failed with something else than "not supported".
    errors: dict[str, str] = field(default_factory=dict)


@dataclass
class GpuInventory:
    driver_version: str = ""
    count: int = 0
    gpus: list[GpuFacts] = field(default_factory=list)
    # Index -> PCI bus id of every GPU, also those not checked (XIDs name the bus id, not the index).
    bus_ids: dict[int, str] = field(default_factory=dict)
    # GPU index pair -> NVML topology level (0, 10, 20, 30, 40, 50).
    common_ancestor: dict[tuple[int, int], int] = field(default_factory=dict)


@dataclass(frozen=True)
class HcaPort:
    hca: str
    port: int
    state: str | None  # ACTIVE, DOWN, INIT, ARMED, ...; None: unreadable
    phys_state: str | None  # LinkUp, Polling, Disabled, ...; None: unreadable
    rate_gbps: float | None
    link_layer: str = "InfiniBand"
    # sysfs counters (link_downed, symbol_error, port_rcv_errors, ...); empty where not available.
    counters: dict[str, int] = field(default_factory=dict, compare=False, hash=False)
    node_guid: str = ""  # "0x946dae0300a1b2c3", to find the port in a fabric model

    @property
    def subject(self) -> str:
        return f"{self.hca}/{self.port}"


@dataclass
class CollectError:
    """A collector could not answer (timeout, missing library, tool failure)."""

    source: str
    message: str
    timed_out: bool = False


@dataclass
class NodeFacts:
    gpus: GpuInventory | None = None
    gpu_error: CollectError | None = None
    hca_ports: list[HcaPort] | None = None
    hca_error: CollectError | None = None
    # Port subject ("mlx5_0/1") -> rate (Gb/s) the fabric model gives its cable.
    hca_fabric_rates: dict[str, float] = field(default_factory=dict)
    # GPU indices of the Slurm job (None: not under Slurm, check every GPU).
    job_gpus: list[int] | None = None
    xid_events: list[Any] | None = None  # gpupool.node.xid.XidEvent
    xid_error: CollectError | None = None
    xid_since_last_check: bool = False
    # Counter values of the previous Prolog/Epilog run (state file), for deltas; None: no state.
    previous_counters: dict[str, int] | None = None
    dcgm: Any = None  # gpupool.node.dcgm.DcgmResult (--deep)
    dcgm_error: CollectError | None = None
    expected_gpus: int | None = None
    expected_source: str = ""
    # Bus ids of NVIDIA GPUs on the PCI bus (None: sysfs unreadable); SLURM_GPUS_ON_NODE.
    pci_gpus: list[str] | None = None
    job_gpus_on_node: int | None = None
    mode: str = "manual"  # manual, prolog, epilog

    def as_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)
