"""pyslurm backend: reads through libslurm (pyslurm >= 23), writes through the commands.

Used only when `import pyslurm` works and pyslurm's major.minor equals the running Slurm's
(pyslurm is built against one Slurm release; a mismatch means a broken ABI). Submission,
`--test-only` and cancel go through `CommandsClient`, so sbatch semantics (``#SBATCH`` lines,
environment, error messages) are identical in both backends. libslurm calls cannot be
interrupted, so each runs in a worker thread and the caller stops waiting after `timeout`.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from gpupool.errors import EnvError, InputError
from gpupool.hostlist import expand
from gpupool.slurm import parse
from gpupool.slurm.commands import CommandsClient
from gpupool.slurm.gres import gpu_count, gpu_types
from gpupool.slurm.models import JobInfo, JobRequest, NodeState, SubmitResult, TestOnlyResult
from gpupool.slurm.port import Backend, BackendUnavailable, register
from gpupool.slurm.runner import DEFAULT_TIMEOUT

T = TypeVar("T")


def _import_pyslurm() -> Any:
    import pyslurm  # type: ignore[import-not-found]

    return pyslurm


def pyslurm_unavailable_reason(commands: CommandsClient | None = None) -> str | None:
    """None when the pyslurm backend can be used, else the reason it cannot."""
    try:
        pyslurm = _import_pyslurm()
    except ImportError as exc:  # the optional extra (or its libslurm) is missing: the only guarded failure
        return f"pyslurm is not importable ({exc})"
    try:
        py_version = parse.parse_version(str(pyslurm.version()))
    except Exception as exc:  # noqa: BLE001
        return f"cannot read pyslurm's version ({exc})"
    if commands is None:
        return None
    try:
        slurm_version = commands.version()
    except EnvError as exc:
        return f"cannot read the running Slurm's version ({exc.message})"
    if py_version[:2] != slurm_version[:2]:
        return (f"pyslurm {py_version[0]}.{py_version[1]:02d} does not match Slurm "
                f"{slurm_version[0]}.{slurm_version[1]:02d}")
    return None


class PyslurmClient:
    """`SlurmClient` over pyslurm's object API (pyslurm.Nodes / pyslurm.Jobs)."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT, commands: CommandsClient | None = None,
                 module: Any = None) -> None:
        self.timeout = timeout
        self.commands = commands or CommandsClient(timeout=timeout)
        self.pyslurm = module if module is not None else _import_pyslurm()

    def _call(self, what: str, func: Callable[[], T]) -> T:
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        future = pool.submit(func)
        try:
            return future.result(timeout=self.timeout)
        except concurrent.futures.TimeoutError:
            raise EnvError(f"pyslurm {what} did not answer within {self.timeout:g}s "
                           "(slurmctld down or overloaded?)") from None
        except self.pyslurm.RPCError as exc:
            raise EnvError(f"pyslurm {what}: {exc}") from None
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def version(self) -> tuple[int, int, int]:
        return self.commands.version()

    def node_states(self) -> list[NodeState]:
        nodes = self._call("Nodes.load", self.pyslurm.Nodes.load)
        return [node_from_pyslurm(n) for n in nodes.values()]

    def jobs(self, user: str | None = None, job_ids: Sequence[str] | None = None) -> list[JobInfo]:
        jobs = self._call("Jobs.load", self.pyslurm.Jobs.load)
        out = [job_from_pyslurm(j) for j in jobs.values()]
        if user:
            out = [j for j in out if j.user == user]
        if job_ids:
            wanted = {str(j) for j in job_ids}
            out = [j for j in out if j.job_id in wanted]
        return out

    def job(self, job_id: str) -> JobInfo:
        try:
            job = self._call("Job.load", lambda: self.pyslurm.Job.load(int(job_id)))
        except ValueError:
            raise InputError(f"unknown job id {job_id}") from None
        except EnvError:
            raise
        except Exception as exc:  # noqa: BLE001 - pyslurm raises RPCError subclasses for unknown ids
            raise InputError(f"unknown job id {job_id} ({exc})") from None
        return job_from_pyslurm(job)

    def partitions(self) -> dict[str, dict[str, str]]:
        return self.commands.partitions()

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

    def node_gres(self, node: str) -> str | None:
        return self.commands.node_gres(node)

    def drain(self, node: str, reason: str) -> None:
        self.commands.drain(node, reason)


