"""pyslurm backend: reads through libslurm (pyslurm 24.11+), writes through the commands.

Used only when pyslurm imports (in a child process, see `gpupool.slurm.pyslurm_child`) and its
major.minor equals the running Slurm's (pyslurm is built against one Slurm release; a mismatch
means a broken ABI). Submission, `--test-only`, cancel, partitions and the node-side calls go
through `CommandsClient`, so sbatch semantics and error messages are identical in both backends.

Every read runs in the pyslurm child with a deadline (`timeout`): libslurm holds the GIL during an
RPC and may `fatal()` on a missing configuration, so neither can happen in the gpupool process.
GPU use per node is summed from the jobs' per-node GRES (what slurmctld allocated, `gres_detail`),
never from the node's allocated TRES, which is empty unless `gres/gpu` is an accounted TRES.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any

from gpupool.errors import BadInput, Unreachable
from gpupool.hostlist import expand
from gpupool.slurm import parse
from gpupool.slurm.commands import CommandsClient
from gpupool.slurm.gres import gpu_count, gpu_types
from gpupool.slurm.invoke import DEFAULT_TIMEOUT
from gpupool.slurm.models import (
    JobInfo,
    JobRequest,
    NodeState,
    PreemptionConfig,
    SubmitResult,
    TestOnlyResult,
)
from gpupool.slurm.port import Backend, BackendUnavailable, register
from gpupool.slurm.pyslurm_child import (
    OPERATIONS,
    ChildFailed,
    ChildRPCError,
    PyslurmChild,
    import_pyslurm,
)

# Job states whose nodes stay allocated: the same set the commands backend reads.
HOLDING_STATES = parse.NODE_HOLDING_STATES

# Slurm's ESLURM_INVALID_JOB_ID (slurm_errno.h): "Invalid job id specified".
ESLURM_INVALID_JOB_ID = 2017


def pyslurm_unavailable_reason(commands: CommandsClient | None = None, child: PyslurmChild | None = None,
                               timeout: float = DEFAULT_TIMEOUT) -> str | None:
    """None when the pyslurm backend can be used, else the reason it cannot."""
    child = child or PyslurmChild(timeout)
    try:
        version_text = child.start()
    except ChildFailed as exc:
        return str(exc)
    try:
        py_version = parse.parse_version(version_text)
    except Exception as exc:  # noqa: BLE001
        return f"cannot read pyslurm's version ({exc})"
    if commands is None:
        return None
    try:
        slurm_version = commands.version()
    except Unreachable as exc:
        return f"cannot read the running Slurm's version ({exc.message})"
    if py_version[:2] != slurm_version[:2]:
        return (f"pyslurm {py_version[0]}.{py_version[1]:02d} does not match Slurm "
                f"{slurm_version[0]}.{slurm_version[1]:02d}")
    return None


class PyslurmClient:
    """`SlurmClient` over pyslurm's object API (pyslurm.Nodes / pyslurm.Jobs), in a child process."""

    name = "pyslurm"

    def __init__(self, timeout: float = DEFAULT_TIMEOUT, commands: CommandsClient | None = None,
                 child: PyslurmChild | None = None, loader: Callable[[], Any] = import_pyslurm) -> None:
        self.timeout = timeout
        self.commands = commands or CommandsClient(timeout=timeout)
        self.child = child or PyslurmChild(timeout, loader)

    def _call(self, what: str, *args: Any) -> Any:
        try:
            return self.child.call(what, *args)
        except ChildFailed as exc:
            raise Unreachable(str(exc)) from None
        except ChildRPCError as exc:
            raise Unreachable(f"pyslurm {what}: {exc}") from None

    def version(self) -> tuple[int, int, int]:
        return self.commands.version()

    def node_states(self) -> list[NodeState]:
        return list(self._call("node_states"))

    def jobs(self, user: str | None = None, job_ids: Sequence[str] | None = None) -> list[JobInfo]:
        out: list[JobInfo] = self._call("jobs")
        if user:
            out = [j for j in out if j.user == user]
        if job_ids:
            wanted = {str(j) for j in job_ids}
            out = [j for j in out if j.job_id in wanted]
        return self._fill_pending_requests(out)

    def _fill_pending_requests(self, jobs: list[JobInfo]) -> list[JobInfo]:
        """Pending jobs that seem to ask for no GPUs may be `--gpus=N` jobs: pyslurm 25.11 cannot read
        tres_per_job, and the requested TRES carry GPUs only when gres/gpu is accounted, so ask the
        commands for those jobs' requests (one squeue call, only when there are such jobs)."""
        unknown = [j.job_id for j in jobs if not j.nodes and not j.request.gpus_per_node and not j.request.gpus_total]
        if not unknown:
            return jobs
        try:
            requests = {j.job_id: j.request for j in self.commands.jobs(job_ids=unknown)}
        except (BadInput, Unreachable):
            return jobs  # the commands do not know better: keep what pyslurm said
        return [replace(j, request=requests[j.job_id]) if j.job_id in requests else j for j in jobs]

    def job(self, job_id: str) -> JobInfo:
        key = parse_job_id(job_id)
        if key is None:
            raise BadInput(f"unknown job id {job_id}")
        try:
            found: list[JobInfo] = self.child.call("job", *key)
        except ChildRPCError as exc:
            if exc.errno == ESLURM_INVALID_JOB_ID or "Invalid job id" in str(exc):
                raise BadInput(f"unknown job id {job_id}") from None
            raise Unreachable(f"pyslurm job {job_id}: {exc}") from None
        except ChildFailed as exc:
            raise Unreachable(str(exc)) from None
        if not found:
            raise BadInput(f"unknown job id {job_id}")
        return self._fill_pending_requests(found[:1])[0]

    def partitions(self) -> dict[str, dict[str, str]]:
        return self.commands.partitions()

    def preemption(self) -> PreemptionConfig:
        # pyslurm's db API has no QOS preemption fields; the commands read both parts.
        return self.commands.preemption()

    def submit(self, sbatch_args: Sequence[str], script: str | None,
               script_args: Sequence[str] = ()) -> SubmitResult:
        return self.commands.submit(sbatch_args, script, script_args)

    def test_only(self, sbatch_args: Sequence[str], script: str | None) -> TestOnlyResult:
        return self.commands.test_only(sbatch_args, script)

    def cancel(self, job_id: str) -> None:
        self.commands.cancel(job_id)

    def node_names(self) -> list[str]:
        return self.commands.node_names()

    def topology_text(self) -> str:
        return self.commands.topology_text()

    def config(self) -> dict[str, str]:
        return self.commands.config()

    def node_gres(self, node: str) -> str | None:
        return self.commands.node_gres(node)

    def drain(self, node: str, reason: str) -> None:
        self.commands.drain(node, reason)

    def close(self) -> None:
        self.child.close()


