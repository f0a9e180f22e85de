"""`pool apply`: validate a pools file against live Slurm, diff, run the changes, write the fragment."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from gpupool.errors import GpupoolError, Unreachable
from gpupool.fsutil import atomic_write_text
from gpupool.pools.changes import Change, Desired, build_desired, diff, partition_line
from gpupool.pools.fragment import (
    Fragment,
    clear_intent,
    conf_includes,
    read_fragment,
    render_fragment,
    write_intent,
)
from gpupool.pools.nodes import FabricLoader
from gpupool.pools.offline import SlurmConf, offline_state
from gpupool.pools.schema import PoolsFile
from gpupool.pools.slurm_state import CommandRunner, LiveState, read_live_state
from gpupool.pools.validate import ResolvedPools, UserLookup, resolve_and_validate, unix_user_exists

if TYPE_CHECKING:
    from gpupool.fabric.compiled import CompiledFabric

PREEMPT_TYPES = ("preempt/partition_prio", "preempt/qos")


@dataclass
class ApplyReport:
    changes: list[Change]
    dry_run: bool
    fragment_path: str
    warnings: list[str] = field(default_factory=list)
    fragment_written: bool = False
    error: GpupoolError | None = None
    offline: bool = False  # `--dry-run --offline`: checked against files, not a live Slurm
    unchecked: list[str] = field(default_factory=list)  # what an offline preview could not check

    @property
    def applied(self) -> bool:
        """True when Slurm now matches the file (every change ran, or none was needed)."""
        return not self.dry_run and self.error is None

    def as_json(self) -> dict[str, object]:
        doc: dict[str, object] = {
            "changes": [c.as_json() for c in self.changes],
            "applied": self.applied,
            "dry_run": self.dry_run,
            "fragment": self.fragment_path,
            "fragment_written": self.fragment_written,
            "warnings": self.warnings,
        }
        if self.error is not None:
            doc["error"] = self.error.message
        if self.offline:
            doc["offline"] = True
            doc["unchecked"] = self.unchecked
        return doc


@dataclass
class ApplyOptions:
    dry_run: bool = False
    fragment_path: str | None = None  # resolved by the caller (option, config, next to slurm.conf)
    allow_unknown_users: bool = False
    user_exists: UserLookup = unix_user_exists
    fabric: FabricLoader | None = None


def apply_pools(spec: PoolsFile, run: CommandRunner, options: ApplyOptions,
                fragment_for: Callable[[LiveState], str]) -> ApplyReport:
    """Make Slurm match `spec`; on a failing command stop and report what ran (re-running completes it)."""
    fabric = _memoized(options.fabric)
    # Offline checks first, so a bad file is exit 4 even when Slurm is down.
    resolve_and_validate(spec, None, fabric, allow_unknown_users=True)
    live = read_live_state(run)
    fragment = read_fragment(options.fragment_path or fragment_for(live))
    resolved = resolve_and_validate(spec, live, fabric, user_exists=options.user_exists,
                                    allow_unknown_users=options.allow_unknown_users)
    cluster = spec.cluster or live.cluster
    desired = build_desired(spec, resolved, cluster)
    changes = diff(spec, desired, live, fragment)
    report = ApplyReport(changes, options.dry_run, fragment.path,
                         warnings=config_warnings(spec, live, fragment.path))
    report.warnings += overlap_warnings(spec, resolved, live, fragment.owned | set(desired.partitions))
    if spec.cluster and spec.cluster != live.cluster:
        report.warnings.append(f"the file names cluster {spec.cluster!r} but slurmctld runs {live.cluster!r}")
    if options.dry_run:
        return report
    creating = {c.name: partition_line(c.name, desired.partitions[c.name]) for c in changes
                if c.kind == "partition" and c.action == "create"}
    if creating:
        write_intent(fragment, creating)  # before Slurm changes: a killed run is adopted by the next
    try:
        execute(changes, run)
    except GpupoolError as exc:
        report.error = exc
    finally:
        report.fragment_written = write_fragment(fragment, desired, live, changes)
    if creating or fragment.intended:
        settle_intent(fragment, creating, changes, report.error)
    return report


def preview_offline(spec: PoolsFile, options: ApplyOptions, slurm_conf: SlurmConf | None,
                    fragment_file: str) -> ApplyReport:
    """`pool apply --dry-run --offline`: every check that needs no live Slurm (the cross-checks
    included: limits above a pool's GPUs, a node in two owned pools, nodes and partitions of
    slurm.conf), and the objects apply would create, as a dry run; `unchecked` says what was not seen."""
    fabric = _memoized(options.fabric)
    fragment = read_fragment(fragment_file)
    live, unchecked = offline_state(slurm_conf, fragment)
    checked_live = live if slurm_conf is not None and slurm_conf.nodes else None
    resolved = resolve_and_validate(spec, checked_live, fabric, user_exists=options.user_exists,
                                    allow_unknown_users=options.allow_unknown_users, slurm_accounts_known=False)
    unknown_size = sorted(name for name, gpus in resolved.gpus.items() if gpus == 0)
    if unknown_size:
        unchecked.append(f"GPU limits of pool(s) {', '.join(unknown_size)}: GPU count unknown "
                         "(give --slurm-conf with Gres=gpu:K, or gpus_per_node in the file)")
    desired = build_desired(spec, resolved, spec.cluster or live.cluster)
    changes = diff(spec, desired, live, fragment)
    report = ApplyReport(changes, True, fragment.path, offline=True, unchecked=unchecked)
    if slurm_conf is not None:
        report.warnings = config_warnings(spec, live, fragment.path)
        report.warnings += overlap_warnings(spec, resolved, live, fragment.owned | set(desired.partitions))
    return report


def settle_intent(fragment: Fragment, creating: dict[str, str], changes: list[Change],
                  error: GpupoolError | None) -> None:
    """After a run that was not killed: keep in the journal only creations whose outcome is unknown
    (Slurm did not answer in time, so it may still have acted); the fragment records the rest."""
    status = {c.name: c.status for c in changes if c.kind == "partition"}
    unknown = {name: line for name, line in {**fragment.intended, **creating}.items()
               if isinstance(error, Unreachable) and status.get(name) == "failed"}
    if unknown:
        write_intent(replace(fragment, intended={}), unknown)
    else:
        clear_intent(fragment)


def _memoized(loader: FabricLoader | None) -> FabricLoader | None:
    if loader is None:
        return None
    cache: list[CompiledFabric] = []

    def load() -> CompiledFabric:
        if not cache:
            cache.append(loader())
        return cache[0]

    return load


def execute(changes: list[Change], run: CommandRunner) -> None:
    """Run every change's commands in order; mark each applied/failed/pending; re-raise the failure."""
    for change in changes:
        change.status = "pending"
    for change in changes:
        try:
            for command in change.commands:
                run(command)
        except GpupoolError:
            change.status = "failed"
            raise
        change.status = "applied"


