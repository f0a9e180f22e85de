"""Thresholds, severities and disabled checks of `gpupool node check` (the `[node]` config table)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from gpupool.errors import BadInput
from gpupool.findings import check_id
from gpupool.node.checks import known_check, node_checks
from gpupool.node.facts import SEVERITY_CRITICAL, SEVERITY_WARNING


def default_severity() -> dict[str, str]:
    """Every check's default severity, from the check registry (gpupool.node.checks.node_checks)."""
    return {c.name: c.severity for c in node_checks().values()}




def default_disabled() -> frozenset[str]:
    """The opt-in checks, e.g. pcie-gen: idle GPUs lower their PCIe generation to save power."""
    return frozenset(c.name for c in node_checks().values() if not c.enabled)

# HW slowdown, SW thermal, HW thermal and HW power brake: throttling that means a sick node.
DEFAULT_THROTTLE_MASK = 0x08 | 0x20 | 0x40 | 0x80


@dataclass(frozen=True)
class NodeSettings:
    disabled: frozenset[str] = field(default_factory=default_disabled)
    severity: Mapping[str, str] = field(default_factory=default_severity)
    expected_gpus: int | None = None
    # Deprecated and ignored: the gres count now comes from slurm.conf/gres.conf on the node.
    gres_from_slurm: str = "auto"
    # Where slurm.conf/gres.conf are looked for (None: SLURM_CONF's dir, /etc/slurm, slurmd's conf-cache...).
    slurm_conf_dirs: tuple[str, ...] | None = None
    scontrol_timeout: float = 2.0
    nvml_timeout: float = 5.0
    # What a hung/timed-out NVML means: "critical" (drain) or "unknown" (report, do not drain).
    nvml_timeout_status: str = "critical"
    nvml_library: str | None = None
    ecc_uncorrected_max: int = 0
    temperature_margin_c: int = 0
    throttle_mask: int = DEFAULT_THROTTLE_MASK
    hca_source: str = "auto"
    sysfs_root: str = "/"
    ibstat_timeout: float = 3.0
    hcas: tuple[str, ...] = ()
    link_layers: tuple[str, ...] = ("InfiniBand",)
    expected_hca_ports: int | None = None
    expected_hca_state: str = "ACTIVE"
    expected_hca_phys_state: str = "LinkUp"
    expected_hca_rate: float | None = None
    # Per-HCA expected rate (Gb/s), overriding expected_hca_rate: {"mlx5_0": 400, "mlx5_4": 200}.
    expected_hca_rates: Mapping[str, float] = field(default_factory=dict)
    # Fabric file (gpupool fabric discover) whose cables give each HCA port's expected rate.
    fabric: str | None = None
    hca_timeout: float = 3.0  # deadline for reading the HCA ports (sysfs, ibstat or pyverbs)
    hca_link_downed_max: int = 0  # link_downed increase between runs tolerated (a flapping link)
    hca_symbol_error_max: int = 10
    hca_rcv_errors_max: int = 10
    hca_link_recovery_max: int = 0
    nvlink_replay_max: int = 100
    nvlink_recovery_max: int = 0
    nvlink_crc_max: int = 100  # CRC flit + data errors, all links of a GPU together
    pcie_replay_max: int = 100
    # XIDs from the kernel log: "kmsg" reads `kernel_log` (/dev/kmsg or a saved dmesg/journal file).
    xid_source: str = "kmsg"
    kernel_log: str = "/dev/kmsg"
    xid_since: str = "last_check"  # or "boot"
    xid_timeout: float = 2.0
    xid_critical: tuple[int, ...] | None = None  # None: the fatal XIDs of gpupool.node.xid.XID_TABLE
    xid_ignore: tuple[int, ...] = ()
    # Counter values and the kernel log position of the last Prolog/Epilog run (deltas, "since last check").
    state_dir: str = "/var/lib/gpupool"
    # `node check --deep`: `dcgmi diag -r <dcgm_level>` within dcgm_budget seconds.
    dcgmi: str = "dcgmi"
    dcgm_level: int = 1
    dcgm_budget: float = 120.0
    # Append one line per non-OK run here (Prolog output is otherwise lost).
    log_file: str | None = None

    def __post_init__(self) -> None:
        # One spelling inside: check ids given in the old snake_case are kept kebab-case.
        object.__setattr__(self, "disabled", frozenset(check_id(c) for c in self.disabled))
        object.__setattr__(self, "severity", {check_id(c): level for c, level in self.severity.items()})

    def enabled(self, check: str) -> bool:
        return check_id(check) not in self.disabled

    def severity_of(self, check: str) -> str:
        check = check_id(check)
        if check in self.severity:
            return self.severity[check]
        entry = node_checks().get(check)
        return entry.severity if entry is not None else SEVERITY_WARNING


