"""The pools file: plain dataclasses and a structural parser whose errors name file, line and key.

Checks that need no outside knowledge happen here (types, unknown keys, shares of zero, references
between pools, accounts and queues); checks against Slurm, the fabric and the user database live
in `gpupool.pools.validate`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from gpupool.pools.source import Path, Source, load_source, parse_source
from gpupool.slurm.duration import DurationError, parse_minutes, parse_seconds
from gpupool.validate import SLURM_NAME_RE, USER_NAME_RE

# Full-match only (`$` would also match before a final newline: "vision\n" reached Slurm once).
NAME_RE = SLURM_NAME_RE
USER_RE = USER_NAME_RE
MAX_SLURM_INT = 2**31 - 1
DEFAULT_OWNER_TIER = 10
DEFAULT_SCAVENGER_TIER = 1
DEFAULT_SCAVENGER = "scavenger"
DEFAULT_PARENT = "root"


@dataclass(frozen=True)
class PoolSpec:
    name: str
    nodes: tuple[str, ...]  # hostlists and fabric selectors as written
    owners: tuple[str, ...] = ()
    gpu_type: str | None = None
    gpus_per_node: int | None = None
    max_time: int | None = None  # minutes; None = unlimited
    default: bool = False
    priority_tier: int = DEFAULT_OWNER_TIER
    lend: bool = True
    lend_limit: int | None = None  # GPUs, or percent of the pool when lend_limit_percent
    lend_limit_percent: bool = False
    min_runtime: int | None = None  # seconds a borrower runs before it may be preempted
    grace_time: int | None = None  # seconds a preempted borrower gets to stop
    quota: tuple[tuple[str, int], ...] = ()  # quota pool: (account, GPUs) on shared nodes

    def has_lending_rules(self) -> bool:
        """True when the pool lends through its own lending partition (limits Slurm must enforce)."""
        return self.lend_limit is not None or self.min_runtime is not None or self.grace_time is not None


@dataclass(frozen=True)
class AccountSpec:
    name: str
    shares: int
    parent: str = DEFAULT_PARENT
    users: tuple[str, ...] = ()
    default_queue: str | None = None
    organization: str | None = None
    borrow_limit: int | None = None  # GPUs the account may hold in lending partitions at once


@dataclass(frozen=True)
class QueueSpec:
    name: str
    priority: int = 0
    max_gpus: int | None = None
    max_gpus_per_user: int | None = None
    max_time: int | None = None
    preempt: tuple[str, ...] | None = None  # None = the default (the scavenger queue when borrowing)
    preempt_mode: str | None = None
    pools: tuple[str, ...] = ()  # pools whose size bounds max_gpus; empty = all pools


@dataclass(frozen=True)
class BorrowingSpec:
    enabled: bool = True
    partition: str = DEFAULT_SCAVENGER
    queue: str = DEFAULT_SCAVENGER
    priority_tier: int = DEFAULT_SCAVENGER_TIER
    max_time: int | None = None
    grace_time: int | None = None  # seconds; GraceTime of the borrowers' job QOS (preempt/qos)


@dataclass(frozen=True)
class PoolsFile:
    source: Source
    pools: dict[str, PoolSpec]
    accounts: dict[str, AccountSpec]
    queues: dict[str, QueueSpec]
    borrowing: BorrowingSpec
    allow_unknown_users: bool = False
    cluster: str | None = None

    @property
    def path(self) -> str:
        return self.source.path

    def error(self, key: Path, message: str) -> Exception:
        return self.source.error(key, message)

    def borrowing_active(self) -> bool:
        return self.borrowing.enabled and any(p.owners and p.lend for p in self.pools.values())

    def queue_preempts(self, queue: QueueSpec) -> tuple[str, ...]:
        if queue.preempt is not None:
            return queue.preempt
        if self.borrowing_active() and queue.name != self.borrowing.queue:
            return self.borrower_queues()
        return ()

    # Names of the Slurm objects lending rules compile to (the mapping in docs/pools.md).

    def lending_partition(self, pool: str) -> str:
        """The partition through which `pool` lends: its own `S-P` when it has lending rules, else `S`."""
        spec = self.pools[pool]
        return lending_object_name(self.borrowing.partition, pool) if spec.has_lending_rules() \
            else self.borrowing.partition

    def lending_pools(self) -> list[PoolSpec]:
        """Pools whose idle GPUs are lent (owned or quota pools with `lend` on), when borrowing is on."""
        if not self.borrowing_active():
            return []
        return [p for p in self.pools.values() if p.owners and p.lend]

    def borrower_queues(self) -> tuple[str, ...]:
        """Job QOS a borrower may run under: the scavenger queue and each account's borrow QOS."""
        borrow = sorted(borrow_qos_name(a.name) for a in self.accounts.values() if a.borrow_limit is not None)
        return (self.borrowing.queue, *borrow)

    def generated_names(self) -> dict[str, Path]:
        """QOS and partition names gpupool derives from the file, each with the key it comes from."""
        names: dict[str, Path] = {}
        for pool in self.lending_pools():
            if pool.has_lending_rules():
                names[lending_object_name(self.borrowing.partition, pool.name)] = ("pools", pool.name)
        for account in self.accounts.values():
            if account.borrow_limit is not None:
                names[borrow_qos_name(account.name)] = ("accounts", account.name, "borrow_limit")
        for pool in self.pools.values():
            for quota_account, _ in pool.quota:
                names[quota_qos_name(pool.name, quota_account)] = ("pools", pool.name, "quota", quota_account)
        return names


