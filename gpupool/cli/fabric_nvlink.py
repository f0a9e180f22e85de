"""`gpupool fabric nvlink`: NVLink domains from the nodes' reports, merged into the fabric file."""

from __future__ import annotations

import click

from gpupool.cli.context import app, json_option
from gpupool.cli.render import emit_json, stdout_console, warn
from gpupool.config import resolve_fabric_path
from gpupool.hostlist import fold


@click.command("nvlink")
@click.option("--fabric", "fabric_path", metavar="FILE",
              help="Fabric file (default $GPUPOOL_FABRIC, else `fabric` in the config file).")
@click.option("-o", "--output", required=True, metavar="FABRIC", help="Fabric file to write (may be the input).")
@click.option("--backup", is_flag=True, help="Keep the previous file as FABRIC.bak.")
@click.argument("reports", nargs=-1, required=True, metavar="REPORT...")
@json_option
def nvlink(fabric_path: str | None, output: str, backup: bool, reports: tuple[str, ...]) -> None:
    """Set the fabric's NVLink domains from `node topo --json` / `node check --json` reports."""
    from gpupool.app.fabric import merge_nvlink_reports

    path = resolve_fabric_path(fabric_path, app().config())
    doc = merge_nvlink_reports(path, list(reports), output, backup=backup)
    if app().json:
        emit_json(doc)
        return
    console = stdout_console()
    console.print(f"{len(doc['domains'])} NVLink domain(s), {doc['hosts_in_domains']} host(s), "
                  f"from {doc['reports']} report(s)", markup=False, highlight=False)
    for domain in doc["domains"]:
        console.print(f"  {domain['name']}: {len(domain['hosts'])} hosts {fold(domain['hosts'])}", markup=False,
                      highlight=False)
    for problem in doc["problems"]:
        warn(f"{problem['check']}: {problem['message']}")
    console.print(f"wrote {output}", markup=False, highlight=False)
