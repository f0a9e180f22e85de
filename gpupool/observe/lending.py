"""Lending accounting over a time window, from ONE bulk `sacct` call (docs/observe.md).

    sacct --allusers --allocations --duplicates --parsable2 --starttime S --endtime E --format F

`--allocations` keeps one record per job allocation (no steps); `--duplicates` keeps every run of
a requeued job (earlier runs end PREEMPTED or REQUEUED). Every record's run interval
[Start, End or now] is clipped to the window; a job's GPUs (AllocTRES gres/gpu) are split evenly
over the nodes of its NodeList, since sacct does not record GPUs per node.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from gpupool.errors import BadInput, BadRequest, Unreachable, param
from gpupool.hostlist import expand
from gpupool.slurm.gres import tres_gpu_count

SACCT_FIELDS = ("JobIDRaw", "JobID", "State", "Account", "User", "Partition", "QOS", "Submit", "Eligible",
                "Start", "End", "NodeList", "AllocTRES")
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S"
# Run endings that throw the run's work away: the job goes back to the queue (or is killed) by preemption.
CUT_STATES = frozenset({"PREEMPTED", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD"})


def sacct_argv(since: datetime, until: datetime) -> list[str]:
    """The one sacct command the report runs (times in the cluster's local time, like sacct's own)."""
    return ["sacct", "--allusers", "--allocations", "--duplicates", "--parsable2",
            "--starttime", since.strftime(TIME_FORMAT), "--endtime", until.strftime(TIME_FORMAT),
            "--format", ",".join(SACCT_FIELDS)]


_RELATIVE = re.compile(r"^now(?:-(\d+)(days|day|d|hours|hour|h|minutes|minute|min|m))?$")


def parse_when(text: str, now: datetime, option: str) -> datetime:
    """`2026-11-28`, `2026-11-28T06:00[:SS]`, `now`, `now-7days`, `now-12h` -> local datetime."""
    value = text.strip()
    match = _RELATIVE.match(value)
    if match:
        if not match.group(1):
            return now.replace(microsecond=0)
        amount = int(match.group(1))
        unit = match.group(2)[0]
        delta = {"d": timedelta(days=amount), "h": timedelta(hours=amount), "m": timedelta(minutes=amount)}[unit]
        return (now - delta).replace(microsecond=0)
    for fmt in ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"):
        try:
            return datetime.strptime(value, fmt)
        except ValueError:
            continue
    raise BadRequest(f"{option}: {text!r} is not a time (YYYY-MM-DD[THH:MM[:SS]], now, now-7days, now-12hours)")


@dataclass(frozen=True)
class JobRun:
    """One sacct allocation record: one run of a job (a requeued job has several)."""

    job_id: str
    state: str  # first word of sacct's State ("CANCELLED by 0" -> CANCELLED)
    account: str
    user: str
    partition: str
    submit: datetime | None
    eligible: datetime | None
    start: datetime | None
    end: datetime | None  # None while running
    nodes: tuple[str, ...]
    gpus: int

    def interval(self, since: datetime, until: datetime, now: datetime) -> tuple[datetime, datetime] | None:
        """The part of the run inside [since, until] (a running job runs until `now`)."""
        if self.start is None:
            return None
        end = self.end if self.end is not None else now
        lo, hi = max(self.start, since), min(end, until)
        return (lo, hi) if hi > lo else None


def _time(text: str) -> datetime | None:
    value = text.strip()
    if value in {"", "Unknown", "None", "N/A"}:
        return None
    try:
        return datetime.strptime(value, TIME_FORMAT)
    except ValueError:
        raise Unreachable(f"sacct printed a time gpupool cannot read: {value!r} (unset SLURM_TIME_FORMAT)") from None


def parse_sacct(text: str) -> list[JobRun]:
    """`sacct --parsable2 --format SACCT_FIELDS` output (with its header) -> runs; checks every field count."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return []
    header = lines[0].split("|")
    if tuple(header) != SACCT_FIELDS:
        raise Unreachable(f"sacct printed unexpected columns {'|'.join(header)!r}; expected {'|'.join(SACCT_FIELDS)!r}")
    runs: list[JobRun] = []
    for number, line in enumerate(lines[1:], start=2):
        values = line.split("|")
        if len(values) != len(SACCT_FIELDS):
            raise Unreachable(f"sacct output line {number} has {len(values)} fields, expected {len(SACCT_FIELDS)}: {line!r}")
        row = dict(zip(SACCT_FIELDS, values, strict=True))
        node_text = row["NodeList"].strip()
        try:
            nodes = tuple(expand(node_text)) if node_text != "None assigned" else ()
        except BadInput as exc:  # sacct's own output: the tool, not the user's input, is at fault
            raise Unreachable(f"sacct output line {number}: {exc.message}") from None
        runs.append(JobRun(job_id=row["JobIDRaw"], state=(row["State"].split() or [""])[0].upper(),
                           account=row["Account"], user=row["User"], partition=row["Partition"],
                           submit=_time(row["Submit"]), eligible=_time(row["Eligible"]), start=_time(row["Start"]),
                           end=_time(row["End"]), nodes=nodes, gpus=tres_gpu_count(row["AllocTRES"])))
    return runs


