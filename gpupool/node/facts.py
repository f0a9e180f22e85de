"""Plain data collected from a node (GPUs through NVML, HCA ports through sysfs/ibstat)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SEVERITY_WARNING = "warning"
SEVERITY_CRITICAL = "critical"

STATUS_OK = "OK"
STATUS_WARNING = "WARNING"
STATUS_CRITICAL = "CRITICAL"
STATUS_UNKNOWN = "UNKNOWN"


@dataclass(frozen=True)
class Finding:
    check: str
    severity: str
    subject: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"check": self.check, "severity": self.severity, "subject": self.subject,
                "message": self.message}


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
    pcie_width: int | None = None
    pcie_max_width: int | None = None
    pcie_gen: int | None = None
    pcie_max_gen: int | None = None
    compute_pids: list[int] = field(default_factory=list)
    # Field name -> error text, for queries that failed with something else than "not supported".
    errors: dict[str, str] = field(default_factory=dict)


@dataclass
class GpuInventory:
    driver_version: str = ""
    count: int = 0
    gpus: list[GpuFacts] = field(default_factory=list)
    # GPU index pair -> NVML topology level (0, 10, 20, 30, 40, 50).
    common_ancestor: dict[tuple[int, int], int] = field(default_factory=dict)


@dataclass(frozen=True)
class HcaPort:
    hca: str
    port: int
    state: str  # ACTIVE, DOWN, INIT, ARMED, ...
    phys_state: str  # LinkUp, Polling, Disabled, ...
    rate_gbps: float | None
    link_layer: str = "InfiniBand"

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
    # GPU indices of the Slurm job (None: not under Slurm, check every GPU).
    job_gpus: list[int] | None = None
    expected_gpus: int | None = None
    mode: str = "manual"  # manual, prolog, epilog

    def as_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)
