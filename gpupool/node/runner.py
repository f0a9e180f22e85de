"""`gpupool node check`: collect facts with deadlines, run the pure checks, decide exit and drain."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gpupool.errors import MON_CRITICAL, MON_OK, MON_UNKNOWN
from gpupool.findings import EXIT_CODES
from gpupool.node.checks import drain_reason, overall_status, run_checks
from gpupool.node.facts import STATUS_CRITICAL, STATUS_UNKNOWN, Finding, NodeFacts
from gpupool.node.gpu import GpuSource, collect_gpus
from gpupool.node.gpucount import (
    ConfiguredGpus,
    conf_dirs,
    configured_gpus,
    job_gpus_on_node,
    pci_nvidia_gpus,
)
from gpupool.node.hca import HcaSource, collect_hca_ports
from gpupool.node.settings import NodeSettings
from gpupool.node.slurmenv import job_gpu_ids, node_name, resolve_gpu_ids

MODES = ("manual", "prolog", "epilog")


@dataclass
class CheckReport:
    status: str
    mode: str
    node: str
    findings: list[Finding] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    checked_gpus: list[int] | None = None
    gpu_count: int | None = None
    hca_ports: int | None = None
    job_id: str | None = None
    elapsed_ms: float = 0.0

    @property
    def reason(self) -> str:
        if self.findings:
            return drain_reason(self.findings)
        return drain_reason([]) if not self.unknown else "gpupool: UNKNOWN: " + "; ".join(self.unknown)[:160]

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "findings": [f.to_json() for f in self.findings],
            "unknown": list(self.unknown),
            "mode": self.mode,
            "node": self.node,
            "job_id": self.job_id,
            "checked_gpus": self.checked_gpus,
            "gpu_count": self.gpu_count,
            "hca_ports": self.hca_ports,
            "reason": self.reason if self.status != "OK" else "",
            "elapsed_ms": round(self.elapsed_ms, 1),
        }


def expected_gpu_count(settings: NodeSettings, env: Mapping[str, str], node: str) -> ConfiguredGpus | None:
    """The GPU count the node must show: `expected_gpus`, else slurm.conf/gres.conf on the node."""
    if settings.expected_gpus is not None:
        return ConfiguredGpus(settings.expected_gpus, "config expected_gpus")
    return configured_gpus(node, conf_dirs(env, settings.slurm_conf_dirs))


def check_node(settings: NodeSettings, mode: str, env: Mapping[str, str], gpu_source: GpuSource,
               hca_source: HcaSource | None) -> CheckReport:
    """Never raises for node problems: an internal error becomes an UNKNOWN report. Runs no Slurm command."""
    started = time.perf_counter()
    node = node_name(env)
    report = CheckReport(status=STATUS_UNKNOWN, mode=mode, node=node, job_id=env.get("SLURM_JOB_ID"))
    try:
        facts = NodeFacts(mode=mode)
        ids = job_gpu_ids(env)
        numeric = ids is not None and all(item.isdigit() for item in ids)
        wanted = {int(item) for item in ids} if (ids is not None and numeric) else None
        configured = expected_gpu_count(settings, env, node)
        if configured is not None:
            facts.expected_gpus, facts.expected_source = configured.count, configured.source
        facts.pci_gpus = pci_nvidia_gpus(settings.sysfs_root)
        facts.job_gpus_on_node = job_gpus_on_node(env)
        facts.gpus, facts.gpu_error = collect_gpus(gpu_source, wanted, False, settings.nvml_timeout)
        if ids is not None:
            uuids = {g.index: g.uuid for g in facts.gpus.gpus} if facts.gpus else {}
            facts.job_gpus = resolve_gpu_ids(ids, uuids)
        facts.hca_ports, facts.hca_error = collect_hca_ports(hca_source)
        report.findings, report.unknown = run_checks(facts, settings)
        report.status = overall_status(report.findings, report.unknown)
        if facts.gpus is not None:
            report.gpu_count = facts.gpus.count
            report.checked_gpus = [g.index for g in facts.gpus.gpus
                                   if facts.job_gpus is None or g.index in facts.job_gpus]
        report.hca_ports = None if facts.hca_ports is None else len(facts.hca_ports)
    except Exception as exc:  # noqa: BLE001 - a gpupool bug must not drain a healthy node
        report.status = STATUS_UNKNOWN
        report.unknown.append(f"internal error: {type(exc).__name__}: {exc}")
    report.elapsed_ms = (time.perf_counter() - started) * 1000.0
    return report


def exit_code(report: CheckReport, strict: bool) -> int:
    """Monitoring codes by hand; as Prolog/Epilog only CRITICAL (and UNKNOWN with --strict) fail."""
    if report.mode == "manual":
        return EXIT_CODES[report.status]
    if report.status == STATUS_CRITICAL:
        return MON_CRITICAL
    if report.status == STATUS_UNKNOWN and strict:
        return MON_UNKNOWN
    return MON_OK


def should_drain(report: CheckReport, strict: bool) -> bool:
    return report.mode != "manual" and exit_code(report, strict) != MON_OK


def log_line(report: CheckReport) -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    job = report.job_id or "-"
    return f"{stamp} {report.node} {report.mode} job={job} status={report.status} {report.reason}\n"
