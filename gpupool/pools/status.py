"""`pool status`: GPUs per pool (total/allocated/idle/down/borrowed), queues, fair-share standing."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from gpupool.hostlist import expand as expand_hostlist
from gpupool.pools.fragment import Fragment
from gpupool.pools.schema import PoolsFile, lend_limit_gpus, quota_qos_name
from gpupool.pools.slurm_state import (
    CommandRunner,
    Job,
    SlurmNode,
    parse_kv_line,
    parse_nodes,
    parse_partitions,
    parse_sshare,
    read_jobs,
)


@dataclass(frozen=True)
class PoolStatus:
    name: str
    role: str  # owned | shared | scavenger
    nodes: str
    owners: list[str]
    gpus_total: int
    gpus_allocated: int
    gpus_idle: int
    gpus_down: int
    gpus_borrowed: int  # held on this pool's nodes by jobs of accounts that do not own it
    jobs_running: int
    jobs_pending: int
    gpus_pending: int
    # Lending (docs/pools.md); None/0 when the pools file does not say (or no file was given).
    lending_partition: str | None = None  # where this pool lends: the scavenger or its own S-P
    gpus_lent: int = 0  # GPUs on this pool's nodes held by jobs running in lending partitions
    lend_limit: int | None = None  # GPUs that may be lent at once (Slurm: GrpTRES of the lending QOS)
    min_runtime_s: int | None = None  # a borrower's protected runtime (PreemptExemptTime)
    grace_time_s: int | None = None

    def as_json(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class QuotaUse:
    pool: str
    qos: str
    gpus_quota: int
    gpus_used: int  # GPUs of the account's running jobs in the quota pool's partition (protected)


@dataclass(frozen=True)
class AccountStatus:
    name: str
    parent: str
    shares: int | None
    norm_shares: float | None
    raw_usage: float | None
    effective_usage: float | None
    fairshare: float | None  # Slurm's fair-share factor for the account (users' factors when per user)
    level_fs: float | None
    gpus_borrowed: int = 0  # GPUs of the account's running jobs in lending partitions
    borrow_limit: int | None = None
    quota: tuple[QuotaUse, ...] = ()

    def as_json(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class PoolDefinition:
    name: str
    nodes: list[str]
    owners: list[str]
    role: str


def definitions_from_file(spec: PoolsFile, hosts: dict[str, list[str]], partitions: dict[str, dict[str, str]]
                          ) -> list[PoolDefinition]:
    result = [PoolDefinition(p.name, hosts[p.name], list(p.owners), "owned" if p.owners else "shared")
              for p in spec.pools.values()]
    if spec.borrowing_active():
        names = [spec.borrowing.partition]
        names += sorted({spec.lending_partition(p.name) for p in spec.lending_pools()} - set(names))
        for name in names:
            live = partitions.get(name)
            nodes = expand_hostlist(live["Nodes"]) if live and live.get("Nodes") not in {None, "", "(null)"} else []
            result.append(PoolDefinition(name, nodes, [], "scavenger"))
    return result


def definitions_from_fragment(fragment: Fragment, partitions: dict[str, dict[str, str]]) -> list[PoolDefinition]:
    """Pools are the partitions gpupool owns; the one restricted to a QOS is the scavenger."""
    result = []
    # Partitions an interrupted apply created (journal) count once Slurm has them.
    owned = set(fragment.lines) | {n for n in fragment.intended if n in partitions}
    for name in sorted(owned):
        attrs = partitions.get(name) or parse_kv_line(fragment.lines[name])
        nodes_text = attrs.get("Nodes", "")
        nodes = expand_hostlist(nodes_text) if nodes_text and nodes_text != "(null)" else []
        accounts = [a for a in attrs.get("AllowAccounts", "ALL").split(",") if a and a != "ALL"]
        scavenger = attrs.get("AllowQos", "ALL") != "ALL" and attrs.get("PreemptMode", "").upper() == "REQUEUE"
        role = "scavenger" if scavenger else ("owned" if accounts else "shared")
        result.append(PoolDefinition(name, nodes, accounts, role))
    return result


@dataclass(frozen=True)
class GpuTally:
    """GPUs on a set of hosts now (the one tally `pool status` and the pool metrics share)."""

    total: int
    allocated: int
    down: int  # idle GPUs on down or draining nodes

    @property
    def idle(self) -> int:
        return max(0, self.total - self.allocated - self.down)


def gpu_tally(hosts: Iterable[str], nodes: dict[str, SlurmNode]) -> GpuTally:
    """Configured, allocated and down GPUs over `hosts`; hosts Slurm does not report count for nothing."""
    total = allocated = down = 0
    for host in hosts:
        node = nodes.get(host)
        if node is None:
            continue
        total += node.gpus
        used = min(node.gpus_used, node.gpus)
        allocated += used
        if node.down:
            down += node.gpus - used  # GPUs still busy on a draining node count as allocated
    return GpuTally(total, allocated, down)


def pool_statuses(definitions: list[PoolDefinition], nodes: dict[str, SlurmNode], jobs: list[Job]
                  ) -> list[PoolStatus]:
    from gpupool.pools.nodes import fold_hostlist

    result = []
    for pool in definitions:
        members = set(pool.nodes)
        tally = gpu_tally(pool.nodes, nodes)
        borrowed = 0
        running = pending = pending_gpus = 0
        owners = set(pool.owners)
        for job in jobs:
            if job.running:
                held = sum(g for h, g in job.node_gpus.items() if h in members)
                if pool.role == "scavenger":
                    if pool.name in job.partitions:
                        borrowed += held
                elif owners and job.account not in owners:
                    borrowed += held
                if pool.name in job.partitions:
                    running += 1
            elif job.pending and pool.name in job.partitions:
                pending += 1
                pending_gpus += job.gpus
        result.append(PoolStatus(
            name=pool.name, role=pool.role, nodes=fold_hostlist(pool.nodes), owners=sorted(pool.owners),
            gpus_total=tally.total, gpus_allocated=tally.allocated, gpus_idle=tally.idle,
            gpus_down=tally.down, gpus_borrowed=borrowed, jobs_running=running, jobs_pending=pending,
            gpus_pending=pending_gpus))
    return result


def _float(value: str) -> float | None:
    """A number from sshare; None when empty or not finite (`inf` LevelFS: no usage yet)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _int(value: str) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def account_statuses(sshare_rows: list[dict[str, object]], accounts: set[str] | None) -> list[AccountStatus]:
    """Account rows of `sshare -a -l` (with `_depth`); `accounts` limits them to a set (None = all).

    Under Slurm's fair tree only user rows carry a FairShare factor: an account reports the highest
    factor among its users, i.e. what its best-placed job gets.
    """
    parents: list[str] = []
    rows: list[tuple[dict[str, object], str]] = []
    user_factor: dict[str, float] = {}
    for row in sshare_rows:
        name = str(row.get("Account", ""))
        if row.get("User"):
            factor = _float(str(row.get("FairShare", "")))
            if factor is not None:
                user_factor[name] = max(user_factor.get(name, 0.0), factor)
            continue
        depth = row.get("_depth", 0)
        parents = parents[: depth if isinstance(depth, int) else 0]
        parent = parents[-1] if parents else ""
        parents.append(name)
        rows.append((row, parent))
    result = []
    for row, parent in rows:
        name = str(row.get("Account", ""))
        if name == "root" or (accounts is not None and name not in accounts):
            continue
        own = _float(str(row.get("FairShare", "")))
        result.append(AccountStatus(
            name=name, parent=parent, shares=_int(str(row.get("RawShares", ""))),
            norm_shares=_float(str(row.get("NormShares", ""))), raw_usage=_float(str(row.get("RawUsage", ""))),
            effective_usage=_float(str(row.get("EffectvUsage", ""))),
            fairshare=own if own is not None else user_factor.get(name),
            level_fs=_float(str(row.get("LevelFS", "")))))
    return result


