"""`gpupool pool apply|status|lua`: declarative GPU pools, borrowing and fair-share queues."""

from __future__ import annotations

import click

from gpupool.app import pools as pools_app
from gpupool.cli.context import app, json_option
from gpupool.cli.render import emit_json, stdout_console, warn
from gpupool.errors import BadRequest, Unreachable
from gpupool.pools.apply import ApplyReport
from gpupool.pools.slurm_state import CommandRunner
from gpupool.pools.status import StatusReport
from gpupool.switch_wait import DEFAULT as SWITCH_WAIT_DEFAULT
from gpupool.switch_wait import FALLBACK_SECONDS, SwitchWait


@click.group()
def pool() -> None:
    """Declarative GPU pools and fair-share queues."""


def _runner() -> CommandRunner:
    return app().command_runner()


@pool.command("apply")
@click.argument("pools_file", metavar="POOLS.yaml")
@click.option("--dry-run", is_flag=True, help="Show the changes without making them.")
@click.option("--fragment", "fragment_option", metavar="PATH",
              help="slurm.conf fragment for the partitions (default: config [pools] slurm_conf_fragment, "
                   "else gpupool-partitions.conf next to slurm.conf).")
@click.option("--allow-unknown-users", is_flag=True, help="Accept users that `getent passwd` does not know.")
@click.option("--fabric", "fabric_path", metavar="FILE", help="Fabric file for leaf:/switch:/group: selectors.")
@click.option("--offline", is_flag=True,
              help="With --dry-run: check against files only (--slurm-conf, --fabric, the fragment), no Slurm.")
@click.option("--slurm-conf", metavar="PATH",
              help="With --offline: slurm.conf whose nodes, GPUs (Gres=), partitions and settings are checked.")
@json_option
def apply_command(pools_file: str, dry_run: bool, fragment_option: str | None, allow_unknown_users: bool,
                  fabric_path: str | None, offline: bool, slurm_conf: str | None) -> None:
    """Make Slurm's partitions, QOS, accounts and shares match POOLS.yaml.

    --dry-run --offline previews without Slurm: every check that needs no live Slurm (limits above
    a pool's GPUs, a node in two owned pools, nodes and partitions of --slurm-conf, nodes of --fabric)
    and the objects apply would create, followed by what could not be checked offline.
    """
    ctx = app()
    if offline and not dry_run:
        raise BadRequest("--offline previews only: give it with --dry-run")
    if slurm_conf and not offline:
        raise BadRequest("--slurm-conf is read by --dry-run --offline only (a live apply asks Slurm)")
    if offline:
        report = pools_app.preview_offline(pools_file, ctx.config(), fragment_option=fragment_option,
                                           slurm_conf=slurm_conf, allow_unknown_users=allow_unknown_users,
                                           fabric_path=fabric_path, user_exists=ctx.user_exists)
        for message in report.warnings:
            warn(message)
        if ctx.json:
            emit_json(report.as_json())
        else:
            _render_apply(report, pools_file)
        return
    try:
        report = pools_app.apply(pools_file, _runner(), ctx.config(), dry_run=dry_run,
                                 fragment_option=fragment_option, allow_unknown_users=allow_unknown_users,
                                 fabric_path=fabric_path, user_exists=ctx.user_exists)
    except Unreachable as exc:
        if dry_run:  # Slurm is down or far away: say how to preview without it
            exc.args = (f"{exc.message} (to check the file without Slurm: gpupool pool apply {pools_file} "
                        "--dry-run --offline [--slurm-conf PATH])",)
        raise
    for message in report.warnings:
        warn(message)
    if app().json:
        emit_json(report.as_json())
    else:
        _render_apply(report, pools_file)
    if report.error is not None:
        applied = sum(1 for c in report.changes if c.status == "applied")
        report.error.args = (f"{report.error.message} (applied {applied} of {len(report.changes)} changes; "
                             "re-run `gpupool pool apply` to complete)",)
        raise report.error


def _render_apply(report: ApplyReport, pools_file: str) -> None:
    from rich.table import Table

    console = stdout_console()
    if report.changes:
        table = Table(title="Dry run: changes to make" if report.dry_run else "Changes", title_justify="left")
        for column in ("kind", "name", "action", "detail"):
            table.add_column(column)
        if not report.dry_run:
            table.add_column("status")
        for change in report.changes:
            row = [change.kind, change.name, change.action, change.detail]
            if not report.dry_run:
                row.append(change.status)
            table.add_row(*row)
        console.print(table)
    if report.offline:
        console.print(f"offline dry run: {len(report.changes)} change(s) would be made; nothing applied, "
                      "Slurm not asked")
        for note in report.unchecked:
            console.print(f"not checked offline: {note}", markup=False, highlight=False)
    elif report.dry_run:
        console.print(f"dry run: {len(report.changes)} change(s) would be made; nothing applied"
                      if report.changes else f"no changes: Slurm matches {pools_file}")
    elif report.error is None:
        console.print(f"applied {len(report.changes)} change(s)" if report.changes
                      else f"no changes: Slurm matches {pools_file}")
    if report.fragment_written:
        console.print(f"wrote {report.fragment_path}")


@pool.command("lua")
@click.argument("pools_file", metavar="POOLS.yaml")
@click.option("-o", "--output", metavar="PATH", help="Write job_submit.lua here (atomically; default: stdout).")
@click.option("--fabric", "fabric_path", metavar="FILE", help="Fabric file for leaf:/switch:/group: selectors.")
@click.option("--gpus-per-node", type=click.IntRange(min=1), default=8, show_default=True, metavar="N",
              help="GPUs per node of a pool without gpus_per_node.")
@click.option("--hosts-per-leaf", type=click.IntRange(min=1), metavar="N",
              help="Hosts per leaf switch: a multi-node job without --switches gets ceil(nodes/N) leaves.")
