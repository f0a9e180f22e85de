"""`gpupool status`: fragmentation of the free GPUs against the job shapes a site runs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from gpupool.cli.context import app, json_option

if TYPE_CHECKING:
    from gpupool.fabric.compiled import CompiledFabric
    from gpupool.observe.fragmentation import Fragmentation
    from gpupool.placement.model import FreeState


def load_fabric_and_free(fabric_path: str | None, free_path: str | None, partition: str | None,
                         ignore_unknown: bool = False) -> tuple[CompiledFabric, FreeState]:
    """The compiled fabric and the free state, exactly as `gpupool plan` obtains them."""
    from gpupool.app.plan import free_state_from_slurm, load_free_file
    from gpupool.cli.render import warn
    from gpupool.config import resolve_fabric_path
    from gpupool.fabric.compiled import load_compiled
    from gpupool.placement.model import Request

    ctx = app()
    compiled = load_compiled(resolve_fabric_path(fabric_path, ctx.config()))
    if free_path:
        return compiled, load_free_file(free_path, compiled, ignore_unknown=ignore_unknown)
    request = Request(gpus=1, partition=partition)
    return compiled, free_state_from_slurm(ctx.slurm_client().node_states(), compiled, request, warn=warn)


def shape_options(func: click.decorators.FC) -> click.decorators.FC:
    func = click.option("--gpus-per-node", "gpus_per_node", type=click.IntRange(min=1), metavar="K",
                        help="GPUs of a whole node: shapes of K, 2K, ... GPUs take whole nodes "
                             "(default: the most common GPU count Slurm has configured, else 8).")(func)
    return click.option("--shapes", metavar="N,N,...",
                        help="Job sizes in GPUs to measure (default 1,2,3,4,8,16,32,64,128,256).")(func)


@click.command("status")
@click.option("--fabric", "fabric_path", metavar="F", help="Fabric file (default $GPUPOOL_FABRIC or the config file).")
@click.option("--free", "free_path", metavar="FILE", help="Free state as JSON {\"host\": free_gpus}; default: ask Slurm.")
@click.option("--partition", metavar="P", help="Only nodes of this Slurm partition count as free.")
@click.option("--ignore-unknown", is_flag=True, help="Skip hosts of the free file that are not in the fabric.")
@shape_options
@json_option
def status(fabric_path: str | None, free_path: str | None, partition: str | None, ignore_unknown: bool,
           shapes: str | None, gpus_per_node: int | None) -> None:
    """Largest job that fits within one leaf, one pod and anywhere; stranded GPUs; free GPUs per leaf."""
    from gpupool.cli.render import emit_json
    from gpupool.observe.fragmentation import gpus_per_node_of, measure, parse_shapes

    parse_shapes(shapes, gpus_per_node or 1)  # bad shapes fail before any file is read
    compiled, free = load_fabric_and_free(fabric_path, free_path, partition, ignore_unknown)
    k = gpus_per_node_of(free, gpus_per_node)
    figures = measure(compiled, free, parse_shapes(shapes, k), k)
    if app().json:
        emit_json(figures.as_json())
        return
    render_fragmentation(figures)


def heat_style(free: int, capacity: int) -> str:
    """Background colour of a leaf cell: grey when nothing is free, then red -> yellow -> green."""
    if free <= 0 or capacity <= 0:
        return "white on grey23"
    share = free / capacity
    if share < 0.25:
        return "black on red3"
    if share < 0.5:
        return "black on dark_orange"
    if share < 0.75:
        return "black on yellow3"
    return "black on green3"


def render_fragmentation(figures: Fragmentation) -> None:
    from rich.table import Table
    from rich.text import Text

    from gpupool.cli.render import stdout_console

    console = stdout_console()
    scope_line = "  ".join(f"{scope}: [bold]{figures.largest[scope] or '-'}[/]" for scope in ("leaf", "pod", "anywhere"))
    console.print(f"Free GPUs: [bold]{figures.free_gpus}[/]   largest listed job that fits within {scope_line} GPUs")
    console.print(f"Stranded GPUs (no listed shape can use them inside their leaf): [bold]{figures.stranded_gpus}[/]")
    table = Table(title="Job shapes", title_justify="left", show_edge=False)
    for column in ("GPUs", "kind", "leaf", "pod", "anywhere", "jobs in leaves", "stranded GPUs"):
        table.add_column(column, justify="left" if column == "kind" else "right")
    for fit in figures.shapes:
        marks = ["yes" if fit.fits[s] else "no" for s in ("leaf", "pod", "anywhere")]
        table.add_row(str(fit.shape.gpus), fit.shape.kind, *marks, str(fit.jobs_within_leaf), str(fit.stranded_gpus))
    console.print(table)
    console.print("Free GPUs per leaf (cells: leaf free/capacity; colour: share free)")
    by_pod: dict[str, list[tuple[str, int, int]]] = {}
    for leaf in figures.leaves:
        by_pod.setdefault(leaf.pod, []).append((leaf.name, leaf.free_gpus, leaf.capacity_gpus))
    width = max((len(str(c)) for leaves in by_pod.values() for _, _, c in leaves), default=1)
    for pod, leaves in by_pod.items():
        line = Text(f"{pod:>14} ")
        for _name, free, capacity in leaves:
            line.append(f" {free:>{width}}/{capacity:<{width}} ", style=heat_style(free, capacity))
            line.append(" ")
        console.print(line)


def read_findings_document(path: str, what: str) -> tuple[str, list[Any]]:
    """Status and findings of a saved `fabric audit --json` or `node check --json` document."""
    import json

    from gpupool.errors import InputError
    from gpupool.findings import Finding
    from gpupool.fsutil import read_input_bytes

    try:
        doc = json.loads(read_input_bytes(path, what))
        findings = [Finding(str(f["check"]), str(f["severity"]), str(f["subject"]), str(f.get("message", "")))
                    for f in doc.get("findings", [])]
        return str(doc["status"]), findings
    except (ValueError, KeyError, TypeError, AttributeError):
        raise InputError(f"{path}: not a {what} (`--json` output with status and findings)") from None


def fabric_audit(fabric_path: str | None, audit_json: str | None) -> tuple[str, list[Any]]:
    """Audit status and findings: a saved `fabric audit --json` document, else the structural checks
    `gpupool fabric audit --fabric F` runs (no live tools)."""
    from gpupool.audit.run import AuditRequest, run_audit
    from gpupool.config import resolve_fabric_path

    if audit_json:
        return read_findings_document(audit_json, "fabric audit file")
    config = app().config()
    result = run_audit(AuditRequest(fabric_path=resolve_fabric_path(fabric_path, config),
                                    config=config.section("audit")))
    return result.status, result.findings
