"""`gpupool submit`: plan, then sbatch on the planned nodes (the use case is gpupool.app.submit)."""

from __future__ import annotations

import shlex

import click

from gpupool.app.objective import goal_from_options
from gpupool.app.submit import DEFAULT_SWITCH_WAIT, SubmitRequest, submit_planned
from gpupool.app.topology import TOPOLOGY_CHOICES
from gpupool.cli.context import app, json_option
from gpupool.cli.plan import objective_options
from gpupool.cli.render import counted, emit_json, stderr_note, warn
from gpupool.config import resolve_fabric_path
from gpupool.errors import BadRequest
from gpupool.fabric.compiled import load_compiled
from gpupool.hostlist import expand
from gpupool.slurm.sbatch import split_options

# gpupool's own options (sbatch has none of these names): after an sbatch-only option they would be
# passed to sbatch, and --dry-run would not stop the submission.
GPUPOOL_ONLY = frozenset({"dry-run", "free", "fabric", "max-hops", "switch-wait", "verify-timeout", "health",
                          "token", "topology", "debug", "json", "objective", "hop-slack", "size-mix", "size-history"})


@click.command("submit", context_settings={"ignore_unknown_options": True,
                                           "allow_interspersed_args": False})
@click.option("-G", "--gpus", type=int, metavar="N", help="Total GPUs (default: from the script's #SBATCH lines).")
@click.option("--gpus-per-node", type=int, metavar="K", help="Exactly K GPUs on every chosen host.")
@click.option("--gres", metavar="gpu[:TYPE]:K", help="sbatch's --gres: K GPUs on every chosen host (passed to sbatch).")
@click.option("-N", "--nodes", type=int, metavar="M", help="Number of hosts.")
@click.option("--ntasks-per-node", metavar="T", help="sbatch's tasks per host (passed to sbatch; GPUs unchanged).")
@click.option("-p", "--partition", metavar="P", help="Slurm partition (default: -p / #SBATCH -p, else Slurm's default).")
@click.option("-x", "--exclude", metavar="HOSTLIST", help="Hosts never to use (Slurm hostlist).")
@click.option("--max-hops", type=int, metavar="H", help="Largest allowed hop distance between chosen hosts.")
@click.option("--fabric", "fabric_path", metavar="F", help="Fabric file (default $GPUPOOL_FABRIC or the config file).")
@click.option("--dry-run", is_flag=True, help="Plan and print the sbatch command line; submit nothing.")
@click.option("--free", "free_path", metavar="FILE",
              help="With --dry-run: plan on this free state ({\"host\": free_gpus}) without Slurm.")
@click.option("--gpus-per-host", type=click.IntRange(min=1), metavar="N",
              help="GPUs a whole host has: a --free file saying more on a host is refused (exit 4).")
@click.option("--switch-wait", default=DEFAULT_SWITCH_WAIT, show_default=True, metavar="P%|TIME",
              help="How long Slurm may wait for the job's fewest leaf switches (--switches=N@T) when nothing fits "
                   "now, or when a placement now would take more leaves than the job needs: P% of its --time, or "
                   "seconds / [[H:]M:]S; 0 pins a spread placement now, as before.")
@click.option("--verify-timeout", type=float, default=10.0, show_default=True, metavar="SECONDS",
              help="How long to wait for the job to start on the planned nodes before returning.")
@click.option("--health", "health_path", metavar="FILE",
              help="Saved `fabric audit --json`: skip hosts whose HCAs are down, avoid leaves missing uplinks on a tie.")
@click.option("--token", metavar="TOKEN",
              help="Token an earlier submit printed after losing sbatch's answer: find that job, do not submit twice.")
@click.option("--topology", "topology", type=click.Choice(TOPOLOGY_CHOICES), default="auto", show_default=True,
              help="Optimise for Slurm's tree or block topology; auto: what Slurm applies to the partition.")