def parse_sshare_tree(text: str) -> list[dict[str, object]]:
    """Like parse_sshare, plus `_depth` from the leading spaces sshare puts before account names."""
    lines = [line for line in text.splitlines() if line.strip()]
    rows: list[dict[str, object]] = []
    parsed = parse_sshare(text)
    for raw, row in zip(lines[1:], parsed, strict=False):
        account_field = raw.split("|", 1)[0]
        with_depth: dict[str, object] = dict(row)
        with_depth["_depth"] = len(account_field) - len(account_field.lstrip(" "))
        rows.append(with_depth)
    return rows


@dataclass(frozen=True)
class StatusReport:
    pools: list[PoolStatus]
    accounts: list[AccountStatus]

    def as_json(self) -> dict[str, object]:
        return {"pools": [p.as_json() for p in self.pools], "accounts": [a.as_json() for a in self.accounts]}


def collect_status(run: CommandRunner, *, spec: PoolsFile | None, hosts: dict[str, list[str]] | None,
                   fragment: Fragment) -> StatusReport:
    nodes = parse_nodes(run(["scontrol", "-o", "-d", "show", "node"]))
    partitions = parse_partitions(run(["scontrol", "-o", "show", "partition"]))
    jobs = read_jobs(run)
    if spec is not None and hosts is not None:
        definitions = definitions_from_file(spec, hosts, partitions)
        accounts: set[str] | None = set(spec.accounts)
    else:
        definitions = definitions_from_fragment(fragment, partitions)
        accounts = {a for d in definitions for a in d.owners} or None
    rows = parse_sshare_tree(run(["sshare", "-P", "-a", "-l"]))
    pools, account_rows = pool_statuses(definitions, nodes, jobs), account_statuses(rows, accounts)
    lending = {d.name for d in definitions if d.role == "scavenger"}
    if spec is not None:
        pools = [with_lending(spec, p, jobs, nodes, lending) for p in pools]
        account_rows = [with_borrowing(spec, a, jobs, lending) for a in account_rows]
    return StatusReport(pools, account_rows)