def lend_limit_gpus(pool: PoolSpec, pool_gpus: int) -> int | None:
    """The pool's lend_limit in GPUs (a percentage of `pool_gpus`, rounded down); None = no limit."""
    if pool.lend_limit is None:
        return None
    return pool_gpus * pool.lend_limit // 100 if pool.lend_limit_percent else pool.lend_limit


def lending_object_name(scavenger: str, pool: str) -> str:
    """Name of a pool's lending partition and of its partition QOS (one name for both)."""
    return f"{scavenger}-{pool}"


def borrow_qos_name(account: str) -> str:
    return f"borrow-{account}"


def quota_qos_name(pool: str, account: str) -> str:
    return f"{pool}-{account}"


# ---------------------------------------------------------------------------
# Time limits
# ---------------------------------------------------------------------------

def format_time_seconds(seconds: int) -> str:
    """Seconds -> the [D-]HH:MM:SS form sacctmgr and scontrol accept and print."""
    days, rest = divmod(seconds, 24 * 3600)
    hours, rest = divmod(rest, 3600)
    mins, secs = divmod(rest, 60)
    return f"{days}-{hours:02d}:{mins:02d}:{secs:02d}" if days else f"{hours:02d}:{mins:02d}:{secs:02d}"


def format_time_minutes(minutes: int | None) -> str:
    """Whole minutes -> the D-HH:MM:SS form Slurm prints; None -> UNLIMITED."""
    if minutes is None:
        return "UNLIMITED"
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    return f"{days}-{hours:02d}:{mins:02d}:00" if days else f"{hours:02d}:{mins:02d}:00"


# ---------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------

TOP_KEYS = {"pools", "accounts", "queues", "borrowing", "options", "cluster"}
POOL_KEYS = {"nodes", "owners", "gpu_type", "gpus_per_node", "max_time", "default", "priority_tier",
             "lend", "description", "lend_limit", "min_runtime", "grace_time", "quota"}
ACCOUNT_KEYS = {"shares", "parent", "users", "default_queue", "organization", "description", "borrow_limit"}
QUEUE_KEYS = {"priority", "max_gpus", "max_gpus_per_user", "max_time", "preempt", "preempt_mode",
              "pools", "description"}
BORROWING_KEYS = {"enabled", "partition", "queue", "priority_tier", "max_time", "grace_time"}
OPTION_KEYS = {"allow_unknown_users"}
PREEMPT_MODES = {"off", "cancel", "requeue", "suspend", "gang"}


def load_pools_file(path: str) -> PoolsFile:
    return parse_pools(load_source(path))


