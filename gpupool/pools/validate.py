"""Checks of a pools file against the world: Slurm's nodes, the fabric, the user database.

Every failure is an BadInput (exit 4) that reads `file:line: key: message`.
"""

from __future__ import annotations

import pwd
from collections.abc import Callable
from dataclasses import dataclass

from gpupool.errors import param
from gpupool.pools.nodes import FabricLoader, resolve_nodes
from gpupool.pools.schema import PoolsFile, PoolSpec, lend_limit_gpus
from gpupool.pools.slurm_state import LiveState

UserLookup = Callable[[str], bool]


def unix_user_exists(name: str) -> bool:
    """True when NSS knows the user (what `getent passwd NAME` answers)."""
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@dataclass(frozen=True)
class ResolvedPools:
    """Host names and GPU counts of each pool, after validation."""

    hosts: dict[str, list[str]]
    gpus: dict[str, int]
    gpus_per_host: dict[str, int]

    def lend_limit_gpus(self, pool: PoolSpec) -> int | None:
        """The pool's lend_limit in GPUs (a percentage rounds down); None = no limit."""
        return lend_limit_gpus(pool, self.gpus.get(pool.name, 0))

    def lendable_gpus(self, pool: PoolSpec) -> int:
        limit = self.lend_limit_gpus(pool)
        size = self.gpus.get(pool.name, 0)
        return size if limit is None else min(limit, size)

    def union_gpus(self, pools: list[str]) -> int:
        seen: set[str] = set()
        for name in pools:
            seen.update(self.hosts[name])
        return sum(self.gpus_per_host.get(h, 0) for h in seen)


def resolve_and_validate(spec: PoolsFile, live: LiveState | None, fabric: FabricLoader | None, *,
                         user_exists: UserLookup = unix_user_exists,
                         allow_unknown_users: bool = False, slurm_accounts_known: bool = True,
                         gpus_per_host: int | None = None) -> ResolvedPools:
    """Resolve pool nodes and check the file against Slurm (when `live` is given) and the user base.

    `slurm_accounts_known=False`: `live` comes from files (an offline preview), which hold no
    accounts, so a parent account outside the pools file is not checked. `gpus_per_host`: the GPUs
    of a host neither the file nor Slurm counts (a simulation's --gpus-per-host), so limits are checked."""
    hosts = _resolve_hosts(spec, fabric)
    _check_nodes_known(spec, hosts, live)
    _check_owned_overlap(spec, hosts)
    host_gpus = _gpus_per_host(spec, hosts, live, gpus_per_host or 0)
    gpus = {name: sum(host_gpus.get(h, 0) for h in hs) for name, hs in hosts.items()}
    resolved = ResolvedPools(hosts, gpus, host_gpus)
    _check_queue_limits(spec, resolved)
    _check_lending_limits(spec, resolved)
    _check_parents(spec, live if slurm_accounts_known else None)
    if not (allow_unknown_users or spec.allow_unknown_users):
        _check_users(spec, live, user_exists)
    return resolved


def _resolve_hosts(spec: PoolsFile, fabric: FabricLoader | None) -> dict[str, list[str]]:
    hosts: dict[str, list[str]] = {}
    for pool in spec.pools.values():
        try:
            hosts[pool.name] = resolve_nodes(pool.nodes, fabric)
        except ValueError as exc:
            raise spec.error(("pools", pool.name, "nodes"), str(exc)) from None
        if not hosts[pool.name]:
            raise spec.error(("pools", pool.name, "nodes"), "selects no hosts")
    return hosts


def _check_nodes_known(spec: PoolsFile, hosts: dict[str, list[str]], live: LiveState | None) -> None:
    if live is None:
        return
    for name, pool_hosts in hosts.items():
        unknown = [h for h in pool_hosts if h not in live.nodes]
        if unknown:
            shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
            raise spec.error(("pools", name, "nodes"), f"unknown node(s) not in Slurm's node list: {shown}")
        pool = spec.pools[name]
        if pool.gpu_type is not None:
            for host in pool_hosts:
                types = live.nodes[host].gpu_types
                if types and pool.gpu_type not in types:
                    raise spec.error(("pools", name, "gpu_type"),
                                     f"node {host} has GPUs of type {', '.join(types)}, not {pool.gpu_type}")


def _check_owned_overlap(spec: PoolsFile, hosts: dict[str, list[str]]) -> None:
    owner_of: dict[str, str] = {}
    for pool in spec.pools.values():
        if not pool.owners:
            continue
        for host in hosts[pool.name]:
            if host in owner_of:
                raise spec.error(("pools", pool.name, "nodes"),
                                 f"node {host} is also in owned pool {owner_of[host]!r}: a node can have one owner")
            owner_of[host] = pool.name


