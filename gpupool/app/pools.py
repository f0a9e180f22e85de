"""`gpupool pool apply|status` as use cases: the pools file, the config, the fabric (for
leaf:/switch:/group: selectors) and Slurm's live state, composed for the `pools` package."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from gpupool.config import Config, resolve_fabric_path
from gpupool.pools.apply import ApplyOptions, ApplyReport, apply_pools
from gpupool.pools.fragment import Fragment, fragment_path, read_fragment
from gpupool.pools.nodes import resolve_nodes
from gpupool.pools.schema import PoolsFile, load_pools_file
from gpupool.pools.slurm_state import CommandRunner, parse_config
from gpupool.pools.status import StatusReport, collect_status

if TYPE_CHECKING:
    from gpupool.fabric.compiled import (
        CompiledFabric,  # numpy: only when a selector needs the fabric
    )


def fabric_loader(fabric_path: str | None, config: Config) -> Callable[[], CompiledFabric]:
    """Loads the fabric only when a selector needs it (numba is not loaded for plain hostlists)."""
    def load() -> CompiledFabric:
        from gpupool.fabric.compiled import load_compiled

        return load_compiled(resolve_fabric_path(fabric_path, config))

    return load


def config_fragment(config: Config) -> str | None:
    value = config.section("pools").get("slurm_conf_fragment")
    return value if isinstance(value, str) and value else None


def pool_hosts(spec: PoolsFile, fabric_path: str | None, config: Config) -> dict[str, list[str]]:
    """Each pool's host names (selectors resolved on the fabric, loaded only when one needs it)."""
    loader = fabric_loader(fabric_path, config)
    hosts: dict[str, list[str]] = {}
    for pool_spec in spec.pools.values():
        try:
            hosts[pool_spec.name] = resolve_nodes(pool_spec.nodes, loader)
        except ValueError as exc:
            raise spec.error(("pools", pool_spec.name, "nodes"), str(exc)) from None
    return hosts


def live_fragment_path(run: CommandRunner) -> str:
    """gpupool's slurm.conf fragment next to the SLURM_CONF that Slurm reports."""
    conf = parse_config(run(["scontrol", "show", "config"]))
    return fragment_path(None, None, conf.get("SLURM_CONF"))


def apply(pools_file: str, run: CommandRunner, config: Config, *, dry_run: bool, fragment_option: str | None,
          allow_unknown_users: bool, fabric_path: str | None,
          user_exists: Callable[[str], bool] | None = None) -> ApplyReport:
    """Make Slurm match the pools file (or only list the changes with `dry_run`)."""
    spec = load_pools_file(pools_file)
    configured = config_fragment(config)
    options = ApplyOptions(dry_run=dry_run, fragment_path=fragment_option,
                           allow_unknown_users=allow_unknown_users, fabric=fabric_loader(fabric_path, config))
    if user_exists is not None:
        options.user_exists = user_exists
    return apply_pools(spec, run, options,
                       lambda live: fragment_path(None, configured, live.config.get("SLURM_CONF")))


def preview_offline(pools_file: str, config: Config, *, fragment_option: str | None, slurm_conf: str | None,
                    allow_unknown_users: bool, fabric_path: str | None,
                    user_exists: Callable[[str], bool] | None = None) -> ApplyReport:
    """`pool apply --dry-run --offline`: the pools file checked against files only (no Slurm)."""
    from gpupool.pools.apply import preview_offline as preview
    from gpupool.pools.offline import read_slurm_conf

    spec = load_pools_file(pools_file)
    conf = read_slurm_conf(slurm_conf) if slurm_conf else None
    options = ApplyOptions(dry_run=True, allow_unknown_users=allow_unknown_users,
                           fabric=fabric_loader(fabric_path, config))
    if user_exists is not None:
        options.user_exists = user_exists
    if fabric_path:  # named: every pool host must be a host of that fabric
        hosts = set(options.fabric().host_names) if options.fabric else set()
        for name, pool_hosts_ in pool_hosts(spec, fabric_path, config).items():
            outside = [h for h in pool_hosts_ if h not in hosts]
            if outside:
                shown = ", ".join(outside[:5]) + (f" and {len(outside) - 5} more" if len(outside) > 5 else "")
                raise spec.error(("pools", name, "nodes"), f"node(s) not in the fabric {fabric_path}: {shown}")
    return preview(spec, options, conf, fragment_path(fragment_option, config_fragment(config), slurm_conf))


def status(pools_file: str | None, run: CommandRunner, config: Config, *, fragment_option: str | None,
           fabric_path: str | None) -> tuple[StatusReport, Fragment]:
    """GPUs per pool, pending jobs and fair share, for the pools file or gpupool's partitions
    (listed in the slurm.conf fragment, returned too)."""
    spec = load_pools_file(pools_file) if pools_file else None
    hosts = None
    path = fragment_option or config_fragment(config) or ""
    if spec is not None:
        hosts = pool_hosts(spec, fabric_path, config)
    elif not path:
        path = live_fragment_path(run)
    fragment = read_fragment(path) if path else read_fragment("/nonexistent")
    return collect_status(run, spec=spec, hosts=hosts, fragment=fragment), fragment


def job_submit_lua(pools_file: str, config: Config, *, fabric_path: str | None = None,
                   default_gpus_per_node: int = 8, hosts_per_leaf: int | None = None,
                   switch_wait_seconds: int = 300, switch_wait_share: float = 0.0) -> str:
    """`pool lua`: Slurm's job_submit.lua for the pools file, read and checked as `pool apply` reads
    it (its loader and schema), pools' hosts resolved as `pool apply` resolves them."""
    from gpupool.pools.lua import render_job_submit_lua

    spec = load_pools_file(pools_file)
    return render_job_submit_lua(spec, pool_hosts(spec, fabric_path, config),
                                 default_gpus_per_node=default_gpus_per_node, hosts_per_leaf=hosts_per_leaf,
                                 switch_wait_seconds=switch_wait_seconds, switch_wait_share=switch_wait_share,
                                 source_name=pools_file)