def parse_pools_text(text: str, path: str = "<pools>") -> PoolsFile:
    return parse_pools(parse_source(text, path))


def parse_pools(source: Source) -> PoolsFile:
    doc = source.data
    if not isinstance(doc, dict):
        raise source.error((), "the pools file must be a mapping with `pools`, `accounts` and `queues`")
    _no_unknown(source, (), doc, TOP_KEYS)
    if "pools" not in doc:
        raise source.error((), "missing required key `pools`")
    options = _mapping(source, ("options",), doc.get("options", {}))
    _no_unknown(source, ("options",), options, OPTION_KEYS)
    allow_unknown = _bool(source, ("options", "allow_unknown_users"), options.get("allow_unknown_users", False))
    cluster = doc.get("cluster")
    if cluster is not None:
        cluster = _name(source, ("cluster",), cluster)

    accounts = {name: _account(source, name, body)
                for name, body in _named_mapping(source, ("accounts",), doc.get("accounts", {})).items()}
    queues = {name: _queue(source, name, body)
              for name, body in _named_mapping(source, ("queues",), doc.get("queues", {})).items()}
    pools = {name: _pool(source, name, body)
             for name, body in _named_mapping(source, ("pools",), doc["pools"]).items()}
    if not pools:
        raise source.error(("pools",), "at least one pool is required")
    borrowing = _borrowing(source, doc.get("borrowing", {}))
    result = PoolsFile(source, pools, accounts, queues, borrowing, allow_unknown, cluster)
    _check_references(result)
    return result


def _pool(source: Source, name: str, body: Any) -> PoolSpec:
    key: Path = ("pools", name)
    body = _mapping(source, key, body)
    _no_unknown(source, key, body, POOL_KEYS)
    if "nodes" not in body:
        raise source.error(key, "missing required key `nodes` (a Slurm hostlist or a fabric selector)")
    raw_nodes = body["nodes"]
    node_items = raw_nodes if isinstance(raw_nodes, list) else [raw_nodes]
    nodes: list[str] = []
    for index, item in enumerate(node_items):
        item_key = (*key, "nodes", str(index)) if isinstance(raw_nodes, list) else (*key, "nodes")
        if not isinstance(item, str) or not item.strip():
            raise source.error(item_key, "expected a Slurm hostlist (gpu[001-016]) or a selector (leaf:NAME)")
        nodes.append(item.strip())
    if not nodes:
        raise source.error((*key, "nodes"), "a pool needs at least one node")
    quota = _quota(source, (*key, "quota"), body.get("quota"))
    owners = _names(source, (*key, "owners"), body.get("owners", []))
    if quota and owners:
        raise source.error((*key, "owners"), "a quota pool's owners are its quota accounts: drop `owners`")
    lend_limit, lend_percent = _lend_limit(source, (*key, "lend_limit"), body.get("lend_limit"))
    return PoolSpec(
        name=name,
        nodes=tuple(nodes),
        owners=owners or tuple(account for account, _ in quota),
        lend_limit=lend_limit,
        lend_limit_percent=lend_percent,
        min_runtime=_seconds(source, (*key, "min_runtime"), body.get("min_runtime")),
        grace_time=_seconds(source, (*key, "grace_time"), body.get("grace_time")),
        quota=quota,
        gpu_type=_optional_name(source, (*key, "gpu_type"), body.get("gpu_type")),
        gpus_per_node=_optional_int(source, (*key, "gpus_per_node"), body.get("gpus_per_node"), minimum=1),
        max_time=_time(source, (*key, "max_time"), body.get("max_time")),
        default=_bool(source, (*key, "default"), body.get("default", False)),
        priority_tier=_int(source, (*key, "priority_tier"), body.get("priority_tier", DEFAULT_OWNER_TIER),
                           minimum=0, maximum=65533),
        lend=_bool(source, (*key, "lend"), body.get("lend", True)),
    )


