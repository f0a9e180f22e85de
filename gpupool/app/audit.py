"""The `fabric audit` use case: load or discover the fabric, run the checks (`audit.run.audit_fabric`),
counters, routes and Slurm drift, and drain broken hosts through the Slurm port.

Config (`[audit]` in the gpupool config file), all optional:

    max_oversubscription = 1.0   # host-facing : uplink bandwidth allowed per leaf (default: design, >= 1)
    critical_factor = 10         # a counter this many times over its threshold is critical
    counters_tool = "auto"       # live: "perfquery" (per port), "ibqueryerrors" (needs an SA), "auto"
    tool_timeout = 10            # seconds per perfquery/ibtracert call
    discover_timeout = 120       # seconds for ibnetdiscover / ibqueryerrors
    workers = 4                  # parallel tool calls
    route_samples = 16           # live: host pairs whose ibtracert route is checked (0 = off)
    [audit.thresholds]           # per counter; 0 disables one (defaults: infiniband-diags' own)
    SymbolErrorCounter = 10
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gpupool.audit.run import AuditResult, audit_fabric
from gpupool.audit.topology import Topo
from gpupool.fabric.model import Fabric

if TYPE_CHECKING:
    from gpupool.audit.live_fabric import LiveSettings, Progress, ToolRunner
    from gpupool.slurm.port import SlurmClient


@dataclass
class AuditRequest:
    fabric_path: str | None = None
    ibnetdiscover_path: str | None = None
    ibnetdiscover_paths: list[str] = field(default_factory=list)  # several captures: one per subnet
    live: bool = False
    node_name_map: str | None = None
    reference_path: str | None = None
    slurm: bool = False
    counters_paths: list[str] = field(default_factory=list)
    route_samples: int | None = None  # live only; None = config default
    config: dict[str, Any] = field(default_factory=dict)  # the [audit] section
    drain_broken: bool = False  # drain (through Slurm) hosts whose HCAs are down, within the cap
    max_drain_fraction: float | None = None  # None = [audit] max_drain_fraction, else 0.10


def run_audit(request: AuditRequest, *, runner: ToolRunner | None = None, slurm: SlurmClient | None = None,
              progress: Progress | None = None) -> AuditResult:
    """Load or discover the fabric, run every check the request asks for; tool and Slurm failures
    of optional parts land in `unchecked` (status UNKNOWN unless something worse was found)."""
    from gpupool.audit import counters as counters_mod
    from gpupool.audit import live_fabric as live_mod
    from gpupool.errors import BadInput, GpupoolError, Unreachable

    cfg = request.config
    settings = live_mod.LiveSettings(
        discover_timeout=float(cfg.get("discover_timeout", 120.0)), tool_timeout=float(cfg.get("tool_timeout", 10.0)),
        workers=int(cfg.get("workers", 4)), counters_tool=str(cfg.get("counters_tool", "auto")),
        route_samples=int(request.route_samples if request.route_samples is not None else cfg.get("route_samples", 16)),
        seed=int(cfg.get("route_seed", 0)))
    counter_cfg = counters_mod.CounterConfig.from_section(cfg, "[audit]")
    runner = runner or live_mod.run_ibdiag
    max_ratio = cfg.get("max_oversubscription")
    if max_ratio is not None and (not isinstance(max_ratio, int | float) or isinstance(max_ratio, bool) or max_ratio <= 0):
        raise BadInput(f"[audit] max_oversubscription must be a positive number, not {max_ratio!r}")

    fraction = request.max_drain_fraction
    if fraction is None:
        fraction = cfg.get("max_drain_fraction", DEFAULT_MAX_DRAIN_FRACTION)
    if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0 <= fraction <= 1:
        raise BadInput(f"max_drain_fraction must be a number from 0 to 1, not {fraction!r}")

    fabric = _load_source(request, runner, settings, progress)
    reference = None
    if request.reference_path:
        from gpupool.fabric.model import load_fabric

        reference = load_fabric(request.reference_path)
    result = audit_fabric(fabric, reference, max_oversubscription=float(max_ratio) if max_ratio else None)
    topo = Topo.of(fabric)

    samples: list[Any] = []
    for path in request.ibnetdiscover_paths or ([request.ibnetdiscover_path] if request.ibnetdiscover_path else []):
        # An ibdiagnet2.db_csv capture carries port counters too (its PM_INFO table).
        from gpupool.fabric.discover import read_text_file

        text = read_text_file(path, "fabric capture")
        if text.lstrip().startswith(("START_", "#")) and "\nSTART_" + counters_mod.PM_TABLE in "\n" + text:
            samples += counters_mod.parse_db_csv_counters(text, path)
    for path in request.counters_paths:
        from gpupool.fabric.discover import read_text_file

        samples += counters_mod.parse_counters(read_text_file(path, "counter output"), path)
    if request.live:
        collected = live_mod.collect_counters(runner, fabric, settings, progress)
        samples += collected.samples
        note = live_mod.fold_failures(collected.failures, "error counters")
        if note:
            result.unchecked.append(note)
        if settings.route_samples > 0:
            route_findings, failures, checked = live_mod.check_routes(runner, topo, settings, progress)
            result.findings += route_findings
            result.totals["routes_checked"] = checked
            note = live_mod.fold_failures(failures, "routes")
            if note:
                result.unchecked.append(note)
    if samples:
        result.findings += counters_mod.check_counters(topo, samples, counter_cfg)
        result.totals["ports_with_counters"] = len(samples)

    if request.slurm:
        if slurm is None:
            try:
                from gpupool.slurm.client import make_client

                slurm = make_client()
            except (Unreachable, GpupoolError) as exc:
                result.unchecked.append(f"slurm: {exc.message}")
        if slurm is not None:
            try:
                _slurm_drift(result, fabric, slurm)
            except (Unreachable, GpupoolError) as exc:
                result.unchecked.append(f"slurm: {exc.message}")
            if request.drain_broken:
                hosts = set(fabric.host_names()) | (set(reference.host_names()) if reference is not None else set())
                try:
                    drain_broken(result, hosts, slurm, float(fraction))
                except (Unreachable, GpupoolError) as exc:
                    result.unchecked.append(f"drain: {exc.message}")
    return result


DEFAULT_MAX_DRAIN_FRACTION = 0.10


def drain_broken(result: AuditResult, hosts: set[str], slurm: SlurmClient, max_fraction: float) -> None:
    """Drain the hosts the findings show with an HCA down, never past `max_fraction` of Slurm's nodes
    drained or down at once; what was drained and held back lands in `result.extras["drain"]`."""
    from gpupool.audit.placement_health import DRAIN_CHECKS, choose_drains, health_from_findings
    from gpupool.errors import GpupoolError
    from gpupool.slurm.models import BROKEN_FLAGS

    broken = health_from_findings([f.to_json() for f in result.findings], hosts, host_checks=DRAIN_CHECKS).broken_hosts
    states = slurm.node_states()
    choice = choose_drains(broken, [n.name for n in states], [n.name for n in states if n.flags & BROKEN_FLAGS],
                           max_fraction)
    drained: dict[str, str] = {}
    for host, why in choice.drain.items():
        reason = f"gpupool fabric audit: {why}".replace('"', "'")[:180]
        try:
            slurm.drain(host, reason)
        except GpupoolError as exc:
            result.unchecked.append(f"drain {host}: {exc.message}")
            continue
        drained[host] = reason
    result.extras["drain"] = {"drained": drained, "held_back": choice.held, "already_unavailable": choice.already,
                              "max_drained": choice.limit, "max_drain_fraction": max_fraction}


def _load_source(request: AuditRequest, runner: ToolRunner, settings: LiveSettings, progress: Progress | None
                 ) -> Fabric:
    from gpupool.fabric.ibnetdiscover import parse_ibnetdiscover, read_node_name_map

    name_map = read_node_name_map(request.node_name_map) if request.node_name_map else None
    if request.live:
        from gpupool.audit.live_fabric import discover_text

        if progress:
            progress("ibnetdiscover", 0, 1)
        text = discover_text(runner, settings)
        if progress:
            progress("ibnetdiscover", 1, 1)
        return parse_ibnetdiscover(text, "ibnetdiscover (live)", node_name_map=name_map)
    captures = request.ibnetdiscover_paths or ([request.ibnetdiscover_path] if request.ibnetdiscover_path else [])
    if captures:
        from gpupool.fabric.discover import discover

        # Any capture format (fabric.captures detects it); several files are one subnet each.
        return discover(capture_files=captures, node_name_map=request.node_name_map)
    from gpupool.fabric.model import load_fabric

    if not request.fabric_path:
        from gpupool.errors import BadRequest, param

        raise BadRequest(f"no fabric to audit: give {param('fabric')}, {param('ibnetdiscover')} or {param('live')}")
    return load_fabric(request.fabric_path)


def _slurm_drift(result: AuditResult, fabric: Fabric, slurm: SlurmClient) -> None:
    from gpupool.audit import slurm_drift
    from gpupool.fabric.compiled import compile_fabric
    from gpupool.fabric.export import export_slurm_block, export_slurm_tree

    view = slurm
    nodes = view.node_names()
    hosts = fabric.host_names()
    result.findings += slurm_drift.check_node_sets(nodes, hosts)
    actual = view.topology_text()
    compiled = compile_fabric(fabric)
    block = any(line.lstrip().startswith("BlockName=") for line in actual.splitlines())
    expected = export_slurm_block(compiled) if block else export_slurm_tree(compiled)
    report = slurm_drift.check_topology(actual, expected, nodes)
    result.findings += report.findings
    if report.findings:
        result.extras["topology_diff"] = report.diff
        result.extras["topology_conf"] = report.corrected