@objective_options
@json_option
@click.argument("argv", nargs=-1, type=click.UNPROCESSED, metavar="[-- SBATCH_ARGS...] SCRIPT [ARGS...]")
def submit(gpus: int | None, gpus_per_node: int | None, gres: str | None, nodes: int | None,
           ntasks_per_node: str | None, partition: str | None, exclude: str | None, max_hops: int | None, fabric_path: str | None, dry_run: bool,
           free_path: str | None, gpus_per_host: int | None, switch_wait: str, verify_timeout: float, health_path: str | None, token: str | None,
           topology: str, objective: str | None, hop_slack: str | None, size_mix: str | None,
           size_history: str | None, argv: tuple[str, ...]) -> None:
    """Plan a minimal-hop placement, then sbatch SCRIPT on exactly those nodes.

    Every sbatch option after `--` (and every #SBATCH line of SCRIPT) passes through untouched;
    gpupool adds --nodes, --nodelist, the GPU count and a `gpupool:` job comment. When nothing
    fits now the job is submitted with --switches=N@TIME from the best future placement (under
    Slurm's topology/block, which ignores --switches: the fewest blocks, and --segment when the job
    is whole base blocks). A --segment=S among the sbatch options is planned for (every S nodes in
    one base block) and kept. On a partition whose GPUs are lent, it is pinned to the placement that
    preempts the fewest borrowed GPU-hours (as `gpupool plan --partition` shows).
    """
    ctx = app()
    try:
        options, rest = split_options(list(argv), "sbatch arguments", stop_at_positional=True)
    except BadRequest as exc:
        raise click.UsageError(exc.message) from None
    misplaced = [f"--{o.name}" for o in options if o.name in GPUPOOL_ONLY]
    if misplaced:
        raise click.UsageError(f"{misplaced[0]} is gpupool's, not sbatch's: give gpupool's options before the "
                               "first sbatch-only option (or put sbatch's after --)")
    # sbatch's own spellings that gpupool parses: passed on as sbatch options (their meaning is sbatch's).
    spelled = [f"--{name}={value}" for name, value in (("gres", gres), ("ntasks-per-node", ntasks_per_node))
               if value is not None]
    sbatch_args = spelled + [token for option in options for token in option.tokens]
    script, script_args = (rest[0], rest[1:]) if rest else (None, [])
    request = SubmitRequest(
        gpus=gpus, gpus_per_node=gpus_per_node, nodes=nodes, partition=partition,
        exclude=tuple(expand(exclude)), max_hops=max_hops,
        script=script, script_args=list(script_args), sbatch_args=sbatch_args, dry_run=dry_run,
        switch_wait=switch_wait, verify_timeout=verify_timeout, health_path=health_path, token=token,
        topology=topology, free_path=free_path, gpus_per_host=gpus_per_host,
        goal=goal_from_options(objective, hop_slack, size_mix, size_history),
    )
    compiled = load_compiled(resolve_fabric_path(fabric_path, ctx.config()))
    client = None if free_path else ctx.slurm_client()  # --free: no Slurm (submit_planned checks --dry-run)
    outcome = submit_planned(client, compiled, request)
    if ctx.json:
        emit_json(ctx.with_backend(outcome.to_json()))
        return
    for note in outcome.notes:
        warn(note)
    cost = outcome.placement.cost
    summary = (f"{counted(outcome.placement.total_gpus, 'GPU')} on {outcome.nodelist}: pair_hops_sum "
               f"{cost.pair_hops_sum}, max_hops {cost.max_hops}, leaf_switches {cost.leaf_switches}")
    if dry_run:
        click.echo(shlex.join(outcome.sbatch_argv))
        stderr_note(f"plan ({outcome.mode}): {summary}")
        return
    # Same first line as sbatch, so scripts that parse sbatch's output keep working.
    click.echo(f"Submitted batch job {outcome.job_id}")
    where = "planned" if outcome.mode == "now" else "best future placement"
    stderr_note(f"{where}: {summary}; state {outcome.job_state or 'PENDING'}")