def _create(timeout: float) -> PyslurmClient:
    commands = CommandsClient(timeout=timeout)
    reason = pyslurm_unavailable_reason(commands)
    if reason is not None:
        raise BackendUnavailable(reason)
    return PyslurmClient(timeout=timeout, commands=commands)


register(Backend("pyslurm", preference=10, create=_create))


def _gres_text(value: Any) -> str:
    """pyslurm gives GRES as dicts ({"gpu:h100": 8}, or {"gpu:h100": {"count": "2", "indexes": "0-1"}}
    for allocations) or strings, depending on the attribute."""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"gpu:{value}"
    if isinstance(value, dict):
        return ",".join(f"{k}:{v}" if not isinstance(v, dict) else f"{k}:{v.get('count', 0)}"
                        for k, v in value.items())
    return str(value or "")


def node_from_pyslurm(node: Any) -> NodeState:
    configured = _gres_text(getattr(node, "configured_gres", ""))
    allocated = _gres_text(getattr(node, "allocated_gres", ""))
    state = getattr(node, "state", "") or ""
    return NodeState(
        name=str(node.name),
        flags=parse.state_flags(state if isinstance(state, list | tuple) else str(state)),
        gpus_total=gpu_count(configured),
        gpus_used=gpu_count(allocated),
        gpu_types=tuple(gpu_types(configured)),
        cpus_total=int(getattr(node, "effective_cpus", None) or getattr(node, "total_cpus", 0) or 0),
        cpus_alloc=int(getattr(node, "allocated_cpus", 0) or 0),
        memory_mb=int(getattr(node, "real_memory", 0) or 0),
        memory_alloc_mb=int(getattr(node, "allocated_memory", 0) or 0),
        partitions=tuple(getattr(node, "partitions", None) or ()),
        features=tuple(getattr(node, "active_features", None) or getattr(node, "available_features", None) or ()),
        reason=str(getattr(node, "reason", "") or ""),
    )


def job_from_pyslurm(job: Any) -> JobInfo:
    state = str(getattr(job, "state", "") or "").upper()
    # pyslurm >= 23 names the allocation `allocated_nodes` (a hostlist string).
    node_text = getattr(job, "allocated_nodes", None) or getattr(job, "nodes", "") or ""
    hosts = expand(str(node_text)) if state == "RUNNING" else []
    allocation: dict[str, int] = {}
    layout = {}
    if hosts and hasattr(job, "get_resource_layout_per_node"):
        try:
            layout = job.get_resource_layout_per_node() or {}
        except Exception:  # noqa: BLE001 - layout needs detail the job may not carry
            layout = {}
    for host in hosts:
        gres = (layout.get(host) or {}).get("gres") if isinstance(layout.get(host), dict) else None
        allocation[host] = gpu_count(_gres_text(gres)) if gres else 0
    per_node = gpu_count(_gres_text(getattr(job, "gres_per_node", None) or getattr(job, "gpus_per_node", None)))
    if hosts and not any(allocation.values()) and per_node:
        allocation = dict.fromkeys(hosts, per_node)
    return JobInfo(
        job_id=str(job.id),
        name=str(getattr(job, "name", "") or ""),
        user=str(getattr(job, "user_name", "") or ""),
        account=str(getattr(job, "account", "") or ""),
        partition=str(getattr(job, "partition", "") or ""),
        state=state,
        reason=str(getattr(job, "state_reason", "") or ""),
        nodes=tuple(hosts),
        allocation=allocation,
        request=JobRequest(
            nodes=getattr(job, "num_nodes", None),
            gpus_per_node=per_node or None,
            required_nodes=str(getattr(job, "required_nodes", "") or ""),
            excluded_nodes=str(getattr(job, "excluded_nodes", "") or ""),
            partition=str(getattr(job, "partition", "") or ""),
        ),
        comment=str(getattr(job, "comment", "") or ""),
        start_time=getattr(job, "start_time", None),
        submit_time=getattr(job, "submit_time", None),
    )
