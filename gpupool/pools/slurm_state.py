"""What Slurm holds now: partitions (scontrol), QOS, accounts and associations (sacctmgr), nodes.

Everything Slurm-facing goes through one `CommandRunner` callable, so tests can swap in a fake
that answers canned output; the parsers below are plain functions over command text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Protocol

from gpupool.slurm.gres import gpu_count, gpu_types
from gpupool.slurm.parse import has_started

MANAGED_MARK = "gpupool-managed"


class CommandRunner(Protocol):
    """Run a Slurm command and return its stdout; raise Unreachable/SlurmCommandError on failure."""

    def __call__(self, argv: list[str]) -> str: ...


def slurm_runner(timeout: float = 30.0) -> CommandRunner:
    """The real runner: `gpupool.slurm.invoke.run` with a timeout long enough for sacctmgr."""
    from gpupool.slurm.invoke import run

    def call(argv: list[str]) -> str:
        return run(argv, timeout=timeout).stdout

    return call


@dataclass(frozen=True)
class SlurmNode:
    name: str
    gpus: int
    gpu_types: tuple[str, ...]
    gpus_used: int
    state: frozenset[str]

    @property
    def down(self) -> bool:
        return bool(self.state & DOWN_FLAGS)


DOWN_FLAGS = frozenset({"DOWN", "DRAIN", "DRAINED", "DRAINING", "FAIL", "FAILING", "NOT_RESPONDING",
                        "NO_RESPOND", "POWERED_DOWN", "POWERING_DOWN", "MAINT", "INVALID_REG",
                        "INVALID", "FUTURE", "UNKNOWN"})


@dataclass(frozen=True)
class Association:
    account: str
    user: str  # "" for the account's own association
    parent: str  # parent account of an account association
    fairshare: str
    qos: frozenset[str]
    default_qos: str


@dataclass
class LiveState:
    cluster: str
    config: dict[str, str]
    nodes: dict[str, SlurmNode]
    partitions: dict[str, dict[str, str]]
    qos: dict[str, dict[str, str]]
    accounts: dict[str, dict[str, str]]  # account -> {"Descr":..., "Org":...}
    associations: list[Association]
    users: set[str] = field(default_factory=set)
    default_accounts: dict[str, str] = field(default_factory=dict)  # user -> DefaultAccount ("" = none)

    def account_assoc(self, account: str) -> Association | None:
        for assoc in self.associations:
            if assoc.account == account and not assoc.user:
                return assoc
        return None

    def user_assocs(self, account: str) -> set[str]:
        return {a.user for a in self.associations if a.account == account and a.user}

    def managed_qos(self) -> set[str]:
        return {n for n, q in self.qos.items() if q.get("Description") == MANAGED_MARK}

    def managed_accounts(self) -> set[str]:
        return {n for n, a in self.accounts.items() if a.get("Descr") == MANAGED_MARK}


QOS_FIELDS = ("Name", "Priority", "GrpTRES", "MaxTRESPU", "MaxWall", "Preempt", "PreemptMode", "Description",
              "GraceTime", "PreemptExemptTime")
ASSOC_FIELDS = ("Account", "User", "ParentName", "Fairshare", "QOS", "DefaultQOS")


def read_live_state(run: CommandRunner) -> LiveState:
    """Query slurmctld and slurmdbd (raises Unreachable when either cannot be reached)."""
    config = parse_config(run(["scontrol", "show", "config"]))
    cluster = config.get("ClusterName", "")
    nodes = parse_nodes(run(["scontrol", "-o", "-d", "show", "node"]))
    partitions = parse_partitions(run(["scontrol", "-o", "show", "partition"]))
    qos = parse_parsable(run(["sacctmgr", "-P", "-n", "show", "qos", "format=" + ",".join(QOS_FIELDS)]),
                         QOS_FIELDS)
    accounts = parse_parsable(run(["sacctmgr", "-P", "-n", "show", "account", "format=Account,Descr,Org"]),
                              ("Account", "Descr", "Org"))
    assoc_rows = parse_parsable(
        run(["sacctmgr", "-P", "-n", "show", "assoc", f"cluster={cluster}",
             "format=" + ",".join(ASSOC_FIELDS)]), ASSOC_FIELDS, key=None)
    users = parse_parsable(run(["sacctmgr", "-P", "-n", "show", "user", "format=User,DefaultAccount"]),
                           ("User", "DefaultAccount"))
    return LiveState(
        cluster=cluster, config=config, nodes=nodes, partitions=partitions,
        qos={name: row for name, row in qos.items()},
        accounts={name: row for name, row in accounts.items()},
        associations=[_association(row) for row in assoc_rows.values()],
        users=set(users),
        default_accounts={name: row["DefaultAccount"] for name, row in users.items()},
    )


def _association(row: dict[str, str]) -> Association:
    return Association(
        account=row["Account"], user=row["User"], parent=row["ParentName"], fairshare=row["Fairshare"],
        qos=frozenset(q for q in row["QOS"].split(",") if q), default_qos=row["DefaultQOS"],
    )


# ---------------------------------------------------------------------------
# Parsers
# ---------------------------------------------------------------------------

def parse_config(text: str) -> dict[str, str]:
    """`scontrol show config` -> {key: value} (first `key = value` per line)."""
    result: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and " " not in key.strip():
            result[key.strip()] = value.strip()
    return result


_KV = re.compile(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_:/]*)=")


def parse_kv_line(line: str) -> dict[str, str]:
    """One `scontrol -o` record -> {Key: value}; values may contain spaces (OS=Linux 6.1 ...)."""
    matches = list(_KV.finditer(line))
    result: dict[str, str] = {}
    for index, match in enumerate(matches):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(line)
        key = match.group(1)
        if key not in result:  # `-d` repeats some keys per node; the first is the job/node-wide one
            result[key] = line[match.end():end].strip()
    return result


def parse_partitions(text: str) -> dict[str, dict[str, str]]:
    result = {}
    for line in text.splitlines():
        if line.strip().startswith("PartitionName="):
            record = parse_kv_line(line.strip())
            result[record["PartitionName"]] = record
    return result


def parse_nodes(text: str) -> dict[str, SlurmNode]:
    result = {}
    for line in text.splitlines():
        if not line.strip().startswith("NodeName="):
            continue
        record = parse_kv_line(line.strip())
        name = record["NodeName"]
        gres = record.get("Gres", "")
        state = frozenset(s for s in re.split(r"[+*]", record.get("State", "").upper()) if s)
        used_text = record.get("GresUsed")
        used = gpu_count(used_text) if used_text is not None else _tres_gpus(record.get("AllocTRES", ""))
        result[name] = SlurmNode(name=name, gpus=gpu_count(gres), gpu_types=tuple(gpu_types(gres)),
                                 gpus_used=used, state=state)
    return result


def _tres_gpus(tres: str) -> int:
    match = re.search(r"(?:^|,)gres/gpu=([0-9]{1,9})(?![0-9])", tres or "")
    return int(match.group(1)) if match else 0


def parse_parsable(text: str, fields: tuple[str, ...], key: str | None = "first") -> dict[str, dict[str, str]]:
    """`sacctmgr -P -n` rows -> {first field: row}; key=None keys rows by their index instead."""
    result: dict[str, dict[str, str]] = {}
    for index, line in enumerate(text.splitlines()):
        if not line.strip():
            continue
        values = line.split("|")
        if len(values) > len(fields):
            # A '|' inside a description or organization: which field holds it is unknowable, so keep
            # only the key and blank the rest (a blank Description is never gpupool's mark: fail safe).
            values = [values[0]] + [""] * (len(fields) - 1)
        values += [""] * (len(fields) - len(values))
        row = dict(zip(fields, (v.strip() for v in values), strict=False))
        result[row[fields[0]] if key == "first" else str(index)] = row
    return result


def parse_sshare(text: str) -> list[dict[str, str]]:
    """`sshare -P -a -l` (with its header line) -> rows keyed by column name, names stripped."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return []
    header = [h.strip() for h in lines[0].split("|")]
    rows = []
    for line in lines[1:]:
        values = [v.strip() for v in line.split("|")]
        values += [""] * (len(header) - len(values))
        rows.append(dict(zip(header, values, strict=False)))
    return rows