def _create(timeout: float) -> PyslurmClient:
    commands = CommandsClient(timeout=timeout)
    child = PyslurmChild(timeout)
    reason = pyslurm_unavailable_reason(commands, child)
    if reason is not None:
        child.close()
        raise BackendUnavailable(reason)
    return PyslurmClient(timeout=timeout, commands=commands, child=child)


register(Backend("pyslurm", preference=10, create=_create))


# ---------------------------------------------------------------------------------------------
# mapping (runs in the child; plain functions over pyslurm objects, tested on stand-ins)


def parse_job_id(job_id: str) -> tuple[int, int | None] | None:
    """``"13"`` -> (13, None); ``"13_1"`` -> (13, 1) (array job 13, task 1); else None."""
    head, sep, task = str(job_id).strip().partition("_")
    if not head.isdigit() or (sep and not task.isdigit()):
        return None
    return int(head), int(task) if sep else None


def _gres_text(value: Any) -> str:
    """pyslurm gives GRES as dicts ({"gpu:h100": 8}, or {"gpu:h100": {"count": 2, "indexes": "0-1"}}
    for allocations) or strings, depending on the attribute."""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"gpu:{value}"
    if isinstance(value, dict):
        return ",".join(f"{k}:{v}" if not isinstance(v, dict) else f"{k}:{v.get('count', 0)}"
                        for k, v in value.items())
    return str(value or "")


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def job_id_text(job: Any) -> str:
    """The job id as squeue prints it: ``ARRAY_TASK`` for an array task, else the job id."""
    job_id = _int(getattr(job, "id", None)) or 0
    array_id = _int(getattr(job, "array_id", None))
    task = _int(getattr(job, "array_task_id", None))
    if array_id and task is not None:
        # The last task started keeps the array's own id (job 7 = task 7_3): still a task.
        return f"{array_id}_{task}"
    return str(job_id)


