"""`gpupool fabric audit`: what is wrong with the fabric, and with what Slurm believes about it.

Exit codes are monitoring codes (CONTRACT.md): 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from gpupool.app.audit import AuditRequest, run_audit
from gpupool.audit.rollup import (
    CRITICAL,
    EXIT_CODES,
    INFO,
    STATUS_UNKNOWN,
    WARNING,
    sort_findings,
)
from gpupool.cli.context import app, debug_traceback, json_option
from gpupool.cli.monitoring import MonitoringCommand
from gpupool.cli.render import counted, emit_json, stderr_console, stdout_console
from gpupool.config import resolve_fabric_path
from gpupool.errors import BadRequest, GpupoolError

_SEVERITY_STYLE = {"critical": "bold red", "warning": "yellow", "info": "cyan"}


@click.command("audit", cls=MonitoringCommand)
@click.option("--fabric", "fabric_path", metavar="FILE",
              help="Fabric file (default $GPUPOOL_FABRIC, else `fabric` in the config file).")
@click.option("--ibnetdiscover", "ibnetdiscover_paths", metavar="FILE", multiple=True,
              help="Saved capture: ibnetdiscover, ibdiagnet2 .ibnetdiscover/.lst/.db_csv or iblinkinfo output "
                   "(repeatable: one file per subnet).")
@click.option("--live", is_flag=True, help="Run ibnetdiscover, the counter tools and ibtracert now.")
@click.option("--node-name-map", metavar="FILE", help="OpenSM node-name-map for --ibnetdiscover/--live.")
@click.option("--reference", "reference_path", metavar="FABRIC",
              help="Expected fabric (earlier discovery or generated design) to compare with.")
@click.option("--slurm", "with_slurm", is_flag=True, help="Also check Slurm's nodes and topology against the fabric.")
@click.option("--counters", "counters_paths", metavar="FILE", multiple=True,
              help="Saved perfquery, ibqueryerrors or ibdiagnet2.db_csv output to check error counters (repeatable).")
@click.option("--route-samples", type=click.IntRange(min=0), default=None, metavar="N",
              help="--live: host pairs whose ibtracert route to check (default: config, else 16; 0 = off).")
@click.option("--drain-broken", is_flag=True,
              help="With --slurm: drain hosts whose HCAs are down (never past --max-drain-fraction of the cluster).")
@click.option("--max-drain-fraction", type=click.FloatRange(0, 1), default=None, metavar="F",
              help="Most of Slurm's nodes drained or down at once with --drain-broken (default: config, else 0.1).")
@json_option
def audit(fabric_path: str | None, ibnetdiscover_paths: tuple[str, ...], live: bool, node_name_map: str | None,
          reference_path: str | None, with_slurm: bool, counters_paths: tuple[str, ...],
          route_samples: int | None, drain_broken: bool, max_drain_fraction: float | None) -> int:
    """Audit the fabric: link rates, missing cables, oversubscription, rails, names, counters, Slurm drift."""
    ctx = app()
    try:
        if sum(bool(x) for x in (fabric_path, ibnetdiscover_paths, live)) > 1:
            raise BadRequest("give at most one of --fabric, --ibnetdiscover and --live")
        if drain_broken and not with_slurm:
            raise BadRequest("--drain-broken needs --slurm")
        result = _run(ctx, fabric_path, list(ibnetdiscover_paths), live, node_name_map, reference_path, with_slurm,
                      list(counters_paths), route_samples, drain_broken, max_drain_fraction)
    except Exception as exc:  # noqa: BLE001 - monitoring contract: anything that stops the audit is UNKNOWN (3)
        debug_traceback(ctx)  # --debug adds the traceback; the exit code stays UNKNOWN
        message = exc.message if isinstance(exc, GpupoolError) else \
            f"internal error: {type(exc).__name__}: {exc} (rerun with --debug)"
        sys.stderr.write(f"gpupool: error: {message}\n")
        if ctx.json:
            emit_json({"status": STATUS_UNKNOWN, "findings": [], "error": message})
        return EXIT_CODES[STATUS_UNKNOWN]
    if ctx.json:
        emit_json(result.to_json())
    else:
        _print_report(result)
    return EXIT_CODES[result.status]


def _run(ctx: Any, fabric_path: str | None, ibnetdiscover_paths: list[str], live: bool, node_name_map: str | None,
         reference_path: str | None, with_slurm: bool, counters_paths: list[str], route_samples: int | None,
         drain_broken: bool = False, max_drain_fraction: float | None = None) -> Any:
    config = ctx.config()
    if not (ibnetdiscover_paths or live):
        fabric_path = resolve_fabric_path(fabric_path, config)
    request = AuditRequest(fabric_path=fabric_path, ibnetdiscover_paths=ibnetdiscover_paths, live=live,
                           node_name_map=node_name_map, reference_path=reference_path, slurm=with_slurm,
                           counters_paths=counters_paths, route_samples=route_samples,
                           config=config.section("audit"), drain_broken=drain_broken,
                           max_drain_fraction=max_drain_fraction)
    runner = ctx.ibdiag  # tests inject fake tools and a fake Slurm here (None: the real ibdiag tools)
    slurm = ctx.slurm  # None: the audit makes the real client where a Slurm failure is a finding
    if not live:
        return run_audit(request, runner=runner, slurm=slurm)
    with _progress() as progress:
        return run_audit(request, runner=runner, slurm=slurm, progress=progress)


class _progress:
    """A rich progress bar on stderr (only on a terminal), fed (phase, done, total) callbacks."""

    def __enter__(self) -> Any:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        console = stderr_console()
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=console,
                            transient=True, disable=not console.is_terminal)
        self.bar.__enter__()
        self.tasks: dict[str, Any] = {}
        return self.update

    def update(self, phase: str, done: int, total: int) -> None:
        if phase not in self.tasks:
            self.tasks[phase] = self.bar.add_task(phase, total=total)
        self.bar.update(self.tasks[phase], completed=done, total=total)

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(None, None, None)


def _print_report(result: Any) -> None:
    from rich.table import Table

    console = stdout_console()
    findings = sort_findings(result.findings)
    for severity in (CRITICAL, WARNING, INFO):
        group = [f for f in findings if f.severity == severity]
        if not group:
            continue
        table = Table(title=f"{severity.upper()} ({len(group)})", title_justify="left", show_lines=False,
                      title_style=_SEVERITY_STYLE[severity], expand=False)
        table.add_column("check", no_wrap=True)
        table.add_column("subject", no_wrap=True)
        table.add_column("message", overflow="fold")
        for f in group:
            table.add_row(f.check, f.subject, f.message)
        console.print(table)
    totals = result.totals
    if totals.get("missing_uplinks"):
        console.print(f"missing uplink cables: {totals['missing_uplinks']} in total on "
                      f"{counted(totals['leaves_missing_uplinks'], 'leaf', 'leaves')}")
    if totals.get("missing_switch_uplinks"):
        console.print(f"missing cables from spines to the level above: {totals['missing_switch_uplinks']} in total "
                      f"on {counted(totals['switches_missing_uplinks'], 'switch')}")
    if totals.get("missing_links_vs_reference"):
        console.print(f"cables of the reference missing: {totals['missing_links_vs_reference']}")
    if result.extras.get("topology_diff"):
        console.print("Slurm topology vs fabric:")
        console.print(result.extras["topology_diff"], markup=False, highlight=False)
        console.print("corrected topology.conf:")
        console.print(result.extras["topology_conf"], markup=False, highlight=False)
    drain = result.extras.get("drain")
    if drain:
        for host, reason in drain["drained"].items():
            console.print(f"drained {host}: {reason}", markup=False, highlight=False)
        if drain["held_back"]:
            console.print(f"held back (at most {drain['max_drained']} nodes drained or down at once): "
                          + ", ".join(f"{h} ({why})" for h, why in drain["held_back"].items()),
                          markup=False, highlight=False)
    for note in result.unchecked:
        stderr_console().print(f"gpupool: warning: not checked: {note}", markup=False, highlight=False)
    counts = {s: sum(1 for f in findings if f.severity == s) for s in (CRITICAL, WARNING, INFO)}
    console.print(f"fabric audit: {result.status} ({counts[CRITICAL]} critical, {counts[WARNING]} warning, "
                  f"{counts[INFO]} info)")
