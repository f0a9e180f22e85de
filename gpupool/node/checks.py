"""Pure health checks: NodeFacts + NodeSettings -> measured results and findings -> status (no I/O here).

Every check that runs records a `CheckResult` (subject, measured value, threshold, status), listed
under `checks` in `node check --json`; a result that is not OK also becomes a `Finding`.
Each check is a function registered with its ids by `@node_check(...)` (gpupool.node.catalog, the bare registry);
`evaluate` runs the registry in order: node-wide checks once, per-GPU checks GPU by GPU.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from gpupool.findings import SEVERITY_CRITICAL as CRITICAL
from gpupool.findings import SEVERITY_WARNING as WARNING
from gpupool.findings import RollUp, Status, check_id, roll_up
from gpupool.node.catalog import NODE_CHECK_RUNS, NODE_CHECKS, NodeCheck, NodeCheckRun, node_check
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
from gpupool.registry import Registry

# Share of the fabric model's (signalling) rate a port must reach; sysfs prints nominal rates.
RATE_TOLERANCE = 0.95

THROTTLE_NAMES = {
    0x04: "SW power cap", 0x08: "HW slowdown", 0x10: "sync boost", 0x20: "SW thermal slowdown",
    0x40: "HW thermal slowdown", 0x80: "HW power brake", 0x200: "board limit", 0x400: "reliability",
}


class CheckSettings(Protocol):
    """What the checks read of the settings; gpupool.node.settings.NodeSettings provides it. The
    settings take their defaults from this module's registry, so the checks name only this shape
    and never import the settings back."""

    def enabled(self, check: str) -> bool: ...

    def severity_of(self, check: str) -> str: ...

    @property
    def nvml_timeout_status(self) -> str: ...
    @property
    def ecc_uncorrected_max(self) -> int: ...
    @property
    def temperature_margin_c(self) -> int: ...
    @property
    def throttle_mask(self) -> int: ...
    @property
    def hcas(self) -> tuple[str, ...]: ...
    @property
    def link_layers(self) -> tuple[str, ...]: ...
    @property
    def expected_hca_ports(self) -> int | None: ...
    @property
    def expected_hca_state(self) -> str: ...
    @property
    def expected_hca_phys_state(self) -> str: ...
    @property
    def expected_hca_rate(self) -> float | None: ...
    @property
    def expected_hca_rates(self) -> Mapping[str, float]: ...
    @property
    def hca_link_downed_max(self) -> int: ...
    @property
    def hca_symbol_error_max(self) -> int: ...
    @property
    def hca_rcv_errors_max(self) -> int: ...
    @property
    def hca_link_recovery_max(self) -> int: ...
    @property
    def nvlink_replay_max(self) -> int: ...
    @property
    def nvlink_recovery_max(self) -> int: ...
    @property
    def nvlink_crc_max(self) -> int: ...
    @property
    def pcie_replay_max(self) -> int: ...
    @property
    def xid_critical(self) -> tuple[int, ...] | None: ...
    @property
    def xid_ignore(self) -> tuple[int, ...]: ...


def node_checks() -> Registry[NodeCheck]:
    """The registry with gpupool's own checks in it (each registered below, where it is written; by
    the time a caller holds this module, all of them are in)."""
    return NODE_CHECKS


def known_check(name: str) -> str | None:
    """The registered id a user typed (`ecc_uncorrected` and `ecc-uncorrected` alike), else None."""
    canonical = check_id(name)
    return canonical if canonical in NODE_CHECKS else None


@dataclass(frozen=True)
class CheckResult:
    """One check on one subject: what was measured, against what, and the verdict."""

    check: str
    subject: str
    value: Any
    threshold: Any
    status: str  # OK, WARNING, CRITICAL or UNKNOWN

    def to_json(self) -> dict[str, Any]:
        return {"check": self.check, "subject": self.subject, "value": self.value,
                "threshold": self.threshold, "status": self.status}


class Judge:
    """Collects results, findings and "could not check" notes while the checks run."""

    def __init__(self, settings: CheckSettings) -> None:
        self.settings = settings
        self.results: list[CheckResult] = []
        self.findings: list[Finding] = []
        self.unknown: list[str] = []

    def on(self, check: str) -> bool:
        return self.settings.enabled(check)

    @staticmethod
    def _registered(check: str) -> str:
        # Results carry registered ids only (gpupool.node.catalog): a typo here is a bug, not a new check.
        if check not in NODE_CHECKS:
            raise KeyError(f"node check {check!r} is not registered in gpupool.node.catalog")
        return check

    def judge(self, check: str, subject: str, value: Any, threshold: Any, failed: bool, message: str,
              severity: str | None = None, details: dict[str, Any] | None = None) -> None:
        check = self._registered(check)
        level = severity or self.settings.severity_of(check)
        status = STATUS_OK if not failed else (STATUS_CRITICAL if level == SEVERITY_CRITICAL else STATUS_WARNING)
        self.results.append(CheckResult(check, subject, value, threshold, status))
        if failed:
            self.findings.append(Finding(check, level, subject, message, details or {}))

    def cannot(self, check: str, subject: str, message: str) -> None:
        check = self._registered(check)
        self.results.append(CheckResult(check, subject, None, None, STATUS_UNKNOWN))
        self.unknown.append(f"{check}: {message}" if subject == check else f"{subject} {check}: {message}")


def _bus_id_note(gpu: GpuFacts) -> str:
    """ " (0000:10:00.0)" after a per-GPU message, so the GPU can be found by its bus id."""
    return f" ({gpu.bus_id})" if gpu.bus_id else ""


def gpu_subject(gpu: GpuFacts) -> str:
    return f"gpu{gpu.index}"


def gpu_counter_key(gpu: GpuFacts, name: str) -> str:
    # The bus id survives renumbering (CUDA_DEVICE_ORDER, a GPU missing after a reboot); the index does not.
    return f"gpu:{gpu.bus_id or gpu.index}:{name}"


def hca_counter_key(port: HcaPort, name: str) -> str:
    return f"hca:{port.subject}:{name}"


def counter_delta(key: str, current: int, previous: dict[str, int] | None) -> tuple[int, str]:
    """The increase since the last Prolog/Epilog run; the counter itself on the first run or after a reset."""
    if previous is not None and key in previous and current >= previous[key]:
        return current - previous[key], "since the last check"
    return current, "since the counter was last reset"


def current_counters(facts: NodeFacts) -> dict[str, int]:
    """Every counter whose delta a check uses, for the state file."""
    values: dict[str, int] = {}
    for gpu in (facts.gpus.gpus if facts.gpus else []):
        for name, value in gpu.nvlink_errors.items():
            values[gpu_counter_key(gpu, f"nvlink_{name}")] = value
        if gpu.pcie_replay is not None:
            values[gpu_counter_key(gpu, "pcie_replay")] = gpu.pcie_replay
    for port in facts.hca_ports or []:
        for name, value in port.counters.items():
            values[hca_counter_key(port, name)] = value
    return values


@node_check("nvml", CRITICAL,
            "NVML unusable while the node must have GPUs (configured count, NVIDIA devices on the PCI bus, or the job's GPUs); or NVML hung past `nvml_timeout`. On a node with no NVIDIA devices it is OK; when nothing tells (no config, PCI bus unreadable) it is UNKNOWN")
def _nvml(judge: Judge, facts: NodeFacts) -> None:
    """NVML unusable: CRITICAL where the node must have GPUs, else UNKNOWN or OK (evidence decides)."""
    settings = judge.settings
    if facts.gpu_error is None:
        return
    needs = gpu_evidence(facts)
    message = facts.gpu_error.message
    if facts.gpu_error.timed_out:
        finding = collect_error_finding(facts.gpu_error, settings, "nvml")
        if finding is not None and judge.on("nvml"):
            judge.judge("nvml", "nvml", "timeout", "answer", True, message, severity=finding.severity)
        else:
            judge.cannot("nvml", "nvml", message)
    elif needs and judge.on("nvml"):
        # A GPU node whose driver cannot be reached cannot run GPU jobs.
        judge.judge("nvml", "nvml", "unusable", "usable", True, f"{message}; but {'; '.join(needs)}")
    elif needs:
        judge.cannot("nvml", "nvml", message)
    elif facts.pci_gpus is None:
        # No config, no job GPUs and no readable PCI bus: nobody can tell whether GPUs are missing.
        judge.cannot("nvml", "nvml", f"{message}; no GPU count configured and the PCI bus is unreadable, "
                                     "so a missing GPU driver cannot be ruled out")
    else:
        judge.results.append(CheckResult("nvml", "nvml", "no NVIDIA GPUs", "not needed", STATUS_OK))


@node_check("gpu-count", CRITICAL,
            "fewer GPUs than slurm.conf/gres.conf/`expected_gpus`, or than NVIDIA GPUs on the PCI bus; a job GPU not visible")
def _gpu_count(judge: Judge, facts: NodeFacts) -> None:
    if facts.gpus is not None:
        judge_gpu_count(judge, facts.gpus, facts)


@dataclass(frozen=True)
class GpuContext:
    """What a per-GPU check reads besides the GPU: the counters of the last run and the mode."""

    previous: dict[str, int] | None = None
    mode: str | None = None  # "prolog", "epilog" or None (a run by hand)


def gpu_checks() -> list[NodeCheckRun]:
    return [run for run in NODE_CHECK_RUNS.values() if run.per_gpu]


def check_gpu(gpu: GpuFacts, settings: CheckSettings, previous: dict[str, int] | None = None) -> list[Finding]:
    judge = Judge(settings)
    judge_gpu(judge, gpu, previous)
    return judge.findings


def judge_gpu(judge: Judge, gpu: GpuFacts, previous: dict[str, int] | None, mode: str | None = None) -> None:
    """Every registered per-GPU check on one GPU (processes only in a Prolog/Epilog `mode`)."""
    context = GpuContext(previous, mode)
    for run in gpu_checks():
        run.run(judge, gpu, context)


@node_check("ecc-uncorrected", CRITICAL,
            "volatile uncorrectable ECC count > `ecc_uncorrected_max`", per_gpu=True)
def _ecc_uncorrected(judge: Judge, gpu: GpuFacts, context: GpuContext) -> None:
    settings = judge.settings
    subject = gpu_subject(gpu)
    where = _bus_id_note(gpu)
    if judge.on("ecc-uncorrected") and gpu.ecc_uncorrected_volatile is not None:
        judge.judge("ecc-uncorrected", subject, gpu.ecc_uncorrected_volatile, settings.ecc_uncorrected_max,
                    gpu.ecc_uncorrected_volatile > settings.ecc_uncorrected_max,
                    f"{gpu.ecc_uncorrected_volatile} volatile uncorrectable ECC error(s){where}")


@node_check("remapped-rows-failure", CRITICAL,
            "row remapping failed (GPU needs service)", per_gpu=True)
def _remapped_rows_failure(judge: Judge, gpu: GpuFacts, context: GpuContext) -> None:
    subject = gpu_subject(gpu)
    where = _bus_id_note(gpu)
    if judge.on("remapped-rows-failure") and gpu.remap_failure is not None:
        judge.judge("remapped-rows-failure", subject, gpu.remap_failure, False, gpu.remap_failure,
                    f"row remapping failed: the GPU needs service{where}")


@node_check("remapped-rows-pending", WARNING,
            "row remap pending (GPU reset needed)", per_gpu=True)
def _remapped_rows_pending(judge: Judge, gpu: GpuFacts, context: GpuContext) -> None:
    subject = gpu_subject(gpu)
    where = _bus_id_note(gpu)
    if judge.on("remapped-rows-pending") and gpu.remap_pending is not None:
        judge.judge("remapped-rows-pending", subject, gpu.remap_pending, False, gpu.remap_pending,
                    f"row remapping pending: reset the GPU{where}")


@node_check("retired-pages-pending", WARNING,
            "page retirement pending (older GPUs)", per_gpu=True)
def _retired_pages_pending(judge: Judge, gpu: GpuFacts, context: GpuContext) -> None:
    subject = gpu_subject(gpu)
    where = _bus_id_note(gpu)
    if judge.on("retired-pages-pending") and gpu.retired_pages_pending is not None:
        judge.judge("retired-pages-pending", subject, gpu.retired_pages_pending, False,
                    gpu.retired_pages_pending, f"page retirement pending: reset the GPU{where}")


@node_check("temperature", WARNING,
            "temperature >= slowdown threshold - margin", per_gpu=True)
def _temperature(judge: Judge, gpu: GpuFacts, context: GpuContext) -> None:
    settings = judge.settings
    subject = gpu_subject(gpu)
    if judge.on("temperature") and gpu.temperature_c is not None and gpu.slowdown_c:
        limit = gpu.slowdown_c - settings.temperature_margin_c
        judge.judge("temperature", subject, gpu.temperature_c, limit, gpu.temperature_c >= limit,
                    f"temperature {gpu.temperature_c} C >= {limit} C (slowdown at {gpu.slowdown_c} C)")


@node_check("throttle", WARNING,
            "clocks throttled for a reason in `throttle_mask`", per_gpu=True)
def _throttle(judge: Judge, gpu: GpuFacts, context: GpuContext) -> None:
    settings = judge.settings
    subject = gpu_subject(gpu)
    if judge.on("throttle") and gpu.throttle_reasons is not None:
        bad = gpu.throttle_reasons & settings.throttle_mask
        names = [name for bit, name in sorted(THROTTLE_NAMES.items()) if bad & bit]
        judge.judge("throttle", subject, hex(gpu.throttle_reasons), f"mask {hex(settings.throttle_mask)}",
                    bool(bad), f"clocks throttled: {', '.join(names) or hex(bad)}")


@node_check("nvlink-down", CRITICAL,
            "an NVLink of the GPU is inactive", per_gpu=True)
def _nvlink_down(judge: Judge, gpu: GpuFacts, context: GpuContext) -> None:
    subject = gpu_subject(gpu)
    if judge.on("nvlink-down") and gpu.nvlink_active:
        down = [str(i) for i, active in enumerate(gpu.nvlink_active) if not active]
        judge.judge("nvlink-down", subject, len(down), 0, bool(down),
                    f"NVLink link(s) {','.join(down)} inactive ({len(down)} of {len(gpu.nvlink_active)})")


@node_check("nvlink-errors", WARNING,
            "NVLink replay / recovery / CRC errors above their maxima (subject `gpu1:crc`)", per_gpu=True)
def _nvlink_errors(judge: Judge, gpu: GpuFacts, context: GpuContext) -> None:
    settings = judge.settings
    subject = gpu_subject(gpu)
    where = _bus_id_note(gpu)
    previous = context.previous
    if judge.on("nvlink-errors") and gpu.nvlink_errors:
        limits = {"replay": settings.nvlink_replay_max, "recovery": settings.nvlink_recovery_max,
                  "crc": settings.nvlink_crc_max}
        for name, limit in limits.items():
            parts = ("crc_flit", "crc_data") if name == "crc" else (name,)
            if not any(part in gpu.nvlink_errors for part in parts):
                continue
            pairs = [counter_delta(gpu_counter_key(gpu, f"nvlink_{part}"), gpu.nvlink_errors[part], previous)
                     for part in parts if part in gpu.nvlink_errors]
            value, basis = sum(v for v, _ in pairs), pairs[0][1]
            judge.judge("nvlink-errors", f"{subject}:{name}", value, limit, value > limit,
                        f"{value} NVLink {name} error(s) {basis} (more than {limit}){where}",
                        details={"counter": name, "basis": basis})


@node_check("pcie-width", WARNING,
            "PCIe link narrower than the GPU's maximum", per_gpu=True)
def _pcie_width(judge: Judge, gpu: GpuFacts, context: GpuContext) -> None:
    subject = gpu_subject(gpu)
    where = _bus_id_note(gpu)
    if judge.on("pcie-width") and gpu.pcie_width and gpu.pcie_max_width:
        judge.judge("pcie-width", subject, gpu.pcie_width, gpu.pcie_max_width, gpu.pcie_width < gpu.pcie_max_width,
                    f"PCIe link x{gpu.pcie_width}, expected x{gpu.pcie_max_width}{where}")


@node_check("pcie-gen", WARNING,
            "PCIe generation below maximum (idle GPUs downshift, hence off)", enabled=False, per_gpu=True)
def _pcie_gen(judge: Judge, gpu: GpuFacts, context: GpuContext) -> None:
    subject = gpu_subject(gpu)
    where = _bus_id_note(gpu)
    if judge.on("pcie-gen") and gpu.pcie_gen and gpu.pcie_max_gen:
        judge.judge("pcie-gen", subject, gpu.pcie_gen, gpu.pcie_max_gen, gpu.pcie_gen < gpu.pcie_max_gen,
                    f"PCIe gen {gpu.pcie_gen}, maximum gen {gpu.pcie_max_gen}{where}")


@node_check("pcie-replay", WARNING,
            "PCIe replay counter increase above `pcie_replay_max`", per_gpu=True)
def _pcie_replay(judge: Judge, gpu: GpuFacts, context: GpuContext) -> None:
    settings = judge.settings
    subject = gpu_subject(gpu)
    where = _bus_id_note(gpu)
    previous = context.previous
    if judge.on("pcie-replay") and gpu.pcie_replay is not None:
        value, basis = counter_delta(gpu_counter_key(gpu, "pcie_replay"), gpu.pcie_replay, previous)
        judge.judge("pcie-replay", subject, value, settings.pcie_replay_max, value > settings.pcie_replay_max,
                    f"{value} PCIe replay(s) {basis} (more than {settings.pcie_replay_max}){where}",
                    details={"basis": basis})


@node_check(reports=(
    NodeCheck("gpu-processes", CRITICAL,
              "(Prolog) compute processes already on the job's GPUs"),
    NodeCheck("leftover-processes", CRITICAL,
              "(Epilog) compute processes left on the job's GPUs"),
), per_gpu=True)
def _processes(judge: Judge, gpu: GpuFacts, context: GpuContext) -> None:
    if context.mode is not None:
        judge_processes(judge, gpu, context.mode)


def judge_nvlink_fabric(judge: Judge, gpus: list[GpuFacts]) -> None:
    """Multi-node NVLink fabric (GB200/GB300): every GPU that reports one must have registered,
    without error, healthy, and all of the node's GPUs in one domain. No report: no domain, no check."""
    from gpupool.node.nvlink import fabric_summary, health_problems

    if not judge.on("nvlink-fabric"):
        return
    summary = fabric_summary(gpus)
    if summary is None:
        return
    for gpu in gpus:
        fabric = gpu.nvlink_fabric
        subject = gpu_subject(gpu)
        if fabric is None:
            judge.judge("nvlink-fabric", subject, None, "completed", True,
                        "no NVLink fabric info while other GPUs of the node have one")
            continue
        if fabric.state != "completed":
            judge.judge("nvlink-fabric", subject, fabric.state, "completed", True,
                        f"NVLink fabric registration not complete ({fabric.state})")
            continue
        problems = ([f"registration failed (NVML status {fabric.status})"] if fabric.status != 0 else []) \
            + health_problems(fabric.health_mask)
        judge.judge("nvlink-fabric", subject, fabric.state if not problems else "; ".join(problems), "completed",
                    bool(problems), f"NVLink fabric: {'; '.join(problems)}")
    if summary["domains_seen"] > 1:
        judge.judge("nvlink-fabric", "node", summary["domains_seen"], 1, True,
                    f"the node's GPUs are in {summary['domains_seen']} NVLink domains (cluster/clique differ)")