def _tres_gpus(value: Any) -> int:
    """GPUs in a pyslurm TrackableResources / gres dict / string (tres_per_node, tres_per_job)."""
    if value is None:
        return 0
    gres = getattr(value, "gres", None)
    if isinstance(gres, dict):
        # TrackableResources.gres: {"gpu": GPU(count), "gpu:h100": GPU(count)}; a typed request is
        # also counted under the untyped name, so prefer the untyped total.
        counts = {str(k): _int(getattr(v, "count", v)) or 0 for k, v in gres.items()}
        untyped = sum(c for k, c in counts.items() if k.split(":")[0] == "gpu" and ":" not in k)
        return untyped or sum(c for k, c in counts.items() if k.split(":")[0] == "gpu")
    if isinstance(value, dict):
        return gpu_count(_gres_text(value))
    return gpu_count(str(value))


def requested_gpus(job: Any) -> tuple[int, int]:
    """(GPUs per node, GPUs per job) the job asked for.

    pyslurm 25.11's `tres_per_node` / `tres_per_job` parse Slurm's ``gres/gpu:5`` as ``key=value``
    pairs and come back empty, so: per node from `gres_per_node` (``{"gres/gpu": 3}``), and per job
    from the TRES the job requested (``gres/gpu=5``, present only when gres/gpu is accounted) when
    it asked for no GPUs per node; a running job's total is then what Slurm allocated (the caller).
    """
    per_node = _tres_gpus(getattr(job, "tres_per_node", None)) or gpu_count(_gres_text(getattr(job, "gres_per_node", None)))
    total = _tres_gpus(getattr(job, "tres_per_job", None))
    if not per_node and not total:
        total = _tres_gpus(getattr(job, "requested_tres", None))
    return per_node, total


