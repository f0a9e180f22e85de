"""Parsers for Slurm command output, 22.05 .. 26.05 (pure functions over text / decoded JSON).

JSON schema differences handled here:

- 22.05 (openapi v0.0.38, ``sinfo --json`` / ``squeue --json``): node ``state`` is a lower-case
  string plus a ``state_flags`` list; numbers are plain; ``features`` is a comma string;
  ``tres_per_node`` reads ``gres:gpu:3``.
- 23.02 .. 24.x (data_parser v0.0.39 .. v0.0.42, ``scontrol show nodes --json``): ``state`` and
  ``job_state`` are lists of upper-case words; many numbers are ``{"set", "infinite",
  "number"}`` objects; ``features`` is a list; ``tres_per_node`` reads ``gres/gpu:3``; meta's
  version numbers may be strings (``"05"``).

Nodes: the commands backend reads ``scontrol -d -o show nodes`` (the same one-line format on every
release, `nodes_from_scontrol`); `nodes_from_json` reads the JSON forms above, kept for saved
documents and checked against the text on captures of the same cluster state.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from gpupool.errors import BadInput
from gpupool.hostlist import expand as expand_hostlist
from gpupool.slurm.duration import seconds_or_none
from gpupool.slurm.gres import (
    NULL_VALUES,
    gpu_count,
    gpu_types,
    tres_gpu_count,
)
from gpupool.slurm.models import JobInfo, JobRequest, NodeState, PreemptionConfig, TestOnlyResult

# ---------------------------------------------------------------------------------------------
# small helpers


def number(value: Any, default: int | None = None) -> int | None:
    """Plain number or 23.02+ ``{"set": bool, "infinite": bool, "number": N}`` -> int (or default)."""
    # Fast paths for what json.loads makes (exact types; bool is not int here): a 16k-node read
    # calls this 80,000 times, and the ABC isinstance checks below cost most of it.
    if type(value) is int:
        return value if value >= 0 else default
    if type(value) is str:  # scontrol text: the same test as the regex below, without it
        value = value.strip()
        return int(value) if value.isascii() and value.isdigit() and len(value) <= 18 else default
    if type(value) is dict or isinstance(value, Mapping):
        if not value.get("set", True) or value.get("infinite"):
            return default
        value = value.get("number")
        if type(value) is int:
            return value if value >= 0 else default
    if value is None or isinstance(value, bool):
        return default
    # Slurm's counts, ids and times are unsigned: text that is not ASCII digits (`\u0663`, `-1`), a
    # fraction and a negative number are not a value Slurm printed.
    if isinstance(value, str):
        value = value.strip()
        if not re.fullmatch(r"[0-9]{1,18}", value):
            return default
    elif isinstance(value, float) and not value.is_integer():
        return default  # also NaN and infinities
    try:
        result = int(value)
    except (TypeError, ValueError, OverflowError):
        return default
    return result if result >= 0 else default


def words(value: Any) -> list[str]:
    """A comma string or a list -> list of non-empty words (features, partitions, flags)."""
    if value is None:
        return []
    if type(value) is list:  # json.loads' lists first: no ABC isinstance check
        items: Iterable[Any] = value
    elif isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, Iterable):
        items = value
    else:
        items = [value]
    return [word for v in items if (word := str(v).strip()) and word.lower() not in NULL_VALUES]


def state_flags(state: Any, extra_flags: Any = None) -> frozenset[str]:
    """Every spelling of node state as a set of upper-case words (see `_state_flags`)."""
    # Nodes share a few spellings of state: remember each (only plain strings and lists of strings).
    key = (_hashable(state), _hashable(extra_flags))
    if key[0] is not _UNHASHABLE and key[1] is not _UNHASHABLE:
        known = _STATE_FLAGS.get(key)
        if known is None:
            known = _state_flags(state, extra_flags)
            if len(_STATE_FLAGS) < 4096:
                _STATE_FLAGS[key] = known
        return known
    return _state_flags(state, extra_flags)


_UNHASHABLE = object()
_STATE_FLAGS: dict[tuple[Any, Any], frozenset[str]] = {}


def _hashable(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ("list", *value)
    return _UNHASHABLE


def _state_flags(state: Any, extra_flags: Any = None) -> frozenset[str]:
    """Normalise every spelling of node state to a set of upper-case words.

    ``"mixed"`` + ``["DRAIN"]`` (22.05 JSON), ``["IDLE", "DRAIN"]`` (23.02+),
    ``IDLE+DRAIN`` / ``DOWN*`` / ``MIXED~`` (scontrol/sinfo text; ``*`` = not responding,
    ``~`` = powered down, ``#`` = powering up, ``%`` = powering down, ``!`` = pending power down).
    """
    raw = words(state) if not isinstance(state, str) else [state]
    raw += words(extra_flags)
    flags: set[str] = set()
    suffix_flags = {"*": "NOT_RESPONDING", "~": "POWERED_DOWN", "#": "POWERING_UP",
                    "%": "POWERING_DOWN", "!": "POWER_DOWN", "$": "MAINT", "@": "REBOOT_REQUESTED",
                    "^": "REBOOT_ISSUED", "-": "PLANNED"}
    for item in raw:
        for word in str(item).split("+"):
            word = word.strip()
            while word and word[-1] in suffix_flags:
                flags.add(suffix_flags[word[-1]])
                word = word[:-1]
            if word:
                flags.add(word.upper().replace(" ", "_"))
    return frozenset(flags)


def parse_version(text: str) -> tuple[int, int, int]:
    """``slurm-wlm 22.05.8`` / ``slurm 24.05.3`` -> (22, 5, 8); ASCII digits only, bounded before int()."""
    match = re.search(r"(?<![0-9.])([0-9]{1,4})\.([0-9]{1,4})(?:\.([0-9]{1,4}))?(?![0-9])", text or "")
    if not match:
        raise BadInput(f"cannot read a Slurm version from {text.strip()!r}")
    return int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)


def json_errors(doc: Mapping[str, Any]) -> list[str]:
    """Error messages a Slurm JSON document carries in its ``errors`` list."""
    out = []
    for err in doc.get("errors") or []:
        if isinstance(err, Mapping):
            out.append(str(err.get("description") or err.get("error") or err))
        else:
            out.append(str(err))
    return out


# ---------------------------------------------------------------------------------------------
# nodes


def node_from_json(node: Mapping[str, Any]) -> NodeState:
    """One entry of ``nodes`` from sinfo --json (22.05) or scontrol show nodes --json (23.02+)."""
    gres = node.get("gres") or ""
    gres_used = node.get("gres_used") or ""
    memory = number(node.get("real_memory"), 0) or 0
    alloc_mem = number(node.get("alloc_memory"), 0) or 0
    cpus = number(node.get("cpus"), 0) or 0
    effective = number(node.get("effective_cpus"), None)
    alloc_cpus = number(node.get("alloc_cpus"), 0) or 0
    return NodeState(
        name=str(node.get("name") or node.get("hostname")),
        flags=state_flags(node.get("state"), node.get("state_flags")),
        gpus_total=gpu_count(gres),
        gpus_used=gpu_count(gres_used),
        gpu_types=tuple(gpu_types(gres)),
        cpus_total=effective if effective else cpus,
        cpus_alloc=alloc_cpus,
        memory_mb=memory,
        memory_alloc_mb=alloc_mem,
        partitions=tuple(words(node.get("partitions"))),
        features=tuple(words(node.get("active_features") or node.get("features"))),
        reason=str(node.get("reason") or ""),
    )


def nodes_from_json(doc: Mapping[str, Any]) -> list[NodeState]:
    """Whole ``{"nodes": [...]}`` document -> node states (errors raise BadInput)."""
    if "nodes" not in doc:
        errors = json_errors(doc)
        raise BadInput("Slurm node JSON has no 'nodes' list" + (f": {errors[0]}" if errors else ""))
    if not isinstance(doc["nodes"], list):
        raise BadInput("Slurm node JSON: 'nodes' is not a list")
    try:
        return [node_from_json(n) for n in doc["nodes"]]
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        raise BadInput(f"Slurm node JSON: malformed node record ({type(exc).__name__}: {str(exc)[:80]})") from None


_KV_SPLIT = re.compile(r"\s+(?=[A-Za-z][A-Za-z0-9_/:]*=)")


def key_values(line: str) -> list[tuple[str, str]]:
    """One ``scontrol -o show ...`` record -> (key, value) pairs, in order, repeats kept.

    Values may contain spaces (``Reason=ReqNodeNotAvail, UnavailableNodes:gpu004``,
    ``Comment=two words``); a new pair starts only where a token looks like ``Key=``.
    """
    pairs: list[tuple[str, str]] = []
    for token in _KV_SPLIT.split(line.strip()):
        key, sep, value = token.partition("=")
        if sep:
            pairs.append((key, value.strip()))
        elif pairs:
            key0, value0 = pairs[-1]
            pairs[-1] = (key0, f"{value0} {token}".strip())
    return pairs


# What Slurm prints after every node field gpupool reads (slurm_sprint_node_table, 22.05 .. 26.05):
# Reason, then the optional Comment, Extra, InstanceId/InstanceType and ReservationName. Reason,
# Comment and Extra are free text, so fields are looked up only before the first of these.
_NODE_TRAILERS = (" Reason=", " Comment=", " Extra=", " InstanceId=", " InstanceType=", " ReservationName=")
_NEXT_KEY = re.compile(r"\s+[A-Za-z][A-Za-z0-9_/:]*=")
_NOT_IN_NAMES = re.compile(r"[\x00-\x20\x7f]")


# The fields a NodeState holds, each with the space before it and its `=`. Slurm prints each value
# as one word (numbers, state words, GRES, comma lists), so a value ends at the next space.
_NODE_KEYS = (" State=", " Gres=", " GresUsed=", " CPUEfctv=", " CPUTot=", " CPUAlloc=", " RealMemory=",
              " AllocMem=", " Partitions=", " ActiveFeatures=", " AvailableFeatures=")
# Nodes share a few combinations of those values (the same hardware, the same few GPU counts in use):
# each combination is turned into NodeState fields once per process.
_NODE_FIELDS: dict[tuple[str | None, ...], dict[str, Any]] = {}


def _node_fields(raw: tuple[str | None, ...]) -> dict[str, Any]:
    """NodeState's fields (all but name and reason) from the raw values of `_NODE_KEYS`, in order."""
    state, gres, gres_used, efctv, total, alloc, memory, alloc_memory, partitions, active, available = raw
    return {
        "flags": state_flags(state or "UNKNOWN"),
        "gpus_total": gpu_count(gres),
        "gpus_used": gpu_count(gres_used),
        "gpu_types": tuple(gpu_types(gres)),
        "cpus_total": number(efctv or total, 0) or 0,
        "cpus_alloc": number(alloc, 0) or 0,
        "memory_mb": number(memory, 0) or 0,
        "memory_alloc_mb": number(alloc_memory, 0) or 0,
        "partitions": tuple(words(partitions)),
        "features": tuple(words(active or available)),
    }


def node_from_scontrol(line: str) -> NodeState:
    """One line of ``scontrol -d -o show nodes`` (any version) -> NodeState.

    Reads only the fields a NodeState holds, each at its first `` Key=`` before the free-text tail
    (Reason, Comment, Extra), so a reason like ``xid=79 on gpu 3`` is read whole and text in a
    node comment never stands in for a field. 16,384 nodes parse in about a tenth of a second."""
    line = line.rstrip()
    fixed_end = len(line)
    for trailer in _NODE_TRAILERS:
        at = line.find(trailer, 0, fixed_end)
        if at >= 0:
            fixed_end = at
    reason = ""
    if fixed_end < len(line) and line.startswith(" Reason=", fixed_end):
        reason_start = fixed_end + len(" Reason=")
        reason_end = len(line)
        for trailer in _NODE_TRAILERS[1:]:
            at = line.find(trailer, reason_start, reason_end)
            if at >= 0:
                reason_end = at
        reason = _strip_reason(line[reason_start:reason_end].strip())
    name = ""
    if line.startswith("NodeName="):
        following = _NEXT_KEY.search(line, len("NodeName="))
        name = line[len("NodeName="):following.start() if following else len(line)].strip()
    if not name or _NOT_IN_NAMES.search(name):
        raise BadInput(f"scontrol show nodes: a node name {name[:64]!r} Slurm never prints (corrupt output?)")
    fixed = line[:fixed_end]
    raw = tuple(found[2].partition(" ")[0] if (found := fixed.partition(key))[1] else None for key in _NODE_KEYS)
    fields = _NODE_FIELDS.get(raw)
    if fields is None:
        fields = _node_fields(raw)
        if len(_NODE_FIELDS) < 65536:
            _NODE_FIELDS[raw] = fields
    return NodeState(name=name, reason=reason, **fields)


def _strip_reason(reason: str) -> str:
    # scontrol appends " [user@time]" to node reasons.
    return re.sub(r"\s*\[[^\]]*\]\s*$", "", reason or "")


def nodes_from_scontrol(text: str) -> list[NodeState]:
    return [node_from_scontrol(line) for line in text.splitlines() if line.startswith("NodeName=")]


# ---------------------------------------------------------------------------------------------
# jobs


# Slurm's job_state_string(): the first of these flags names the job, else its base state. It is the
# one word squeue's %T, scontrol's JobState= and pyslurm's Job.state print, where the 23.02+ JSON
# lists base and flags (["CANCELLED", "COMPLETING"] is COMPLETING).
JOB_STATE_FLAG_PRECEDENCE = ("COMPLETING", "STAGE_OUT", "CONFIGURING", "EXPEDITING", "RESIZING", "REQUEUED",
                             "REQUEUE_FED", "REQUEUE_HOLD", "SPECIAL_EXIT", "STOPPED", "REVOKED",
                             "RESV_DEL_HOLD", "SIGNALING")

# Job states (as job_state_string names them) whose nodes stay allocated to the job; RESIZING and
# SIGNALING are flags Slurm sets only on jobs that hold their nodes. Both Slurm backends use this set.
NODE_HOLDING_STATES = frozenset({"RUNNING", "COMPLETING", "SUSPENDED", "CONFIGURING", "STOPPED",
                                 "RESIZING", "SIGNALING"})

# Slurm's one-word state: a job past PENDING may read CONFIGURING (nodes booting, prolog running).
STARTED_STATES = frozenset({"RUNNING", "CONFIGURING"})


def job_state_word(state: str) -> str:
    """The base word of a state (older releases' squeue may join flags: RUNNING+CONFIGURING)."""
    return state.split("+")[0]


def has_started(state: str) -> bool:
    """Started and running, whether Slurm says RUNNING or still CONFIGURING (RUNNING+CONFIGURING)."""
    return job_state_word(state) in STARTED_STATES


def _job_state(value: Any) -> str:
    """A job state in any JSON spelling -> Slurm's one-word name (job_state_string)."""
    states = [s.upper() for s in (words(value) if not isinstance(value, str) else value.split("+"))]
    states = [s.strip() for s in states if s.strip()]
    for flag in JOB_STATE_FLAG_PRECEDENCE:
        if flag in states:
            return flag
    return states[0] if states else ""


def _allocation(hosts: list[str], gres_detail: list[str], tres_per_node: str,
                tres_alloc: str) -> dict[str, int]:
    """Host -> allocated GPUs, from per-node gres_detail (preferred) or the uniform request."""
    if gres_detail and len(gres_detail) == len(hosts):
        detail = {h: gpu_count(d) for h, d in zip(hosts, gres_detail, strict=True)}
        if any(detail.values()):  # all zero: released (COMPLETING), read the request instead
            return detail
    per_node = gpu_count(tres_per_node)
    if per_node:
        return dict.fromkeys(hosts, per_node)
    total = tres_gpu_count(tres_alloc)
    if total and hosts and total % len(hosts) == 0:
        return dict.fromkeys(hosts, total // len(hosts))
    return dict.fromkeys(hosts, 0)


def job_from_json(job: Mapping[str, Any]) -> JobInfo:
    """One entry of ``jobs`` from squeue --json (22.05 .. 24.x)."""
    state = _job_state(job.get("job_state"))
    nodes_text = job.get("nodes") or ""
    if isinstance(job.get("job_resources"), Mapping) and not nodes_text:
        res_nodes = job["job_resources"].get("nodes")
        nodes_text = res_nodes.get("list", "") if isinstance(res_nodes, Mapping) else (res_nodes or "")
    hosts = expand_hostlist(nodes_text) if state in NODE_HOLDING_STATES else []
    tres_per_node = str(job.get("tres_per_node") or "")
    tres_per_job = str(job.get("tres_per_job") or "")
    tres_alloc = str(job.get("tres_alloc_str") or "")
    gres_detail = [str(g) for g in job.get("gres_detail") or []]
    node_count = number(job.get("node_count"), None)
    if node_count is None:
        node_count = number(job.get("nodes_count"), None)
    request = JobRequest(
        nodes=node_count,
        gpus_per_node=gpu_count(tres_per_node) or None,
        gpus_total=gpu_count(tres_per_job) or None,
        required_nodes=_null_to_empty(job.get("required_nodes")),
        excluded_nodes=_null_to_empty(job.get("excluded_nodes")),
        partition=str(job.get("partition") or ""),
        switches=_switches_json(job),
        segment=_segment_json(job),
    )
    return JobInfo(
        job_id=_job_id(job),
        name=str(job.get("name") or ""),
        user=str(job.get("user_name") or job.get("user_id") or ""),
        account=str(job.get("account") or ""),
        partition=str(job.get("partition") or ""),
        state=state,
        reason=str(job.get("state_reason") or ""),
        nodes=tuple(hosts),
        allocation=_allocation(hosts, gres_detail, tres_per_node, tres_alloc) if hosts else {},
        request=request,
        comment=str(job.get("comment") or ""),
        start_time=number(job.get("start_time"), None) or None,  # 0: not known yet (as scontrol's Unknown)
        submit_time=number(job.get("submit_time"), None),
        qos=_null_to_empty(job.get("qos")),
    )


def _job_id(job: Mapping[str, Any]) -> str:
    job_id = number(job.get("job_id"), 0)
    array_id = number(job.get("array_job_id"), 0)
    task = number(job.get("array_task_id"), None)
    if array_id and task is not None:  # the last task started keeps the array's id: 7 is 7_3
        return f"{array_id}_{task}"
    return str(job_id)


def _switches_json(job: Mapping[str, Any]) -> str:
    """--switches as scontrol prints it (``1@00:05:00``); "" when none was asked (0 from 23.x)."""
    req = number(job.get("required_switches"), None)
    if not req:
        return ""
    # 23.x+ JSON names the wait maximum_switch_wait_time (seconds); older ones wait4switch.
    wait = number(job.get("maximum_switch_wait_time", job.get("wait4switch")), 0) or 0
    return f"{req}@{wait // 3600:02d}:{wait % 3600 // 60:02d}:{wait % 60:02d}"


def _segment_json(job: Mapping[str, Any]) -> int | None:
    """--segment from ``segment_size`` (in squeue --json from 25.11); None when not asked (0/NO_VAL)."""
    size = number(job.get("segment_size"), None)
    return size if size is not None and 0 < size < 0xFFFE else None


def _null_to_empty(value: Any) -> str:
    text = str(value or "").strip()
    return "" if text.lower() in NULL_VALUES else text


def jobs_from_json(doc: Mapping[str, Any]) -> list[JobInfo]:
    if "jobs" not in doc:
        errors = json_errors(doc)
        raise BadInput("Slurm job JSON has no 'jobs' list" + (f": {errors[0]}" if errors else ""))
    if not isinstance(doc["jobs"], list):
        raise BadInput("Slurm job JSON: 'jobs' is not a list")
    jobs = []
    for index, raw in enumerate(doc["jobs"]):
        try:
            jobs.append(job_from_json(raw))
        except (TypeError, ValueError, AttributeError, KeyError) as exc:  # a field of an unexpected type
            raise BadInput(f"Slurm job JSON: job #{index}: malformed record ({type(exc).__name__}: "
                             f"{str(exc)[:80]})") from None
    return jobs


def _scontrol_time(text: str | None) -> int | None:
    if not text or text in {"Unknown", "None", "N/A"}:
        return None
    try:
        return int(datetime.fromisoformat(text).timestamp())
    except ValueError:
        return None


def job_from_scontrol(line: str) -> JobInfo:
    """One line of ``scontrol -d -o show job`` -> JobInfo (per-node GRES from the detail part)."""
    pairs = key_values(line)
    kv: dict[str, str] = {}
    for key, value in pairs:
        kv.setdefault(key, value)
    state = kv.get("JobState", "").upper()
    hosts = expand_hostlist(kv.get("NodeList")) if state in NODE_HOLDING_STATES else []
    allocation: dict[str, int] = {}
    # -d detail: repeated "Nodes=<hostlist> CPU_IDs=... Mem=... GRES=gpu:h100:3(IDX:0-2)".
    current: list[str] = []
    for key, value in pairs:
        if key == "Nodes":
            current = expand_hostlist(value)
        elif key == "GRES" and current:
            for host in current:
                allocation[host] = gpu_count(value)
            current = []
    if hosts and not any(allocation.values()):
        # No per-node GPUs in the detail (none given, or a COMPLETING job's GRES already released).
        allocation = _allocation(hosts, [], kv.get("TresPerNode", ""), kv.get("AllocTRES", ""))
    for host in hosts:
        allocation.setdefault(host, 0)
    num_nodes = kv.get("NumNodes", "")
    nodes_min = number(num_nodes.split("-")[0], None) if num_nodes else None
    request = JobRequest(
        nodes=nodes_min,
        gpus_per_node=gpu_count(kv.get("TresPerNode")) or None,
        gpus_total=gpu_count(kv.get("TresPerJob")) or None,
        required_nodes=_null_to_empty(kv.get("ReqNodeList")),
        excluded_nodes=_null_to_empty(kv.get("ExcNodeList")),
        partition=kv.get("Partition", ""),
        switches=kv.get("Switches", ""),
    )
    user = kv.get("UserId", "")
    return JobInfo(
        job_id=scontrol_job_id(kv),
        name=kv.get("JobName", ""),
        user=user.split("(")[0],
        account=_null_to_empty(kv.get("Account")),
        partition=kv.get("Partition", ""),
        state=state,
        reason=kv.get("Reason", ""),
        nodes=tuple(hosts),
        allocation={h: allocation[h] for h in hosts},
        request=request,
        comment=_null_to_empty(kv.get("Comment")),
        start_time=_scontrol_time(kv.get("StartTime")),
        submit_time=_scontrol_time(kv.get("SubmitTime")),
        qos=_null_to_empty(kv.get("QOS")),
    )


_JOB_ID_RE = re.compile(r"[0-9]{1,18}")


def scontrol_job_id(kv: Mapping[str, str]) -> str:
    """The id squeue and the JSON give a job: ``ARRAY_TASK`` for an array task (scontrol's JobId= is
    the task's own job id, 9 for task 7_2), else JobId (a pending array's ArrayTaskId=1-3 keeps it)."""
    array_id, task = kv.get("ArrayJobId", ""), kv.get("ArrayTaskId", "")
    if _JOB_ID_RE.fullmatch(array_id) and _JOB_ID_RE.fullmatch(task):  # ASCII: "٧".isdigit() is True
        return f"{array_id}_{task}"
    return kv.get("JobId", "")


def scontrol_job_records(text: str, job_id: str) -> list[JobInfo]:
    """The record of `job_id` in ``scontrol -d -o show job ID`` output, found by the id it was asked
    by: ``7_2`` is that array task, ``7`` the record whose JobId= is 7 (for an array, its last task
    started or its pending remainder), as pyslurm's Job.load finds them."""
    wanted = str(job_id).strip()
    found = []
    for line in text.splitlines():
        if not line.startswith("JobId="):
            continue
        kv: dict[str, str] = {}
        for key, value in key_values(line):
            kv.setdefault(key, value)
        if wanted in (kv.get("JobId", ""), scontrol_job_id(kv)):
            found.append(job_from_scontrol(line))
    return found


def jobs_from_scontrol(text: str) -> list[JobInfo]:
    return [job_from_scontrol(line) for line in text.splitlines() if line.startswith("JobId=")]


# ---------------------------------------------------------------------------------------------
# partitions


def config_from_scontrol(text: str) -> dict[str, str]:
    """``scontrol show config`` -> {key: value} (the first `key = value` of each key)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and " " not in key.strip():
            out.setdefault(key.strip(), value.strip())
    return out


def partitions_from_scontrol(text: str) -> dict[str, dict[str, str]]:
    """``scontrol -o show partition`` -> {name: {key: value}}."""
    out: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        if line.startswith("PartitionName="):
            kv = dict(key_values(line))
            out[kv["PartitionName"]] = kv
    return out


# ---------------------------------------------------------------------------------------------
# preemption settings


def duration_seconds(text: str | None) -> int | None:
    """Slurm's printed duration -> seconds (`slurm.duration`, the one parser); None where Slurm
    printed no finite duration (unset, UNLIMITED, or unreadable): no exemption is assumed then."""
    return seconds_or_none(text)


QOS_PREEMPT_FIELDS = ("Name", "Preempt", "PreemptMode", "PreemptExemptTime")


def preemption_from(config: Mapping[str, str], qos_rows: list[dict[str, str]] | None) -> PreemptionConfig:
    """slurm.conf's preemption settings (`config_from_scontrol` output) and, per QOS (``sacctmgr -nP show qos format=`` +
    QOS_PREEMPT_FIELDS rows; None when accounting cannot be read), exempt time, Preempt and mode."""
    exempt: dict[str, int] = {}
    preempts: dict[str, tuple[str, ...]] = {}
    modes: dict[str, str] = {}
    for row in qos_rows or []:
        name = row.get("Name", "").strip()
        if not name:
            continue
        seconds = duration_seconds(row.get("PreemptExemptTime"))
        if seconds:
            exempt[name] = seconds
        preempts[name] = tuple(q for q in (row.get("Preempt") or "").split(",") if q.strip())
        modes[name] = (row.get("PreemptMode") or "").strip().upper()
    return PreemptionConfig(preempt_type=config.get("PreemptType", "").strip(),
                            exempt_time_s=duration_seconds(config.get("PreemptExemptTime")) or 0,
                            qos_exempt_s=exempt, qos_preempts=preempts, qos_mode=modes,
                            qos_known=qos_rows is not None)


# ---------------------------------------------------------------------------------------------
# sbatch


_SUBMITTED = re.compile(r"Submitted batch job ([0-9]{1,18})\b(?: on cluster (\S+))?")
# --test-only lines are read by what they must contain, not their wording, which changes between
# releases (26.05: "Job 68 to start at T a using 5 processors on nodes N in partition P").
_TEST_ONLY_NODES = re.compile(r"\bon nodes? (\S+)")
_TEST_ONLY_JOB = re.compile(r"\bJob ([0-9]{1,18})\b")
_TEST_ONLY_START = re.compile(r"\bstart at (\S+)")
_TEST_ONLY_CPUS = re.compile(r"\b([0-9]{1,9}) processors?\b")
_TEST_ONLY_PARTITION = re.compile(r"\bin partition (\S+)")
_TEST_ONLY_PREEMPTS = re.compile(r"\bPreempts: *([0-9_,]+)")


def parse_sbatch_output(text: str) -> tuple[str, str]:
    """``Submitted batch job 12`` (or ``--parsable``: ``12`` / ``12;cluster``) -> (job id, cluster)."""
    match = _SUBMITTED.search(text)
    if match:
        return match.group(1), match.group(2) or ""
    for line in text.splitlines():
        line = line.strip()
        if re.fullmatch(r"[0-9]{1,18}(;\S+)?", line):  # ASCII digits: `\d` would take Arabic-Indic ones
            job_id, _, cluster = line.partition(";")
            return job_id, cluster
    raise BadInput(f"cannot read a job id from sbatch output: {text.strip()[:200]!r}")


def parse_test_only(text: str, now: float | None = None, slack_s: float = 60.0) -> TestOnlyResult:
    """``sbatch --test-only`` stderr -> where and when Slurm would start the job.

    The node list is required; job id, start time, processors and partition are read when present.
    """
    line = next((ln for ln in text.splitlines() if _TEST_ONLY_NODES.search(ln)), None)
    if line is None:
        raise BadInput(f"cannot read sbatch --test-only output (no node list): {text.strip()[:200]!r}")
    nodes = _TEST_ONLY_NODES.search(line).group(1)  # type: ignore[union-attr]
    job, start_m = _TEST_ONLY_JOB.search(line), _TEST_ONLY_START.search(line)
    cpus, partition = _TEST_ONLY_CPUS.search(line), _TEST_ONLY_PARTITION.search(line)
    start = start_m.group(1) if start_m else ""
    starts_now = False
    if now is not None:
        try:
            starts_now = datetime.fromisoformat(start).timestamp() <= now + slack_s
        except ValueError:
            starts_now = False
    return TestOnlyResult(
        job_id=job.group(1) if job else "",
        start_time=start,
        processors=int(cpus.group(1)) if cpus else 0,
        nodes=tuple(expand_hostlist(nodes)),
        partition=partition.group(1) if partition else "",
        starts_now=starts_now,
        preempts=tuple(j for m in _TEST_ONLY_PREEMPTS.finditer(text) for j in m.group(1).split(",") if j),
    )
