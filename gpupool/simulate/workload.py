"""Workload readers: sacct (`-P` parsable and `--json`) and SWF, each an iterator of plain `Job`s.

Readers stream: one line in, one job out, so memory stays flat in the trace length (`sacct --json`
is one JSON document and is the exception; see docs/simulate.md). A malformed line is an
`BadInput` naming `file:line`. Jobs that cannot be replayed (never started, no GPUs) are counted
in `WorkloadStats`, never silently dropped; size and partition checks against the fabric happen in
the simulator, which counts those too.
"""

from __future__ import annotations

import codecs
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fractions import Fraction
from typing import IO, Any

from gpupool.errors import BadInput, located
from gpupool.fsutil import open_input

# The exact export this reader expects (docs/simulate.md): one line per allocation (-X), all users.
SACCT_FIELDS = ("JobIDRaw", "Partition", "Account", "Submit", "Start", "ElapsedRaw", "TimelimitRaw", "NNodes", "AllocTRES",
                "ReqTRES", "State")
SACCT_COMMAND = ("sacct -a -X -P --noconvert --starttime=YYYY-MM-DD --endtime=now "
                 f"--format={','.join(SACCT_FIELDS)} > sacct.txt")
_SACCT_REQUIRED = ("Submit", "ElapsedRaw", "NNodes")
_GPU_TRES = re.compile(r"^gres/gpu(?::[^=]+)?=(\d+)$")


@dataclass(frozen=True, slots=True)
class Job:
    """One job to replay: `gpus` in total, on exactly `nodes` hosts (gpus/nodes each) or anywhere (nodes 0)."""

    job_id: str
    submit: float  # seconds (epoch or trace-relative)
    duration: float  # runtime at the best placement, seconds
    time_limit: float  # requested limit, seconds (what backfill plans with)
    gpus: int
    nodes: int = 0  # 0: any shape (--gpus=N); else whole per-node request (-N nodes --gres=gpu:gpus/nodes)
    partition: str = ""
    job_class: str = "default"
    account: str = ""  # the Slurm account: pool policies attribute the job to the units owning pools

    @property
    def gpus_per_node(self) -> int:
        return self.gpus // self.nodes if self.nodes else 0