def fragment_lines(fragment: Fragment, desired: Desired, live: LiveState, changes: list[Change]) -> dict[str, str]:
    """Partitions gpupool owns after the run: desired ones that exist, plus old ones not yet deleted."""
    status = {c.name: c for c in changes if c.kind == "partition"}
    lines = dict(fragment.lines)
    for name, line in fragment.intended.items():
        if name in live.partitions:
            lines.setdefault(name, line)  # created by an interrupted run: adopt it
    for name, attrs in desired.partitions.items():
        change = status.get(name)
        exists = name in live.partitions or (change is not None and change.status == "applied")
        if exists:
            lines[name] = partition_line(name, attrs)
    for name in list(lines):
        change = status.get(name)
        if name in desired.partitions:
            continue
        if (change is not None and change.status == "applied") or (change is None and name not in live.partitions):
            del lines[name]  # deleted now, or already gone from Slurm
    return lines


def write_fragment(fragment: Fragment, desired: Desired, live: LiveState, changes: list[Change]) -> bool:
    text = render_fragment(fragment.path, fragment_lines(fragment, desired, live, changes))
    if text == fragment.text:
        return False
    atomic_write_text(fragment.path, text)
    return True


def overlap_warnings(spec: PoolsFile, resolved: ResolvedPools, live: LiveState, ours: set[str]) -> list[str]:
    """Partitions gpupool does not manage that reach into owned pools bypass the owners' rules."""
    from gpupool.hostlist import expand

    owned_hosts = {h: p.name for p in spec.pools.values() if p.owners for h in resolved.hosts[p.name]}
    warnings = []
    for name, attrs in sorted(live.partitions.items()):
        if name in ours or attrs.get("Nodes", "") in {"", "(null)"}:
            continue
        hosts = expand(attrs["Nodes"])  # a node list gpupool cannot read is an BadInput, never skipped
        pools = sorted({owned_hosts[h] for h in hosts if h in owned_hosts})
        if pools:
            warnings.append(f"partition {name!r} (not managed by gpupool) also covers owned pool(s) "
                            f"{', '.join(pools)}: its jobs use those GPUs outside the owners' rules "
                            f"(and are preempted like borrowers if its PriorityTier is lower)")
    return warnings


