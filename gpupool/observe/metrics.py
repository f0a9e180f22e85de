"""Prometheus metric families for fragmentation, pools and the fabric audit, exposed through prometheus_client.

gpupool builds plain `Family` records from its data; `FamiliesCollector` (a prometheus_client custom
collector) turns them into metric families, and prometheus_client does the exposition (text format
0.0.4), the atomic textfile write and the HTTP endpoint (`gpupool.cli.metrics`).

Names follow Prometheus conventions: `gpupool_` prefix, base units (GPUs, seconds), and no
`_total` suffix since everything here is a gauge (a value now, not a running count).
docs/observe.md lists every family.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics_core import Metric

    from gpupool.findings import Finding
    from gpupool.observe.fragmentation import Fragmentation

AUDIT_STATUS_CODES = {"OK": 0, "WARNING": 1, "CRITICAL": 2, "UNKNOWN": 3}


@dataclass
class Family:
    name: str
    help: str
    kind: str = "gauge"
    samples: list[tuple[dict[str, str], float]] = field(default_factory=list)

    def add(self, value: float, **labels: str) -> Family:
        self.samples.append((labels, float(value)))
        return self


class FamiliesCollector:
    """A prometheus_client custom collector over gpupool's families: `read()` runs on every collection
    (each scrape of the server, each textfile write), so the figures are always collected afresh."""

    def __init__(self, read: Callable[[], Iterable[Family]]) -> None:
        self.read = read

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.metrics_core import Metric

        for family in self.read():
            metric = Metric(family.name, family.help, family.kind)
            for labels, value in family.samples:
                metric.add_sample(family.name, {k: str(v) for k, v in labels.items()}, value)
            yield metric


def metrics_registry(read: Callable[[], Iterable[Family]]) -> CollectorRegistry:
    """A registry holding only gpupool's collector (no process or platform metrics of this Python)."""
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry(auto_describe=False)  # no describe(): registering must not collect
    registry.register(FamiliesCollector(read))
    return registry


def render_text(families: Iterable[Family]) -> str:
    """The families in the Prometheus text exposition format 0.0.4 (prometheus_client's encoder)."""
    from prometheus_client import generate_latest

    collected = list(families)
    return generate_latest(metrics_registry(lambda: collected)).decode()


def fragmentation_families(figures: Fragmentation) -> list[Family]:
    free = Family("gpupool_free_gpus", "Free GPUs on usable hosts of the fabric.").add(figures.free_gpus)
    stranded = Family("gpupool_stranded_gpus",
                      "Free GPUs that no listed job shape can use without crossing their leaf.").add(figures.stranded_gpus)
    largest = Family("gpupool_largest_fitting_job_gpus",
                     "GPUs of the largest listed job shape that fits now within one unit of the scope (0: none).")
    largest_whole = Family("gpupool_largest_whole_node_block_gpus",
                           "GPUs of whole-free hosts inside the best unit of the scope.")
    for scope, value in figures.largest.items():
        largest.add(value, scope=scope)
        largest_whole.add(figures.largest_whole_node_gpus[scope], scope=scope)
    fits = Family("gpupool_job_shape_fits", "1 when a job of this shape fits now within one unit of the scope.")
    jobs = Family("gpupool_job_shape_jobs_within_leaf",
                  "How many jobs of this shape could start at once with none crossing a leaf.")
    shape_stranded = Family("gpupool_job_shape_stranded_gpus",
                            "Free GPUs this job shape cannot use without crossing their leaf.")
    for fit in figures.shapes:
        shape = str(fit.shape.gpus)
        for scope, ok in fit.fits.items():
            fits.add(1 if ok else 0, shape_gpus=shape, scope=scope)
        jobs.add(fit.jobs_within_leaf, shape_gpus=shape)
        shape_stranded.add(fit.stranded_gpus, shape_gpus=shape)
    leaf_free = Family("gpupool_leaf_free_gpus", "Free GPUs per leaf.")
    leaf_capacity = Family("gpupool_leaf_capacity_gpus", "GPUs per leaf (configured, else hosts x GPUs per node).")
    leaf_whole = Family("gpupool_leaf_whole_free_hosts", "Hosts of the leaf with a whole node's GPUs free.")
    for leaf in figures.leaves:
        leaf_free.add(leaf.free_gpus, leaf=leaf.name, pod=leaf.pod)
        leaf_capacity.add(leaf.capacity_gpus, leaf=leaf.name, pod=leaf.pod)
        leaf_whole.add(leaf.whole_free_hosts, leaf=leaf.name, pod=leaf.pod)
    return [free, stranded, largest, largest_whole, fits, jobs, shape_stranded, leaf_free, leaf_capacity, leaf_whole]


@dataclass(frozen=True)
class PoolNow:
    """GPUs of one pool right now (from Slurm's nodes and running jobs)."""

    name: str
    owners: tuple[str, ...]
    capacity: int
    used: int
    down: int
    lent: int  # held on the pool's nodes by accounts that do not own it
    borrowed: int  # held by the pool's owners on nodes of owned pools they do not own

    @property
    def free(self) -> int:
        return max(0, self.capacity - self.used - self.down)