@dataclass
class WorkloadStats:
    """What the reader saw and what it could not replay, with one example each."""

    lines: int = 0
    jobs: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    examples: dict[str, str] = field(default_factory=dict)

    def skip(self, reason: str, where: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        self.examples.setdefault(reason, where)

    def to_json(self) -> dict[str, Any]:
        return {"lines": self.lines, "jobs": self.jobs, "skipped": dict(self.skipped), "examples": dict(self.examples)}


def _open_text(path: str) -> IO[str]:
    return open_input(path, "workload file", encoding="utf-8", errors="strict", newline="")


def _lines(path: str) -> Iterator[tuple[int, str]]:
    handle = _open_text(path)
    number = 0
    try:
        with handle:
            for number, raw in enumerate(handle, start=1):  # noqa: B007 - number is read after a decode error
                yield number, raw.rstrip("\r\n")
    except UnicodeDecodeError:
        raise BadInput(located(path, number + 1, "not UTF-8 text")) from None


def detect_format(path: str) -> str:
    """sacct-json, swf or sacct from the first meaningful characters of the file."""
    handle = _open_text(path)
    try:
        with handle:
            head = handle.read(4096)
    except UnicodeDecodeError:
        raise BadInput(f"{path}: not UTF-8 text") from None
    text = head.lstrip(codecs.BOM_UTF8.decode())
    stripped = text.lstrip()
    if stripped.startswith("{"):
        return "sacct-json"
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    if first.lstrip().startswith(";") or (first and "|" not in first and len(first.split()) == 18):
        return "swf"
    return "sacct"


def read_workload(path: str, fmt: str = "auto", stats: WorkloadStats | None = None, *,
                  gpus_per_processor: Fraction = Fraction(1), gpus_per_host: int = 8) -> Iterator[Job]:
    """Jobs of the workload file in file order (the simulator reorders small disorders by submit time)."""
    stats = stats if stats is not None else WorkloadStats()
    if fmt == "auto":
        fmt = detect_format(path)
    if fmt == "sacct":
        return read_sacct(path, stats)
    if fmt == "sacct-json":
        return read_sacct_json(path, stats)
    if fmt == "swf":
        return read_swf(path, stats, gpus_per_processor=gpus_per_processor, gpus_per_host=gpus_per_host)
    raise BadInput(f"{path}: unknown workload format {fmt!r} (sacct, sacct-json, swf)")


# ---------------------------------------------------------------------------------------------- sacct -P

def gpus_from_tres(text: str) -> int | None:
    """GPUs in a TRES string (`cpu=8,gres/gpu=4,node=1`): the untyped count, else the sum of typed ones."""
    untyped: int | None = None
    typed = 0
    seen = False
    for part in text.split(","):
        m = _GPU_TRES.match(part.strip())
        if not m:
            continue
        seen = True
        if ":" in part.split("=")[0]:
            typed += int(m.group(1))
        else:
            untyped = int(m.group(1))
    if not seen:
        return None
    return untyped if untyped is not None else typed


def parse_slurm_time(text: str) -> float | None:
    """Epoch seconds of sacct's `2026-11-29T12:00:00` (local time as printed, read as UTC), None if unset."""
    text = text.strip()
    if text in ("", "Unknown", "None", "N/A"):
        return None
    try:
        moment = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        raise ValueError(f"time {text!r} is not YYYY-MM-DDTHH:MM:SS") from None
    return moment.replace(tzinfo=UTC).timestamp()


def _limit_minutes(text: str) -> float | None:
    text = text.strip()
    if text in ("", "UNLIMITED", "Partition_Limit", "INVALID"):
        return None
    if not text.isdigit():
        raise ValueError(f"TimelimitRaw {text!r} is not a number of minutes")
    return float(text)


def read_sacct(path: str, stats: WorkloadStats) -> Iterator[Job]:
    """`sacct -P` (header line first, `|`-separated); see SACCT_COMMAND for the exact export."""
    columns: dict[str, int] | None = None
    for number, line in _lines(path):
        stats.lines += 1
        if not line.strip():
            continue
        cells = line.split("|")
        if columns is None:
            columns = {name.strip(): k for k, name in enumerate(cells)}
            missing = [c for c in _SACCT_REQUIRED if c not in columns]
            if "JobIDRaw" not in columns and "JobID" not in columns:
                missing.insert(0, "JobIDRaw")
            if "AllocTRES" not in columns and "ReqTRES" not in columns:
                missing.append("AllocTRES")
            if missing:
                raise BadInput(located(path, number, f"sacct header lacks {', '.join(missing)}; export with: "
                                                       f"{SACCT_COMMAND}"))
            continue
        if len(cells) != len(columns):
            raise BadInput(located(path, number, f"{len(cells)} fields where the header has {len(columns)} "
                                                   "(export with -P, which separates fields with |)"))
        row = {name: cells[k] for name, k in columns.items()}
        try:
            job = _sacct_job(row, stats, f"{path}:{number}")
        except ValueError as exc:
            raise BadInput(located(path, number, str(exc))) from None
        if job is not None:
            stats.jobs += 1
            yield job
    if columns is None:
        raise BadInput(f"{path}: empty sacct export (no header line); export with: {SACCT_COMMAND}")


def _int_field(row: dict[str, str], name: str) -> int:
    text = row[name].strip()
    if not text.isdigit():
        raise ValueError(f"{name} {text!r} is not a non-negative integer")
    return int(text)


def _sacct_job(row: dict[str, str], stats: WorkloadStats, where: str) -> Job | None:
    job_id = (row.get("JobIDRaw") or row.get("JobID") or "").strip()
    if not job_id:
        raise ValueError("empty job id")
    if "." in job_id:  # a step line: the export lacked -X
        stats.skip("job step (export with -X)", where)
        return None
    submit = parse_slurm_time(row["Submit"])
    if submit is None:
        raise ValueError(f"Submit {row['Submit']!r} is not set")
    elapsed = _int_field(row, "ElapsedRaw")
    nodes = _int_field(row, "NNodes")
    start = parse_slurm_time(row["Start"]) if "Start" in row else submit
    if start is None or (elapsed == 0 and row.get("State", "").startswith(("PENDING", "CANCELLED"))):
        stats.skip("never started", where)
        return None
    if row.get("State", "").startswith(("RUNNING", "PENDING")):
        stats.skip("still running at export", where)
        return None
    tres = row.get("AllocTRES", "").strip() or row.get("ReqTRES", "").strip()
    gpus = gpus_from_tres(tres)
    if not gpus:
        stats.skip("no GPUs", where)
        return None
    limit_min = _limit_minutes(row["TimelimitRaw"]) if "TimelimitRaw" in row else None
    limit = limit_min * 60.0 if limit_min is not None else float(elapsed)
    # A per-node request when the GPUs split evenly over the nodes (-N n --gres=gpu:k), else any shape.
    shape_nodes = nodes if nodes >= 1 and gpus % nodes == 0 else 0
    return Job(job_id=job_id, submit=submit, duration=float(elapsed), time_limit=max(limit, float(elapsed)),
               gpus=gpus, nodes=shape_nodes, partition=row.get("Partition", "").strip(),
               account=row.get("Account", "").strip())


# ---------------------------------------------------------------------------------------------- sacct --json

def _number(value: Any) -> float | None:
    """Slurm JSON numbers: plain, or {"set": bool, "infinite": bool, "number": n} (data_parser >= 0.0.39)."""
    if isinstance(value, dict):
        if not value.get("set", True) or value.get("infinite", False):
            return None
        value = value.get("number")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def read_sacct_json(path: str, stats: WorkloadStats) -> Iterator[Job]:
    """`sacct -a -X --json`: one document, read whole (prefer -P for very long histories)."""
    handle = _open_text(path)
    try:
        with handle:
            doc = json.load(handle)
    except UnicodeDecodeError:
        raise BadInput(f"{path}: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise BadInput(located(path, exc.lineno, f"not valid JSON: {exc.msg}")) from None
    jobs = doc.get("jobs") if isinstance(doc, dict) else None
    if not isinstance(jobs, list):
        raise BadInput(f"{path}: no \"jobs\" list; export with: sacct -a -X --json ... > sacct.json")
    stats.lines = len(jobs)
    for k, item in enumerate(jobs):
        where = f"{path}: jobs[{k}]"
        try:
            job = _json_job(item, stats, where)
        except ValueError as exc:
            raise BadInput(f"{where}: {exc}") from None
        if job is not None:
            stats.jobs += 1
            yield job


def _json_job(item: Any, stats: WorkloadStats, where: str) -> Job | None:
    if not isinstance(item, dict):
        raise ValueError("not an object")
    job_id = item.get("job_id")
    if job_id is None:
        raise ValueError("no job_id")
    times = item.get("time")
    if not isinstance(times, dict):
        raise ValueError("no \"time\" object")
    submit = _number(times.get("submission"))
    if submit is None:
        raise ValueError("time.submission is not set")
    start = _number(times.get("start"))
    elapsed = _number(times.get("elapsed"))
    state = item.get("state", {})
    current = state.get("current") if isinstance(state, dict) else state
    current = " ".join(current) if isinstance(current, list) else str(current or "")
    if not start or elapsed is None:
        stats.skip("never started", where)
        return None
    if current.startswith(("RUNNING", "PENDING")):
        stats.skip("still running at export", where)
        return None
    tres = item.get("tres", {}) if isinstance(item.get("tres"), dict) else {}
    gpus = _json_gpus(tres.get("allocated")) or _json_gpus(tres.get("requested"))
    if not gpus:
        stats.skip("no GPUs", where)
        return None
    # 22.05 can write allocation_nodes 0 (and limit 0) for a job that just ended: the node TRES still counts.
    nodes_value = _number(item.get("allocation_nodes")) or _json_tres(tres.get("allocated"), "node") \
        or _json_tres(tres.get("requested"), "node")
    nodes = int(nodes_value) if nodes_value else 0
    limit_min = _number(times.get("limit"))
    limit = limit_min * 60.0 if limit_min else elapsed
    partition = str(item.get("partition") or "")
    shape_nodes = nodes if nodes >= 1 and gpus % nodes == 0 else 0
    return Job(job_id=str(job_id), submit=submit, duration=elapsed, time_limit=max(limit, elapsed), gpus=gpus,
               nodes=shape_nodes, partition=partition, account=str(item.get("account") or ""))


def _json_tres(entries: Any, kind: str) -> float:
    if not isinstance(entries, list):
        return 0.0
    for e in entries:
        if isinstance(e, dict) and e.get("type") == kind:
            return _number(e.get("count")) or 0.0
    return 0.0


def _json_gpus(entries: Any) -> int:
    if not isinstance(entries, list):
        return 0
    untyped = 0
    typed = 0
    for e in entries:
        if isinstance(e, dict) and e.get("type") == "gres" and str(e.get("name", "")).split(":")[0] == "gpu":
            count = _number(e.get("count")) or 0
            if ":" in str(e.get("name")):
                typed += int(count)
            else:
                untyped = int(count)
    return untyped or typed


# ---------------------------------------------------------------------------------------------- SWF

SWF_FIELDS = 18


def parse_ratio(text: str) -> Fraction:
    """`8`, `0.25` or `1/4` as an exact positive fraction (GPUs per SWF processor)."""
    try:
        value = Fraction(text.strip())
    except (ValueError, ZeroDivisionError):
        raise BadInput(f"GPUs per processor {text!r} is not a number or a fraction like 1/4") from None
    if value <= 0:
        raise BadInput(f"GPUs per processor must be positive, got {text!r}")
    return value


def read_swf(path: str, stats: WorkloadStats, *, gpus_per_processor: Fraction = Fraction(1),
             gpus_per_host: int = 8) -> Iterator[Job]:
    """Standard Workload Format: 18 whitespace-separated fields per job, `;` comment lines, -1 for unknown.

    GPUs = ceil(processors x gpus_per_processor) with processors = allocated (field 5), else
    requested (field 8). A job that fills whole hosts (a multiple of gpus_per_host) is a per-node
    request on gpus/gpus_per_host hosts; a job up to one host stays on one host; others are any shape.
    """
    for number, line in _lines(path):
        stats.lines += 1
        text = line.split(";", 1)[0].strip()
        if not text:
            continue
        parts = text.split()
        if len(parts) != SWF_FIELDS:
            raise BadInput(located(path, number, f"{len(parts)} fields, SWF has {SWF_FIELDS}"))
        try:
            values = [float(p) for p in parts]
        except ValueError:
            bad = next(p for p in parts if not _is_number(p))
            raise BadInput(located(path, number, f"field {parts.index(bad) + 1} {bad!r} is not a number")) from None
        where = f"{path}:{number}"
        job_number, submit, _wait, run, alloc, _cpu, _mem, req, req_time = values[:9]
        queue, partition = values[14], values[15]
        if submit < 0:
            raise BadInput(located(path, number, "submit time (field 2) is missing (-1)"))
        if run < 0:
            stats.skip("never started", where)
            continue
        processors = alloc if alloc > 0 else req
        if processors <= 0:
            stats.skip("no processors", where)
            continue
        gpus = math.ceil(Fraction(int(processors)) * gpus_per_processor)
        if gpus <= 0:
            stats.skip("no GPUs", where)
            continue
        if gpus <= gpus_per_host:
            nodes = 1
        elif gpus % gpus_per_host == 0:
            nodes = gpus // gpus_per_host
        else:
            nodes = 0
        limit = req_time if req_time > 0 else run
        part = f"{int(partition)}" if partition >= 0 else (f"q{int(queue)}" if queue >= 0 else "")
        group = values[12]  # SWF has no accounts: the group id stands for the unit (`g3`)
        stats.jobs += 1
        yield Job(job_id=str(int(job_number)), submit=submit, duration=run, time_limit=max(limit, run), gpus=gpus,
                  nodes=nodes, partition=part, account=f"g{int(group)}" if group >= 0 else "")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
