"""The node use cases (`node check`, `node topo`): pick the GPU and HCA sources, run the checks,
apply the Prolog/Epilog exit policy and drain through the Slurm port on failure.

Import-light on purpose: `node check --prolog` runs in Slurm's Prolog before every job, so this
module imports only `gpupool.node` (no rich, no Numba, no Slurm client unless it must drain).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from gpupool.node.check_run import CheckReport, check_node, exit_code, log_line, should_drain
from gpupool.node.gpu import GpuSource, NvmlGpuSource, collect_gpus
from gpupool.node.hca import HcaSource, SysfsHcaSource, choose_source, collect_hca_ports
from gpupool.node.settings import NodeSettings, settings_from_table
from gpupool.node.slurmenv import job_gpu_ids, node_name
from gpupool.node.topo import NodeTopology, build_topology, task_prolog_lines

if TYPE_CHECKING:
    from gpupool.slurm.port import SlurmClient

__all__ = ["NodeCheckOutcome", "NodeTopologyOutcome", "node_settings", "run_node_check", "node_topology",
           "task_prolog_exports", "this_node_name"]


@dataclass
class NodeCheckOutcome:
    report: CheckReport
    exit_code: int  # the monitoring code after the Prolog/Epilog policy (only CRITICAL, or UNKNOWN with strict, fail)
    drain_error: str | None = None  # the node should have been drained and could not be (Slurm still drains it)
    drained: bool = False
    log_line: str | None = None  # the line appended to [node] log_file when the node is not OK
    log_error: str | None = None  # why that line could not be written


@dataclass
class NodeTopologyOutcome:
    topology: NodeTopology
    gpu_warning: str | None = None  # NVML could not be read: GPUs from sysfs only


def node_settings(table: Mapping[str, object], where: str, *, sysfs_root: str | None = None,
                  hca_source: str | None = None) -> NodeSettings:
    """The `[node]` settings, with the command's overrides."""
    settings = settings_from_table(dict(table), where)
    if sysfs_root:
        settings = replace(settings, sysfs_root=sysfs_root)
    if hca_source:
        settings = replace(settings, hca_source=hca_source)
    return settings


def run_node_check(settings: NodeSettings, mode: str, env: Mapping[str, str], *, strict: bool, drain: bool,
                   deep: bool, gpu_source: GpuSource | None = None, hca_source: HcaSource | None = None,
                   slurm: SlurmClient | None = None) -> NodeCheckOutcome:
    """Check this node; as Prolog/Epilog with `drain`, drain it on failure (the only Slurm call, and
    only then: the healthy Prolog never loads a Slurm client)."""
    report = check_node(
        settings, mode, env,
        gpu_source or NvmlGpuSource(settings.nvml_library),
        hca_source or choose_source(settings.hca_source, settings.sysfs_root, settings.ibstat_timeout),
        deep=deep,
    )
    outcome = NodeCheckOutcome(report, exit_code(report, strict))
    if report.status != "OK":
        outcome.log_line = log_line(report)
        outcome.log_error = _append(settings.log_file, outcome.log_line)
    if drain and should_drain(report, strict):
        try:
            if slurm is None:
                from gpupool.slurm.client import make_client

                # The commands backend: a Prolog never waits on pyslurm's version probe (short timeout).
                slurm = make_client(settings.scontrol_timeout, backend="commands")
            slurm.drain(report.node, report.reason)
            outcome.drained = True
        except Exception as exc:  # noqa: BLE001 - the non-zero exit still makes Slurm drain
            outcome.drain_error = str(exc)
    return outcome


def _append(path: str | None, line: str) -> str | None:
    """Append `line` to the log file (when one is configured); why it could not be, else None."""
    if not path:
        return None
    try:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(line)
    except OSError as exc:
        return f"cannot write log {path}: {exc.strerror}"
    return None


def node_topology(settings: NodeSettings, *, sysfs_root: str | None, use_nvml: bool,
                  gpu_source: GpuSource | None = None) -> NodeTopologyOutcome:
    """GPU <-> HCA affinity of this node (NVML for the GPUs unless `use_nvml` is False, sysfs for the rest)."""
    root = sysfs_root or settings.sysfs_root
    inventory, warning = None, None
    if use_nvml:
        inventory, error = collect_gpus(gpu_source or NvmlGpuSource(settings.nvml_library), None, True,
                                        settings.nvml_timeout)
        warning = error.message if error is not None else None
    ports, _error = collect_hca_ports(SysfsHcaSource(root))
    return NodeTopologyOutcome(build_topology(root, inventory, ports), warning)


def task_prolog_exports(topology: NodeTopology, env: Mapping[str, str]) -> list[str]:
    """The `export NCCL_IB_HCA=...` lines for Slurm's TaskProlog, for the job's GPUs in `env`."""
    return task_prolog_lines(topology, env, job_gpu_ids(env))


def this_node_name(env: Mapping[str, str]) -> str:
    """This node's name as Slurm knows it (the key `fabric nvlink` merges saved reports by)."""
    return node_name(env)
