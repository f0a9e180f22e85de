"""Which running jobs a new job in an owner's partition may preempt, and how long each is still
protected (plain functions over Slurm's partition table, preemption settings and jobs).

    found = preemptible_jobs(client.jobs(), client.partitions(), client.preemption(), "vision")

Rules (docs/contract.md, "Reclaim"):

- `preempt/partition_prio`: a RUNNING job on the owner partition's nodes whose partition has a lower
  `PriorityTier` than the owner partition and a `PreemptMode` other than OFF (the scavenger and
  every lending partition `S-P` of docs/pools.md).
- `preempt/qos`: a RUNNING job on those nodes whose QOS is in the `Preempt` list of the owner job's
  QOS (`owner_qos`), or, when that is not known, of any QOS allowed on the owner partition.
- Protection: a job is exempt while its run time is below `PreemptExemptTime` of its partition's
  QOS, else of its own QOS, else slurm.conf's (a partition QOS ranks first unless the job QOS has
  `OverPartQOS`, which gpupool never sets).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from gpupool.slurm.gres import NULL_VALUES
from gpupool.slurm.models import JobInfo, PreemptionConfig
from gpupool.slurm.parse import has_started


@dataclass(frozen=True)
class PreemptibleJob:
    """A running job the owner's job may preempt: its GPUs per node, run time and protection."""

    job: JobInfo
    run_seconds: int
    exempt_seconds: int  # PreemptExemptTime that applies to it (0: none)

    @property
    def protected(self) -> bool:
        return self.run_seconds < self.exempt_seconds


def _tier(settings: Mapping[str, str]) -> int:
    text = str(settings.get("PriorityTier", "") or "").strip()
    return int(text) if text.isdigit() else 1  # Slurm's default PriorityTier


def _partition_qos(settings: Mapping[str, str]) -> str:
    qos = str(settings.get("QoS", "") or "").strip()
    return "" if qos.lower() in NULL_VALUES else qos


def exempt_seconds(job: JobInfo, partitions: Mapping[str, Mapping[str, str]], config: PreemptionConfig) -> int:
    """The PreemptExemptTime protecting `job`: partition QOS, else job QOS, else slurm.conf."""
    part_qos = _partition_qos(partitions.get(job.partition, {}))
    if part_qos and part_qos in config.qos_exempt_s:
        return config.qos_exempt_s[part_qos]
    if job.qos and job.qos in config.qos_exempt_s:
        return config.qos_exempt_s[job.qos]
    return config.exempt_time_s


def _partition_nodes(partitions: Mapping[str, Mapping[str, str]], partition: str,
                     node_partitions: Mapping[str, Iterable[str]] | None) -> set[str] | None:
    if node_partitions is None:
        return None
    return {node for node, parts in node_partitions.items() if partition in parts}


def _preempting_qos(owner_partition: Mapping[str, str], owner_qos: str | None,
                    config: PreemptionConfig) -> set[str]:
    if owner_qos:
        return set(config.qos_preempts.get(owner_qos, ()))
    allowed = str(owner_partition.get("AllowQos", "ALL") or "ALL")
    names = config.qos_preempts if allowed.upper() == "ALL" else [q for q in allowed.split(",") if q]
    return {p for q in names for p in config.qos_preempts.get(q, ())}


def preemptible_jobs(jobs: Iterable[JobInfo], partitions: Mapping[str, Mapping[str, str]],
                     config: PreemptionConfig, owner_partition: str, now: float, *,
                     node_partitions: Mapping[str, Iterable[str]] | None = None,
                     owner_qos: str | None = None) -> list[PreemptibleJob]:
    """RUNNING jobs holding GPUs on `owner_partition`'s nodes that a job there may preempt.

    `node_partitions` (node -> its partitions, from node states) says which nodes the owner
    partition has; without it every node of a candidate job counts."""
    kind = config.preempt_type.lower()
    owner = partitions.get(owner_partition)
    if owner is None or kind not in {"preempt/partition_prio", "preempt/qos"}:
        return []
    members = _partition_nodes(partitions, owner_partition, node_partitions)
    owner_tier = _tier(owner)
    qos_targets = _preempting_qos(owner, owner_qos, config) if kind == "preempt/qos" else set()
    found: list[PreemptibleJob] = []
    for job in jobs:
        if not has_started(job.state) or not any(job.allocation.values()) or job.start_time is None:
            continue
        if job.partition == owner_partition:
            continue
        if members is not None and not members.intersection(job.allocation):
            continue
        settings = partitions.get(job.partition, {})
        if kind == "preempt/partition_prio":
            mode = str(settings.get("PreemptMode", "") or "").upper()
            if _tier(settings) >= owner_tier or mode.startswith("OFF"):
                continue
        elif job.qos not in qos_targets or config.qos_mode.get(job.qos, "").startswith("OFF"):
            continue
        found.append(PreemptibleJob(job=job, run_seconds=max(0, int(now) - int(job.start_time)),
                                    exempt_seconds=exempt_seconds(job, partitions, config)))
    return found