@click.option("--switch-wait", default=SWITCH_WAIT_DEFAULT.text(), show_default=True, metavar="P%|SECONDS",
              help="How long such a job may wait for its switch count: P% of its time limit (a job without one: "
                   f"{FALLBACK_SECONDS:g} s), or fixed seconds / [[H:]M:]S. Slurm caps it at "
                   "SchedulerParameters=max_switch_wait (default 300 s).")
@json_option
def lua_command(pools_file: str, output: str | None, fabric_path: str | None, gpus_per_node: int,
                hosts_per_leaf: int | None, switch_wait: str) -> None:
    """Generate Slurm's job_submit.lua from POOLS.yaml (routing, --switches, impossible requests refused).

    The pools file is read and checked as `pool apply` reads it; the plugin script
    slurm-plugins/make-job-submit-lua calls this command. With --json: one document
    {"pools_file", "output", "text"} ("text" only when not written with -o).
    """
    import sys

    from gpupool.fsutil import atomic_write_text, check_output_path

    ctx = app()
    rule = SwitchWait.parse(switch_wait)
    if output:
        check_output_path(output)  # before reading anything: a bad path is one line, nothing half-written
    text = pools_app.job_submit_lua(pools_file, ctx.config(), fabric_path=fabric_path,
                                    default_gpus_per_node=gpus_per_node, hosts_per_leaf=hosts_per_leaf,
                                    switch_wait_seconds=int(round(rule.seconds if not rule.share
                                                                  else rule.fallback_seconds)),
                                    switch_wait_share=rule.share)
    if output:
        atomic_write_text(output, text)
    if ctx.json:  # as `fabric export --json`: the text only when it was not written
        emit_json({"pools_file": pools_file, "output": output, **({} if output else {"text": text})})
    elif not output:
        sys.stdout.write(text)


@pool.command("status")
@click.argument("pools_file", metavar="[POOLS.yaml]", required=False)
@click.option("--fragment", "fragment_option", metavar="PATH", help="slurm.conf fragment listing gpupool's partitions.")
@click.option("--fabric", "fabric_path", metavar="FILE", help="Fabric file for leaf:/switch:/group: selectors.")
@json_option
def status_command(pools_file: str | None, fragment_option: str | None, fabric_path: str | None) -> None:
    """GPUs per pool (total/allocated/idle/down/borrowed), pending jobs, fair-share per account."""
    report, fragment = pools_app.status(pools_file, _runner(), app().config(), fragment_option=fragment_option,
                                        fabric_path=fabric_path)
    if app().json:
        emit_json(report.as_json())
        return
    if pools_file is None and not fragment.owned:
        warn(f"no gpupool partitions found in {fragment.path}; run `gpupool pool apply` or pass POOLS.yaml")
    _render_status(report)


def _number(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _render_status(report: StatusReport) -> None:
    from rich.table import Table

    console = stdout_console()
    pools = Table(title="Pools (GPUs)", title_justify="left")
    for column in ("pool", "role", "owners", "nodes", "total", "alloc", "idle", "down", "borrowed",
                   "running", "pending"):
        pools.add_column(column, justify="right" if column in {"total", "alloc", "idle", "down", "borrowed",
                                                                 "running", "pending"} else "left")
    for p in report.pools:
        pools.add_row(p.name, p.role, ",".join(p.owners) or "-", p.nodes, str(p.gpus_total), str(p.gpus_allocated),
                      str(p.gpus_idle), str(p.gpus_down), str(p.gpus_borrowed), str(p.jobs_running),
                      f"{p.jobs_pending} ({p.gpus_pending} GPUs)" if p.jobs_pending else "0")
    console.print(pools)
    lenders = [p for p in report.pools if p.lending_partition is not None]
    if lenders:
        lending = Table(title="Lending (GPUs)", title_justify="left")
        for column in ("pool", "through", "lent", "lend limit", "min runtime", "grace"):
            lending.add_column(column, justify="left" if column in {"pool", "through"} else "right")
        for p in lenders:
            lending.add_row(p.name, p.lending_partition or "-", str(p.gpus_lent),
                            "-" if p.lend_limit is None else str(p.lend_limit),
                            "-" if p.min_runtime_s is None else f"{p.min_runtime_s}s",
                            "-" if p.grace_time_s is None else f"{p.grace_time_s}s")
        console.print(lending)
    limited = [a for a in report.accounts if a.borrow_limit is not None or a.quota or a.gpus_borrowed]
    if limited:
        usage = Table(title="Borrowing and quotas (GPUs)", title_justify="left")
        for column in ("account", "borrowed", "borrow limit", "quota used"):
            usage.add_column(column, justify="left" if column == "account" else "right")
        for a in limited:
            quota = ", ".join(f"{q.pool} {q.gpus_used}/{q.gpus_quota}" for q in a.quota) or "-"
            usage.add_row(a.name, str(a.gpus_borrowed), "-" if a.borrow_limit is None else str(a.borrow_limit), quota)
        console.print(usage)
    accounts = Table(title="Fair-share", title_justify="left")
    for column in ("account", "parent", "shares", "norm shares", "usage", "eff. usage", "fair-share", "level fs"):
        accounts.add_column(column, justify="left" if column in {"account", "parent"} else "right")
    for a in report.accounts:
        accounts.add_row(a.name, a.parent or "-", "-" if a.shares is None else str(a.shares), _number(a.norm_shares),
                         _number(a.raw_usage, 0), _number(a.effective_usage), _number(a.fairshare),
                         _number(a.level_fs))
    console.print(accounts)


def _register_report() -> None:
    from gpupool.cli.pool_report import report_command

    pool.add_command(report_command)


_register_report()
