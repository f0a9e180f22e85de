"""`gpupool simulate`: replay a workload on the fabric under several policies, side by side."""

from __future__ import annotations

import sys
from typing import Any

import click

from gpupool.cli.context import app, json_option
from gpupool.simulate.policies import policy_help


@click.command("simulate")
@click.option("--fabric", "fabric_path", metavar="F", help="Fabric file (default $GPUPOOL_FABRIC or the config file).")
@click.option("--workload", required=True, metavar="FILE|synthetic[:k=v,...]",
              help="sacct -P or --json export, SWF file, or a synthetic workload (docs/simulate.md).")
@click.option("--format", "fmt", type=click.Choice(["auto", "sacct", "sacct-json", "swf"]), default="auto",
              show_default=True, help="Workload file format.")
@click.option("--policies", default="slurm-tree,gpupool,gpupool-wait", show_default=True, metavar="LIST",
              help=policy_help())
@click.option("--hop-slack", metavar="N|P%", default="0", show_default=True,
              help="gpupool-pack(-uplinks): pair hops it may spend over the fewest (N, or P% of the fewest).")
@click.option("--size-mix", metavar="GPUS:SHARE,...|learn",
              help="gpupool-pack(-uplinks): the job-size mix it keeps capacity for; learn: the replayed workload's own "
                   "(default: the documented default mix, docs/simulate.md).")
@click.option("--pools", "pools_path", metavar="FILE",
              help="Pools file (as `gpupool pool apply` reads) for the pools-nolend and pools-lend policies.")
@click.option("--gpus-per-host", type=int, default=8, show_default=True, metavar="N", help="GPUs on every host.")
@click.option("--switches", "switches", default="0@300", show_default=True, metavar="N@T",
              help="gpupool-wait: hold a multi-node job up to T seconds for <= N leaf switches (0: its minimum).")
@click.option("--partition", "partitions", metavar="LIST",
              help="Partitions whose jobs are replayed (comma-separated); others are counted and reported.")
@click.option("--backfill", type=click.Choice(["easy", "slurm"]), default="easy", show_default=True,
              help="easy: only the queue head reserves (EASY backfill); slurm: every blocked job tested reserves "
                   "its earliest window, as Slurm's sched/backfill (closer to Slurm on queued traces, much slower "
                   "on large loaded ones).")
@click.option("--backfill-depth", type=int, default=500, show_default=True, metavar="N",
              help="Jobs tested per backfill pass behind the first blocked one (Slurm's bf_max_job_test).")
@click.option("--gpus-per-processor", default="1", show_default=True, metavar="R",
              help="SWF: GPUs per processor of the trace (e.g. 1/4 for 4 cores per GPU).")
@click.option("--speed-model", "speed_path", metavar="FILE", help="Job-speed factors and comm_fraction per class (JSON).")
@click.option("--contention", type=click.Choice(["off", "on"]), default="off", show_default=True,
              help="on: multi-leaf jobs share the uplink bandwidth of the leaves (pods, groups) they span, and their "
                   "communication share slows with it, re-evaluated at every start and end (docs/simulate.md, "
                   "\"Contention model\"); off: the isolated speed model.")
@click.option("--nccl", "nccl_path", metavar="FILE",
              help="Calibrate a speed class from nccl-tests all-reduce figures: `leaf_switches [groups] busbw`.")
@click.option("--comm-fraction", type=float, default=0.3, show_default=True, metavar="C",
              help="With --nccl: share of the runtime spent in all-reduce at the best placement (the calibrated "
                   "class also keeps it as its comm_fraction for --contention on).")
@click.option("--nccl-class", default="default", show_default=True, metavar="NAME",
              help="With --nccl: the speed class to calibrate.")
@click.option("--report", "report_path", metavar="FILE", help="Write a self-contained HTML report with plots.")
@click.option("--seeds", "seeds", type=int, default=1, show_default=True, metavar="N",
              help="Replicates: N seeds of a synthetic workload, or N day-block bootstrap resamples of a trace (1: the "
                   "trace itself); every policy runs on each, and each metric is a mean with a 95% interval.")
