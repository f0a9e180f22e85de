"""The node check registry: every check id of `gpupool node check`, its default severity, whether it
runs by default and what its finding means, registered once here (`node_check(...)`).

`NodeSettings` takes its default severities and disabled set from it, the `[node]` config table
and `[node.severity]` accept its ids (kebab-case, or the old snake_case spelling), and the check table
in slurm-plugins/README.md is generated from it (scripts/gen-docs; a unit test compares). The judge
functions in gpupool.node.checks record results only under registered ids.
"""

from __future__ import annotations

from dataclasses import dataclass

from gpupool.findings import SEVERITY_CRITICAL as CRITICAL
from gpupool.findings import SEVERITY_WARNING as WARNING
from gpupool.findings import check_id
from gpupool.registry import Registry


@dataclass(frozen=True)
class NodeCheck:
    name: str  # kebab-case id: the `check` of its results and findings
    severity: str  # default severity; `[node.severity]` overrides it
    what: str  # when it reports a finding (the docs table's text)
    enabled: bool = True  # runs unless `[node] disabled_checks` names it (False: opt-in)


NODE_CHECKS: Registry[NodeCheck] = Registry("node check")


def node_check(name: str, severity: str, what: str, *, enabled: bool = True) -> NodeCheck:
    """Register a node check id (a taken name raises)."""
    if check_id(name) != name:
        raise ValueError(f"node check id {name!r} is not kebab-case")
    return NODE_CHECKS.register(NodeCheck(name, severity, what, enabled))


def known_check(name: str) -> str | None:
    """The registered id a user typed (`ecc_uncorrected` and `ecc-uncorrected` alike), else None."""
    canonical = check_id(name)
    return canonical if canonical in NODE_CHECKS else None


node_check("nvml", CRITICAL,
           "NVML unusable while the node must have GPUs (configured count, NVIDIA devices on the PCI bus, or the job's GPUs); or NVML hung past `nvml_timeout`. On a node with no NVIDIA devices it is OK; when nothing tells (no config, PCI bus unreadable) it is UNKNOWN")
node_check("gpu-count", CRITICAL,
           "fewer GPUs than slurm.conf/gres.conf/`expected_gpus`, or than NVIDIA GPUs on the PCI bus; a job GPU not visible")
node_check("ecc-uncorrected", CRITICAL,
           "volatile uncorrectable ECC count > `ecc_uncorrected_max`")
node_check("remapped-rows-failure", CRITICAL,
           "row remapping failed (GPU needs service)")
node_check("remapped-rows-pending", WARNING,
           "row remap pending (GPU reset needed)")
node_check("retired-pages-pending", WARNING,
           "page retirement pending (older GPUs)")
node_check("temperature", WARNING,
           "temperature >= slowdown threshold - margin")
node_check("throttle", WARNING,
           "clocks throttled for a reason in `throttle_mask`")
node_check("nvlink-down", CRITICAL,
           "an NVLink of the GPU is inactive")
node_check("nvlink-errors", WARNING,
           "NVLink replay / recovery / CRC errors above their maxima (subject `gpu1:crc`)")
node_check("nvlink-fabric", WARNING,
           "multi-node NVLink (GB200/GB300): a GPU not registered, registered with an error, unhealthy, or the node's GPUs in several domains")
node_check("pcie-width", WARNING,
           "PCIe link narrower than the GPU's maximum")
node_check("pcie-gen", WARNING,
           "PCIe generation below maximum (idle GPUs downshift, hence off)", enabled=False)
node_check("pcie-replay", WARNING,
           "PCIe replay counter increase above `pcie_replay_max`")
node_check("xid-fatal", CRITICAL,
           "a fatal XID (48, 63, 64, 74, 79, 92, 94, 95, 119, 120; table in `gpupool/node/xid.py` after NVIDIA's XID catalogue) in the kernel log")
node_check("xid", WARNING,
           "any other XID in the kernel log")
node_check("gpu-processes", CRITICAL,
           "(Prolog) compute processes already on the job's GPUs")
node_check("leftover-processes", CRITICAL,
           "(Epilog) compute processes left on the job's GPUs")
node_check("hca-missing", CRITICAL,
           "an HCA from `hcas` missing, or fewer than `expected_hca_ports`")
node_check("hca-port-state", CRITICAL,
           "port not `expected_hca_state` (subject `mlx5_0/1`); unreadable: UNKNOWN")
node_check("hca-phys-state", CRITICAL,
           "physical state not `expected_hca_phys_state`; unreadable: UNKNOWN")
node_check("hca-rate", WARNING,
           "rate below the cable's rate in the `fabric` model (when the port's GUID is in it), else below `expected_hca_rates[hca]` / `expected_hca_rate`")
node_check("hca-link-downed", WARNING,
           "`link_downed` rose by more than `hca_link_downed_max` (a flapping link)")
node_check("hca-errors", WARNING,
           "`symbol_error`, `port_rcv_errors`, `link_error_recovery` rose above their maxima")
node_check("dcgm-diag", CRITICAL,
           "(`--deep`) a `dcgmi diag` test failed (a `Warn` result is a warning); dcgmi missing or over budget: UNKNOWN")