_SCALAR_KEYS = {
    "expected_gpus": int, "scontrol_timeout": float,
    "nvml_timeout": float, "nvml_timeout_status": str, "nvml_library": str,
    "ecc_uncorrected_max": int, "temperature_margin_c": int, "throttle_mask": int,
    "hca_source": str, "sysfs_root": str, "ibstat_timeout": float,
    "expected_hca_ports": int, "expected_hca_state": str, "expected_hca_phys_state": str,
    "expected_hca_rate": float, "log_file": str, "hca_timeout": float,
    "hca_link_downed_max": int, "hca_symbol_error_max": int, "hca_rcv_errors_max": int,
    "hca_link_recovery_max": int, "nvlink_replay_max": int, "nvlink_recovery_max": int,
    "nvlink_crc_max": int, "pcie_replay_max": int, "xid_source": str, "kernel_log": str,
    "xid_since": str, "xid_timeout": float, "state_dir": str, "dcgmi": str, "dcgm_level": int,
    "dcgm_budget": float, "fabric": str,
}


def settings_from_table(table: Mapping[str, Any], origin: str = "config") -> NodeSettings:
    """Build settings from the `[node]` TOML table; unknown keys and bad values are input errors."""
    known = {f.name for f in fields(NodeSettings)} | {"disabled_checks", "enabled_checks"}
    unknown = sorted(set(table) - known - {"disabled", "severity"})
    if unknown:
        raise BadInput(f"{origin}: [node]: unknown key(s): {', '.join(unknown)}")
    values: dict[str, Any] = {}
    for key, kind in _SCALAR_KEYS.items():
        if key in table:
            values[key] = _coerce(table[key], kind, f"{origin}: [node] {key}")
    if "gres_from_slurm" in table:
        raw_gres = table["gres_from_slurm"]
        if raw_gres not in (True, False, "auto"):
            raise BadInput(f"{origin}: [node] gres_from_slurm: must be true, false or \"auto\"")
        values["gres_from_slurm"] = {True: "true", False: "false"}.get(raw_gres, "auto")
    disabled = set(default_disabled())
    disabled |= set(_names(table.get("disabled_checks", []), origin, "disabled_checks"))
    disabled -= set(_names(table.get("enabled_checks", []), origin, "enabled_checks"))
    values["disabled"] = frozenset(disabled)
    severity = default_severity()
    raw_severity = table.get("severity", {})
    if not isinstance(raw_severity, Mapping):
        raise BadInput(f"{origin}: [node.severity] must be a table")
    for check, level in raw_severity.items():
        (name,) = _names([check], origin, "severity")
        if level not in (SEVERITY_WARNING, SEVERITY_CRITICAL):
            raise BadInput(f"{origin}: [node.severity] {check}: must be 'warning' or 'critical'")
        severity[name] = level
    values["severity"] = severity
    for key in ("hcas", "link_layers", "slurm_conf_dirs"):
        if key in table:
            raw = table[key]
            if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
                raise BadInput(f"{origin}: [node] {key}: must be a list of strings")
            values[key] = tuple(raw)
    for key in ("xid_critical", "xid_ignore"):
        if key in table:
            raw = table[key]
            if not isinstance(raw, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in raw):
                raise BadInput(f"{origin}: [node] {key}: must be a list of XID numbers")
            values[key] = tuple(raw)
    if "expected_hca_rates" in table:
        raw_rates = table["expected_hca_rates"]
        if not isinstance(raw_rates, Mapping) or not all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in raw_rates.values()):
            raise BadInput(f"{origin}: [node.expected_hca_rates] must map HCA names to Gb/s")
        values["expected_hca_rates"] = {str(k): float(v) for k, v in raw_rates.items()}
    if values.get("xid_source", "kmsg") not in ("kmsg", "none"):
        raise BadInput(f"{origin}: [node] xid_source: must be 'kmsg' or 'none'")
    if values.get("xid_since", "last_check") not in ("last_check", "boot"):
        raise BadInput(f"{origin}: [node] xid_since: must be 'last_check' or 'boot'")
    if values.get("dcgm_level", 1) not in (1, 2, 3, 4):
        raise BadInput(f"{origin}: [node] dcgm_level: must be 1, 2, 3 or 4")
    if values.get("nvml_timeout_status", "critical") not in ("critical", "unknown"):
        raise BadInput(f"{origin}: [node] nvml_timeout_status: must be 'critical' or 'unknown'")
    if values.get("hca_source", "auto") not in ("auto", "sysfs", "ibstat", "pyverbs", "none"):
        raise BadInput(f"{origin}: [node] hca_source: must be auto, sysfs, ibstat, pyverbs or none")
    return NodeSettings(**values)


def _names(raw: Any, origin: str, key: str) -> list[str]:
    """The registered ids of the names a user typed (kebab-case or the old snake_case spelling)."""
    if not isinstance(raw, list | tuple) or not all(isinstance(v, str) for v in raw):
        raise BadInput(f"{origin}: [node] {key}: must be a list of check names")
    bad = sorted(v for v in set(raw) if known_check(v) is None)
    if bad:
        raise BadInput(f"{origin}: [node] {key}: unknown check(s): {', '.join(bad)} "
                         f"(known: {', '.join(sorted(node_checks().names()))})")
    return [check_id(v) for v in raw]


def _coerce(value: Any, kind: type, where: str) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise BadInput(f"{where}: must be true or false")
    if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind is str and isinstance(value, str):
        return value
    raise BadInput(f"{where}: must be {kind.__name__}")
