"""An in-memory `SlurmClient` for tests: nodes with GPUs, and an sbatch that starts a job at
once when its pinned nodes have the GPUs (else leaves it PENDING with Slurm's reason).

Only the sbatch options gpupool itself writes are interpreted (--nodes, --nodelist, --gres,
--gpus-per-node, --gpus, --partition, --comment, --switches); everything is recorded.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from gpupool.errors import BadInput, Unreachable
from gpupool.hostlist import expand
from gpupool.slurm.gres import gpu_count
from gpupool.slurm.invoke import SlurmCommandError
from gpupool.slurm.models import (
    JobInfo,
    JobRequest,
    NodeState,
    PreemptionConfig,
    SubmitResult,
    TestOnlyResult,
)


@dataclass
class FakeSlurm:
    nodes: dict[str, NodeState]
    partitions_map: dict[str, list[str]] = field(default_factory=dict)
    default_partition: str = "gpu"
    version_tuple: tuple[int, int, int] = (22, 5, 8)
    jobs_by_id: dict[str, JobInfo] = field(default_factory=dict)
    submitted: list[list[str]] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    # Called with the sbatch args just before a submission is processed (to simulate races).
    before_submit: Callable[[FakeSlurm, list[str]], None] | None = None
    reject: Callable[[list[str]], str | None] | None = None  # returns an sbatch error to raise
    # Submissions whose answer is lost: the job is created, then sbatch "times out" (Unreachable).
    lost_answers: int = 0
    # squeue calls that fail as unreachable before answering again (slurmctld still stalled).
    stalled_queries: int = 0
    user: str = "tester"  # the user submitted jobs belong to
    topology: str = ""  # what `scontrol show topology` prints
    config_values: dict[str, str] = field(default_factory=lambda: {"TopologyPlugin": "topology/tree"})
    # Extra `scontrol show partition` fields per partition (Topology=, PriorityTier, PreemptMode, QoS, ...).
    partition_fields: dict[str, dict[str, str]] = field(default_factory=dict)
    drained: list[tuple[str, str]] = field(default_factory=list)
    preemption_config: PreemptionConfig = field(default_factory=PreemptionConfig)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(100))

    @classmethod
    def uniform(cls, hosts: Sequence[str], gpus: int = 8, partition: str = "gpu") -> FakeSlurm:
        nodes = {h: NodeState(name=h, flags=frozenset({"IDLE"}), gpus_total=gpus, cpus_total=64,
                              memory_mb=512000, partitions=(partition,), gpu_types=("h100",))
                 for h in hosts}
        return cls(nodes=nodes, partitions_map={partition: list(hosts)}, default_partition=partition)

    # -- test helpers --------------------------------------------------------------------------
    def use(self, host: str, gpus: int) -> None:
        node = self.nodes[host]
        used = node.gpus_used + gpus
        flags = {"ALLOCATED"} if used >= node.gpus_total else {"MIXED"}
        self.nodes[host] = replace(node, gpus_used=used, cpus_alloc=node.cpus_alloc + 1,
                                   flags=frozenset(flags | (node.flags - {"IDLE", "MIXED", "ALLOCATED"})))

    def set_flags(self, host: str, *flags: str) -> None:
        self.nodes[host] = replace(self.nodes[host], flags=frozenset(flags))

    def allocated(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for job in self.jobs_by_id.values():
            if job.state == "RUNNING":
                for host, gpus in job.allocation.items():
                    out[host] = out.get(host, 0) + gpus
        return out

    # -- SlurmClient -----------------------------------------------------------------------------
    def version(self) -> tuple[int, int, int]:
        return self.version_tuple

    def node_states(self) -> list[NodeState]:
        return list(self.nodes.values())

    def jobs(self, user: str | None = None, job_ids: Sequence[str] | None = None) -> list[JobInfo]:
        if self.stalled_queries > 0:
            self.stalled_queries -= 1
            raise Unreachable("squeue did not answer within 10s (slurmctld down or overloaded?)")
        wanted = {str(j) for j in job_ids or ()}
        return [j for j in self.jobs_by_id.values()
                if (not user or j.user == user) and (not wanted or j.job_id in wanted)]

    def job(self, job_id: str) -> JobInfo:
        if str(job_id) not in self.jobs_by_id:
            raise BadInput(f"unknown job id {job_id}")
        return self.jobs_by_id[str(job_id)]

    def partitions(self) -> dict[str, dict[str, str]]:
        return {name: {"PartitionName": name, "Nodes": ",".join(hosts),
                       "Default": "YES" if name == self.default_partition else "NO",
                       **self.partition_fields.get(name, {})}
                for name, hosts in self.partitions_map.items()}

    def preemption(self) -> PreemptionConfig:
        return self.preemption_config

    def submit(self, sbatch_args: Sequence[str], script: str | None,
               script_args: Sequence[str] = ()) -> SubmitResult:
        args = list(sbatch_args)
        if self.before_submit is not None:
            self.before_submit(self, args)
        if self.reject is not None:
            message = self.reject(args)
            if message:
                raise SlurmCommandError(f"sbatch: error: {message}", argv=["sbatch", *args],
                                        stderr=f"sbatch: error: Batch job submission failed: {message}\n")
        self.submitted.append(args)
        opts = _options(args)
        job_id = str(next(self._ids))
        hosts = expand(opts.get("nodelist", ""))
        nodes = int(opts.get("nodes", "1"))
        per_node = gpu_count(opts["gres"]) if "gres" in opts else (
            int(opts["gpus-per-node"].split(":")[-1]) if "gpus-per-node" in opts else None)
        total = int(opts["gpus"].split(":")[-1]) if "gpus" in opts else None
        request = JobRequest(nodes=nodes, gpus_per_node=per_node, gpus_total=total,
                             required_nodes=opts.get("nodelist", ""),
                             partition=opts.get("partition", self.default_partition),
                             switches=opts.get("switches", ""),
                             segment=int(opts["segment"]) if "segment" in opts else None)
        job = JobInfo(job_id=job_id, name=script or "wrap", user=self.user, partition=request.partition,
                      state="PENDING", reason="Resources", request=request, comment=opts.get("comment", ""))
        allocation = self._fit(hosts, per_node, total) if hosts else None
        if allocation is not None:
            for host, gpus in allocation.items():
                self.use(host, gpus)
            job = replace(job, state="RUNNING", reason="None", nodes=tuple(allocation), allocation=allocation)
        elif hosts and any(not self.nodes[h].usable for h in hosts if h in self.nodes):
            job = replace(job, reason="ReqNodeNotAvail, UnavailableNodes:" +
                          ",".join(h for h in hosts if not self.nodes[h].usable))
        self.jobs_by_id[job_id] = job
        if self.lost_answers > 0:
            self.lost_answers -= 1
            raise Unreachable("sbatch did not answer within 30s (slurmctld down or overloaded?)")
        return SubmitResult(job_id=job_id)

    def _fit(self, hosts: list[str], per_node: int | None, total: int | None) -> dict[str, int] | None:
        if any(h not in self.nodes or not self.nodes[h].usable for h in hosts):
            return None
        free = {h: self.nodes[h].free_gpus for h in hosts}
        if per_node is not None:
            return {h: per_node for h in hosts} if all(f >= per_node for f in free.values()) else None
        if total is None:
            return dict.fromkeys(hosts, 0)
        if sum(free.values()) < total or any(f == 0 for f in free.values()):
            return None
        # Slurm fills nodes in order; every node gets at least one GPU.
        alloc = dict.fromkeys(hosts, 1)
        left = total - len(hosts)
        for host in hosts:
            take = min(left, free[host] - 1)
            alloc[host] += take
            left -= take
        return alloc

    def test_only(self, sbatch_args: Sequence[str], script: str | None) -> TestOnlyResult:
        raise NotImplementedError("FakeSlurm has no scheduler model for --test-only")

    def cancel(self, job_id: str) -> None:
        job = self.jobs_by_id.get(str(job_id))
        if job is None:
            raise SlurmCommandError(f"scancel: error: Invalid job id {job_id}")
        if job.state == "RUNNING":
            for host, gpus in job.allocation.items():
                node = self.nodes[host]
                self.nodes[host] = replace(node, gpus_used=node.gpus_used - gpus)
        self.cancelled.append(str(job_id))
        self.jobs_by_id[str(job_id)] = replace(job, state="CANCELLED")

    def node_names(self) -> list[str]:
        return list(self.nodes)

    def topology_text(self) -> str:
        return self.topology

    def config(self) -> dict[str, str]:
        return dict(self.config_values)

    def node_gres(self, node: str) -> str | None:
        found = self.nodes.get(node)
        return f"gpu:{found.gpus_total}" if found is not None and found.gpus_total else None

    def drain(self, node: str, reason: str) -> None:
        self.drained.append((node, reason))


def _options(args: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for arg in args:
        if arg.startswith("--") and "=" in arg:
            key, _, value = arg[2:].partition("=")
            out[key] = value
    return out