def config_warnings(spec: PoolsFile, live: LiveState, fragment_path: str) -> list[str]:
    """slurm.conf settings borrowing, fair-share and limits need, and are missing."""
    conf = live.config
    warnings = []
    preempt_type = conf.get("PreemptType", "preempt/none")
    if spec.borrowing_active():
        if preempt_type not in PREEMPT_TYPES:
            warnings.append(f"PreemptType={preempt_type}: owners' jobs will not reclaim borrowed GPUs; set "
                            "PreemptType=preempt/partition_prio and PreemptMode=REQUEUE in slurm.conf")
        elif "OFF" in conf.get("PreemptMode", "OFF").upper().split(","):
            warnings.append("PreemptMode=OFF: set PreemptMode=REQUEUE in slurm.conf so borrowed jobs are requeued")
        if preempt_type == "preempt/qos":
            lacking = sorted(a.name for a in spec.accounts.values()
                             if not (a.default_queue and spec.borrowing.queue in spec.queue_preempts(spec.queues[a.default_queue])))
            owners = sorted({o for p in spec.pools.values() for o in p.owners} & set(lacking))
            if owners:
                warnings.append(f"PreemptType=preempt/qos: owner account(s) {', '.join(owners)} have no default_queue "
                                f"that preempts {spec.borrowing.queue!r}; their jobs will not reclaim borrowed GPUs")
        if conf.get("JobRequeue", "1").strip() == "0":
            warnings.append("JobRequeue=0: preempted batch jobs are cancelled unless submitted with --requeue")
    if conf.get("PriorityType", "") != "priority/multifactor":
        warnings.append(f"PriorityType={conf.get('PriorityType', '?')}: fair-share shares have no effect; "
                        "set PriorityType=priority/multifactor")
    elif conf.get("PriorityWeightFairShare", "0").strip() in {"0", ""}:
        warnings.append("PriorityWeightFairshare=0: fair-share does not change job priority")
    enforce = conf.get("AccountingStorageEnforce", "none").lower()
    lending_limits = any(p.lend_limit is not None or p.quota for p in spec.pools.values()) or any(
        a.borrow_limit is not None for a in spec.accounts.values())
    if (spec.queues or lending_limits) and not {"limits", "qos"} <= set(enforce.split(",")) \
            and "safe" not in enforce:
        warnings.append(f"AccountingStorageEnforce={enforce}: queue, lend, borrow and quota GPU limits are not "
                        "enforced; set AccountingStorageEnforce=associations,limits,qos")
    if (lending_limits or any(q.max_gpus or q.max_gpus_per_user for q in spec.queues.values())) and \
            "gres/gpu" not in conf.get("AccountingStorageTRES", ""):
        warnings.append("AccountingStorageTRES lacks gres/gpu: GPU limits cannot be tracked")
    slurm_conf = conf.get("SLURM_CONF")
    if slurm_conf and conf_includes(slurm_conf, fragment_path) is False:
        warnings.append(f"{slurm_conf} does not `include {fragment_path}`: partitions created now are "
                        "lost when slurmctld restarts")
    return warnings