@dataclass(frozen=True)
class PoolInfo:
    """What the report needs of a pool: its nodes' GPUs and its owner accounts (none: shared)."""

    name: str
    node_gpus: dict[str, int]
    owners: frozenset[str]


@dataclass
class PoolLending:
    name: str
    owners: list[str]
    gpus: int
    available_gpu_hours: float
    used_gpu_hours: float = 0.0  # everyone's use of the pool's nodes
    owner_gpu_hours: float = 0.0  # by the owner accounts (everyone, for a shared pool)
    lent_gpu_hours: float = 0.0  # by accounts that do not own the pool
    borrowed_gpu_hours: float = 0.0  # by the owners, on nodes of owned pools they do not own
    jobs_preempted: int = 0  # borrowers' jobs with a run on the pool's nodes that ended PREEMPTED
    lost_gpu_hours: float = 0.0  # GPU-hours of runs on the pool's nodes that ended preempted/requeued
    owner_jobs_started: int = 0
    owner_wait_seconds_mean: float | None = None
    owner_wait_seconds_max: float | None = None
    _waits: list[float] = field(default_factory=list, repr=False)
    _preempted: set[str] = field(default_factory=set, repr=False)

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "owners": self.owners, "gpus": self.gpus,
                "available_gpu_hours": _round(self.available_gpu_hours), "used_gpu_hours": _round(self.used_gpu_hours),
                "owner_gpu_hours": _round(self.owner_gpu_hours), "lent_gpu_hours": _round(self.lent_gpu_hours),
                "borrowed_gpu_hours": _round(self.borrowed_gpu_hours), "jobs_preempted": self.jobs_preempted,
                "lost_gpu_hours": _round(self.lost_gpu_hours), "owner_jobs_started": self.owner_jobs_started,
                "owner_wait_seconds_mean": _round(self.owner_wait_seconds_mean),
                "owner_wait_seconds_max": _round(self.owner_wait_seconds_max)}


@dataclass
class AccountUsage:
    name: str
    gpu_hours: float = 0.0
    usage_share: float | None = None  # of all GPU-hours in the window
    norm_shares: float | None = None  # Slurm's normalised shares (sshare)
    fairshare: float | None = None  # Slurm's fair-share factor now (sshare)

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "gpu_hours": _round(self.gpu_hours), "usage_share": _round(self.usage_share),
                "norm_shares": _round(self.norm_shares), "fairshare": _round(self.fairshare)}


@dataclass
class LendingReport:
    since: datetime
    until: datetime
    pools: list[PoolLending]
    accounts: list[AccountUsage]
    runs: int

    @property
    def hours(self) -> float:
        return (self.until - self.since).total_seconds() / 3600.0

    def as_json(self) -> dict[str, Any]:
        return {"since": self.since.strftime(TIME_FORMAT), "until": self.until.strftime(TIME_FORMAT),
                "hours": _round(self.hours), "runs": self.runs, "pools": [p.as_json() for p in self.pools],
                "accounts": [a.as_json() for a in self.accounts]}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def _owner_use(pool: PoolInfo, account: str) -> bool:
    """Use of a pool's nodes counts as its owners' when the pool has none, or the account is one."""
    return not pool.owners or account in pool.owners


@dataclass
class LendingSeries:
    """Owners' and lent GPU-hours per pool in equal time buckets of the window (for the HTML page)."""

    edges: list[datetime]  # buckets + 1 boundaries
    owner: dict[str, list[float]]
    lent: dict[str, list[float]]


