"""`gpupool status`: fragmentation of the free GPUs against the job shapes a site runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from gpupool.app import status as status_app
from gpupool.cli.context import app, json_option
from gpupool.cli.render import emit_json, stdout_console, warn

if TYPE_CHECKING:
    from gpupool.observe.fragmentation import Fragmentation


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
    ctx = app()
    figures = status_app.status(ctx.config(), ctx.slurm_client, fabric_path=fabric_path, free_path=free_path,
                                 partition=partition, ignore_unknown=ignore_unknown, shapes=shapes,
                                 gpus_per_node=gpus_per_node, warn=warn)
    if ctx.json:
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
    from rich.table import Table  # rich only when rendering for people (--json never loads it)
    from rich.text import Text

    console = stdout_console()
    scope_line = "  ".join(f"{scope}: [bold]{figures.largest[scope] or '-'}[/]" for scope in ("leaf", "pod", "anywhere"))
    console.print(f"Free GPUs: [bold]{figures.free_gpus}[/]   largest listed job that fits within {scope_line} GPUs")
    console.print(f"Stranded GPUs (no listed shape can use them inside their leaf): [bold]{figures.stranded_gpus}[/]")
    if figures.stranded_gpus_whole_node is not None:
        smallest = min(f.shape.gpus for f in figures.shapes if f.shape.whole_nodes)
        console.print(f"Stranded for whole-node jobs ({smallest} GPUs and up; no whole-node shape can use them "
                      f"inside their leaf): [bold]{figures.stranded_gpus_whole_node}[/]")
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
        for name, free, capacity in leaves:
            # The leaf's name in its cell: counting positions names the wrong leaf where leaves are absent.
            line.append(f" {name} {free:>{width}}/{capacity:<{width}} ", style=heat_style(free, capacity))
            line.append(" ")
        console.print(line)
