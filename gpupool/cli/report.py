"""`gpupool report --html FILE`: one self-contained page for an admin to open or attach to a ticket."""

from __future__ import annotations

import click

from gpupool.cli.context import app
from gpupool.cli.status import shape_options


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
def report(html_path: str, fabric_path: str | None, free_path: str | None, partition: str | None, shapes: str | None,
           gpus_per_node: int | None, pools_file: str | None, fragment: str | None, since: str, until: str, no_pools: bool,
           audit_json: str | None, no_audit: bool) -> None:
    """The fabric coloured by free GPUs and health, fragmentation, pools' lending and audit findings as one HTML page."""
    from datetime import datetime

    from gpupool.cli.render import warn
    from gpupool.cli.status import fabric_audit, load_fabric_and_free
    from gpupool.errors import GpupoolError, UsageError
    from gpupool.fsutil import atomic_write_text
    from gpupool.observe.fragmentation import gpus_per_node_of, measure, parse_shapes
    from gpupool.observe.html import ReportInputs, render_html
    from gpupool.observe.lending import parse_when

    app()
    parse_shapes(shapes, gpus_per_node or 1)  # bad shapes fail before anything is read
    now = datetime.now()
    start, end = parse_when(since, now, "--since"), parse_when(until, now, "--until")
    if end <= start:
        raise UsageError(f"--until {until} must be after --since {since}")
    compiled, free = load_fabric_and_free(fabric_path, free_path, partition)
    k = gpus_per_node_of(free, gpus_per_node)
    figures = measure(compiled, free, parse_shapes(shapes, k), k)
    notes: dict[str, str] = {}
    lending = None
    if no_pools:
        notes["lending"] = "left out (--no-pools)"
    else:
        try:
            from gpupool.cli.pool import _runner
            from gpupool.cli.pool_report import pool_definitions
            from gpupool.observe.lending import collect_lending

            run = _runner()
            definitions, nodes = pool_definitions(run, pools_file, fragment, fabric_path)
            lending = collect_lending(run, start, end, now, definitions=definitions, nodes=nodes, buckets=24)
        except GpupoolError as exc:
            warn(f"pools: {exc.message}")
            notes["lending"] = exc.message
    status, findings = None, []
    if no_audit:
        notes["audit"] = "left out (--no-audit)"
    else:
        try:
            status, findings = fabric_audit(fabric_path, audit_json)
        except GpupoolError as exc:
            warn(f"audit: {exc.message}")
            notes["audit"] = exc.message
    page = render_html(ReportInputs(compiled, figures, status, findings, lending, notes, now))
    try:
        atomic_write_text(html_path, page)
    except OSError as exc:
        from gpupool.errors import InputError

        raise InputError(f"{html_path}: cannot write the report ({exc.strerror})") from None