def lending_series(runs: Iterable[JobRun], pools: list[PoolInfo], since: datetime, until: datetime, now: datetime,
                   buckets: int = 24) -> LendingSeries:
    """The same attribution as `account_lending`, split over `buckets` equal slices of [since, until]."""
    step = (until - since) / buckets
    edges = [since + step * i for i in range(buckets)] + [until]
    owner = {p.name: [0.0] * buckets for p in pools}
    lent = {p.name: [0.0] * buckets for p in pools}
    pool_of_node: dict[str, PoolInfo] = {}
    for p in pools:
        for node in p.node_gpus:
            pool_of_node.setdefault(node, p)
    for run in runs:
        window = run.interval(since, until, now)
        if window is None or not run.nodes or not run.gpus:
            continue
        per_node_gpus = run.gpus / len(run.nodes)
        for b in range(buckets):
            lo, hi = max(window[0], edges[b]), min(window[1], edges[b + 1])
            if hi <= lo:
                continue
            gpu_hours = per_node_gpus * (hi - lo).total_seconds() / 3600.0
            for node in run.nodes:
                pool = pool_of_node.get(node)
                if pool is not None:
                    (owner if _owner_use(pool, run.account) else lent)[pool.name][b] += gpu_hours
    return LendingSeries(edges, owner, lent)


def account_lending(runs: Iterable[JobRun], pools: list[PoolInfo], since: datetime, until: datetime,
                    now: datetime, shares: dict[str, tuple[float | None, float | None]] | None = None
                    ) -> LendingReport:
    """Per pool: available, used by owners, lent, borrowed, preempted, lost, owner wait; per account: use vs shares.

    `shares` maps account -> (normalised shares, fair-share factor) as sshare reports them.
    """
    if until <= since:
        raise BadRequest(f"{param('until')} ({until.strftime(TIME_FORMAT)}) must be after {param('since')} ({since.strftime(TIME_FORMAT)})")
    hours = (until - since).total_seconds() / 3600.0
    result = {p.name: PoolLending(p.name, sorted(p.owners), sum(p.node_gpus.values()),
                                  sum(p.node_gpus.values()) * hours) for p in pools}
    pool_of_node: dict[str, PoolInfo] = {}
    for p in pools:
        for node in p.node_gpus:
            pool_of_node.setdefault(node, p)
    # The pool an account's borrowing is booked to: the first (by name) it owns.
    home: dict[str, str] = {}
    for p in sorted(pools, key=lambda p: p.name):
        for account in p.owners:
            home.setdefault(account, p.name)
    usage: dict[str, float] = {}
    all_runs = list(runs)
    for run in all_runs:
        window = run.interval(since, until, now)
        if window is not None and run.nodes and run.gpus:
            run_hours = (window[1] - window[0]).total_seconds() / 3600.0
            per_node = run.gpus / len(run.nodes) * run_hours
            usage[run.account] = usage.get(run.account, 0.0) + per_node * len(run.nodes)
            preempted_in: set[str] = set()
            for node in run.nodes:
                pool = pool_of_node.get(node)
                if pool is None:
                    continue
                lending = result[pool.name]
                lending.used_gpu_hours += per_node
                if _owner_use(pool, run.account):
                    lending.owner_gpu_hours += per_node
                else:
                    lending.lent_gpu_hours += per_node
                    if run.account in home:
                        result[home[run.account]].borrowed_gpu_hours += per_node
                    if run.state == "PREEMPTED":
                        preempted_in.add(pool.name)
                if run.state in CUT_STATES:
                    lending.lost_gpu_hours += per_node
            for name in preempted_in:
                result[name]._preempted.add(run.job_id.split("_")[0])
        # Owner wait: runs that started inside the window, from eligible (else submit) to start.
        arrived = run.eligible or run.submit
        if run.start is not None and arrived is not None and since <= run.start < until and run.nodes:
            for name in {pool_of_node[n].name for n in run.nodes if n in pool_of_node}:
                pool_info = next(p for p in pools if p.name == name)
                if pool_info.owners and run.account in pool_info.owners:
                    result[name]._waits.append(max(0.0, (run.start - arrived).total_seconds()))
    for lending in result.values():
        lending.jobs_preempted = len(lending._preempted)
        if lending._waits:
            lending.owner_jobs_started = len(lending._waits)
            lending.owner_wait_seconds_mean = sum(lending._waits) / len(lending._waits)
            lending.owner_wait_seconds_max = max(lending._waits)
    total = sum(usage.values())
    names = sorted(set(usage) | set(shares or {}))
    accounts = []
    for name in names:
        norm, factor = (shares or {}).get(name, (None, None))
        used = usage.get(name, 0.0)
        accounts.append(AccountUsage(name, used, used / total if total > 0 else None, norm, factor))
    return LendingReport(since, until, list(result.values()), accounts, len(all_runs))


@dataclass
class LendingData:
    report: LendingReport
    sacct_text: str  # the raw output of the one sacct call
    series: LendingSeries | None