def job_from_pyslurm(job: Any) -> JobInfo:
    state = str(getattr(job, "state", "") or "").upper()
    node_text = getattr(job, "allocated_nodes", None) or ""
    hosts = expand(str(node_text)) if state.split("+")[0] in HOLDING_STATES and node_text else []
    allocation: dict[str, int] = dict.fromkeys(hosts, 0)
    layout: dict[str, Any] = {}
    if hosts and hasattr(job, "get_resource_layout_per_node"):
        try:
            layout = job.get_resource_layout_per_node() or {}
        except Exception:  # noqa: BLE001 - layout needs detail the job may not carry
            layout = {}
    for host in hosts:
        entry = layout.get(host)
        gres = entry.get("gres") if isinstance(entry, dict) else None
        allocation[host] = gpu_count(_gres_text(gres)) if gres else 0
    per_node, total = requested_gpus(job)
    if not per_node and not total and any(allocation.values()):
        # `--gpus=N` (or per task): pyslurm cannot read tres_per_job; what Slurm allocated is N.
        total = sum(allocation.values())
    if hosts and not any(allocation.values()):
        # No per-node GPUs (no detail, or a COMPLETING job whose GRES slurmctld already released):
        # the uniform request, as the commands backend reads it.
        if per_node:
            allocation = dict.fromkeys(hosts, per_node)
        elif total and total % len(hosts) == 0:
            allocation = dict.fromkeys(hosts, total // len(hosts))
    switches = _int(getattr(job, "required_switches", None))
    wait = _int(getattr(job, "max_wait_time_switches", None)) or 0
    return JobInfo(
        job_id=job_id_text(job),
        name=str(getattr(job, "name", "") or ""),
        user=str(getattr(job, "user_name", "") or ""),
        account=str(getattr(job, "account", "") or ""),
        partition=str(getattr(job, "partition", "") or ""),
        state=state,
        reason=str(getattr(job, "state_reason", "") or ""),
        nodes=tuple(hosts),
        allocation=allocation,
        request=JobRequest(
            nodes=_int(getattr(job, "num_nodes", None)),
            gpus_per_node=per_node or None,
            gpus_total=total or None,
            required_nodes=str(getattr(job, "required_nodes", "") or ""),
            excluded_nodes=str(getattr(job, "excluded_nodes", "") or ""),
            partition=str(getattr(job, "partition", "") or ""),
            switches=f"{switches}@{wait}s" if switches is not None else "",
        ),
        comment=str(getattr(job, "comment", "") or ""),
        start_time=_int(getattr(job, "start_time", None)),
        submit_time=_int(getattr(job, "submit_time", None)),
        qos=str(getattr(job, "qos", "") or ""),
    )


def gpus_in_use(jobs: Iterable[JobInfo]) -> dict[str, int]:
    """Node -> GPUs slurmctld counts as used there (the node's GresUsed): those of jobs that hold
    their nodes, except COMPLETING ones, whose GRES slurmctld releases when the job ends (measured
    on 25.11: a job in its Epilog still lists its nodes, the node's GresUsed no longer has its GPUs)."""
    used: dict[str, int] = {}
    for job in jobs:
        if job.state.split("+")[0] in HOLDING_STATES - {"COMPLETING"}:
            for host, gpus in job.allocation.items():
                used[host] = used.get(host, 0) + gpus
    return used


def node_from_pyslurm(node: Any, gpus_used: int = 0) -> NodeState:
    configured = _gres_text(getattr(node, "configured_gres", ""))
    state = getattr(node, "state", "") or ""
    flags = parse.state_flags(state if isinstance(state, list | tuple) else str(state))
    if "IDLE" in flags and (gpus_used or getattr(node, "allocated_memory", 0)):
        # pyslurm calls a node MIXED only from its CPUs; slurmctld also from allocated GPUs or
        # memory (a node whose only job is suspended, or completing, is MIXED in scontrol).
        flags = (flags - {"IDLE"}) | {"MIXED"}
    return NodeState(
        name=str(node.name),
        flags=flags,
        gpus_total=gpu_count(configured),
        gpus_used=gpus_used,
        gpu_types=tuple(gpu_types(configured)),
        cpus_total=int(getattr(node, "effective_cpus", None) or getattr(node, "total_cpus", 0) or 0),
        cpus_alloc=int(getattr(node, "allocated_cpus", 0) or 0),
        memory_mb=int(getattr(node, "real_memory", 0) or 0),
        memory_alloc_mb=int(getattr(node, "allocated_memory", 0) or 0),
        partitions=tuple(getattr(node, "partitions", None) or ()),
        features=tuple(getattr(node, "active_features", None) or getattr(node, "available_features", None) or ()),
        reason=str(getattr(node, "reason", "") or ""),
    )


def _load_jobs(module: Any) -> list[JobInfo]:
    return [job_from_pyslurm(j) for j in module.Jobs.load().values()]


def _load_node_states(module: Any) -> list[NodeState]:
    nodes = module.Nodes.load()
    used = gpus_in_use(_load_jobs(module))
    return [node_from_pyslurm(n, used.get(str(n.name), 0)) for n in nodes.values()]


def _load_job(module: Any, job_id: int, task: int | None) -> list[JobInfo]:
    """The job `job_id` (or array task `job_id`_`task`); an unknown id raises pyslurm's RPCError."""
    if task is None:
        job = module.Job.load(job_id)
        if _int(getattr(job, "id", None)) == job_id:
            return [job_from_pyslurm(job)]
        # Job.load(ARRAY_ID) answers with the array's first record, which may be another task.
        return [job_from_pyslurm(j) for j in module.Jobs.load().values() if _int(getattr(j, "id", None)) == job_id]
    wanted = f"{job_id}_{task}"
    return [j for j in _load_jobs(module) if j.job_id == wanted]


OPERATIONS.update({"jobs": _load_jobs, "node_states": _load_node_states, "job": _load_job})
