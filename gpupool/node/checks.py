"""Pure health checks: NodeFacts + NodeSettings -> findings -> status (no I/O here)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from gpupool.node.facts import (
    SEVERITY_CRITICAL,
    SEVERITY_WARNING,
    STATUS_CRITICAL,
    STATUS_OK,
    STATUS_UNKNOWN,
    STATUS_WARNING,
    CollectError,
    Finding,
    GpuFacts,
    GpuInventory,
    HcaPort,
    NodeFacts,
)
from gpupool.node.settings import NodeSettings

THROTTLE_NAMES = {
    0x04: "SW power cap", 0x08: "HW slowdown", 0x10: "sync boost", 0x20: "SW thermal slowdown",
    0x40: "HW thermal slowdown", 0x80: "HW power brake", 0x200: "board limit", 0x400: "reliability",
}


def _finding(settings: NodeSettings, check: str, subject: str, message: str) -> Finding:
    return Finding(check, settings.severity_of(check), subject, message)


def gpu_subject(gpu: GpuFacts) -> str:
    return f"gpu{gpu.index}"


def check_gpu(gpu: GpuFacts, settings: NodeSettings) -> Iterator[Finding]:
    """Per-GPU checks that do not depend on the Prolog/Epilog mode."""
    subject = gpu_subject(gpu)
    where = f" ({gpu.bus_id})" if gpu.bus_id else ""
    on = settings.enabled
    if on("ecc_uncorrected") and gpu.ecc_uncorrected_volatile is not None \
            and gpu.ecc_uncorrected_volatile > settings.ecc_uncorrected_max:
        yield _finding(settings, "ecc_uncorrected", subject,
                       f"{gpu.ecc_uncorrected_volatile} volatile uncorrectable ECC error(s){where}")
    if on("remapped_rows_failure") and gpu.remap_failure:
        yield _finding(settings, "remapped_rows_failure", subject,
                       f"row remapping failed: the GPU needs service{where}")
    if on("remapped_rows_pending") and gpu.remap_pending:
        yield _finding(settings, "remapped_rows_pending", subject,
                       f"row remapping pending: reset the GPU{where}")
    if on("retired_pages_pending") and gpu.retired_pages_pending:
        yield _finding(settings, "retired_pages_pending", subject,
                       f"page retirement pending: reset the GPU{where}")
    if on("temperature") and gpu.temperature_c is not None and gpu.slowdown_c:
        limit = gpu.slowdown_c - settings.temperature_margin_c
        if gpu.temperature_c >= limit:
            yield _finding(settings, "temperature", subject,
                           f"temperature {gpu.temperature_c} C >= {limit} C "
                           f"(slowdown at {gpu.slowdown_c} C)")
    if on("throttle") and gpu.throttle_reasons:
        bad = gpu.throttle_reasons & settings.throttle_mask
        if bad:
            names = [name for bit, name in sorted(THROTTLE_NAMES.items()) if bad & bit]
            yield _finding(settings, "throttle", subject,
                           f"clocks throttled: {', '.join(names) or hex(bad)}")
    if on("nvlink_down") and gpu.nvlink_active:
        down = [str(i) for i, active in enumerate(gpu.nvlink_active) if not active]
        if down:
            yield _finding(settings, "nvlink_down", subject,
                           f"NVLink link(s) {','.join(down)} inactive "
                           f"({len(down)} of {len(gpu.nvlink_active)})")
    if on("pcie_width") and gpu.pcie_width and gpu.pcie_max_width \
            and gpu.pcie_width < gpu.pcie_max_width:
        yield _finding(settings, "pcie_width", subject,
                       f"PCIe link x{gpu.pcie_width}, expected x{gpu.pcie_max_width}{where}")
    if on("pcie_gen") and gpu.pcie_gen and gpu.pcie_max_gen and gpu.pcie_gen < gpu.pcie_max_gen:
        yield _finding(settings, "pcie_gen", subject,
                       f"PCIe gen {gpu.pcie_gen}, maximum gen {gpu.pcie_max_gen}{where}")


def check_processes(gpu: GpuFacts, settings: NodeSettings, mode: str) -> Iterator[Finding]:
    """Prolog: someone else's processes on the job's GPU; Epilog: processes the job left behind."""
    check = {"prolog": "gpu_processes", "epilog": "leftover_processes"}.get(mode)
    if check is None or not settings.enabled(check) or not gpu.compute_pids:
        return
    pids = ",".join(str(pid) for pid in gpu.compute_pids)
    text = "left behind after the job" if mode == "epilog" else "already running before the job"
    yield _finding(settings, check, gpu_subject(gpu), f"compute process(es) {pids} {text}")


def check_gpu_count(inventory: GpuInventory, expected: int | None, settings: NodeSettings,
                    job_gpus: list[int] | None, pci_gpus: list[str] | None = None) -> Iterator[Finding]:
    if not settings.enabled("gpu_count"):
        return
    if expected is not None and inventory.count < expected:
        yield _finding(settings, "gpu_count", "gpus",
                       f"{inventory.count} GPU(s) visible to NVML, node is configured with {expected}")
    if pci_gpus is not None and inventory.count < len(pci_gpus):
        yield _finding(settings, "gpu_count", "gpus",
                       f"{inventory.count} GPU(s) visible to NVML, {len(pci_gpus)} NVIDIA GPU(s) on the PCI bus")
    if job_gpus:
        present = {gpu.index for gpu in inventory.gpus}
        missing = [str(i) for i in job_gpus if i not in present]
        if missing:
            yield _finding(settings, "gpu_count", "gpus",
                           f"job GPU(s) {','.join(missing)} not visible to NVML")


def gpu_evidence(facts: NodeFacts) -> list[str]:
    """Why this node must have working GPUs (config, PCI bus, the job): empty on a CPU node."""
    needs: list[str] = []
    if facts.expected_gpus:
        needs.append(f"{facts.expected_gpus} GPU(s) configured ({facts.expected_source})")
    if facts.pci_gpus:
        needs.append(f"{len(facts.pci_gpus)} NVIDIA GPU(s) on the PCI bus")
    if facts.job_gpus or facts.job_gpus_on_node:
        needs.append("the job was given GPU(s) on this node")
    return needs


def select_gpus(inventory: GpuInventory, job_gpus: list[int] | None) -> list[GpuFacts]:
    """The GPUs to check: the job's under Slurm, else all of them."""
    if job_gpus is None:
        return list(inventory.gpus)
    wanted = set(job_gpus)
    return [gpu for gpu in inventory.gpus if gpu.index in wanted]