def _gpus_per_host(spec: PoolsFile, hosts: dict[str, list[str]], live: LiveState | None,
                   default: int = 0) -> dict[str, int]:
    result: dict[str, int] = {}
    for pool in spec.pools.values():
        for host in hosts[pool.name]:
            if pool.gpus_per_node is not None:
                result[host] = pool.gpus_per_node
            elif live is not None and host in live.nodes:
                result[host] = live.nodes[host].gpus
            else:
                result.setdefault(host, default)
    return result


def _check_queue_limits(spec: PoolsFile, resolved: ResolvedPools) -> None:
    for queue in spec.queues.values():
        pools = list(queue.pools) or list(spec.pools)
        size = resolved.union_gpus(pools)
        scope = f"pool(s) {', '.join(pools)}" if queue.pools else "all pools"
        if size == 0:
            continue  # GPU counts unknown (no Slurm, no gpus_per_node): nothing to compare with
        if queue.max_gpus is not None and queue.max_gpus > size:
            raise spec.error(("queues", queue.name, "max_gpus"),
                             f"{queue.max_gpus} GPUs is more than the {size} GPUs of {scope}")
        if queue.max_gpus_per_user is not None and queue.max_gpus_per_user > size:
            raise spec.error(("queues", queue.name, "max_gpus_per_user"),
                             f"{queue.max_gpus_per_user} GPUs is more than the {size} GPUs of {scope}")
        if (queue.max_gpus is not None and queue.max_gpus_per_user is not None
                and queue.max_gpus_per_user > queue.max_gpus):
            raise spec.error(("queues", queue.name, "max_gpus_per_user"),
                             f"{queue.max_gpus_per_user} is more than the queue's max_gpus ({queue.max_gpus})")


def _check_lending_limits(spec: PoolsFile, resolved: ResolvedPools) -> None:
    """Limits larger than what they limit are typos that Slurm would silently accept."""
    for pool in spec.pools.values():
        size = resolved.gpus.get(pool.name, 0)
        if size == 0:
            continue  # GPU count unknown: nothing to compare with
        if pool.lend_limit is not None and not pool.lend_limit_percent and pool.lend_limit > size:
            raise spec.error(("pools", pool.name, "lend_limit"),
                             f"lend_limit {pool.lend_limit} GPUs is more than the pool's {size} GPUs")
        quota_sum = sum(gpus for _, gpus in pool.quota)
        if quota_sum > size:
            raise spec.error(("pools", pool.name, "quota"),
                             f"the quotas add up to {quota_sum} GPUs, more than the pool's {size} GPUs "
                             "(quota is protected capacity: it must fit on the shared nodes)")
    for account in spec.accounts.values():
        if account.borrow_limit is None:
            continue
        # A quota pool lends to its own accounts too: above quota they borrow there like anyone.
        lenders = [p for p in spec.lending_pools() if account.name not in p.owners or p.quota]
        if not lenders:
            raise spec.error(("accounts", account.name, "borrow_limit"),
                             "no pool lends to this account (it owns every lending pool)")
        if any(resolved.gpus.get(p.name, 0) == 0 for p in lenders):
            continue
        lendable = sum(resolved.lendable_gpus(p) for p in lenders)
        if account.borrow_limit > lendable:
            raise spec.error(("accounts", account.name, "borrow_limit"),
                             f"borrow_limit {account.borrow_limit} GPUs is more than the {lendable} GPUs the other "
                             f"pools may lend ({', '.join(p.name for p in lenders)})")


def _check_parents(spec: PoolsFile, live: LiveState | None) -> None:
    for account in spec.accounts.values():
        parent = account.parent
        if parent in spec.accounts or parent == "root":
            continue
        if live is not None and parent not in live.accounts:
            raise spec.error(("accounts", account.name, "parent"),
                             f"parent account {parent!r} is neither in this file nor in Slurm")


def _check_users(spec: PoolsFile, live: LiveState | None, user_exists: UserLookup) -> None:
    known_to_slurm = live.users if live is not None else set()
    for account in spec.accounts.values():
        for index, user in enumerate(account.users):
            if user in known_to_slurm or user_exists(user):
                continue
            raise spec.error(("accounts", account.name, "users", str(index)),
                             f"unknown user {user!r} (not in `getent passwd` nor in Slurm); "
                             f"set options.allow_unknown_users or pass {param('allow_unknown_users')} to accept it")
