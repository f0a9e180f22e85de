"""`gpupool report --html FILE`: one self-contained page for an admin to open or attach to a ticket."""

from __future__ import annotations

from datetime import datetime

import click

from gpupool.app import observe as observe_app
from gpupool.cli.context import app, json_option
from gpupool.cli.render import emit_json, stdout_console, warn
from gpupool.cli.status import shape_options
from gpupool.errors import BadInput
from gpupool.fsutil import atomic_write_text, check_output_path


@click.command("report")
@click.option("--html", "html_path", required=True, metavar="FILE", help="Write the HTML page here (atomically).")
@click.option("--fabric", "fabric_path", metavar="F", help="Fabric file (default $GPUPOOL_FABRIC or the config file).")
@click.option("--free", "free_path", metavar="FILE", help="Free state as JSON {\"host\": free_gpus}; default: ask Slurm.")
@click.option("--partition", metavar="P", help="Only nodes of this Slurm partition count as free.")
@shape_options
@click.option("--pools", "pools_file", metavar="POOLS.yaml", help="Pools file (default: gpupool's partition fragment).")
@click.option("--fragment", metavar="PATH", help="slurm.conf fragment listing gpupool's partitions.")
@click.option("--since", default="now-7days", show_default=True, metavar="TIME", help="Lending period start.")
@click.option("--until", default="now", show_default=True, metavar="TIME", help="Lending period end.")
@click.option("--no-pools", is_flag=True, help="Leave out the pools' lending (no sacct call).")
@click.option("--audit-json", metavar="FILE",
              help="Saved `gpupool fabric audit --json` output (default: run the structural checks on the fabric).")
@click.option("--no-audit", is_flag=True, help="Leave out the fabric audit.")
@json_option
def report(html_path: str, fabric_path: str | None, free_path: str | None, partition: str | None, shapes: str | None,
           gpus_per_node: int | None, pools_file: str | None, fragment: str | None, since: str, until: str, no_pools: bool,
           audit_json: str | None, no_audit: bool) -> None:
    """The fabric coloured by free GPUs and health, fragmentation, pools' lending and audit findings as one HTML page."""
    ctx = app()
    check_output_path(html_path)  # a missing directory fails before Slurm and sacct are read
    options = observe_app.HtmlOptions(fabric_path, free_path, partition, shapes, gpus_per_node, pools_file, fragment,
                                      since, until, pools=not no_pools, audit_json=audit_json, audit=not no_audit)
    page = observe_app.html_report(options, ctx.config(), ctx.slurm_client, ctx.command_runner, warn, datetime.now())
    try:
        atomic_write_text(html_path, page)
    except OSError as exc:
        raise BadInput(f"{html_path}: cannot write the report ({exc.strerror})") from None
    if ctx.json:
        emit_json({"output": html_path, "bytes": len(page.encode())})
    else:
        stdout_console().print(f"wrote {html_path}", markup=False, highlight=False)