def _account(source: Source, name: str, body: Any) -> AccountSpec:
    key: Path = ("accounts", name)
    body = _mapping(source, key, body)
    _no_unknown(source, key, body, ACCOUNT_KEYS)
    if "shares" not in body:
        raise source.error(key, "missing required key `shares` (fair-share weight, a positive integer)")
    shares = _int(source, (*key, "shares"), body["shares"], minimum=0)
    if shares == 0:
        raise source.error((*key, "shares"), "shares must be at least 1 (0 would starve the account)")
    parent = body.get("parent", DEFAULT_PARENT)
    parent = _name(source, (*key, "parent"), parent)
    if parent == name:
        raise source.error((*key, "parent"), "an account cannot be its own parent")
    organization = body.get("organization")
    if organization is not None and not isinstance(organization, str):
        raise source.error((*key, "organization"), "expected a string")
    return AccountSpec(
        name=name, shares=shares, parent=parent,
        users=_users(source, (*key, "users"), body.get("users", [])),
        default_queue=_optional_name(source, (*key, "default_queue"), body.get("default_queue")),
        organization=organization,
        borrow_limit=_optional_int(source, (*key, "borrow_limit"), body.get("borrow_limit"), minimum=0),
    )


def _queue(source: Source, name: str, body: Any) -> QueueSpec:
    key: Path = ("queues", name)
    body = _mapping(source, key, body)
    _no_unknown(source, key, body, QUEUE_KEYS)
    preempt = body.get("preempt")
    mode = body.get("preempt_mode")
    if mode is not None:
        if not isinstance(mode, str) or mode.lower() not in PREEMPT_MODES:
            raise source.error((*key, "preempt_mode"), f"expected one of {', '.join(sorted(PREEMPT_MODES))}")
        mode = mode.lower()
    return QueueSpec(
        name=name,
        priority=_int(source, (*key, "priority"), body.get("priority", 0), minimum=0),
        max_gpus=_optional_int(source, (*key, "max_gpus"), body.get("max_gpus"), minimum=1),
        max_gpus_per_user=_optional_int(source, (*key, "max_gpus_per_user"), body.get("max_gpus_per_user"), minimum=1),
        max_time=_time(source, (*key, "max_time"), body.get("max_time")),
        preempt=None if preempt is None else _names(source, (*key, "preempt"), preempt),
        preempt_mode=mode,
        pools=_names(source, (*key, "pools"), body.get("pools", [])),
    )


def _borrowing(source: Source, body: Any) -> BorrowingSpec:
    key: Path = ("borrowing",)
    body = _mapping(source, key, body)
    _no_unknown(source, key, body, BORROWING_KEYS)
    return BorrowingSpec(
        enabled=_bool(source, (*key, "enabled"), body.get("enabled", True)),
        partition=_name(source, (*key, "partition"), body.get("partition", DEFAULT_SCAVENGER)),
        queue=_name(source, (*key, "queue"), body.get("queue", DEFAULT_SCAVENGER)),
        priority_tier=_int(source, (*key, "priority_tier"), body.get("priority_tier", DEFAULT_SCAVENGER_TIER),
                           minimum=0, maximum=65533),
        max_time=_time(source, (*key, "max_time"), body.get("max_time")),
        grace_time=_seconds(source, (*key, "grace_time"), body.get("grace_time")),
    )