# What pools_now reads of the pools layer's records (observe may not import `pools`: test_layers).
class PoolDefinitionLike(Protocol):  # gpupool.pools.status.PoolDefinition
    @property
    def name(self) -> str: ...
    @property
    def nodes(self) -> Sequence[str]: ...
    @property
    def owners(self) -> Sequence[str]: ...
    @property
    def role(self) -> str: ...


class GpuTallyLike(Protocol):  # gpupool.pools.status.GpuTally
    @property
    def total(self) -> int: ...
    @property
    def allocated(self) -> int: ...
    @property
    def down(self) -> int: ...


class JobLike(Protocol):  # gpupool.pools.slurm_state.Job
    @property
    def running(self) -> bool: ...
    @property
    def account(self) -> str: ...
    @property
    def node_gpus(self) -> Mapping[str, int]: ...


def pools_now(definitions: Iterable[PoolDefinitionLike], tally: Callable[[Sequence[str]], GpuTallyLike],
              jobs: Iterable[JobLike]) -> list[PoolNow]:
    """Per pool (not the scavenger partition): capacity, used, down, lent and borrowed GPUs now.

    `definitions` are `gpupool.pools.status.PoolDefinition`s, `tally(hosts)` is
    `gpupool.pools.status.gpu_tally` over Slurm's nodes (one owner of that count) and `jobs`
    `parse_jobs` output; borrowing is booked to the first pool (by name) the account owns.
    """
    pools = [d for d in definitions if d.role != "scavenger"]
    pool_of_node: dict[str, PoolDefinitionLike] = {}
    for d in pools:
        for host in d.nodes:
            pool_of_node.setdefault(host, d)
    home: dict[str, str] = {}
    for d in sorted(pools, key=lambda d: d.name):
        for account in d.owners:
            home.setdefault(account, d.name)
    lent = dict.fromkeys((d.name for d in pools), 0)
    borrowed = dict.fromkeys((d.name for d in pools), 0)
    for job in jobs:
        if not job.running:
            continue
        for host, gpus in job.node_gpus.items():
            pool = pool_of_node.get(host)
            if pool is None or not pool.owners or job.account in pool.owners:
                continue
            lent[pool.name] += gpus
            if job.account in home:
                borrowed[home[job.account]] += gpus
    result = []
    for d in pools:
        now = tally(d.nodes)
        result.append(PoolNow(d.name, tuple(sorted(d.owners)), now.total, now.allocated, now.down, lent[d.name],
                              borrowed[d.name]))
    return result


def pool_families(pools: Iterable[PoolNow]) -> list[Family]:
    capacity = Family("gpupool_pool_capacity_gpus", "GPUs on the pool's nodes.")
    free = Family("gpupool_pool_free_gpus", "Idle GPUs of the pool on nodes that are up.")
    used = Family("gpupool_pool_used_gpus", "GPUs of the pool allocated to jobs.")
    down = Family("gpupool_pool_down_gpus", "Idle GPUs of the pool on down or draining nodes.")
    lent = Family("gpupool_pool_lent_gpus", "GPUs of the pool held by jobs of accounts that do not own it.")
    borrowed = Family("gpupool_pool_borrowed_gpus",
                      "GPUs the pool's owners hold on owned pools they do not own.")
    for p in pools:
        capacity.add(p.capacity, pool=p.name)
        free.add(p.free, pool=p.name)
        used.add(p.used, pool=p.name)
        down.add(p.down, pool=p.name)
        lent.add(p.lent, pool=p.name)
        borrowed.add(p.borrowed, pool=p.name)
    return [capacity, free, used, down, lent, borrowed]


def audit_families(status: str, findings: Iterable[Finding]) -> list[Family]:
    """Audit status (0 OK .. 3 UNKNOWN, and one 0/1 series per status) and findings by check and severity."""
    code = Family("gpupool_fabric_audit_status_code", "Fabric audit status: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.")
    code.add(AUDIT_STATUS_CODES.get(status, 3))
    state = Family("gpupool_fabric_audit_status", "1 for the fabric audit's current status, 0 for the others.")
    for name in AUDIT_STATUS_CODES:
        state.add(1 if name == status else 0, status=name)
    counts: dict[tuple[str, str], int] = {}
    for finding in findings:
        key = (finding.check, finding.severity)
        counts[key] = counts.get(key, 0) + 1
    by_check = Family("gpupool_fabric_audit_findings", "Fabric audit findings by check and severity.")
    for (check, severity), count in sorted(counts.items()):
        by_check.add(count, check=check, severity=severity)
    return [code, state, by_check]


def node_check_families(node: str, status: str, findings: Iterable[Finding]) -> list[Family]:
    """This node's last `gpupool node check` result: status code and findings by check and severity."""
    code = Family("gpupool_node_check_status_code", "Node check status: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.")
    code.add(AUDIT_STATUS_CODES.get(status, 3), node=node)
    counts: dict[tuple[str, str], int] = {}
    for finding in findings:
        key = (finding.check, finding.severity)
        counts[key] = counts.get(key, 0) + 1
    by_check = Family("gpupool_node_check_findings", "Node check findings by check and severity.")
    for (check, severity), count in sorted(counts.items()):
        by_check.add(count, node=node, check=check, severity=severity)
    return [code, by_check]


def up_family(sources: dict[str, bool]) -> Family:
    family = Family("gpupool_collector_up", "1 when this source could be read for this scrape, else 0.")
    for source, ok in sources.items():
        family.add(1 if ok else 0, source=source)
    return family