@click.option("--seed", "first_seed", type=int, metavar="S",
              help="First seed (then S+1, ...; default: the synthetic spec's seed, else 1).")
@click.option("--baseline", metavar="POLICY", help="Policy the others are compared with (default: the first listed).")
@json_option
def simulate(fabric_path: str | None, workload: str, fmt: str, policies: str, hop_slack: str, size_mix: str | None,
             pools_path: str | None,
             gpus_per_host: int, switches: str,
             partitions: str | None, backfill: str, backfill_depth: int, gpus_per_processor: str, speed_path: str | None,
             contention: str, nccl_path: str | None, comm_fraction: float, nccl_class: str,
             report_path: str | None, seeds: int, first_seed: int | None, baseline: str | None) -> None:
    """Replay a workload on the fabric under several policies and compare waits, JCT and utilisation."""
    from gpupool.app.simulate import SimulateOptions
    from gpupool.app.simulate_seeds import run_simulate_command

    ctx = app()
    options = SimulateOptions(
        fabric_path=fabric_path, workload=workload, fmt=fmt, policies=policies,
        hop_slack=hop_slack, size_mix=size_mix, pools_path=pools_path, gpus_per_host=gpus_per_host,
        switches=switches, partitions=partitions, backfill=backfill, backfill_depth=backfill_depth,
        gpus_per_processor=gpus_per_processor, speed_path=speed_path, contention=contention, nccl_path=nccl_path,
        comm_fraction=comm_fraction, nccl_class=nccl_class, seeds=seeds)
    doc, _results = run_simulate_command(options, ctx.config(), first_seed, baseline, report_path)
    if ctx.json:
        if report_path:
            sys.stderr.write(f"gpupool: report written to {report_path}\n")  # stdout holds the JSON only
        from gpupool.cli.render import emit_json

        emit_json(doc)
        return
    _render(doc, report_path)


def _render(doc: dict[str, Any], report_path: str | None) -> None:
    from rich.table import Table
    from rich.text import Text

    from gpupool.cli.render import stdout_console
    from gpupool.simulate.report import assumption_lines, summary_table

    console = stdout_console()
    fabric, workload = doc["fabric"], doc["workload"]
    stats = doc["statistics"]
    replicates = stats["replicates"]
    console.print(f"fabric {fabric['path']}: {fabric['hosts']} hosts x {fabric['gpus_per_host']} GPUs "
                  f"({fabric['kind']}); workload {workload['source']} ({workload['format']}): "
                  f"{workload['stats']['jobs']} jobs" + (f"; {replicates} replicates" if replicates > 1 else ""),
                  markup=False)
    header, values, rows = summary_table(doc)
    # Two tables, so each fits a terminal: the per-policy means, then the differences against the baseline.
    for first, last in ((1, 1 + values), (1 + values, len(header))):
        if first == last:
            continue
        table = Table(show_edge=False)
        table.add_column(header[0], no_wrap=True)
        for name in header[first:last]:
            table.add_column(name, justify="right")
        for label, cells in rows:
            table.add_row(Text(label), *(Text(text, style="dim" if faint else "")
                                         for text, faint in cells[first - 1:last - 1]))
        console.print(table)
    if replicates > 1:
        console.print("means ± 95% confidence half-widths over the replicates; differences paired seed by seed; "
                      "n.s. (dim): not significantly different from 0", markup=False)
    for sentence in stats["verdicts"].values():
        console.print(f"verdict: {sentence}", markup=False)
    for name, value in assumption_lines(doc):
        console.print(f"assumption: {name}: {value}", markup=False)
    for note in doc["notes"]:
        console.print(f"note: {note}", markup=False)
    if report_path:
        console.print(f"report written to {report_path}", markup=False)

