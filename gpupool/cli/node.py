"""`gpupool node check` and `gpupool node topo`: run by Slurm on compute nodes, so imports stay light."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click

from gpupool.app.node import (
    node_settings,
    node_topology,
    run_node_check,
    task_prolog_exports,
    this_node_name,
)
from gpupool.cli.context import app, debug_traceback, json_option
from gpupool.cli.monitoring import MonitoringCommand
from gpupool.errors import MON_OK, MON_UNKNOWN, BadRequest, GpupoolError
from gpupool.node.topo import LEGEND


def _settings(sysfs_root: str | None = None, hca_source: str | None = None) -> Any:
    config = app().config()
    return node_settings(config.section("node"), config.path or "config", sysfs_root=sysfs_root,
                         hca_source=hca_source)


def _emit_json(document: Any) -> None:
    # Plain json here: importing rich costs the Prolog tens of milliseconds for nothing.
    sys.stdout.write(json.dumps(document, indent=2) + "\n")
    sys.stdout.flush()


@click.group("node")
def node() -> None:
    """Node-side health checks (Prolog/Epilog) and GPU<->HCA affinity."""


@node.command("check", cls=MonitoringCommand)
@click.option("--prolog", "mode", flag_value="prolog", help="Run as Slurm Prolog: fail only on CRITICAL.")
@click.option("--epilog", "mode", flag_value="epilog",
              help="Run as Slurm Epilog: also flag processes left on the job's GPUs.")
@click.option("--strict", is_flag=True, help="As Prolog/Epilog, also fail (and drain) on UNKNOWN.")
@click.option("--drain", is_flag=True,
              help="As Prolog/Epilog, on failure drain this node with the findings as reason "
                   "(scontrol update, bounded by scontrol_timeout).")
@click.option("--sysfs-root", metavar="DIR", help="Read sysfs under DIR (default: [node] sysfs_root or /).")
@click.option("--hca-source", type=click.Choice(["auto", "sysfs", "ibstat", "pyverbs", "none"]),
              help="Where HCA port states come from (default: [node] hca_source or auto).")
@click.option("--deep", is_flag=True,
              help="Also run `dcgmi diag -r [node] dcgm_level` (default 1) within [node] dcgm_budget seconds "
                   "(meant for the Epilog; needs DCGM).")
@click.option("-v", "--verbose", is_flag=True, help="Table of every check run: subject, value, threshold, status.")
@json_option
def check(mode: str | None, strict: bool, drain: bool, sysfs_root: str | None,
          hca_source: str | None, deep: bool, verbose: bool) -> int:
    """Check GPU and HCA health; exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.

    Under Slurm (SLURM_JOB_ID set) only the job's GPUs are checked. With --prolog or --epilog
    the exit code is non-zero only for CRITICAL (or UNKNOWN with --strict), so Slurm drains
    the node and requeues the job only when the node is really broken.
    """
    try:
        return _check(mode, strict, drain, sysfs_root, hca_source, deep, verbose)
    except Exception as exc:  # noqa: BLE001 - a monitoring command exits 0-3; a gpupool failure must not drain
        detail = exc.message if isinstance(exc, GpupoolError) else f"{type(exc).__name__}: {exc}"
        debug_traceback()  # --debug adds the traceback; the exit code stays the monitoring one
        return _internal_failure(mode, strict, detail)


def _internal_failure(mode: str | None, strict: bool, detail: str) -> int:
    """The check could not run (bad config, gpupool bug): UNKNOWN; as Prolog/Epilog exit 0 unless --strict."""
    what = f"{mode} check" if mode else "node check"
    line = f"gpupool: error: UNKNOWN: {what} could not run: {detail}"
    sys.stderr.write(line + "\n")
    if app().json:
        _emit_json({"status": "UNKNOWN", "findings": [], "checks": [], "unknown": [detail],
                    "mode": mode or "manual", "reason": line})
    elif mode:
        sys.stdout.write(f"UNKNOWN: {what} could not run: {detail}\n")
    return MON_UNKNOWN if (strict or mode is None) else MON_OK


def _check(mode: str | None, strict: bool, drain: bool, sysfs_root: str | None,
           hca_source: str | None, deep: bool, verbose: bool) -> int:
    ctx = app()
    settings = _settings(sysfs_root, hca_source)
    outcome = run_node_check(settings, mode or "manual", dict(os.environ), strict=strict, drain=drain, deep=deep,
                             gpu_source=ctx.gpu_source, hca_source=ctx.hca_source, slurm=ctx.slurm)
    report = outcome.report
    for note in report.notes:
        sys.stderr.write(f"gpupool: warning: {note}\n")
    if outcome.log_line is not None and report.mode != "manual":
        sys.stderr.write(outcome.log_line)  # Slurm keeps a Prolog's stderr in slurmd's log
    if outcome.log_error is not None:
        sys.stderr.write(f"gpupool: warning: {outcome.log_error}\n")
    if outcome.drain_error is not None:
        sys.stderr.write(f"gpupool: warning: could not drain {report.node}: {outcome.drain_error}\n")
    if ctx.json:
        _emit_json(report.as_dict())
    else:
        _print_report(report, verbose)
    return outcome.exit_code


def _print_report(report: Any, verbose: bool = False) -> None:
    if report.mode != "manual":
        # Prolog/Epilog: one line, the drain reason when something is wrong (the scripts read its first word).
        sys.stdout.write(f"{report.status}: {report.reason if report.status != 'OK' else 'node healthy'}\n")
        if verbose:
            for result in report.results:
                sys.stdout.write(f"  {result.status:<8} {result.check:<22} {result.subject:<24} "
                                 f"value={result.value} threshold={result.threshold}\n")
        return
    from rich.table import Table  # rich only for human output: a Prolog never pays for it

    from gpupool.cli.render import stdout_console

    console = stdout_console()
    gpus = "-" if report.checked_gpus is None else str(len(report.checked_gpus))
    hcas = "-" if report.hca_ports is None else str(report.hca_ports)
    console.print(f"{report.node}: {report.status} (GPUs checked: {gpus}, HCA ports: {hcas}, "
                  f"{report.elapsed_ms:.0f} ms)")
    if report.findings:
        table = Table("severity", "subject", "check", "message")
        for finding in report.findings:
            table.add_row(finding.severity, finding.subject, finding.check, finding.message)
        console.print(table)
    if verbose and report.results:
        checks = Table("status", "check", "subject", "value", "threshold")
        for result in report.results:
            checks.add_row(result.status, result.check, result.subject, str(result.value), str(result.threshold))
        console.print(checks)
    for item in report.unknown:
        console.print(f"could not check: {item}", markup=False)


@node.command("topo")
@click.option("--task-prolog", is_flag=True,
              help="Print `export NCCL_IB_HCA=...` lines for Slurm's TaskProlog.")
@click.option("--sysfs-root", metavar="DIR", help="Read sysfs under DIR (default: [node] sysfs_root or /).")
@click.option("--no-nvml", is_flag=True, help="Find GPUs in sysfs only (do not load NVML).")
@json_option
def topo(task_prolog: bool, sysfs_root: str | None, no_nvml: bool) -> int:
    """GPU <-> HCA affinity of this node, like `nvidia-smi topo -m`."""
    ctx = app()
    if ctx.json and task_prolog:
        raise BadRequest("--json and --task-prolog cannot be combined")
    outcome = node_topology(_settings(), sysfs_root=sysfs_root, use_nvml=not no_nvml, gpu_source=ctx.gpu_source)
    topology = outcome.topology
    if outcome.gpu_warning is not None and not task_prolog:
        sys.stderr.write(f"gpupool: warning: {outcome.gpu_warning}; GPUs from sysfs only\n")
    if task_prolog:
        # TaskProlog output is parsed by slurmstepd: only `export` lines, never an error text.
        for line in task_prolog_exports(topology, os.environ):
            sys.stdout.write(line + "\n")
        return 0
    if ctx.json:
        # The node's name lets `fabric nvlink` merge saved reports into the fabric.
        _emit_json({"node": this_node_name(os.environ), **topology.as_dict()})
        return 0
    _print_topology(topology)
    return 0


def _print_topology(topology: Any) -> None:
    from rich.table import Table

    from gpupool.cli.render import stdout_console

    names = [f"gpu{g.index}" for g in topology.gpus] + [h.name for h in topology.hcas]
    console = stdout_console()
    if not names:
        console.print("no GPUs or HCAs found")
        return
    table = Table("", *names, "NUMA", "nearest HCA", box=None, pad_edge=False)
    numa = {f"gpu{g.index}": g.location.numa_node if g.location else None for g in topology.gpus}
    numa.update({h.name: h.location.numa_node if h.location else None for h in topology.hcas})
    for row in names:
        nearest = ""
        if row.startswith("gpu"):
            nearest = ",".join(topology.nearest_hcas(int(row[3:])))
        cells = [topology.level(row, col) or "?" for col in names]
        table.add_row(row, *cells, "?" if numa[row] is None else str(numa[row]), nearest)
    console.print(table)
    if topology.nvlink_domain is not None:
        nv = topology.nvlink_domain
        where = (f"cluster {nv['cluster_uuid']} clique {nv['clique_id']}" if nv["cluster_uuid"]
                 else f"{nv['domains_seen']} domains seen")
        console.print(f"NVLink domain: {where}; registration {'complete' if nv['complete'] else 'NOT complete'}",
                      markup=False, highlight=False)
    console.print("Legend:")
    for level, text in LEGEND.items():
        console.print(f"  {level:<5} {text}")