def check_processes(gpu: GpuFacts, settings: CheckSettings, mode: str) -> list[Finding]:
    judge = Judge(settings)
    judge_processes(judge, gpu, mode)
    return judge.findings


def judge_processes(judge: Judge, gpu: GpuFacts, mode: str) -> None:
    """Prolog: someone else's processes on the job's GPU; Epilog: processes the job left behind."""
    check = {"prolog": "gpu-processes", "epilog": "leftover-processes"}.get(mode)
    if check is None or not judge.on(check):
        return
    pids = ",".join(str(pid) for pid in gpu.compute_pids)
    text = "left behind after the job" if mode == "epilog" else "already running before the job"
    judge.judge(check, gpu_subject(gpu), list(gpu.compute_pids), [], bool(gpu.compute_pids),
                f"compute process(es) {pids} {text}")


def judge_gpu_count(judge: Judge, inventory: GpuInventory, facts: NodeFacts) -> None:
    if not judge.on("gpu-count"):
        return
    if facts.expected_gpus is not None:
        judge.judge("gpu-count", "gpus", inventory.count, facts.expected_gpus,
                    inventory.count < facts.expected_gpus,
                    f"{inventory.count} GPU(s) visible to NVML, node is configured with {facts.expected_gpus}")
    if facts.pci_gpus is not None:
        judge.judge("gpu-count", "pci", inventory.count, len(facts.pci_gpus), inventory.count < len(facts.pci_gpus),
                    f"{inventory.count} GPU(s) visible to NVML, {len(facts.pci_gpus)} NVIDIA GPU(s) on the PCI bus")
    if facts.job_gpus:
        present = {gpu.index for gpu in inventory.gpus}
        missing = [str(i) for i in facts.job_gpus if i not in present]
        judge.judge("gpu-count", "job", len(facts.job_gpus) - len(missing), len(facts.job_gpus), bool(missing),
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


def check_hca_ports(ports: list[HcaPort], settings: CheckSettings) -> list[Finding]:
    judge = Judge(settings)
    judge_hca_ports(judge, ports, None)
    return judge.findings


def judge_hca_ports(judge: Judge, ports: list[HcaPort], previous: dict[str, int] | None,
                    fabric_rates: dict[str, float] | None = None) -> None:
    settings = judge.settings
    on = judge.on
    selected = [p for p in ports if (not settings.hcas or p.hca in settings.hcas)
                and (not settings.link_layers or p.link_layer in settings.link_layers)]
    if on("hca-missing"):
        if settings.hcas:
            seen = {p.hca for p in ports}
            for hca in settings.hcas:
                judge.judge("hca-missing", hca, hca in seen, True, hca not in seen, f"HCA {hca} not found")
        if settings.expected_hca_ports is not None:
            judge.judge("hca-missing", "hcas", len(selected), settings.expected_hca_ports,
                        len(selected) < settings.expected_hca_ports,
                        f"{len(selected)} HCA port(s) found, expected {settings.expected_hca_ports}")
    for port in selected:
        if on("hca-port-state"):
            if port.state is None:
                judge.cannot("hca-port-state", port.subject, "port state unreadable")
            else:
                judge.judge("hca-port-state", port.subject, port.state, settings.expected_hca_state,
                            port.state.upper() != settings.expected_hca_state.upper(),
                            f"port state {port.state or '(empty)'}, expected {settings.expected_hca_state}")
        if on("hca-phys-state"):
            if port.phys_state is None:
                judge.cannot("hca-phys-state", port.subject, "physical state unreadable")
            else:
                judge.judge("hca-phys-state", port.subject, port.phys_state, settings.expected_hca_phys_state,
                            port.phys_state.lower() != settings.expected_hca_phys_state.lower(),
                            f"physical state {port.phys_state or '(empty)'}, expected "
                            f"{settings.expected_hca_phys_state}")
        expected_rate = settings.expected_hca_rates.get(port.hca, settings.expected_hca_rate)
        model_rate = (fabric_rates or {}).get(port.subject)
        if on("hca-rate") and model_rate is not None and port.rate_gbps is not None:
            # The fabric model names the cable's rate; it keeps signalling rates, hence the tolerance.
            judge.judge("hca-rate", port.subject, port.rate_gbps, round(model_rate, 3),
                        port.rate_gbps < model_rate * RATE_TOLERANCE,
                        f"rate {port.rate_gbps:g} Gb/s, the fabric model has a {model_rate:g} Gb/s cable here")
        elif on("hca-rate") and expected_rate is not None and port.rate_gbps is not None:
            judge.judge("hca-rate", port.subject, port.rate_gbps, expected_rate, port.rate_gbps < expected_rate,
                        f"rate {port.rate_gbps:g} Gb/s, expected {expected_rate:g} Gb/s")
        if on("hca-link-downed") and "link_downed" in port.counters:
            value, basis = counter_delta(hca_counter_key(port, "link_downed"), port.counters["link_downed"],
                                         previous)
            judge.judge("hca-link-downed", port.subject, value, settings.hca_link_downed_max,
                        value > settings.hca_link_downed_max,
                        f"link went down {value} time(s) {basis} (link_downed; more than "
                        f"{settings.hca_link_downed_max} is a flapping link)", details={"basis": basis})
        if on("hca-errors"):
            limits = {"symbol_error": settings.hca_symbol_error_max,
                      "port_rcv_errors": settings.hca_rcv_errors_max,
                      "link_error_recovery": settings.hca_link_recovery_max}
            for name, limit in limits.items():
                if name not in port.counters:
                    continue
                value, basis = counter_delta(hca_counter_key(port, name), port.counters[name], previous)
                judge.judge("hca-errors", f"{port.subject}:{name}", value, limit, value > limit,
                            f"{name} {value} {basis} (more than {limit})", details={"basis": basis})


def judge_xid(judge: Judge, facts: NodeFacts) -> None:
    """XID errors in the kernel log: the fatal ones CRITICAL, any other WARNING (xid.py has the table)."""
    from gpupool.node.xid import FATAL_XIDS

    settings = judge.settings
    if facts.xid_error is not None:
        if judge.on("xid-fatal") or judge.on("xid"):
            judge.cannot("xid", "kernel log", facts.xid_error.message)
        return
    if facts.xid_events is None:
        return
    fatal = set(settings.xid_critical) if settings.xid_critical is not None else set(FATAL_XIDS)
    events = [e for e in facts.xid_events if e.code not in settings.xid_ignore]
    by_gpu = {bus_id.rsplit(".", 1)[0]: f"gpu{index}"
              for index, bus_id in (facts.gpus.bus_ids.items() if facts.gpus else [])}
    groups: dict[tuple[str, int], list[Any]] = {}
    for event in events:
        groups.setdefault((by_gpu.get(event.pci, f"pci:{event.pci}"), event.code), []).append(event)
    for (subject, code), group in sorted(groups.items()):
        check = "xid-fatal" if code in fatal else "xid"
        if not judge.on(check):
            continue
        last = group[-1]
        window = "since the last check" if facts.xid_since_last_check else "since boot"
        judge.judge(check, subject, len(group), 0, True,
                    f"Xid {code} ({last.name}) x{len(group)} {window}: {last.text}"[:300],
                    details={"xid": code, "pci": last.pci, "count": len(group)})
    if not events:
        judge.results.append(CheckResult("xid", "kernel log", 0, 0, STATUS_OK))


def judge_dcgm(judge: Judge, facts: NodeFacts) -> None:
    if not judge.on("dcgm-diag"):
        return
    if facts.dcgm_error is not None:
        judge.cannot("dcgm-diag", "dcgmi", facts.dcgm_error.message)
        return
    if facts.dcgm is None:
        return
    for test in facts.dcgm.tests:
        failed = test.status in ("fail", "warn")
        severity = SEVERITY_WARNING if test.status == "warn" else None
        judge.judge("dcgm-diag", test.subject, test.status, "pass", failed,
                    f"dcgmi diag -r {facts.dcgm.level}: {test.name} {test.status.upper()}"
                    + (f": {test.message}" if test.message else ""), severity=severity,
                    details={"test": test.name})


def collect_error_finding(error: CollectError, settings: CheckSettings, check: str) -> Finding | None:
    """A collector that timed out is CRITICAL when configured so; otherwise it makes the run UNKNOWN."""
    if error.timed_out and settings.nvml_timeout_status == "critical" and check == "nvml":
        return Finding(check, SEVERITY_CRITICAL, "nvml", error.message)
    return None


@node_check("nvlink-fabric", WARNING,
            "multi-node NVLink (GB200/GB300): a GPU not registered, registered with an error, unhealthy, or the node's GPUs in several domains")
def _nvlink_fabric(judge: Judge, facts: NodeFacts) -> None:
    if facts.gpus is not None:
        judge_nvlink_fabric(judge, select_gpus(facts.gpus, facts.job_gpus))


@node_check(reports=(
    NodeCheck("xid-fatal", CRITICAL,
              "a fatal XID (48, 63, 64, 74, 79, 92, 94, 95, 119, 120; table in `gpupool/node/xid.py` after NVIDIA's XID catalogue) in the kernel log"),
    NodeCheck("xid", WARNING,
              "any other XID in the kernel log"),
))
def _xid(judge: Judge, facts: NodeFacts) -> None:
    judge_xid(judge, facts)


@node_check(reports=(
    NodeCheck("hca-missing", CRITICAL,
              "an HCA from `hcas` missing, or fewer than `expected_hca_ports`"),
    NodeCheck("hca-port-state", CRITICAL,
              "port not `expected_hca_state` (subject `mlx5_0/1`); unreadable: UNKNOWN"),
    NodeCheck("hca-phys-state", CRITICAL,
              "physical state not `expected_hca_phys_state`; unreadable: UNKNOWN"),
    NodeCheck("hca-rate", WARNING,
              "rate below the cable's rate in the `fabric` model (when the port's GUID is in it), else below `expected_hca_rates[hca]` / `expected_hca_rate`"),
    NodeCheck("hca-link-downed", WARNING,
              "`link_downed` rose by more than `hca_link_downed_max` (a flapping link)"),
    NodeCheck("hca-errors", WARNING,
              "`symbol_error`, `port_rcv_errors`, `link_error_recovery` rose above their maxima"),
))
def _hca_ports(judge: Judge, facts: NodeFacts) -> None:
    if facts.hca_error is not None:
        judge.unknown.append(f"{facts.hca_error.source}: {facts.hca_error.message}")
    if facts.hca_ports is not None:
        judge_hca_ports(judge, facts.hca_ports, facts.previous_counters, facts.hca_fabric_rates)


@node_check("dcgm-diag", CRITICAL,
            "(`--deep`) a `dcgmi diag` test failed (a `Warn` result is a warning); dcgmi missing or over budget: UNKNOWN")
def _dcgm_diag(judge: Judge, facts: NodeFacts) -> None:
    judge_dcgm(judge, facts)


def evaluate(facts: NodeFacts, settings: CheckSettings) -> Judge:
    """Every registered check for the node, in registration order; the per-GPU ones run together,
    GPU by GPU, where the first of them is registered."""
    judge = Judge(settings)
    gpus_done = False
    for run in NODE_CHECK_RUNS.values():
        if not run.per_gpu:
            run.run(judge, facts)
            continue
        if gpus_done:
            continue
        gpus_done = True
        if facts.gpus is None:
            continue
        for gpu in select_gpus(facts.gpus, facts.job_gpus):
            judge_gpu(judge, gpu, facts.previous_counters, facts.mode)
            for field_name, message in sorted(gpu.errors.items()):
                judge.unknown.append(f"{gpu_subject(gpu)} {field_name}: {message}")
    return judge


def run_checks(facts: NodeFacts, settings: CheckSettings) -> tuple[list[Finding], list[str]]:
    """All findings for the node plus the list of things that could not be checked."""
    judge = evaluate(facts, settings)
    return judge.findings, judge.unknown


def overall_status(findings: Iterable[Finding], unknown: Iterable[str]) -> Status:
    """The node check's order: CRITICAL beats UNKNOWN beats WARNING beats OK (gpupool.findings.RollUp)."""
    return roll_up(findings, unknown, RollUp.PLACEMENT)


def drain_reason(findings: Iterable[Finding], limit: int = 180) -> str:
    """One line for `scontrol update ... reason=`: the critical findings first, truncated."""
    ordered = sorted(findings, key=lambda f: f.severity != SEVERITY_CRITICAL)
    parts = [f"{f.subject}: {f.message}" if f.subject == f.check else f"{f.subject} {f.check}: {f.message}"
             for f in ordered]
    text = "gpupool: " + "; ".join(parts) if parts else "gpupool: node check failed"
    text = text.replace('"', "'").replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."