def _check_references(spec: PoolsFile) -> None:
    src = spec.source
    for pool in spec.pools.values():
        for account, _ in pool.quota:
            if account not in spec.accounts:
                raise src.error(("pools", pool.name, "quota", account),
                                f"quota account {account!r} is not an account of this file (add it under `accounts`)")
        for index, owner in enumerate(() if pool.quota else pool.owners):
            if owner not in spec.accounts:
                raise src.error(("pools", pool.name, "owners", str(index)),
                                f"owner {owner!r} is not an account of this file (add it under `accounts`)")
        if pool.priority_tier <= spec.borrowing.priority_tier and pool.owners and spec.borrowing_active():
            raise src.error(("pools", pool.name, "priority_tier"),
                            f"must be above the scavenger tier ({spec.borrowing.priority_tier}) so owners preempt borrowers")
    defaults = [p.name for p in spec.pools.values() if p.default]
    if len(defaults) > 1:
        raise src.error(("pools", defaults[1], "default"), f"only one pool can be the default (also {defaults[0]!r})")
    for account_spec in spec.accounts.values():
        if account_spec.default_queue is not None and account_spec.default_queue not in spec.queues:
            raise src.error(("accounts", account_spec.name, "default_queue"),
                            f"queue {account_spec.default_queue!r} is not defined under `queues`")
    _check_account_tree(spec)
    for queue in spec.queues.values():
        for index, target in enumerate(queue.preempt or ()):
            if target == queue.name:
                raise src.error(("queues", queue.name, "preempt", str(index)), "a queue cannot preempt itself")
            if target not in spec.queues and not (spec.borrowing_active() and target == spec.borrowing.queue):
                raise src.error(("queues", queue.name, "preempt", str(index)), f"unknown queue {target!r}")
        for index, pool_name in enumerate(queue.pools):
            if pool_name not in spec.pools:
                raise src.error(("queues", queue.name, "pools", str(index)), f"unknown pool {pool_name!r}")
    _check_lending_rules(spec)
    if spec.borrowing_active():
        if spec.borrowing.partition in spec.pools:
            raise src.error(("borrowing", "partition"),
                            f"{spec.borrowing.partition!r} is also a pool name; pick another scavenger partition")
        if spec.borrowing.queue in spec.queues:
            raise src.error(("queues", spec.borrowing.queue),
                            "this name is reserved for the scavenger queue (see `borrowing.queue`)")


def _check_lending_rules(spec: PoolsFile) -> None:
    """Lending rules need a pool that lends, fit the borrowers' max_time, and generate unique names."""
    src = spec.source
    lending = {p.name for p in spec.lending_pools()}
    for pool in spec.pools.values():
        for key in ("lend_limit", "min_runtime", "grace_time"):
            if getattr(pool, key) is None or pool.name in lending:
                continue
            why = ("borrowing is disabled" if not spec.borrowing.enabled
                   else "it does not lend (`lend: false`)" if pool.owners else "a shared pool (no owners) lends nothing")
            raise src.error(("pools", pool.name, key), f"{key} applies to a lending pool, but {why}")
        max_time = spec.borrowing.max_time
        if pool.min_runtime is not None and max_time is not None and pool.min_runtime > max_time * 60:
            raise src.error(("pools", pool.name, "min_runtime"),
                            f"min_runtime {format_time_seconds(pool.min_runtime)} is longer than borrowing.max_time "
                            f"{format_time_minutes(max_time)}: a borrower could never reach it")
    for account in spec.accounts.values():
        if account.borrow_limit is not None and not spec.borrowing_active():
            raise src.error(("accounts", account.name, "borrow_limit"),
                            "borrow_limit needs borrowing (an owned pool that lends and `borrowing.enabled`)")
    taken = set(spec.queues) | set(spec.pools) | {spec.borrowing.partition, spec.borrowing.queue}
    seen: dict[str, Path] = {}
    for name, origin in spec.generated_names().items():
        if not NAME_RE.fullmatch(name):
            raise src.error(origin, f"the generated Slurm name {name!r} is not valid; shorten the names")
        if name in taken or name in seen:
            raise src.error(origin, f"gpupool names a Slurm QOS/partition {name!r} for this, but that name is "
                                    "already a pool, queue or another generated name; rename one of them")
        seen[name] = origin


def _check_account_tree(spec: PoolsFile) -> None:
    for account in spec.accounts.values():
        seen = {account.name}
        parent = account.parent
        while parent in spec.accounts:
            if parent in seen:
                raise spec.source.error(("accounts", account.name, "parent"), "the account tree has a cycle")
            seen.add(parent)
            parent = spec.accounts[parent].parent


# ---------------------------------------------------------------------------
# Small typed readers
# ---------------------------------------------------------------------------

def _no_unknown(source: Source, key: Path, body: dict[str, Any], allowed: set[str]) -> None:
    for name in body:
        if name not in allowed:
            raise source.error((*key, name), f"unknown key (allowed: {', '.join(sorted(allowed))})")


