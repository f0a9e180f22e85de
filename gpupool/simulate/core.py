"""Types the simulator's loop and its strategies share: configuration, trace counts, queue and run records,
event kinds, start outcomes, the room a start may use, and the protocols: `SimState` (what a strategy
reads and calls on the simulator), `Placement`, `Backfill` and `Admission`. Of the simulate modules it
imports only the leaves `metrics` and `workload`, so the engine, the strategies and the pool policies all
depend on it and never on each other in a cycle (tests/unit/test_simulate_policies.py checks).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from gpupool.placement.objective import Objective, PlacementGoal
from gpupool.simulate.policy_metrics import PolicyMetrics
from gpupool.simulate.workload import Job
from gpupool.switch_wait import SwitchWait

if TYPE_CHECKING:
    from gpupool.fabric.compiled import CompiledFabric

BACKFILL_MODES = ("slurm", "easy")  # a reservation for every blocked job tested (Slurm's), or the queue head's only

# What a placement strategy's try_start says about a job (ints: compared in the hot loop).
STARTED, HELD, BLOCKED = 0, 1, 2
# Event kinds; at equal times, ends free resources before arrivals are considered (the heap orders by kind).
END, ARRIVE, WAKE = 0, 1, 2

# (hosts, GPUs per host, mean pair hops) a policy chooses on a free-GPU array for a job, or None.
Choice = tuple[np.ndarray, np.ndarray, float]
Placer = Callable[[np.ndarray, Job], "Choice | None"]


@dataclass
class SimConfig:
    gpus_per_host: int = 8
    backfill_depth: int = 500  # Slurm's bf_max_job_test default
    # "slurm": every blocked job tested reserves (sched/backfill); "easy": the head only. EASY stays the default:
    # the Slurm-like plan is closer to Slurm on queued traces but far slower on large loaded ones (docs/simulate.md).
    backfill: str = "easy"
    reserve_whole_hosts: bool = True  # slurm backfill: a reservation books its hosts whole (Slurm's node_space)
    backfill_window: float = 86400.0  # slurm backfill: no reservation starts later than this after now (bf_window)
    reserve_by_policy: bool = True  # slurm backfill: the policy places a reservation on its window (else best fit)
    wait_time: float = 300.0  # gpupool-wait: the T of --switches=N@T (Slurm's max_switch_wait default)
    wait_share: float = 0.0  # gpupool-wait: T as this share of the job's time limit instead (--switches 0@25%)
    wait_leaves: int = 0  # gpupool-wait: the N of --switches=N@T; 0 = the fewest leaves that could hold the job
    partitions: frozenset[str] | None = None  # accepted partitions; None = all
    reorder_window: int = 10000  # jobs read ahead to put small submit-time disorders right
    bin_seconds: float = 3600.0
    record_starts: bool = False  # keep (job id, start, hosts) of every start, for tests and reality checks
    # gpupool-pack: the objective's hop slack and size mix (`gpupool` and `gpupool-wait` use plan's default goal)
    pack_goal: PlacementGoal = field(default_factory=lambda: PlacementGoal(objective=Objective.PACK))


    def switch_wait(self) -> SwitchWait:
        """gpupool-wait's T: `wait_share` of the job's limit, else `wait_time` seconds."""
        return SwitchWait(share=self.wait_share, seconds=self.wait_time)


@dataclass
class TraceCounts:
    """Jobs of the trace that were not replayed, and why (the same for every policy)."""

    too_large: int = 0
    unknown_partition: int = 0
    reordered: int = 0
    never_started: int = 0
    no_pool: int = 0  # pool policies: the job's account owns no pool and there is no open pool or lending
    too_large_for_pools: int = 0  # pool policies: larger than every set of hosts its account may use
    examples: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"too_large_for_fabric": self.too_large, "unknown_partition": self.unknown_partition,
                "submit_reordered": self.reordered, "never_started": self.never_started,
                "no_pool_for_account": self.no_pool,
                "too_large_for_pools": self.too_large_for_pools,
                "examples": dict(self.examples)}


class Pending:
    """A queued job: held (gpupool-wait passed it over once), multi-host, and its admission order."""

    __slots__ = ("job", "held", "multi", "order")

    def __init__(self, job: Job, multi: bool) -> None:
        self.job = job
        self.held = False
        self.multi = multi
        self.order = 0  # admission order: where a requeued job goes back in the queue


class Running:
    """A started run: its hosts, GPUs per host, slot column per host and end by its time limit."""

    __slots__ = ("job", "start", "hosts", "gpus", "slots", "total", "expected_end", "order")

    def __init__(self, job: Job, start: float, hosts: list[int], gpus: list[int], slots: list[int],
                 expected_end: float) -> None:
        self.job = job
        self.start = start
        self.hosts = hosts
        self.gpus = gpus
        self.slots = slots  # column of each host's row in the slot arrays
        self.total = sum(gpus)
        self.expected_end = expected_end
        self.order = 0


@dataclass(frozen=True)
class StartRoom:
    """Where a backfill pass lets a job start now without delaying an earlier reservation.

    `gpus`: GPUs per host usable now (the free GPUs less those a reservation books over the job's
    [now, now + limit)); None: the free GPUs. `avoid`: hosts (bool mask) an earlier reservation holds
    whole, so the job may neither take nor preempt anything there; None: none. Both None = no limit.
    """

    gpus: np.ndarray | None = None
    avoid: np.ndarray | None = None

    def usable(self, free: np.ndarray) -> np.ndarray:
        """GPUs per host the job may take now, given the fabric's free array."""
        gpus = free if self.gpus is None else self.gpus
        return gpus if self.avoid is None else np.where(self.avoid, 0, gpus).astype(gpus.dtype)


