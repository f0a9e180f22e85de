"""`gpupool jobs` (running jobs with their placement cost) and `gpupool explain JOBID`."""

from __future__ import annotations

import getpass

import click

from gpupool.app.jobs import explain_job, running_jobs
from gpupool.cli.context import app, json_option
from gpupool.cli.render import emit_json, stdout_console
from gpupool.config import resolve_fabric_path
from gpupool.fabric.compiled import CompiledFabric, load_compiled


def _compiled(fabric_path: str | None) -> CompiledFabric:
    return load_compiled(resolve_fabric_path(fabric_path, app().config()))


@click.command("jobs")
@click.option("--user", "-u", metavar="U", help="Only jobs of user U (default: you).")
@click.option("--all", "all_users", is_flag=True, help="Jobs of every user.")
@click.option("--fabric", "fabric_path", metavar="F", help="Fabric file (default $GPUPOOL_FABRIC or the config file).")
@click.option("--report", "report_job", metavar="JOBID",
              help="Topology report of one job (running or finished): leaves spanned, optimum at its start, hint.")
@json_option
def jobs(user: str | None, all_users: bool, fabric_path: str | None, report_job: str | None) -> None:
    """Running jobs with the placement cost of their live allocation (same keys as `plan`)."""
    if report_job:
        # The report reads accounting and pools (gpupool.app.observe): loaded only for --report.
        from gpupool.cli.job_report import report_job as render_job_report

        render_job_report(report_job, fabric_path)
        return

    if user and all_users:
        raise click.UsageError("give --user U or --all, not both")
    who = None if all_users else (user or getpass.getuser())
    rows = running_jobs(app().slurm_client(), _compiled(fabric_path), user=who)
    if app().json:
        emit_json(app().with_backend({"user": who, "jobs": rows}))
        return
    console = stdout_console()
    if not rows:
        console.print(f"no running jobs{'' if who is None else f' for user {who}'}")
        return
    from rich.table import Table  # rich only when rendering for people (--json never loads it)

    table = Table(show_edge=False)
    for column in ("JOBID", "USER", "PARTITION", "GPUS", "NODELIST", "PAIR_HOPS", "MEAN", "MAX", "LEAVES", "PLANNED"):
        table.add_column(column, justify="right" if column not in ("USER", "PARTITION", "NODELIST") else "left")
    for row in rows:
        cost = row["cost"] or {}
        table.add_row(row["job_id"], row["user"], row["partition"], str(row["gpus"]), row["nodelist"],
                      str(cost.get("pair_hops_sum", "-")), f"{cost['mean_hops']:.2f}" if cost else "-",
                      str(cost.get("max_hops", "-")), str(cost.get("leaf_switches", "-")),
                      str(row.get("planned_pair_hops_sum", "-")))
    console.print(table)


@click.command("explain")
@click.argument("job_id", metavar="JOBID")
@click.option("--fabric", "fabric_path", metavar="F", help="Fabric file (default $GPUPOOL_FABRIC or the config file).")
@json_option
def explain(job_id: str, fabric_path: str | None) -> None:
    """Why a pending job waits: Slurm's reason, what it asks, the best placement now and the cost difference."""
    explanation = explain_job(app().slurm_client(), _compiled(fabric_path), job_id)
    doc = explanation.to_json()
    if app().json:
        emit_json(app().with_backend(doc))
        return
    console = stdout_console()
    console.print(f"job {doc['job_id']}: {doc['state']}, reason: {doc['reason'] or '-'}")
    asks = doc["asks"]
    parts = [f"{asks['gpus']} GPUs" if asks.get("gpus") else None,
             f"{asks['nodes']} node(s) x {asks['gpus_per_node']} GPUs" if asks.get("gpus_per_node") else None,
             f"partition {asks['partition']}" if asks.get("partition") else None,
             f"on {asks['nodelist']}" if asks.get("nodelist") else None,
             f"switches {asks['switches']}" if asks.get("switches") else None,
             f"segment {asks['segment']}" if asks.get("segment") else None]
    console.print("asks: " + ", ".join(p for p in parts if p))
    best = doc.get("best_now")
    topology = doc.get("topology") or {}
    if topology.get("kind") == "block":
        console.print(f"topology/block ({topology['source']}): {topology['base_blocks']} base blocks, "
                      f"BlockSizes {','.join(map(str, topology['block_sizes']))}")
    if best:
        cost = best["cost"]
        if "blocks" in best:
            blocks = best["blocks"]
            console.print(f"best placement now: {best['nodelist']} ({blocks['base_blocks']} base block(s): "
                          f"{', '.join(blocks['block_names'])}; pair_hops_sum {cost['pair_hops_sum']})")
        else:
            console.print(f"best placement now: {best['nodelist']} (pair_hops_sum {cost['pair_hops_sum']}, "
                          f"leaf_switches {cost['leaf_switches']})")
    else:
        console.print(doc.get("best_now_reason") or "no placement now")
    pinned = doc.get("pinned")
    if pinned and pinned.get("cost"):
        blocks_text = (f"{pinned['blocks']['base_blocks']} base block(s), " if pinned.get("blocks") else "")
        console.print(f"pinned to: {pinned['nodelist']} ({blocks_text}pair_hops_sum {pinned['cost']['pair_hops_sum']})")
    if "planned" in doc and not (pinned and pinned.get("cost")):
        console.print(f"gpupool's plan at submission ({doc['planned']['mode']}): pair_hops_sum "
                      f"{doc['planned']['pair_hops_sum']}")
    if "cost_difference" in doc:
        diff = doc["cost_difference"]["pair_hops_sum"]
        console.print(f"cost difference (asked - best now): pair_hops_sum {diff:+d}")
    for note in doc["notes"]:
        console.print(f"[dim]{note}[/]")
