"""`gpupool plan`: the minimal-hop allocation for a request, next to what Slurm itself would pick."""

from __future__ import annotations

import time
from typing import Any

import click

from gpupool.app.objective import OBJECTIVE_CHOICES, goal_from_options
from gpupool.app.plan import plan_document, run_plan
from gpupool.app.shape import uneven_shape_note
from gpupool.app.topology import TOPOLOGY_CHOICES
from gpupool.cli.context import app, json_option
from gpupool.cli.render import counted, emit_json, stdout_console, warn
from gpupool.config import resolve_fabric_path
from gpupool.errors import Unsatisfiable
from gpupool.fabric.blocks import BlockLayout
from gpupool.fabric.compiled import CompiledFabric, load_compiled
from gpupool.hostlist import expand, fold
from gpupool.placement.block import block_usage
from gpupool.placement.model import Placement, Request
from gpupool.placement.objective import DEFAULT_GOAL
from gpupool.placement.reclaim import Reclaim
from gpupool.slurm.sbatch import gpu_request_from_spellings


def objective_options(command: Any) -> Any:
    """--objective, --hop-slack, --size-mix, --size-history (plan and submit)."""
    for option in reversed((
        click.option("--objective", type=click.Choice(OBJECTIVE_CHOICES), default=None,
                     metavar="|".join(OBJECTIVE_CHOICES),
                     help="hops: fewest pair hops, then leaf switches, then best fit; pack: fewest pair hops "
                          "(within --hop-slack), then keep the most capacity placeable for the site's job sizes; "
                          "contention: fewest pair hops, then the least bandwidth added over capacity on the uplinks "
                          "running jobs load (read from Slurm; none with --free). "
                          "Default: " + DEFAULT_GOAL.objective.value + "."),
        click.option("--hop-slack", metavar="N|P%",
                     help="pack: allow N more pair hops (or P% more) than the fewest to keep capacity whole."),
        click.option("--size-mix", metavar="GPUS:SHARE,...",
                     help="pack: the site's job sizes, e.g. 1:0.3,8:0.3,32:0.2,64:0.2 (default: docs/simulate.md)."),
        click.option("--size-history", metavar="FILE",
                     help="pack: learn the size mix from a sacct (-P or --json) or SWF history."),
    )):
        command = option(command)
    return command


@click.command("plan")
@click.option("-G", "--gpus", "gpus_text", metavar="[TYPE:]N", help="Total GPUs (sbatch -G/--gpus).")
@click.option("--gpus-per-node", "gpus_per_node_text", metavar="[TYPE:]K", help="Exactly K GPUs on every chosen host.")
@click.option("--gres", metavar="gpu[:TYPE]:K", help="sbatch's --gres: K GPUs on every chosen host.")
@click.option("-N", "--nodes", "nodes_text", metavar="M",
              help="Number of hosts (with --gpus-per-node, or --gpus divisible by M).")
@click.option("--ntasks-per-node", type=click.IntRange(min=1), metavar="T",
              help="sbatch's tasks per host: accepted so an sbatch line can be pasted; GPUs are placed by the "
                   "GPU options alone.")
@click.option("-p", "--partition", metavar="P", help="Slurm partition whose nodes may be used.")
@click.option("--free", "free_path", metavar="FILE", help="Free state as JSON {\"host\": free_gpus}; default: ask Slurm.")
@click.option("--gpus-per-host", type=click.IntRange(min=1), metavar="N",
              help="GPUs a whole host has: a --free file saying more on a host is refused (exit 4) without Slurm.")
@click.option("-x", "--exclude", metavar="HOSTLIST", help="Hosts never to use (Slurm hostlist).")
@click.option("--max-hops", type=int, metavar="H", help="Largest allowed hop distance between any two chosen hosts.")
@click.option("--segment", type=int, metavar="S",
              help="Slurm's --segment under topology/block: groups of S nodes, each inside one base block "
                   "(needs --nodes or --gpus-per-node; the node count a multiple of S; ignored under tree).")
@click.option("--fabric", "fabric_path", metavar="F", help="Fabric file (default $GPUPOOL_FABRIC or the config file).")
@click.option("--ignore-unknown", is_flag=True, help="Skip hosts of the free file that are not in the fabric.")
@click.option("--health", "health_path", metavar="FILE",
              help="Saved `fabric audit --json`: skip hosts whose HCAs are down, avoid leaves missing uplinks on a tie.")
@click.option("--topology", "topology", type=click.Choice(TOPOLOGY_CHOICES), default="auto", show_default=True,
              help="Optimise for Slurm's tree or block topology; auto: what Slurm applies to the partition.")
