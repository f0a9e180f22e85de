"""`pool report`, `metrics`, `report --html` and `jobs --report` as use cases (`status`: `gpupool.app.status`).

Each composes the fabric, the free state (as `gpupool plan` gets it: `app.plan`), Slurm's
accounting and pools (through a `CommandRunner`), the fabric audit and the pure `observe`
functions; the CLI parses options, calls one of these and renders what comes back.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from gpupool.app.pools import config_fragment, live_fragment_path, pool_hosts
from gpupool.app.status import Warn, check_shapes, fragmentation, load_fabric_and_free
from gpupool.config import Config, resolve_fabric_path
from gpupool.errors import EnvError, GpupoolError, InputError, UsageError
from gpupool.findings import Finding
from gpupool.fsutil import read_input_bytes
from gpupool.observe.html import ReportInputs, render_html
from gpupool.observe.lending import (
    LendingData,
    PoolInfo,
    account_lending,
    lending_series,
    parse_sacct,
    parse_when,
    sacct_argv,
)
from gpupool.observe.metrics import (
    Family,
    PoolNow,
    audit_families,
    fragmentation_families,
    node_check_families,
    pool_families,
    pools_now,
    render_text,
    up_family,
)
from gpupool.pools.fragment import read_fragment
from gpupool.pools.schema import load_pools_file
from gpupool.pools.slurm_state import (
    CommandRunner,
    SlurmNode,
    parse_jobs,
    parse_nodes,
    parse_partitions,
)
from gpupool.pools.status import (
    PoolDefinition,
    account_statuses,
    definitions_from_file,
    definitions_from_fragment,
    gpu_tally,
    parse_sshare_tree,
)

if TYPE_CHECKING:
    from gpupool.observe.jobreport import JobTopology
    from gpupool.slurm.port import SlurmClient

# numpy/numba (fabric, placement, fragmentation, audit) are imported inside the functions that need
# them: `pool report` and `pool apply` (which loads `pool report`) read no fabric and must stay light.


def parse_window(since: str, until: str, now: datetime) -> tuple[datetime, datetime]:
    """`--since`/`--until` -> local datetimes; UsageError when the window is empty."""
    start, end = parse_when(since, now, "--since"), parse_when(until, now, "--until")
    if end <= start:
        raise UsageError(f"--until {until} must be after --since {since}")
    return start, end


def pool_definitions(run: CommandRunner, config: Config, pools_file: str | None, fragment_option: str | None,
                     fabric_path: str | None) -> tuple[list[PoolDefinition], dict[str, SlurmNode]]:
    """Pool definitions (from POOLS.yaml, else gpupool's partition fragment) and Slurm's nodes, as `pool status`."""
    nodes = parse_nodes(run(["scontrol", "-o", "-d", "show", "node"]))
    partitions = parse_partitions(run(["scontrol", "-o", "show", "partition"]))
    if pools_file:
        spec = load_pools_file(pools_file)
        return definitions_from_file(spec, pool_hosts(spec, fabric_path, config), partitions), nodes
    path = fragment_option or config_fragment(config) or live_fragment_path(run)
    return definitions_from_fragment(read_fragment(path), partitions), nodes


def lending(run: CommandRunner, since: datetime, until: datetime, now: datetime, *,
            definitions: list[PoolDefinition], nodes: dict[str, SlurmNode], buckets: int = 0) -> LendingData:
    """The one bulk sacct call (and sshare for the shares), accounted over the window (and its buckets).

    The scavenger partition is skipped: its nodes belong to the owned pools.
    """
    pools = [PoolInfo(d.name, {n: nodes[n].gpus if n in nodes else 0 for n in d.nodes}, frozenset(d.owners))
             for d in definitions if d.role != "scavenger"]
    text = run(sacct_argv(since, until))
    runs = parse_sacct(text)
    shares: dict[str, tuple[float | None, float | None]] = {}
    for account in account_statuses(parse_sshare_tree(run(["sshare", "-P", "-a", "-l"])), None):
        shares[account.name] = (account.norm_shares, account.fairshare)
    report = account_lending(runs, pools, since, until, now, shares)
    series = lending_series(runs, pools, since, until, now, buckets) if buckets > 0 else None
    return LendingData(report, text, series)


def pool_report(run: CommandRunner, config: Config, *, pools_file: str | None, fragment_option: str | None,
                fabric_path: str | None, since: str, until: str, now: datetime) -> LendingData:
    """`gpupool pool report`: lending per pool over the window."""
    start, end = parse_window(since, until, now)
    definitions, nodes = pool_definitions(run, config, pools_file, fragment_option, fabric_path)
    return lending(run, start, end, now, definitions=definitions, nodes=nodes)


def pools_at_present(run: CommandRunner, config: Config, pools_file: str | None, fragment_option: str | None,
                     fabric_path: str | None) -> list[PoolNow]:
    """GPUs per pool now: total, used by owners, lent, borrowed (`scontrol show job`)."""
    definitions, nodes = pool_definitions(run, config, pools_file, fragment_option, fabric_path)
    return pools_now(definitions, lambda hosts: gpu_tally(hosts, nodes),
                     parse_jobs(run(["scontrol", "-o", "-d", "show", "job"])))


def read_findings_document(path: str, what: str) -> tuple[str, list[Finding]]:
    """Status and findings of a saved `fabric audit --json` or `node check --json` document."""
    try:
        doc = json.loads(read_input_bytes(path, what))
        findings = [Finding(str(f["check"]), str(f["severity"]), str(f["subject"]), str(f.get("message", "")))
                    for f in doc.get("findings", [])]
        return str(doc["status"]), findings
    except (ValueError, KeyError, TypeError, AttributeError):
        raise InputError(f"{path}: not a {what} (`--json` output with status and findings)") from None


def fabric_audit(config: Config, fabric_path: str | None, audit_json: str | None) -> tuple[str, list[Finding]]:
    """Audit status and findings: a saved `fabric audit --json` document, else the structural checks
    `gpupool fabric audit --fabric F` runs (no live tools)."""
    from gpupool.app.audit import AuditRequest, run_audit

    if audit_json:
        return read_findings_document(audit_json, "fabric audit file")
    result = run_audit(AuditRequest(fabric_path=resolve_fabric_path(fabric_path, config),
                                    config=config.section("audit")))
    return result.status, list(result.findings)


@dataclass(frozen=True)
class MetricsOptions:
    fabric_path: str | None
    free_path: str | None
    partition: str | None
    shapes: str | None
    gpus_per_node: int | None
    pools_file: str | None
    fragment: str | None
    audit_json: str | None
    audit: bool
    pools: bool
    node_check_json: str | None = None


def metrics_text(options: MetricsOptions, config: Config, slurm: Callable[[], SlurmClient],
                 runner: Callable[[], CommandRunner], warn: Warn) -> str:
    """Every family in the Prometheus text format (one collection)."""
    return render_text(metrics_families(options, config, slurm, runner, warn))


def metrics_families(options: MetricsOptions, config: Config, slurm: Callable[[], SlurmClient],
                     runner: Callable[[], CommandRunner], warn: Warn) -> list[Family]:
    """Every family; a source that cannot be read is reported by gpupool_collector_up 0 and a warning."""
    families: list[Family] = []
    up: dict[str, bool] = {}

    def collect(source: str, read: Callable[[], list[Family]]) -> None:
        try:
            families.extend(read())
            up[source] = True
        except GpupoolError as exc:
            warn(f"{source.replace('_', ' ')}: {exc.message}")
            up[source] = False

    def fragmentation_now() -> list[Family]:
        compiled, free = load_fabric_and_free(config, slurm, options.fabric_path, options.free_path,
                                              options.partition, warn=warn, gpus_per_node=options.gpus_per_node)
        return fragmentation_families(fragmentation(compiled, free, options.shapes, options.gpus_per_node))

    def node_check() -> list[Family]:
        check_status, findings = read_findings_document(options.node_check_json or "", "node check file")
        return node_check_families(socket.gethostname().split(".")[0], check_status, findings)

    collect("fragmentation", fragmentation_now)
    if options.pools:
        collect("pools", lambda: pool_families(pools_at_present(runner(), config, options.pools_file,
                                                                 options.fragment, options.fabric_path)))
    if options.audit:
        collect("audit", lambda: audit_families(*fabric_audit(config, options.fabric_path, options.audit_json)))
    if options.node_check_json:
        collect("node_check", node_check)
    families.append(up_family(up))
    return families


@dataclass(frozen=True)
class HtmlOptions:
    fabric_path: str | None
    free_path: str | None
    partition: str | None
    shapes: str | None
    gpus_per_node: int | None
    pools_file: str | None
    fragment: str | None
    since: str
    until: str
    pools: bool
    audit_json: str | None
    audit: bool


def html_report(options: HtmlOptions, config: Config, slurm: Callable[[], SlurmClient],
                runner: Callable[[], CommandRunner], warn: Warn, now: datetime) -> str:
    """The page: fabric and fragmentation (required), lending and audit (noted on the page when missing)."""
    check_shapes(options.shapes, options.gpus_per_node)
    start, end = parse_window(options.since, options.until, now)
    compiled, free = load_fabric_and_free(config, slurm, options.fabric_path, options.free_path, options.partition,
                                          warn=warn, gpus_per_node=options.gpus_per_node)
    figures = fragmentation(compiled, free, options.shapes, options.gpus_per_node)
    notes: dict[str, str] = {}
    lent = None
    if not options.pools:
        notes["lending"] = "left out (--no-pools)"
    else:
        try:
            run = runner()
            definitions, nodes = pool_definitions(run, config, options.pools_file, options.fragment,
                                                  options.fabric_path)
            lent = lending(run, start, end, now, definitions=definitions, nodes=nodes, buckets=24)
        except GpupoolError as exc:
            warn(f"pools: {exc.message}")  # the full text for the admin; the page gets a short notice
            notes["lending"] = short_notice(exc)
    audit_status: str | None = None
    findings: list[Finding] = []
    if not options.audit:
        notes["audit"] = "left out (--no-audit)"
    else:
        try:
            audit_status, findings = fabric_audit(config, options.fabric_path, options.audit_json)
        except GpupoolError as exc:
            warn(f"audit: {exc.message}")
            notes["audit"] = short_notice(exc)
    return render_html(ReportInputs(compiled, figures, audit_status, findings, lent, notes, now))


NOTICE_CHARS = 160


def short_notice(exc: GpupoolError) -> str:
    """A section's failure as a reader of the page should see it: what could not be read, in one
    short line (a resolver's or sacct's raw text goes to stderr, not to the page)."""
    first = exc.message.splitlines()[0] if exc.message else type(exc).__name__
    if len(first) > NOTICE_CHARS:
        first = first[:NOTICE_CHARS - 3].rstrip() + "..."
    if isinstance(exc, EnvError):
        return f"Slurm could not be reached when the page was made ({first})"
    return first


def job_report(run: CommandRunner, config: Config, fabric_path: str | None, job_id: str) -> JobTopology:
    """`gpupool jobs --report`: two sacct calls (the job; the runs at its start) and `scontrol show node`
    for the configured GPUs, then the topology report on the fabric."""
    from gpupool.fabric.compiled import load_compiled
    from gpupool.observe.jobreport import job_argv, job_topology

    if not job_id.replace("_", "").isdigit():
        raise InputError(f"{job_id!r} is not a Slurm job id")
    compiled = load_compiled(resolve_fabric_path(fabric_path, config))
    runs = [r for r in parse_sacct(run(job_argv(job_id))) if r.start is not None and r.nodes]
    if not runs:
        raise InputError(f"job {job_id}: sacct knows no run of it on any node")
    job = max(runs, key=lambda r: r.start or datetime.min)
    assert job.start is not None
    others = parse_sacct(run(sacct_argv(job.start, job.start + timedelta(seconds=1))))
    capacity = {name: node.gpus for name, node in parse_nodes(run(["scontrol", "-o", "-d", "show", "node"])).items()
                if node.gpus > 0}
    return job_topology(compiled, job, others, capacity)