def _held(job: Job, hosts: set[str] | None = None) -> int:
    return sum(g for h, g in job.node_gpus.items() if hosts is None or h in hosts)


def with_lending(spec: PoolsFile, pool: PoolStatus, jobs: list[Job], nodes: dict[str, SlurmNode],
                 lending: set[str]) -> PoolStatus:
    """A pool's lent GPUs against its lend_limit (what the lending QOS's GrpTRES counts)."""
    from dataclasses import replace

    from gpupool.hostlist import expand as expand_hostlist

    rules = spec.pools.get(pool.name)
    if rules is None or not spec.borrowing_active() or not (rules.owners and rules.lend):
        return pool
    members = set(expand_hostlist(pool.nodes)) if pool.nodes else set()
    lent = sum(_held(j, members) for j in jobs if j.running and set(j.partitions) & lending)
    return replace(pool, lending_partition=spec.lending_partition(pool.name), gpus_lent=lent,
                   lend_limit=lend_limit_gpus(rules, pool.gpus_total), min_runtime_s=rules.min_runtime,
                   grace_time_s=rules.grace_time)


def with_borrowing(spec: PoolsFile, account: AccountStatus, jobs: list[Job], lending: set[str]) -> AccountStatus:
    """An account's borrowed GPUs against its borrow_limit, and its use of each quota."""
    from dataclasses import replace

    rules = spec.accounts.get(account.name)
    if rules is None:
        return account
    mine = [j for j in jobs if j.running and j.account == account.name]
    borrowed = sum(_held(j) for j in mine if set(j.partitions) & lending)
    quota = tuple(
        QuotaUse(pool=p.name, qos=quota_qos_name(p.name, account.name), gpus_quota=gpus,
                 gpus_used=sum(_held(j) for j in mine if p.name in j.partitions))
        for p in spec.pools.values() for name, gpus in p.quota if name == account.name)
    return replace(account, gpus_borrowed=borrowed, borrow_limit=rules.borrow_limit, quota=quota)