@objective_options
@json_option
def plan(gpus_text: str | None, gpus_per_node_text: str | None, gres: str | None, nodes_text: str | None,
         ntasks_per_node: int | None, partition: str | None, free_path: str | None, gpus_per_host: int | None,
         exclude: str | None,
         max_hops: int | None, fabric_path: str | None, ignore_unknown: bool, health_path: str | None,
         topology: str, segment: int | None, objective: str | None, hop_slack: str | None,
         size_mix: str | None, size_history: str | None) -> None:
    """Compute a minimal-hop GPU allocation (minimise pair_hops_sum, then leaf switches, then best fit).

    The request takes sbatch's spellings with sbatch's meaning: -G/--gpus N in total,
    --gpus-per-node K or --gres=gpu[:TYPE]:K on every host, -N/--nodes M hosts,
    -p/--partition, -x/--exclude; --ntasks-per-node is accepted and does not change the GPUs.
    A --gpus N placement that is uneven across hosts (8,8,8,8,7,1) is named in a note, with the
    even split (--gpus-per-node K) that fits now and its pair_hops_sum.

    Hosts Slurm reports drained, down or failing, and with --health those whose HCAs are down, are
    skipped and named with the reason (`skipped: host (reason)`; --json: "skipped": {"host": "reason"}).
    Under Slurm's topology/block (a partition's Topology= in topology.yaml, else TopologyPlugin) the
    plan uses the fewest blocks Slurm's block rules allow, next to Slurm's own block choice; with
    --segment S every group of S nodes lies in one base block, as Slurm places `--segment=S` jobs.

    With --partition, GPUs of preemptible borrowed jobs on the partition's nodes (scavenger or
    lending partitions) count as free: among the placements of minimal pair_hops_sum the one that
    preempts the fewest borrowed GPU-hours already run is chosen, and the jobs it preempts are
    shown (`preempts: ...`; --json: "preempt").
    """
    start = time.perf_counter()
    ctx = app()
    goal = goal_from_options(objective, hop_slack, size_mix, size_history)
    hints = gpu_request_from_spellings(gpus=gpus_text, gpus_per_node=gpus_per_node_text, gres=gres,
                                       nodes=nodes_text)
    if hints.gpu_type:
        warn(f"GPU type {hints.gpu_type!r} is not checked by plan (submit passes it to Slurm)")
    request = Request(gpus=hints.gpus, gpus_per_node=hints.gpus_per_node, nodes=hints.nodes,
                      exclude=tuple(expand(exclude)), max_hops=max_hops, partition=partition, segment=segment,
                      goal=goal)
    request.shape()  # bad numbers fail here, before any file is read
    compiled = load_compiled(resolve_fabric_path(fabric_path, ctx.config()))
    outcome = run_plan(compiled, request, free_path=free_path, ignore_unknown=ignore_unknown,
                       slurm=ctx.slurm_client, warn=warn, health_path=health_path, topology=topology,
                       gpus_per_host=gpus_per_host)
    if outcome.placement is None:
        if ctx.json:
            emit_json(ctx.with_backend(plan_document(None, outcome.reference, outcome.request, _ms(start),
                                                     error=outcome.error, skipped=outcome.skipped,
                                                     topology=outcome.topology, compiled=compiled)))
        elif outcome.skipped:
            warn(_skipped_line(outcome.skipped))
        raise Unsatisfiable(outcome.error or "no placement")
    note = None if outcome.reclaim is not None else \
        uneven_shape_note(compiled, outcome.free, outcome.request, outcome.placement, outcome.topology)
    elapsed = _ms(start)
    if ctx.json:
        document = plan_document(outcome.placement, outcome.reference, outcome.request, elapsed,
                                 skipped=outcome.skipped, topology=outcome.topology, reclaim=outcome.reclaim,
                                 compiled=compiled, objective=outcome.objective)
        if "slurm_reference" in document and _model_is_a_guess(outcome.request, outcome.reference):
            document["slurm_reference"] = {**document["slurm_reference"], "guess": True,
                                           "note": MODEL_GUESS_NOTE}
        document["leaf_positions"] = leaf_positions(compiled, outcome.placement)
        emit_json(ctx.with_backend({**document, **({"shape_note": note} if note else {})}))
        return
    _render(compiled, outcome.free.free_gpus, outcome.placement, outcome.reference, elapsed,
            reclaimed=_reclaimed_per_host(outcome.reclaim),
            guess=_model_is_a_guess(outcome.request, outcome.reference))
    if outcome.topology is not None and outcome.topology.layout is not None:
        _render_blocks(outcome.topology.layout, outcome.placement, outcome.reference, outcome.topology.why,
                       outcome.request.segment)
    if outcome.reclaim is not None:
        stdout_console().print(preempt_line(outcome.reclaim), markup=False, highlight=False)
    if outcome.objective is not None and "why" in outcome.objective:
        stdout_console().print(f"why: {outcome.objective['why']}", markup=False, highlight=False)
    if outcome.skipped:
        stdout_console().print(_skipped_line(outcome.skipped), markup=False, highlight=False)
    if note:
        stdout_console().print(f"note: {note}", markup=False, highlight=False)


