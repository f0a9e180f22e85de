"""`gpupool pool report`: lending accounting over a time window from one bulk sacct call."""

from __future__ import annotations

import csv
import sys
from datetime import datetime

import click
from rich.table import Table

from gpupool.app import observe as observe_app
from gpupool.cli.context import app, json_option
from gpupool.cli.render import emit_json, stdout_console
from gpupool.observe.lending import LendingReport


@click.command("report")
@click.argument("pools_file", metavar="[POOLS.yaml]", required=False)
@click.option("--since", required=True, metavar="TIME",
              help="Window start: YYYY-MM-DD[THH:MM[:SS]] (local time, like sacct), now-7days, now-12hours.")
@click.option("--until", default="now", show_default=True, metavar="TIME", help="Window end (same forms).")
@click.option("--fragment", "fragment_option", metavar="PATH", help="slurm.conf fragment listing gpupool's partitions.")
@click.option("--fabric", "fabric_path", metavar="FILE", help="Fabric file for leaf:/switch:/group: selectors.")
@click.option("--csv", "csv_flag", is_flag=True, help="CSV on stdout: one row per pool, then one per account.")
@json_option
def report_command(pools_file: str | None, since: str, until: str, fragment_option: str | None,
                   fabric_path: str | None, csv_flag: bool) -> None:
    """Per pool: GPU-hours available, used by owners, lent, borrowed; preemptions, owner wait; use vs shares."""
    ctx = app()
    report = observe_app.pool_report(app().command_runner(), ctx.config(), pools_file=pools_file, fragment_option=fragment_option,
                                     fabric_path=fabric_path, since=since, until=until, now=datetime.now()).report
    if ctx.json:
        emit_json(report.as_json())
    elif csv_flag:
        write_csv(report)
    else:
        render_report(report)


CSV_COLUMNS = ("record", "name", "owners", "gpus", "available_gpu_hours", "used_gpu_hours", "owner_gpu_hours",
               "lent_gpu_hours", "borrowed_gpu_hours", "jobs_preempted", "lost_gpu_hours", "owner_jobs_started",
               "owner_wait_seconds_mean", "owner_wait_seconds_max", "gpu_hours", "usage_share", "norm_shares",
               "fairshare")


def write_csv(report: LendingReport) -> None:
    writer = csv.DictWriter(sys.stdout, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for pool in report.pools:
        row = pool.as_json()
        row["owners"] = " ".join(pool.owners)
        writer.writerow({"record": "pool", **{k: "" if v is None else v for k, v in row.items()}})
    for account in report.accounts:
        writer.writerow({"record": "account", **{k: "" if v is None else v for k, v in account.as_json().items()}})


def _hours(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def render_report(report: LendingReport) -> None:
    console = stdout_console()
    console.print(f"Window {report.since:%Y-%m-%d %H:%M:%S} .. {report.until:%Y-%m-%d %H:%M:%S} "
                  f"({report.hours:.2f} h), {report.runs} job runs from sacct")
    table = Table(title="Pools (GPU-hours)", title_justify="left")
    for column in ("pool", "owners", "GPUs", "available", "used", "by owners", "lent", "borrowed", "preempted jobs",
                   "lost to requeue", "owner wait mean/max"):
        table.add_column(column, justify="left" if column in {"pool", "owners"} else "right")
    for p in report.pools:
        wait = "-" if p.owner_wait_seconds_mean is None else \
            f"{p.owner_wait_seconds_mean:.0f} s / {p.owner_wait_seconds_max:.0f} s ({p.owner_jobs_started} jobs)"
        table.add_row(p.name, ",".join(p.owners) or "(shared)", str(p.gpus), _hours(p.available_gpu_hours),
                      _hours(p.used_gpu_hours), _hours(p.owner_gpu_hours), _hours(p.lent_gpu_hours),
                      _hours(p.borrowed_gpu_hours), str(p.jobs_preempted), _hours(p.lost_gpu_hours), wait)
    console.print(table)
    accounts = Table(title="Accounts: use against fair-share", title_justify="left")
    for column in ("account", "GPU-hours", "share of use", "norm shares", "fair-share"):
        accounts.add_column(column, justify="left" if column == "account" else "right")
    for a in report.accounts:
        accounts.add_row(a.name, _hours(a.gpu_hours), "-" if a.usage_share is None else f"{a.usage_share:.1%}",
                         "-" if a.norm_shares is None else f"{a.norm_shares:.1%}",
                         "-" if a.fairshare is None else f"{a.fairshare:.3f}")
    console.print(accounts)