def check_hca_ports(ports: list[HcaPort], settings: NodeSettings) -> Iterator[Finding]:
    on = settings.enabled
    selected = [p for p in ports if (not settings.hcas or p.hca in settings.hcas)
                and (not settings.link_layers or p.link_layer in settings.link_layers)]
    if on("hca_missing"):
        if settings.hcas:
            seen = {p.hca for p in ports}
            for hca in settings.hcas:
                if hca not in seen:
                    yield _finding(settings, "hca_missing", hca, f"HCA {hca} not found")
        if settings.expected_hca_ports is not None and len(selected) < settings.expected_hca_ports:
            yield _finding(settings, "hca_missing", "hcas",
                           f"{len(selected)} HCA port(s) found, expected {settings.expected_hca_ports}")
    for port in selected:
        if on("hca_port_state") and port.state.upper() != settings.expected_hca_state.upper():
            yield _finding(settings, "hca_port_state", port.subject,
                           f"port state {port.state}, expected {settings.expected_hca_state}")
        if on("hca_phys_state") and \
                port.phys_state.lower() != settings.expected_hca_phys_state.lower():
            yield _finding(settings, "hca_phys_state", port.subject,
                           f"physical state {port.phys_state}, expected "
                           f"{settings.expected_hca_phys_state}")
        if on("hca_rate") and settings.expected_hca_rate is not None and port.rate_gbps is not None \
                and port.rate_gbps < settings.expected_hca_rate:
            yield _finding(settings, "hca_rate", port.subject,
                           f"rate {port.rate_gbps:g} Gb/s, expected {settings.expected_hca_rate:g} Gb/s")


