"""`gpupool node check`: collect facts with deadlines, run the pure checks, decide exit and drain."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from gpupool.errors import MON_CRITICAL, MON_OK, MON_UNKNOWN, GpupoolError
from gpupool.findings import EXIT_CODES
from gpupool.node.checks import (
    CheckResult,
    current_counters,
    drain_reason,
    evaluate,
    overall_status,
)
from gpupool.node.deadline import DeadlineResult, start_with_deadline
from gpupool.node.facts import (
    STATUS_CRITICAL,
    STATUS_UNKNOWN,
    CollectError,
    Finding,
    HcaPort,
    NodeFacts,
)
from gpupool.node.gpu import GpuSource, gpu_outcome
from gpupool.node.gpucount import (
    ConfiguredGpus,
    conf_dirs,
    configured_gpus,
    job_gpus_on_node,
    pci_nvidia_gpus,
)
from gpupool.node.hca import HcaSource, HcaUnavailable
from gpupool.node.nvlink import fabric_summary
from gpupool.node.settings import NodeSettings
from gpupool.node.slurmenv import job_gpu_ids, node_name, resolve_gpu_ids
from gpupool.node.state import NodeState, current_boot_id, load_state, save_state
from gpupool.node.xid import read_kernel_log

T = TypeVar("T")

MODES = ("manual", "prolog", "epilog")


@dataclass
class CheckReport:
    status: str
    mode: str
    node: str
    findings: list[Finding] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    results: list[CheckResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    checked_gpus: list[int] | None = None
    gpu_count: int | None = None
    hca_ports: int | None = None
    job_id: str | None = None
    elapsed_ms: float = 0.0
    nvlink_domain: dict[str, Any] | None = None  # node.nvlink.fabric_summary of the checked GPUs

    @property
    def reason(self) -> str:
        if self.findings:
            return drain_reason(self.findings)
        return drain_reason([]) if not self.unknown else "gpupool: UNKNOWN: " + "; ".join(self.unknown)[:160]

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "findings": [f.to_json() for f in self.findings],
            "checks": [r.to_json() for r in self.results],
            "unknown": list(self.unknown),
            "mode": self.mode,
            "node": self.node,
            "job_id": self.job_id,
            "checked_gpus": self.checked_gpus,
            "gpu_count": self.gpu_count,
            "hca_ports": self.hca_ports,
            "reason": self.reason if self.status != "OK" else "",
            "elapsed_ms": round(self.elapsed_ms, 1),
            "notes": list(self.notes),
            "nvlink_domain": self.nvlink_domain,
        }


def expected_gpu_count(settings: NodeSettings, env: Mapping[str, str], node: str) -> ConfiguredGpus | None:
    """The GPU count the node must show: `expected_gpus`, else slurm.conf/gres.conf on the node."""
    if settings.expected_gpus is not None:
        return ConfiguredGpus(settings.expected_gpus, "config expected_gpus")
    return configured_gpus(node, conf_dirs(env, settings.slurm_conf_dirs))


def check_node(settings: NodeSettings, mode: str, env: Mapping[str, str], gpu_source: GpuSource,
               hca_source: HcaSource | None, deep: bool = False) -> CheckReport:
    """Never raises for node problems: an internal error becomes an UNKNOWN report. Runs no Slurm command.

    NVML, the HCA ports, the kernel log and (with `deep`) dcgmi run side by side, each with its own
    deadline, so one slow source costs its own budget only.
    """
    started = time.perf_counter()
    node = node_name(env)
    report = CheckReport(status=STATUS_UNKNOWN, mode=mode, node=node, job_id=env.get("SLURM_JOB_ID"))
    try:
        facts = NodeFacts(mode=mode)
        ids = job_gpu_ids(env)
        numeric = ids is not None and all(item.isdigit() for item in ids)
        wanted = {int(item) for item in ids} if (ids is not None and numeric) else None
        boot_id = current_boot_id()
        state = load_state(settings.state_dir, boot_id)
        facts.previous_counters = state.counters if state is not None else None
        after_seq = state.kmsg_seq if (state is not None and settings.xid_since == "last_check") else None
        facts.xid_since_last_check = after_seq is not None

        nvml_job = start_with_deadline(lambda progress: gpu_source.inventory(wanted, False, progress),
                                       settings.nvml_timeout)
        hca_job = None if hca_source is None else start_with_deadline(
            lambda _progress: _hca_ports(hca_source, settings.fabric), settings.hca_timeout)
        wants_xids = settings.xid_source != "none" and (settings.enabled("xid") or settings.enabled("xid-fatal"))
        xid_job = None if not wants_xids else start_with_deadline(
            lambda _progress: read_kernel_log(settings.kernel_log, after_seq), settings.xid_timeout)
        dcgm_job = None
        if deep:
            from gpupool.node.dcgm import run_dcgm_diag

            dcgm_job = start_with_deadline(
                lambda _progress: run_dcgm_diag(settings.dcgmi, settings.dcgm_level, settings.dcgm_budget),
                settings.dcgm_budget + 5.0)

        configured = expected_gpu_count(settings, env, node)
        if configured is not None:
            facts.expected_gpus, facts.expected_source = configured.count, configured.source
        facts.pci_gpus = pci_nvidia_gpus(settings.sysfs_root)
        facts.job_gpus_on_node = job_gpus_on_node(env)

        facts.gpus, facts.gpu_error = gpu_outcome(nvml_job.result(), settings.nvml_timeout)
        if ids is not None:
            uuids = {g.index: g.uuid for g in facts.gpus.gpus} if facts.gpus else {}
            facts.job_gpus = resolve_gpu_ids(ids, uuids)
        if hca_job is not None and hca_source is not None:
            hca, facts.hca_error = _outcome(hca_job.result(), hca_source.name, settings.hca_timeout,
                                            (HcaUnavailable, GpupoolError))
            if hca is not None:
                facts.hca_ports, facts.hca_fabric_rates = hca
        kernel_log = None
        if xid_job is not None:
            kernel_log, facts.xid_error = _outcome(xid_job.result(), "kernel log", settings.xid_timeout, OSError)
            facts.xid_events = None if kernel_log is None else kernel_log.events
        if dcgm_job is not None:
            from gpupool.node.dcgm import DcgmUnavailable

            facts.dcgm, facts.dcgm_error = _outcome(dcgm_job.result(), "dcgmi", settings.dcgm_budget,
                                                    (DcgmUnavailable, OSError, subprocess.TimeoutExpired))

        judge = evaluate(facts, settings)
        report.findings, report.unknown, report.results = judge.findings, judge.unknown, judge.results
        report.status = overall_status(report.findings, report.unknown)
        if facts.gpus is not None:
            report.gpu_count = facts.gpus.count
            report.checked_gpus = [g.index for g in facts.gpus.gpus
                                   if facts.job_gpus is None or g.index in facts.job_gpus]
            report.nvlink_domain = fabric_summary([g for g in facts.gpus.gpus if g.index in report.checked_gpus])
        report.hca_ports = None if facts.hca_ports is None else len(facts.hca_ports)
        if mode != "manual":  # by hand the window stays where the last Prolog/Epilog left it
            counters = dict(facts.previous_counters or {})
            counters.update(current_counters(facts))
            seq = kernel_log.last_seq if kernel_log is not None else (state.kmsg_seq if state else None)
            try:
                save_state(settings.state_dir, NodeState(boot_id=boot_id, kmsg_seq=seq, counters=counters))
            except OSError as exc:
                report.notes.append(f"cannot write state in {settings.state_dir}: {exc.strerror or exc}")
    except Exception as exc:  # noqa: BLE001 - a gpupool bug must not drain a healthy node
        report.status = STATUS_UNKNOWN
        report.unknown.append(f"internal error: {type(exc).__name__}: {exc}")
    report.elapsed_ms = (time.perf_counter() - started) * 1000.0
    return report


def _hca_ports(source: HcaSource, fabric: str | None) -> tuple[list[HcaPort], dict[str, float]]:
    """The ports and, with a fabric file, the rate its cables give each of them."""
    ports = source.ports()
    if not fabric:
        return ports, {}
    from gpupool.node.fabricrates import fabric_port_rates

    return ports, fabric_port_rates(fabric, ports)


def _outcome(result: DeadlineResult[T], source: str, timeout: float,
             expected: type[BaseException] | tuple[type[BaseException], ...]) -> tuple[T | None, CollectError | None]:
    """A source's value, or why it could not answer (timeout or an expected failure); bugs propagate."""
    if result.timed_out:
        return None, CollectError(source, f"no answer within {timeout:g} s", timed_out=True)
    if result.error is not None:
        if isinstance(result.error, expected):
            return None, CollectError(source, str(result.error) or type(result.error).__name__)
        raise result.error
    return result.value, None


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
