"""Plain data the Slurm layer hands to the rest of gpupool (no Slurm calls here)."""

from __future__ import annotations

from dataclasses import dataclass, field

# Node state flags (upper case, as Slurm prints them) that make a node unusable for a new job.
UNUSABLE_FLAGS = frozenset({
    "DOWN", "DRAIN", "DRAINED", "DRAINING", "FAIL", "FAILING", "MAINT", "RESERVED", "FUTURE",
    "UNKNOWN", "NOT_RESPONDING", "NO_RESPOND", "POWERED_DOWN", "POWERING_DOWN", "POWER_DOWN",
    "POWERING_UP", "POWER_UP", "REBOOT_ISSUED", "REBOOT_REQUESTED", "INVALID", "INVALID_REG",
    "CLOUD_POWERED_DOWN",
})
# The subset that says the node itself is broken or taken out (not merely busy, reserved or asleep).
BROKEN_FLAGS = frozenset({"DOWN", "DRAIN", "DRAINED", "DRAINING", "FAIL", "FAILING", "NOT_RESPONDING", "NO_RESPOND"})


@dataclass(frozen=True)
class NodeState:
    """One Slurm node as the placement engine needs it."""

    name: str
    flags: frozenset[str]  # every state word, upper case: {"MIXED"}, {"IDLE", "DRAIN"}, ...
    gpus_total: int = 0
    gpus_used: int = 0
    gpu_types: tuple[str, ...] = ()
    cpus_total: int = 0
    cpus_alloc: int = 0
    memory_mb: int = 0  # RealMemory
    memory_alloc_mb: int = 0
    partitions: tuple[str, ...] = ()
    features: tuple[str, ...] = ()
    reason: str = ""

    @property
    def free_gpus(self) -> int:
        return max(0, self.gpus_total - self.gpus_used)

    @property
    def free_cpus(self) -> int:
        return max(0, self.cpus_total - self.cpus_alloc)

    @property
    def free_memory_mb(self) -> int:
        return max(0, self.memory_mb - self.memory_alloc_mb)

    @property
    def usable(self) -> bool:
        """True when Slurm could start a new job here now (not down, drained, reserved, ...)."""
        return not (self.flags & UNUSABLE_FLAGS)

    @property
    def state(self) -> str:
        """Slurm-style state text, e.g. ``MIXED+DRAIN``."""
        order = ["IDLE", "MIXED", "ALLOCATED", "COMPLETING", "DOWN", "UNKNOWN", "FUTURE"]
        base = [f for f in order if f in self.flags]
        rest = sorted(self.flags - set(base))
        return "+".join(base + rest) or "UNKNOWN"


@dataclass(frozen=True)
class JobRequest:
    """What a job asked for (the parts that matter for GPU placement)."""

    nodes: int | None = None  # -N (minimum)
    gpus_per_node: int | None = None  # --gres=gpu:K / --gpus-per-node=K
    gpus_total: int | None = None  # --gpus=N
    required_nodes: str = ""  # --nodelist as Slurm stores it
    excluded_nodes: str = ""
    partition: str = ""
    switches: str = ""  # --switches as Slurm prints it, e.g. "1@00:05:00"
    segment: int | None = None  # --segment (topology/block); squeue --json reports it from 25.11 on

    @property
    def total_gpus(self) -> int | None:
        if self.gpus_total:
            return self.gpus_total
        if self.gpus_per_node and self.nodes:
            return self.gpus_per_node * self.nodes
        return None


@dataclass(frozen=True)
class JobInfo:
    """One job from squeue/scontrol; `allocation` is host -> GPUs actually allocated."""

    job_id: str
    name: str = ""
    user: str = ""
    account: str = ""
    partition: str = ""
    state: str = ""  # upper case: RUNNING, PENDING, ...
    reason: str = ""
    nodes: tuple[str, ...] = ()
    allocation: dict[str, int] = field(default_factory=dict)
    request: JobRequest = field(default_factory=JobRequest)
    comment: str = ""
    start_time: int | None = None  # epoch seconds (expected start for pending jobs)
    submit_time: int | None = None
    qos: str = ""  # the job's QOS ("" when Slurm reports none)

    @property
    def gpupool_plan(self) -> dict[str, str]:
        """Fields gpupool recorded in the comment (``gpupool:key=value,...``), else {}."""
        return parse_plan_comment(self.comment)


def parse_plan_comment(comment: str) -> dict[str, str]:
    """``gpupool:pair_hops_sum=4,leaf_switches=1`` -> {"pair_hops_sum": "4", ...}."""
    comment = (comment or "").strip()
    if not comment.startswith("gpupool:"):
        return {}
    fields: dict[str, str] = {}
    # gpupool's fields end at ";" (the user's own --comment, if any, follows it).
    for item in comment[len("gpupool:"):].split(";", 1)[0].split(","):
        key, sep, value = item.partition("=")
        if sep and key.strip():
            fields[key.strip()] = value.strip()
    return fields


@dataclass(frozen=True)
class PreemptionConfig:
    """What decides who may preempt whom: slurm.conf's PreemptType and PreemptExemptTime, and per
    QOS its PreemptExemptTime, Preempt list and PreemptMode (empty when accounting cannot be read)."""

    preempt_type: str = ""  # "preempt/partition_prio", "preempt/qos", "preempt/none"
    exempt_time_s: int = 0  # slurm.conf PreemptExemptTime (0: none)
    qos_exempt_s: dict[str, int] = field(default_factory=dict)  # QOS -> PreemptExemptTime seconds
    qos_preempts: dict[str, tuple[str, ...]] = field(default_factory=dict)  # QOS -> QOS it may preempt
    qos_mode: dict[str, str] = field(default_factory=dict)  # QOS -> PreemptMode (upper case)
    qos_known: bool = True  # False when the QOS table could not be read (no slurmdbd)


@dataclass(frozen=True)
class SubmitResult:
    job_id: str
    cluster: str = ""


@dataclass(frozen=True)
class TestOnlyResult:
    """What ``sbatch --test-only`` said: the job would start at `start_time` on `nodes`."""

    __test__ = False  # not a pytest class

    job_id: str
    start_time: str
    processors: int
    nodes: tuple[str, ...]
    partition: str
    starts_now: bool
    preempts: tuple[str, ...] = ()  # job ids Slurm would preempt to start it ("  Preempts: 2,1")