def collect_error_finding(error: CollectError, settings: NodeSettings, check: str) -> Finding | None:
    """A collector that timed out is CRITICAL when configured so; otherwise it makes the run UNKNOWN."""
    if error.timed_out and settings.nvml_timeout_status == "critical" and check == "nvml":
        return Finding(check, SEVERITY_CRITICAL, "nvml", error.message)
    return None


def run_checks(facts: NodeFacts, settings: NodeSettings) -> tuple[list[Finding], list[str]]:
    """All findings for the node plus the list of things that could not be checked."""
    findings: list[Finding] = []
    unknown: list[str] = []
    if facts.gpu_error is not None:
        needs = gpu_evidence(facts)
        if facts.gpu_error.timed_out:
            finding = collect_error_finding(facts.gpu_error, settings, "nvml")
            if finding is not None and settings.enabled("nvml"):
                findings.append(finding)
            else:
                unknown.append(f"nvml: {facts.gpu_error.message}")
        elif needs and settings.enabled("nvml"):
            # A GPU node whose driver cannot be reached cannot run GPU jobs.
            findings.append(_finding(settings, "nvml", "nvml",
                                     f"{facts.gpu_error.message}; but {'; '.join(needs)}"))
        elif needs:
            unknown.append(f"nvml: {facts.gpu_error.message}")
        elif facts.pci_gpus is None:
            # No config, no job GPUs and no readable PCI bus: nobody can tell whether GPUs are missing.
            unknown.append(f"nvml: {facts.gpu_error.message}; no GPU count configured and the PCI bus "
                           "is unreadable, so a missing GPU driver cannot be ruled out")
    if facts.gpus is not None:
        findings.extend(check_gpu_count(facts.gpus, facts.expected_gpus, settings, facts.job_gpus,
                                        facts.pci_gpus))
        for gpu in select_gpus(facts.gpus, facts.job_gpus):
            findings.extend(check_gpu(gpu, settings))
            findings.extend(check_processes(gpu, settings, facts.mode))
            for field_name, message in sorted(gpu.errors.items()):
                unknown.append(f"{gpu_subject(gpu)} {field_name}: {message}")
    if facts.hca_error is not None:
        unknown.append(f"{facts.hca_error.source}: {facts.hca_error.message}")
    if facts.hca_ports is not None:
        findings.extend(check_hca_ports(facts.hca_ports, settings))
    return findings, unknown


def overall_status(findings: Iterable[Finding], unknown: Iterable[str]) -> str:
    """CRITICAL beats UNKNOWN beats WARNING beats OK."""
    severities = {f.severity for f in findings}
    if SEVERITY_CRITICAL in severities:
        return STATUS_CRITICAL
    if any(True for _ in unknown):
        return STATUS_UNKNOWN
    if SEVERITY_WARNING in severities:
        return STATUS_WARNING
    return STATUS_OK


def drain_reason(findings: Iterable[Finding], limit: int = 180) -> str:
    """One line for `scontrol update ... reason=`: the critical findings first, truncated."""
    ordered = sorted(findings, key=lambda f: f.severity != SEVERITY_CRITICAL)
    parts = [f"{f.subject}: {f.message}" if f.subject == f.check else f"{f.subject} {f.check}: {f.message}"
             for f in ordered]
    text = "gpupool: " + "; ".join(parts) if parts else "gpupool: node check failed"
    text = text.replace('"', "'").replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."