def _mapping(source: Source, key: Path, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise source.error(key, "expected a mapping (key: value lines)")
    return value


def _named_mapping(source: Source, key: Path, value: Any) -> dict[str, Any]:
    body = _mapping(source, key, value)
    for name in body:
        _name(source, (*key, name), name, what="name")
    return body


def _name(source: Source, key: Path, value: Any, what: str = "value") -> str:
    if not isinstance(value, str) or not NAME_RE.fullmatch(value):
        hint = " (Slurm lower-cases account and QOS names)" if isinstance(value, str) and value.lower() != value else ""
        raise source.error(key, f"invalid {what} {value!r}: use lower-case letters, digits, '_', '-', '.'{hint}")
    return value


def _optional_name(source: Source, key: Path, value: Any) -> str | None:
    return None if value is None else _name(source, key, value)


def _names(source: Source, key: Path, value: Any) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    result = []
    for index, item in enumerate(items):
        item_key = (*key, str(index)) if isinstance(value, list) else key
        name = _name(source, item_key, item)
        if name in result:
            raise source.error(item_key, f"{name!r} is listed twice")
        result.append(name)
    return tuple(result)


def _users(source: Source, key: Path, value: Any) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    result = []
    for index, item in enumerate(items):
        item_key = (*key, str(index)) if isinstance(value, list) else key
        if not isinstance(item, str) or not USER_RE.fullmatch(item):
            raise source.error(item_key, f"invalid user name {item!r}")
        if item in result:
            raise source.error(item_key, f"user {item!r} is listed twice")
        result.append(item)
    return tuple(result)


def _bool(source: Source, key: Path, value: Any) -> bool:
    if not isinstance(value, bool):
        raise source.error(key, "expected true or false")
    return value


def _int(source: Source, key: Path, value: Any, *, minimum: int | None = None, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise source.error(key, f"expected an integer, got {str(value)[:40]!r}")
    maximum = MAX_SLURM_INT if maximum is None else maximum  # Slurm stores these as 32-bit numbers
    if minimum is not None and value < minimum:
        raise source.error(key, f"must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise source.error(key, f"must be at most {maximum}, got {value}")
    return value


def _optional_int(source: Source, key: Path, value: Any, *, minimum: int | None = None) -> int | None:
    return None if value is None else _int(source, key, value, minimum=minimum)


def _seconds(source: Source, key: Path, value: Any) -> int | None:
    if value is None:
        return None
    try:
        seconds = parse_seconds(value)
    except DurationError as exc:
        raise source.error(key, str(exc)) from None
    if seconds is None:
        raise source.error(key, "must be a finite time (e.g. \"10:00\" = 10 minutes, \"0:30\" = 30 seconds)")
    if seconds > MAX_SLURM_INT:
        raise source.error(key, "too long")
    return seconds


def _lend_limit(source: Source, key: Path, value: Any) -> tuple[int | None, bool]:
    """`lend_limit`: a GPU count, or "N%" of the pool's GPUs."""
    if value is None:
        return None, False
    if isinstance(value, str) and value.strip().endswith("%"):
        number = value.strip()[:-1].strip()
        # ASCII digits only: "²".isdigit() is True (int() then raises) and "٣" would read as 3.
        if not re.fullmatch(r"[0-9]{1,3}", number) or not 0 <= int(number) <= 100:
            raise source.error(key, f"expected a GPU count or a percentage from 0% to 100%, got {value!r}")
        return int(number), True
    return _int(source, key, value, minimum=0), False


def _quota(source: Source, key: Path, value: Any) -> tuple[tuple[str, int], ...]:
    if value is None:
        return ()
    body = _mapping(source, key, value)
    if not body:
        raise source.error(key, "a quota pool needs at least one `account: GPUs` entry")
    result = []
    for account, gpus in body.items():
        _name(source, (*key, str(account)), account, what="account name")
        result.append((account, _int(source, (*key, account), gpus, minimum=1)))
    return tuple(result)


def _time(source: Source, key: Path, value: Any) -> int | None:
    if value is None:
        return None
    try:
        return parse_minutes(value)
    except DurationError as exc:
        raise source.error(key, str(exc)) from None
