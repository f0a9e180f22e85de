"""Desired Slurm objects from a pools file, and the ordered list of changes that gets Slurm there.

Nothing here talks to Slurm: `diff` compares plain data (the desired objects and a LiveState) and
returns Change records carrying the exact scontrol/sacctmgr command lines that apply them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from gpupool.hostlist import expand as expand_hostlist
from gpupool.hostlist import fold as fold_hostlist
from gpupool.pools.fragment import Fragment
from gpupool.pools.schema import (
    PoolsFile,
    borrow_qos_name,
    format_time_minutes,
    format_time_seconds,
    lending_object_name,
    quota_qos_name,
)
from gpupool.pools.slurm_state import MANAGED_MARK, LiveState
from gpupool.pools.validate import ResolvedPools
from gpupool.slurm.duration import DurationError, parse_minutes, parse_seconds


@dataclass
class Change:
    kind: str  # partition | qos | account | user
    name: str
    action: str  # create | modify | delete
    detail: str
    commands: list[list[str]] = field(default_factory=list)
    status: str = "planned"  # planned | applied | failed | pending

    def as_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "action": self.action, "detail": self.detail,
                "status": self.status, "commands": [" ".join(c) for c in self.commands]}


@dataclass(frozen=True)
class QosWant:
    name: str
    priority: int
    max_gpus: int | None
    max_gpus_per_user: int | None
    max_wall: int | None
    preempt: frozenset[str]
    preempt_mode: str  # "cluster" = Slurm's default
    preempt_exempt: int | None = None  # seconds (PreemptExemptTime); None = unset
    grace: int | None = None  # seconds (GraceTime); None = 0


@dataclass(frozen=True)
class AccountWant:
    name: str
    parent: str
    fairshare: int
    qos: frozenset[str]
    default_qos: str | None
    organization: str
    users: tuple[str, ...]
    qos_forbidden: frozenset[str] = frozenset()  # QOS to take off the account's list (QOS-=)


@dataclass
class Desired:
    cluster: str
    partitions: dict[str, dict[str, str]]  # name -> Slurm attributes, in command order
    qos: dict[str, QosWant]
    accounts: dict[str, AccountWant]


# ---------------------------------------------------------------------------
# Desired state
# ---------------------------------------------------------------------------

def build_desired(spec: PoolsFile, resolved: ResolvedPools, cluster: str) -> Desired:
    partitions: dict[str, dict[str, str]] = {}
    qos: dict[str, QosWant] = {}
    borrower_queues = spec.borrower_queues() if spec.borrowing_active() else ()
    for pool in spec.pools.values():
        partitions[pool.name] = {
            "Nodes": fold_hostlist(resolved.hosts[pool.name]),
            "AllowAccounts": ",".join(sorted(pool.owners)) if pool.owners else "ALL",
            "PriorityTier": str(pool.priority_tier),
            "MaxTime": format_time_minutes(pool.max_time),
            "Default": "YES" if pool.default else "NO",
            "State": "UP",
        }
        if pool.quota:
            # Within quota: only the quota QOS run here, each capped by GrpTRES at its account's quota.
            names = [quota_qos_name(pool.name, account) for account, _ in pool.quota]
            partitions[pool.name]["AllowQos"] = ",".join(sorted(names))
            for (_, gpus), name in zip(pool.quota, names, strict=True):
                qos[name] = QosWant(name, 0, gpus, None, None, frozenset(borrower_queues), "cluster")
    borrowing = spec.borrowing
    if spec.borrowing_active():
        allow_qos = ",".join(sorted(borrower_queues))
        grace = borrowing.grace_time
        plain = [p for p in spec.lending_pools() if not p.has_lending_rules()]
        shared_lent = sorted({h for p in plain for h in resolved.hosts[p.name]})
        if shared_lent:
            partitions[borrowing.partition] = {
                "Nodes": fold_hostlist(shared_lent),
                "AllowAccounts": "ALL",
                "AllowQos": allow_qos,
                "PriorityTier": str(borrowing.priority_tier),
                "MaxTime": format_time_minutes(borrowing.max_time),
                "PreemptMode": "REQUEUE",
                "Default": "NO",
                "State": "UP",
            }
        for pool in spec.lending_pools():
            if not pool.has_lending_rules():
                continue
            name = lending_object_name(borrowing.partition, pool.name)
            partitions[name] = {
                "Nodes": fold_hostlist(resolved.hosts[pool.name]),
                "AllowAccounts": "ALL",
                "AllowQos": allow_qos,
                "PriorityTier": str(borrowing.priority_tier),
                "MaxTime": format_time_minutes(borrowing.max_time),
                "PreemptMode": "REQUEUE",
                "GraceTime": str(pool.grace_time or 0),
                "QoS": name,
                "Default": "NO",
                "State": "UP",
            }
            # The partition QOS: GrpTRES caps what the pool lends, PreemptExemptTime protects young borrowers.
            qos[name] = QosWant(name, 0, resolved.lend_limit_gpus(pool), None, None, frozenset(), "requeue",
                                preempt_exempt=pool.min_runtime, grace=pool.grace_time)
        qos[borrowing.queue] = QosWant(borrowing.queue, 0, None, None, borrowing.max_time, frozenset(), "requeue",
                                       grace=grace)
        for account in spec.accounts.values():
            if account.borrow_limit is not None:
                name = borrow_qos_name(account.name)
                qos[name] = QosWant(name, 0, account.borrow_limit, None, borrowing.max_time, frozenset(),
                                    "requeue", grace=grace)
    for queue in spec.queues.values():
        qos[queue.name] = QosWant(queue.name, queue.priority, queue.max_gpus, queue.max_gpus_per_user,
                                  queue.max_time, frozenset(spec.queue_preempts(queue)),
                                  queue.preempt_mode or "cluster")
    accounts: dict[str, AccountWant] = {}
    generated = set(spec.generated_names())
    for account in spec.accounts.values():
        own = set(spec.queues)
        if spec.borrowing_active():
            own.add(borrow_qos_name(account.name) if account.borrow_limit is not None else borrowing.queue)
        own |= {quota_qos_name(p.name, account.name) for p in spec.pools.values()
                if account.name in dict(p.quota)}
        # Another account's borrow or quota QOS, or the scavenger queue past a borrow_limit, would let
        # this account around its limits.
        forbidden = (generated - own) | ({borrowing.queue} - own if account.borrow_limit is not None else set())
        accounts[account.name] = AccountWant(
            name=account.name, parent=account.parent, fairshare=account.shares, qos=frozenset(own),
            default_qos=account.default_queue, organization=account.organization or account.name,
            users=account.users, qos_forbidden=frozenset(forbidden))
    return Desired(cluster, partitions, qos, accounts)


def partition_line(name: str, attrs: dict[str, str]) -> str:
    """The slurm.conf line for a partition (the fragment's content)."""
    return " ".join([f"PartitionName={name}", *(f"{k}={v}" for k, v in attrs.items())])


# ---------------------------------------------------------------------------
# Comparison helpers (Slurm prints values differently from how they are set)
# ---------------------------------------------------------------------------

def _norm_partition(key: str, value: str) -> Any:
    value = (value or "").strip()
    if key == "Nodes":
        return frozenset() if value in {"", "(null)"} else frozenset(expand_hostlist(value))
    if key in {"AllowAccounts", "AllowQos"}:
        return frozenset(v for v in value.split(",") if v)
    if key == "QoS":
        return "" if value.upper() in {"", "N/A", "(NULL)"} else value
    if key == "GraceTime":
        return int(value) if value.isdigit() else value
    if key == "MaxTime":
        try:
            return parse_minutes(value)
        except DurationError:
            return value
    return value.upper()


def gres_gpu_limit(tres: str) -> int | None:
    match = re.search(r"(?:^|,)gres/gpu=(\d+)", tres or "")
    return int(match.group(1)) if match else None


def _live_seconds(value: str) -> int | None:
    """A sacctmgr duration (GraceTime, PreemptExemptTime) in seconds; None when unset or zero-length text."""
    if not value:
        return None
    try:
        return parse_seconds(value, plain="seconds")
    except DurationError:
        return None


def _live_wall(value: str) -> int | None:
    if not value:
        return None
    try:
        return parse_minutes(value)
    except DurationError:
        return None


def _limit_text(value: int | None) -> str:
    return "none" if value is None else str(value)


# ---------------------------------------------------------------------------
# Diff
# ---------------------------------------------------------------------------

def diff(spec: PoolsFile, desired: Desired, live: LiveState, fragment: Fragment) -> list[Change]:
    """Changes that make Slurm match `desired`, in an order that applies cleanly."""
    _check_partition_ownership(spec, desired, live, fragment)
    changes: list[Change] = []
    changes += _qos_changes(desired, live)
    changes += _account_changes(desired, live)
    changes += _user_changes(desired, live)
    changes += _partition_changes(desired, live)
    changes += _deletions(desired, live, fragment)
    return changes


def _check_partition_ownership(spec: PoolsFile, desired: Desired, live: LiveState, fragment: Fragment) -> None:
    for name in desired.partitions:
        if name in live.partitions and name not in fragment.owned:
            lender = next((p.name for p in spec.lending_pools() if spec.lending_partition(p.name) == name), None)
            key = ("pools", name) if name in spec.pools else ("pools", lender) if lender and name != \
                spec.borrowing.partition else ("borrowing", "partition")
            raise spec.error(key, f"partition {name!r} already exists and was not created by gpupool "
                                  f"(not in {fragment.path}); rename the pool, remove the partition from slurm.conf, "
                                  "or restore the fragment if gpupool made it")


def _partition_changes(desired: Desired, live: LiveState) -> list[Change]:
    changes = []
    for name, attrs in desired.partitions.items():
        current = live.partitions.get(name)
        if current is None:
            detail = " ".join(f"{k}={v}" for k, v in attrs.items())
            changes.append(Change("partition", name, "create", detail,
                                  [["scontrol", "create", f"PartitionName={name}",
                                    *(f"{k}={v}" for k, v in attrs.items())]]))
            continue
        current_by_key = {k.lower(): v for k, v in current.items()}
        differing = {k: v for k, v in attrs.items()
                     if _norm_partition(k, v) != _norm_partition(k, current_by_key.get(k.lower(), ""))}
        if differing:
            detail = "; ".join(f"{k}: {current_by_key.get(k.lower(), '') or '-'} -> {v}" for k, v in differing.items())
            changes.append(Change("partition", name, "modify", detail,
                                  [["scontrol", "update", f"PartitionName={name}",
                                    *(f"{k}={v}" for k, v in differing.items())]]))
    return changes


def _qos_order(desired: Desired) -> list[str]:
    """QOS that others preempt come first, so `Preempt=` never names a QOS not created yet."""
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in order or name in visiting or name not in desired.qos:
            return
        visiting.add(name)
        for target in sorted(desired.qos[name].preempt):
            visit(target)
        order.append(name)

    for name in sorted(desired.qos):
        visit(name)
    return order


def _qos_settings(want: QosWant) -> dict[str, str]:
    return {
        "Priority": str(want.priority),
        "GrpTRES": f"gres/gpu={want.max_gpus if want.max_gpus is not None else -1}",
        "MaxTRESPerUser": f"gres/gpu={want.max_gpus_per_user if want.max_gpus_per_user is not None else -1}",
        "MaxWall": format_time_minutes(want.max_wall) if want.max_wall is not None else "-1",
        "PreemptMode": want.preempt_mode,
        "Preempt": ",".join(sorted(want.preempt)),
        "PreemptExemptTime": format_time_seconds(want.preempt_exempt) if want.preempt_exempt is not None else "-1",
        "GraceTime": str(want.grace or 0),
    }


def _qos_changes(desired: Desired, live: LiveState) -> list[Change]:
    changes = []
    for name in _qos_order(desired):
        want = desired.qos[name]
        settings = _qos_settings(want)
        current = live.qos.get(name)
        if current is None:
            create = ["sacctmgr", "-i", "add", "qos", name, f"Description={MANAGED_MARK}",
                      f"Priority={want.priority}", f"PreemptMode={want.preempt_mode}"]
            if want.max_gpus is not None:
                create.append(f"GrpTRES={settings['GrpTRES']}")
            if want.max_gpus_per_user is not None:
                create.append(f"MaxTRESPerUser={settings['MaxTRESPerUser']}")
            if want.max_wall is not None:
                create.append(f"MaxWall={settings['MaxWall']}")
            if want.preempt_exempt is not None:
                create.append(f"PreemptExemptTime={settings['PreemptExemptTime']}")
            if want.grace:
                create.append(f"GraceTime={settings['GraceTime']}")
            commands = [create]
            if want.preempt:
                commands.append(["sacctmgr", "-i", "modify", "qos", "where", f"name={name}", "set",
                                 f"Preempt={settings['Preempt']}"])
            changes.append(Change("qos", name, "create", _qos_detail(want), commands))
            continue
        differences: dict[str, tuple[str, str]] = {}
        if int(current.get("Priority") or 0) != want.priority:
            differences["Priority"] = (current.get("Priority", ""), str(want.priority))
        if gres_gpu_limit(current.get("GrpTRES", "")) != want.max_gpus:
            differences["GrpTRES"] = (_limit_text(gres_gpu_limit(current.get("GrpTRES", ""))), _limit_text(want.max_gpus))
        if gres_gpu_limit(current.get("MaxTRESPU", "")) != want.max_gpus_per_user:
            differences["MaxTRESPerUser"] = (_limit_text(gres_gpu_limit(current.get("MaxTRESPU", ""))),
                                             _limit_text(want.max_gpus_per_user))
        if _live_wall(current.get("MaxWall", "")) != want.max_wall:
            differences["MaxWall"] = (current.get("MaxWall", "") or "none", format_time_minutes(want.max_wall))
        live_preempt = frozenset(p for p in current.get("Preempt", "").split(",") if p)
        if live_preempt != want.preempt:
            differences["Preempt"] = (",".join(sorted(live_preempt)) or "none", ",".join(sorted(want.preempt)) or "none")
        if (current.get("PreemptMode") or "cluster").lower() != want.preempt_mode:
            differences["PreemptMode"] = (current.get("PreemptMode", ""), want.preempt_mode)
        live_exempt = _live_seconds(current.get("PreemptExemptTime", ""))
        if live_exempt != want.preempt_exempt:
            differences["PreemptExemptTime"] = (current.get("PreemptExemptTime", "") or "none",
                                                settings["PreemptExemptTime"] if want.preempt_exempt is not None
                                                else "none")
        if (_live_seconds(current.get("GraceTime", "")) or 0) != (want.grace or 0):
            differences["GraceTime"] = (current.get("GraceTime", "") or "0", settings["GraceTime"])
        if differences:
            detail = "; ".join(f"{k}: {a} -> {b}" for k, (a, b) in differences.items())
            command = ["sacctmgr", "-i", "modify", "qos", "where", f"name={name}", "set",
                       *(f"{k}={settings[k]}" for k in differences)]
            changes.append(Change("qos", name, "modify", detail, [command]))
    return changes


def _qos_detail(want: QosWant) -> str:
    parts = [f"priority={want.priority}"]
    if want.max_gpus is not None:
        parts.append(f"max_gpus={want.max_gpus}")
    if want.max_gpus_per_user is not None:
        parts.append(f"max_gpus_per_user={want.max_gpus_per_user}")
    if want.max_wall is not None:
        parts.append(f"max_time={format_time_minutes(want.max_wall)}")
    if want.preempt:
        parts.append(f"preempts={','.join(sorted(want.preempt))}")
    if want.preempt_mode != "cluster":
        parts.append(f"preempt_mode={want.preempt_mode}")
    if want.preempt_exempt is not None:
        parts.append(f"min_runtime={format_time_seconds(want.preempt_exempt)}")
    if want.grace:
        parts.append(f"grace_time={want.grace}s")
    return " ".join(parts)


def _account_order(desired: Desired) -> list[str]:
    order: list[str] = []

    def visit(name: str) -> None:
        if name in order or name not in desired.accounts:
            return
        visit(desired.accounts[name].parent)
        order.append(name)

    for name in sorted(desired.accounts):
        visit(name)
    return order


def _account_changes(desired: Desired, live: LiveState) -> list[Change]:
    changes = []
    cluster = desired.cluster
    for name in _account_order(desired):
        want = desired.accounts[name]
        where = ["where", f"name={name}", f"cluster={cluster}"]
        assoc = live.account_assoc(name)
        qos_list = ",".join(sorted(want.qos))
        if assoc is None:
            commands = [["sacctmgr", "-i", "add", "account", name, f"Cluster={cluster}", f"Parent={want.parent}",
                         f"Fairshare={want.fairshare}"]
                        + ([f"Description={MANAGED_MARK}", f"Organization={want.organization}"]
                           if name not in live.accounts else [])]
            if want.qos:
                commands.append(["sacctmgr", "-i", "modify", "account", *where, "set", f"QOS+={qos_list}"])
            if want.default_qos:
                commands.append(["sacctmgr", "-i", "modify", "account", *where, "set", f"DefaultQOS={want.default_qos}"])
            detail = f"parent={want.parent} shares={want.fairshare}" + (f" queues={qos_list}" if qos_list else "")
            changes.append(Change("account", name, "create", detail, commands))
            continue
        settings: list[str] = []
        details: list[str] = []
        if assoc.fairshare != str(want.fairshare):
            settings.append(f"Fairshare={want.fairshare}")
            details.append(f"shares: {assoc.fairshare} -> {want.fairshare}")
        if assoc.parent != want.parent:
            settings.append(f"Parent={want.parent}")
            details.append(f"parent: {assoc.parent} -> {want.parent}")
        commands = []
        if settings:
            commands.append(["sacctmgr", "-i", "modify", "account", *where, "set", *settings])
        missing_qos = sorted(want.qos - assoc.qos)
        if missing_qos:
            commands.append(["sacctmgr", "-i", "modify", "account", *where, "set", f"QOS+={','.join(missing_qos)}"])
            details.append(f"queues: +{','.join(missing_qos)}")
        extra_qos = sorted(want.qos_forbidden & assoc.qos)
        if extra_qos:
            commands.append(["sacctmgr", "-i", "modify", "account", *where, "set", f"QOS-={','.join(extra_qos)}"])
            details.append(f"queues: -{','.join(extra_qos)}")
        if want.default_qos and assoc.default_qos != want.default_qos:
            commands.append(["sacctmgr", "-i", "modify", "account", *where, "set", f"DefaultQOS={want.default_qos}"])
            details.append(f"default queue: {assoc.default_qos or '-'} -> {want.default_qos}")
        elif not want.default_qos and assoc.default_qos in live.managed_qos() - set(desired.qos):
            # Slurm refuses to delete a QOS that is still some association's default.
            commands.append(["sacctmgr", "-i", "modify", "account", *where, "set", "DefaultQOS=-1"])
            details.append(f"default queue: {assoc.default_qos} -> -")
        if commands:
            changes.append(Change("account", name, "modify", "; ".join(details), commands))
    return changes


def _user_changes(desired: Desired, live: LiveState) -> list[Change]:
    changes = []
    new_users: set[str] = set()
    for name in _account_order(desired):
        present = live.user_assocs(name)
        for user in desired.accounts[name].users:
            if user in present:
                continue
            command = ["sacctmgr", "-i", "add", "user", user, f"Account={name}", f"Cluster={desired.cluster}"]
            if not live.default_accounts.get(user) and user not in new_users:
                command.append(f"DefaultAccount={name}")  # new user, or one left without a default
                new_users.add(user)
            changes.append(Change("user", user, "create", f"account={name}", [command]))
    return changes


def _deletions(desired: Desired, live: LiveState, fragment: Fragment) -> list[Change]:
    changes = []
    cluster = desired.cluster
    for name in sorted(fragment.owned - set(desired.partitions)):
        if name in live.partitions:
            changes.append(Change("partition", name, "delete", "no longer in the pools file",
                                  [["scontrol", "delete", f"PartitionName={name}"]]))
    managed_accounts = live.managed_accounts()
    dropped = {(user, name) for name in desired.accounts if name in managed_accounts
               for user in live.user_assocs(name) - set(desired.accounts[name].users)}
    stale = [n for n in managed_accounts - set(desired.accounts) if live.account_assoc(n) is not None]
    moves = _default_account_moves(desired, live, dropped | {(u, n) for n in stale for u in live.user_assocs(n)})
    for user, name in sorted(dropped, key=lambda pair: (pair[1], pair[0])):
        commands = [moves.pop(user)] if user in moves and live.default_accounts.get(user) == name else []
        commands.append(["sacctmgr", "-i", "delete", "user", "where", f"name={user}",
                         f"account={name}", f"cluster={cluster}"])
        changes.append(Change("user", user, "delete", f"account={name}", commands))
    for name in sorted(stale, key=lambda n: (-_depth(live, n), n)):
        commands = [moves.pop(u) for u in sorted(live.user_assocs(name))
                    if u in moves and live.default_accounts.get(u) == name]
        commands.append(["sacctmgr", "-i", "delete", "account", "where", f"name={name}", f"cluster={cluster}"])
        changes.append(Change("account", name, "delete", "no longer in the pools file", commands))
    for name in sorted(live.managed_qos() - set(desired.qos)):
        changes.append(Change("qos", name, "delete", "no longer in the pools file",
                              [["sacctmgr", "-i", "delete", "qos", "where", f"name={name}"]]))
    return changes


def _default_account_moves(desired: Desired, live: LiveState, removed: set[tuple[str, str]]) -> dict[str, list[str]]:
    """Users whose default account loses their association: point it at one that stays first,
    or Slurm leaves them with no default account (and jobs without -A fail)."""
    moves = {}
    for user in sorted({u for u, _ in removed}):
        if (user, live.default_accounts.get(user)) not in removed:
            continue
        staying = {a.account for a in live.associations if a.user == user and (user, a.account) not in removed}
        staying |= {n for n, want in desired.accounts.items() if user in want.users}
        if staying:
            moves[user] = ["sacctmgr", "-i", "modify", "user", "where", f"name={user}", "set",
                           f"DefaultAccount={sorted(staying)[0]}"]
    return moves


def _depth(live: LiveState, account: str) -> int:
    depth = 0
    assoc = live.account_assoc(account)
    seen = {account}
    while assoc is not None and assoc.parent and assoc.parent not in seen:
        seen.add(assoc.parent)
        depth += 1
        assoc = live.account_assoc(assoc.parent)
    return depth