ANYWHERE = StartRoom()  # no reservation limits the start


def fits_array(free: np.ndarray, job: Job) -> bool:
    """Enough GPUs in all, and enough hosts with the job's GPUs per node, on this free array."""
    if int(free.sum()) < job.gpus:
        return False
    return job.nodes == 0 or int(np.count_nonzero(free >= job.gpus_per_node)) >= job.nodes


class LeafCapacity:
    """Fewest leaves (and groups) that could hold a job on the empty fabric, from per-leaf host counts."""

    def __init__(self, compiled: CompiledFabric) -> None:
        leaf = compiled.host_tree_leaf.astype(np.int64)
        parent = compiled.tree_parent
        up = parent[leaf]
        # A group (pod of a 3-level fat-tree, dragonfly group) is a leaf's parent that is not a root.
        has_groups = bool(up.size) and bool((up >= 0).all()) and bool((parent[up] >= 0).all())
        self.host_leaf = leaf.tolist()  # lists: a job has few hosts, and set() on lists beats np.unique there
        self.host_group = up.tolist() if has_groups else [-1] * leaf.size
        self.leaf_hosts = np.cumsum(np.sort(np.bincount(leaf[leaf >= 0]))[::-1])
        if has_groups:
            self.group_hosts = np.cumsum(np.sort(np.bincount(up))[::-1])
        else:
            self.group_hosts = np.zeros(0, np.int64)

    def min_leaves(self, hosts_needed: int) -> int:
        return int(np.searchsorted(self.leaf_hosts, hosts_needed)) + 1

    def min_groups(self, hosts_needed: int) -> int:
        return int(np.searchsorted(self.group_hosts, hosts_needed)) + 1 if self.group_hosts.size else 0

    def spread(self, hosts: list[int]) -> tuple[int, int]:
        leaf = self.host_leaf
        leaves = len({leaf[h] for h in hosts})
        if not self.group_hosts.size:
            return leaves, 0
        group = self.host_group
        return leaves, len({group[h] for h in hosts})


class SimState(Protocol):
    """What strategies read and call on the simulator (`engine.Simulator` is the one implementation)."""

    compiled: CompiledFabric
    config: SimConfig
    counts: TraceCounts
    metrics: PolicyMetrics
    capacity: LeafCapacity
    place: Placer  # the policy's placer
    placement: Placement
    admission: Admission
    free: np.ndarray  # free GPUs per host
    total_free: int
    slot_end: np.ndarray  # per host and slot: a running job's end by its limit (inf: empty slot)
    slot_gpus: np.ndarray  # per host and slot: its GPUs there
    queue: list[Pending]
    running: dict[int, Running]
    ends: list[tuple[float, int]]  # (end by limit, running id), sorted
    changed: bool  # something ended, woke or was preempted since the last pass
    last_start: tuple[list[int], list[int]]  # (hosts, GPUs) of the latest start

    def fits_by_count(self, job: Job) -> bool: ...

    def hosts_with(self, k: int) -> int: ...

    def push(self, time: float, kind: int, rid: int) -> None: ...

    def commit(self, pj: Pending, now: float, host_list: list[int], gpu_list: list[int], pair_hops: float) -> int: ...

    def release(self, rid: int) -> tuple[Running, tuple[int, int, float, float, bool, bool]]: ...


class Placement(Protocol):
    """Where a job starts now, if it does (and what it may preempt to do so)."""

    def try_start(self, sim: SimState, pj: Pending, now: float, room: StartRoom | None = None) -> int:
        """Start the job now within `room` (None: anywhere free): STARTED, HELD or BLOCKED."""
        ...

    def could_start_now(self, sim: SimState, job: Job) -> bool:
        """A cheap necessary condition for try_start to start the job (the free counts, or a preemption)."""
        ...

    def reserve_on(self, sim: SimState, mins: np.ndarray, job: Job) -> tuple[np.ndarray, np.ndarray] | None:
        """Hosts and GPUs a Slurm-like reservation pins on a window's unbooked GPUs (None: best fit)."""
        ...


class Backfill(Protocol):
    """One scheduling pass: start what may start now, in queue order, without delaying reservations."""

    def schedule(self, sim: SimState, now: float, fresh: int) -> None:
        """`fresh` jobs were appended to `sim.queue` since the last pass."""
        ...


class Admission(Protocol):
    """Which jobs enter the queue, bookkeeping when a run ends, and requeues after a pass."""

    def admit(self, sim: SimState, job: Job) -> Pending | None:
        ...

    def finishing(self, sim: SimState, rid: int, now: float) -> None:
        """Run `rid` ends now (called before its GPUs are given back)."""
        ...

    def after_pass(self, sim: SimState) -> None:
        """The pass is over: put requeued jobs back in the queue (and ask for a full next pass if needed)."""
        ...