@dataclass(frozen=True)
class Job:
    job_id: str
    state: str
    partitions: tuple[str, ...]
    account: str
    qos: str
    user: str
    priority: int
    gpus: int  # whole job
    node_gpus: dict[str, int]  # running jobs: GPUs held on each node

    @property
    def running(self) -> bool:
        return has_started(self.state)

    @property
    def pending(self) -> bool:
        return self.state == "PENDING"


_DETAIL = re.compile(r"\sNodes=(\S+)")
# The `-d` detail segments sit between these keys; user text (JobName, Comment, WorkDir) lies outside.
_DETAIL_START = re.compile(r"\sJOB_GRES=\S*")
_DETAIL_END = re.compile(r"\sMinCPUsNode=")


def read_jobs(run: CommandRunner) -> list[Job]:
    """Jobs as Slurm 21.08+ gives them in JSON (no user text can fake a field there); older Slurm:
    the `scontrol -o -d show job` text, parsed one record at a time."""
    from gpupool.errors import GpupoolError
    from gpupool.validate import load_json_text

    try:
        text = run(["squeue", "--all", "--json"])
    except GpupoolError:
        return parse_jobs(run(["scontrol", "-o", "-d", "show", "job"]))
    return jobs_from_squeue_json(load_json_text(text, "squeue --json"))