# gpupool's model of Slurm's tree choice is checked against `sbatch --test-only` for `-N n --gres=gpu:k`
# (docs/simulate.md: 200 of 200) and for `--gpus=N` (issue #27: 300 of 300 on 22.05); the dragonfly
# model is not checked for `--gpus=N`.
MODEL_GUESS_NOTE = ("gpupool's model of Slurm's dragonfly choice is not checked against sbatch --test-only "
                    "for --gpus N without a per-node count; it is a guess")


def _model_is_a_guess(request: Request, reference: tuple[str, Placement | None] | None) -> bool:
    """The dragonfly model for a request with no per-node GPU count (the tree model is calibrated for
    both forms; the block model follows Slurm's block rules for every request form)."""
    return (reference is not None and reference[0] == "slurm-dragonfly"
            and request.gpus_per_node is None and request.nodes is None)


def leaf_positions(compiled: CompiledFabric, placement: Placement) -> int:
    """Logical leaves (leaf positions) the placement's hosts sit on: `leaf_switches` counts every rail
    leaf switch, so on a rail-optimised fabric it is the rails times this."""
    index = compiled.host_index()
    return len({int(compiled.host_tree_leaf[index[host]]) for host in placement.allocation})


def _render_blocks(layout: BlockLayout, placement: Placement, reference: tuple[str, Placement | None],
                   why: str, segment: int | None = None) -> None:
    """Block terms: base blocks and aggregated blocks used, ours and Slurm's."""
    console = stdout_console()
    ours = block_usage(layout, placement.hosts, segment)
    line = (f"topology/block ({why}; BlockSizes {','.join(map(str, layout.sizes))}): gpupool uses "
            f"{ours['base_blocks']} base block(s) ({', '.join(ours['block_names'])}) in "
            f"{ours['aggregated_blocks']} lower-level aggregated block(s)")
    if segment:
        line += f", segments of {segment} node(s) each in one base block"
    console.print(line, markup=False, highlight=False)
    _mode, ref = reference
    if ref is not None:
        theirs = block_usage(layout, ref.hosts, segment)
        console.print(f"slurm-block would use {theirs['base_blocks']} base block(s) "
                      f"({', '.join(theirs['block_names'])})", markup=False, highlight=False)


def _skipped_line(skipped: dict[str, str], shown: int = 8) -> str:
    """`skipped: gpu012 (HCA gpu012 HCA-1 down), gpu013 (Slurm IDLE+DRAIN: ...) and 3 more`."""
    items = [f"{host} ({why})" for host, why in list(skipped.items())[:shown]]
    more = f" and {len(skipped) - shown} more" if len(skipped) > shown else ""
    return "skipped: " + ", ".join(items) + more


def preempt_line(reclaim: Reclaim, shown: int = 8) -> str:
    """`preempts: job 12 (8 GPUs, 1.50 GPU-h), job 15 (...): 2 borrowed jobs, 3.25 GPU-h run`."""
    if not reclaim.preempted:
        return f"preempts: nothing ({reclaim.candidates} borrowed job(s) on the partition stay)"
    items = [f"job {b.job_id} ({counted(b.gpus, 'GPU')}, {b.gpu_hours:.2f} GPU-h{', protected' if b.protected else ''})"
             for b in reclaim.preempted[:shown]]
    more = f" and {len(reclaim.preempted) - shown} more" if len(reclaim.preempted) > shown else ""
    least = "" if reclaim.exhaustive else " (search budget reached: may not be the least)"
    return (f"preempts: {', '.join(items)}{more}: {len(reclaim.preempted)} borrowed job(s), "
            f"{reclaim.gpu_hours:.2f} GPU-h already run, of {reclaim.candidates} on the partition{least}")


def _reclaimed_per_host(reclaim: Reclaim | None) -> dict[str, int]:
    out: dict[str, int] = {}
    for b in reclaim.preempted if reclaim else ():
        for host, gpus in b.allocation.items():
            out[host] = out.get(host, 0) + gpus
    return out


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


