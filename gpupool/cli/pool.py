"""`gpupool pool apply|status`: declarative GPU pools, borrowing and fair-share queues."""

from __future__ import annotations

from typing import Any

import click

from gpupool.cli.context import app, json_option
from gpupool.cli.render import emit_json, stdout_console, warn
from gpupool.config import resolve_fabric_path
from gpupool.pools.apply import ApplyOptions, ApplyReport, apply_pools
from gpupool.pools.fragment import fragment_path, read_fragment
from gpupool.pools.live import CommandRunner, parse_config, slurm_runner
from gpupool.pools.nodes import resolve_nodes
from gpupool.pools.schema import load_pools_file
from gpupool.pools.status import StatusReport, collect_status


@click.group()
def pool() -> None:
    """Declarative GPU pools and fair-share queues."""


def _runner() -> CommandRunner:
    return app().slurm_runner or slurm_runner()


def _fabric_loader(fabric_path: str | None) -> Any:
    def load() -> Any:
        from gpupool.fabric.compiled import load_compiled

        return load_compiled(resolve_fabric_path(fabric_path, app().config()))

    return load


def _config_fragment() -> str | None:
    value = app().config().section("pools").get("slurm_conf_fragment")
    return value if isinstance(value, str) and value else None


@pool.command("apply")
@click.argument("pools_file", metavar="POOLS.yaml")
@click.option("--dry-run", is_flag=True, help="Show the changes without making them.")
@click.option("--fragment", "fragment_option", metavar="PATH",
              help="slurm.conf fragment for the partitions (default: config [pools] slurm_conf_fragment, "
                   "else gpupool-partitions.conf next to slurm.conf).")
@click.option("--allow-unknown-users", is_flag=True, help="Accept users that `getent passwd` does not know.")
@click.option("--fabric", "fabric_path", metavar="FILE", help="Fabric file for leaf:/switch:/group: selectors.")
@json_option
def apply_command(pools_file: str, dry_run: bool, fragment_option: str | None, allow_unknown_users: bool,
                  fabric_path: str | None) -> None:
    """Make Slurm's partitions, QOS, accounts and shares match POOLS.yaml."""
    spec = load_pools_file(pools_file)
    config_fragment = _config_fragment()
    options = ApplyOptions(dry_run=dry_run, fragment_path=fragment_option,
                           allow_unknown_users=allow_unknown_users, fabric=_fabric_loader(fabric_path))
    if app().user_exists is not None:
        options.user_exists = app().user_exists
    report = apply_pools(spec, _runner(), options,
                         lambda live: fragment_path(None, config_fragment, live.config.get("SLURM_CONF")))
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
    if report.dry_run:
        console.print(f"dry run: {len(report.changes)} change(s) would be made; nothing applied"
                      if report.changes else f"no changes: Slurm matches {pools_file}")
    elif report.error is None:
        console.print(f"applied {len(report.changes)} change(s)" if report.changes
                      else f"no changes: Slurm matches {pools_file}")
    if report.fragment_written:
        console.print(f"wrote {report.fragment_path}")


@pool.command("status")
@click.argument("pools_file", metavar="[POOLS.yaml]", required=False)
@click.option("--fragment", "fragment_option", metavar="PATH", help="slurm.conf fragment listing gpupool's partitions.")
@click.option("--fabric", "fabric_path", metavar="FILE", help="Fabric file for leaf:/switch:/group: selectors.")
@json_option
def status_command(pools_file: str | None, fragment_option: str | None, fabric_path: str | None) -> None:
    """GPUs per pool (total/allocated/idle/down/borrowed), pending jobs, fair-share per account."""
    run = _runner()
    spec = load_pools_file(pools_file) if pools_file else None
    hosts = None
    if spec is not None:
        loader = _fabric_loader(fabric_path)
        hosts = {}
        for pool_spec in spec.pools.values():
            try:
                hosts[pool_spec.name] = resolve_nodes(pool_spec.nodes, loader)
            except ValueError as exc:
                raise spec.error(("pools", pool_spec.name, "nodes"), str(exc)) from None
        path = fragment_option or _config_fragment() or ""
    else:
        path = fragment_option or _config_fragment() or ""
        if not path:
            conf = parse_config(run(["scontrol", "show", "config"]))
            path = fragment_path(None, None, conf.get("SLURM_CONF"))
    fragment = read_fragment(path) if path else read_fragment("/nonexistent")
    report = collect_status(run, spec=spec, hosts=hosts, fragment=fragment)
    if app().json:
        emit_json(report.as_json())
        return
    if spec is None and not fragment.owned:
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
    accounts = Table(title="Fair-share", title_justify="left")
    for column in ("account", "parent", "shares", "norm shares", "usage", "eff. usage", "fair-share", "level fs"):
        accounts.add_column(column, justify="left" if column in {"account", "parent"} else "right")
    for a in report.accounts:
        accounts.add_row(a.name, a.parent or "-", "-" if a.shares is None else str(a.shares), _number(a.norm_shares),
                         _number(a.raw_usage, 0), _number(a.effective_usage), _number(a.fairshare),
                         _number(a.level_fs))
    console.print(accounts)