def jobs_from_squeue_json(doc: object) -> list[Job]:
    """`squeue --json` (22.05 .. 24.x) -> jobs; a record that does not parse is skipped, so one
    user's odd job cannot break the report for everyone."""
    from gpupool.errors import BadInput, GpupoolError
    from gpupool.slurm.gres import gpu_count, tres_gpu_count
    from gpupool.slurm.parse import job_from_json, number

    if not isinstance(doc, dict) or not isinstance(doc.get("jobs"), list):
        raise BadInput("squeue --json: no 'jobs' list")
    jobs = []
    for raw in doc["jobs"]:
        if not isinstance(raw, dict):
            continue
        try:
            info = job_from_json(raw)
            state = info.state.split("+")[0]
            node_gpus = dict(info.allocation) if has_started(state) else {}
            total = sum(node_gpus.values()) or tres_gpu_count(str(raw.get("tres_req_str") or "")) or (
                (info.request.gpus_per_node or 0) * (info.request.nodes or 1)) or gpu_count(
                str(raw.get("tres_per_job") or ""))
            jobs.append(Job(
                job_id=info.job_id, state=state,
                partitions=tuple(p for p in info.partition.split(",") if p),
                account=info.account, qos=str(raw.get("qos") or ""), user=info.user,
                priority=number(raw.get("priority"), 0) or 0, gpus=total, node_gpus=node_gpus,
            ))
        except (GpupoolError, ValueError, TypeError, AttributeError, KeyError, OverflowError):
            continue
    return jobs


def parse_jobs(text: str) -> list[Job]:
    """`scontrol -o -d show job` -> jobs with their per-node GPUs (from the `-d` detail segments)."""
    from gpupool.errors import GpupoolError
    from gpupool.hostlist import expand as expand_hostlist

    jobs = []
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("JobId="):
            continue
        record = parse_kv_line(line)
        node_gpus: dict[str, int] = {}
        start, end_match = _DETAIL_START.search(line), _DETAIL_END.search(line)
        detail = line[start.end() if start else len(line):end_match.start() if end_match else len(line)]
        details = list(_DETAIL.finditer(detail))
        try:
            for index, match in enumerate(details):
                end = details[index + 1].start() if index + 1 < len(details) else len(detail)
                gres = re.search(r"\sGRES=(\S+)", detail[match.end():end])
                count = gpu_count(gres.group(1)) if gres else 0
                for host in expand_hostlist(match.group(1)):
                    node_gpus[host] = node_gpus.get(host, 0) + count
            gpus = _tres_gpus(record.get("TRES", ""))
            if not node_gpus and has_started(record.get("JobState", "")) and record.get("NodeList"):
                hosts = expand_hostlist(record["NodeList"])
                node_gpus = {h: gpus // len(hosts) for h in hosts}  # no detail: assume an even spread
        except (GpupoolError, ValueError):
            continue  # this record does not parse (odd user text): skip it, not everyone's report
        try:
            priority = int(record.get("Priority", "0"))
        except ValueError:
            priority = 0
        jobs.append(Job(
            job_id=record.get("JobId", ""), state=record.get("JobState", ""),
            partitions=tuple(p for p in record.get("Partition", "").split(",") if p),
            account=record.get("Account", ""), qos=record.get("QOS", ""),
            user=record.get("UserId", "").split("(")[0], priority=priority, gpus=gpus, node_gpus=node_gpus,
        ))
    return jobs