def _render_nvlink(compiled: CompiledFabric, placement: Placement, mode: str, ref: Placement | None) -> None:
    """On a fabric with NVLink domains: the domains the plan spans (and Slurm's choice)."""
    from gpupool.placement.nvlink import nvlink_usage

    ours = nvlink_usage(compiled, placement.hosts)
    if ours is None:
        return
    line = f"NVLink domains: {ours['nvlink_domains']} ({', '.join(ours['nvlink_domain_names']) or 'none'})"
    theirs = nvlink_usage(compiled, ref.hosts) if ref is not None else None
    if theirs is not None:
        line += f"; {mode} reference: {theirs['nvlink_domains']}"
    stdout_console().print(line, markup=False, highlight=False)


def _render(compiled: CompiledFabric, free_gpus: Any, placement: Placement,
            reference: tuple[str, Placement | None], elapsed_ms: float,
            reclaimed: dict[str, int] | None = None, guess: bool = False) -> None:
    from rich.table import Table  # rich only when rendering for people (--json never loads it)
    from rich.tree import Tree

    console = stdout_console()
    index = compiled.host_index()
    by_leaf: dict[int, list[str]] = {}
    for host in placement.allocation:
        by_leaf.setdefault(int(compiled.host_tree_leaf[index[host]]), []).append(host)
    parent = compiled.tree_parent
    paths: dict[int, list[int]] = {}
    for leaf in by_leaf:
        chain = [leaf]
        while chain[-1] >= 0 and parent[chain[-1]] >= 0:
            chain.append(int(parent[chain[-1]]))
        paths[leaf] = chain[::-1]
    root = Tree(f"[bold]{compiled.kind}[/] fabric: {counted(placement.total_gpus, 'GPU')} on "
                f"{counted(len(placement.allocation), 'host')} "
                f"({fold(placement.hosts)})")
    nodes: dict[int, Tree] = {}
    for leaf in sorted(by_leaf, key=lambda t: paths[t]):
        branch = root
        for t in paths[leaf]:
            if t < 0:
                continue
            if t not in nodes:
                level = int(compiled.tree_level[t])
                nodes[t] = branch.add(f"{compiled.tree_names[t]} [dim](level {level})[/]")
            branch = nodes[t]
        for host in by_leaf[leaf]:
            free = int(free_gpus[index[host]])
            borrowed = (reclaimed or {}).get(host, 0)
            extra = f" + {borrowed} reclaimed" if borrowed else ""
            branch.add(f"{host}: [bold]{placement.allocation[host]}[/] {'GPU' if placement.allocation[host] == 1 else 'GPUs'} [dim](of {free} free{extra})[/]")
    console.print(root)
    mode, ref = reference
    table = Table(title=None, show_edge=False)
    table.add_column("cost")
    table.add_column("gpupool", justify="right")
    table.add_column(f"{mode} reference", justify="right")
    keys = ("pair_hops_sum", "mean_hops", "max_hops", "leaf_switches", "groups")
    ours = placement.cost.to_json()
    theirs = ref.cost.to_json() if ref else {}
    for key in keys:
        a = ours[key]
        b = theirs.get(key, "-")
        table.add_row(key, f"{a:.3f}" if isinstance(a, float) else str(a),
                      f"{b:.3f}" if isinstance(b, float) else str(b))
    console.print(table)
    _render_nvlink(compiled, placement, mode, ref)
    if ref and ref.cost.pair_hops_sum > 0:
        ratio = ref.cost.pair_hops_sum / max(placement.cost.pair_hops_sum, 1)
        console.print(f"{mode} would pick {fold(ref.hosts)}: pair_hops_sum x{ratio:.3f} of gpupool's"
                      + (" (a guess: the dragonfly model is not checked for --gpus N)" if guess else ""))
    elif ref is None:
        console.print(f"{mode} would not start this job now")
    if len(by_leaf) != placement.cost.leaf_switches:
        # Rail-optimised fabrics: one leaf position is several rail leaf switches; say which unit is which.
        console.print(f"leaf_switches counts rail leaf switches: the job spans "
                      f"{counted(len(by_leaf), 'leaf position')} ({placement.cost.leaf_switches} leaf switches)",
                      markup=False, highlight=False)
    note = "optimal" if placement.optimal else f"heuristic, lower bound {placement.lower_bound}"
    console.print(f"[dim]{placement.algorithm} ({note}); placement {placement.elapsed_ms:.1f} ms, "
                  f"total {elapsed_ms:.1f} ms[/]")
