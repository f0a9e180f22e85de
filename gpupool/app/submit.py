"""`gpupool submit` as a use case: plan, then sbatch on the planned nodes, race-safe.

    outcome = submit_planned(client, compiled, SubmitRequest(gpus=16, script="job.sh"))

Steps (all under the user's submit lock, `gpupool.app.lock`, so one user's concurrent submits
never plan on the same free GPUs; other users' submits are covered by step 5):

1. Read the sbatch options (``-- SBATCH_ARGS`` and the script's ``#SBATCH`` lines), merge the GPU
   request with gpupool's options, reject conflicting ones (``-w``, ``-F``, ``-N`` with another
   count, different GPU counts or partitions).
2. Free state from Slurm (`free_gpus_for_request`), minus GPUs promised to pending gpupool jobs.
3. Plan now, under the topology Slurm applies to the partition (`gpupool.app.topology`: tree
   distances, or topology/block's fewest blocks). If nothing fits now, plan on the partition's
   whole capacity instead and submit without a node list: under tree with
   ``--switches=<leaf switches of that plan>@<wait>`` so Slurm waits for an equally compact set
   ("mode": "wait-switches"); under topology/block (which ignores --switches) with
   ``--segment=<base block size>`` when the job is whole base blocks (Slurm 24.05+), else with
   nothing more, since Slurm keeps a job in one aggregated block itself ("mode": "wait-block").
   A user's ``--segment=S`` is planned for (every S nodes in one base block, `placement.block`)
   and kept; before Slurm 25.11 (which refuses ``-w`` with several segments) such a job is
   pinned with ``--exclude`` of every other block node instead of ``--nodelist``.
4. sbatch with ``--nodes``, ``--nodelist``, the GPU count and ``--comment gpupool:...``.
   The comment carries a submission token (``token=<32 hex>``). When sbatch's answer is lost
   (timeout, slurmctld stalled) the user's jobs are looked up by that token before anything is
   submitted again, and `--token` lets a rerun find the job of an earlier run instead of
   creating a second one.
5. Verify: poll the job until it runs on the planned nodes. If Slurm rejected the node list,
   or the job waits for resources because a node was taken or drained meanwhile, cancel it
   (only a job this call submitted), re-plan once and resubmit.
"""

from __future__ import annotations

import os
import pwd
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, cast

from gpupool.app.lock import default_lock_path, submit_lock
from gpupool.app.objective import running_uplink_load
from gpupool.app.plan import (
    load_free_file,
    load_health_file,
    plan_placement,
    reclaim_for,
    segment_for,
)
from gpupool.app.reclaim import may_reclaim
from gpupool.app.topology import TopologyChoice, resolve_topology
from gpupool.errors import EnvError, InfeasibleError, InputError, UsageError
from gpupool.fabric.compiled import CompiledFabric
from gpupool.hostlist import expand, fold
from gpupool.placement.block import block_usage
from gpupool.placement.cost import cost_of
from gpupool.placement.health import Health
from gpupool.placement.model import FreeState, Placement, Request
from gpupool.placement.objective import PlacementGoal
from gpupool.placement.reclaim import Reclaim
from gpupool.slurm import sbatch as sb
from gpupool.slurm.duration import DurationError, format_seconds, parse_seconds
from gpupool.slurm.freestate import (
    capacity_gpus,
    check_partition,
    free_gpus_for_request,
    parse_alloc_field,
    subtract_pending_plans,
)
from gpupool.slurm.invoke import SlurmCommandError
from gpupool.slurm.models import JobInfo, NodeState, SubmitResult, parse_plan_comment
from gpupool.slurm.parse import has_started, job_state_word
from gpupool.slurm.port import SlurmClient
from gpupool.slurm.submit import (
    TOKEN_RE,
    default_partition,
    find_token_job,
    is_node_rejection,
    new_token,
    plan_comment,
    raced,
    wait_started,
)
from gpupool.switch_wait import DEFAULT as SWITCH_WAIT_DEFAULT
from gpupool.switch_wait import SwitchWait

DEFAULT_SWITCH_WAIT = SWITCH_WAIT_DEFAULT.text()  # 25% of the job's time limit (gpupool.switch_wait)


@dataclass
class SubmitRequest:
    gpus: int | None = None
    gpus_per_node: int | None = None
    nodes: int | None = None
    partition: str | None = None
    exclude: tuple[str, ...] = ()
    max_hops: int | None = None
    script: str | None = None
    script_args: list[str] = field(default_factory=list)
    sbatch_args: list[str] = field(default_factory=list)  # the user's sbatch options, untouched
    dry_run: bool = False
    switch_wait: str = DEFAULT_SWITCH_WAIT
    verify_timeout: float = 10.0
    lock_timeout: float = 300.0
    lock_path: str | None = None
    health_path: str | None = None  # a saved `fabric audit --json` (hosts to skip, leaves to avoid)
    token: str | None = None  # submission token of an earlier try (rerun after a lost answer)
    lost_answer_lookups: int = 5  # squeue lookups for the token after sbatch's answer was lost
    topology: str = "auto"  # auto (what Slurm applies to the partition), tree or block
    goal: PlacementGoal | None = None  # the placement objective; None: the default (`placement.objective`)
    free_path: str | None = None  # dry runs only: plan on this free file ({"host": free GPUs}), no Slurm
    gpus_per_host: int | None = None  # a whole host's GPUs: the free file may say no more (checked without Slurm)


@dataclass
class SubmitOutcome:
    sbatch_argv: list[str]
    placement: Placement
    mode: str  # "now", "wait-switches" (tree) or "wait-block" (topology/block)
    job_id: str | None = None
    job_state: str = ""
    replanned: bool = False
    notes: list[str] = field(default_factory=list)
    token: str | None = None
    reclaim: Reclaim | None = None
    topology: TopologyChoice | None = None

    @property
    def nodelist(self) -> str:
        return fold(self.placement.allocation)

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "feasible": True,
            "allocation": dict(self.placement.allocation),
            "nodelist": self.nodelist,
            "cost": self.placement.cost.to_json(),
            "elapsed_ms": round(self.placement.elapsed_ms, 3),
            "mode": self.mode,
            "sbatch": self.sbatch_argv,
            "replanned": self.replanned,
            "notes": self.notes,
        }
        if self.job_id is not None:
            doc["job_id"] = self.job_id
            doc["job_state"] = self.job_state
        if self.token is not None:
            doc["token"] = self.token
        if self.reclaim is not None:
            doc["preempt"] = self.reclaim.to_json()
        if self.topology is not None:
            doc["topology"] = self.topology.to_json()
            if self.topology.layout is not None:
                doc["blocks"] = block_usage(self.topology.layout, list(self.placement.allocation))
        return doc


# ---------------------------------------------------------------------------------------------
# request


@dataclass
class Prepared:
    options: list[sb.Option]  # command-line sbatch options, in order
    directives: list[sb.Option]
    hints: sb.GpuRequestHints
    request: Request
    partition: str | None
    health: Health | None = None
    topology: str = "auto"


def prepare(req: SubmitRequest) -> Prepared:
    """Read and check everything that does not need Slurm (usage errors come out here)."""
    options, rest = sb.split_options(req.sbatch_args, "sbatch arguments", stop_at_positional=False)
    wraps = any(o.name == "wrap" for o in options)
    if rest:
        raise UsageError(f"unexpected sbatch argument {rest[0]!r}")
    directives: list[sb.Option] = []
    if req.script is None and not wraps:
        raise UsageError("missing batch SCRIPT (or give -- --wrap=COMMAND)")
    if req.script is not None:
        if wraps:
            raise UsageError("give either a batch SCRIPT or --wrap, not both")
        directives = sb.read_directives(req.script)
    sb.check_forbidden(directives + options)
    hints = sb.gpu_hints(directives + options)
    resolved = sb.merge_request(req.gpus, req.gpus_per_node, req.nodes, req.partition, hints)
    if resolved.gpus is None and resolved.gpus_per_node is None:
        raise UsageError("no GPU request: give --gpus N (or --gpus-per-node K with --nodes M), "
                         "or #SBATCH --gpus / --gres=gpu:K in the script")
    gpus_per_node = resolved.gpus_per_node
    nodes = resolved.nodes
    if gpus_per_node is not None and nodes is None and resolved.gpus is None:
        nodes = 1  # sbatch's default node count
    exclude: list[str] = []
    for text in (*req.exclude, *hints.exclude):
        exclude += expand(text)
    segment = None
    if hints.segment is not None:
        try:
            segment = int(hints.segment)
        except ValueError:
            raise UsageError(f"sbatch --segment={hints.segment!r} is not a number of nodes") from None
    request = Request(gpus=resolved.gpus, gpus_per_node=gpus_per_node, nodes=nodes,
                      exclude=tuple(dict.fromkeys(exclude)), max_hops=req.max_hops,
                      partition=resolved.partition, segment=segment, goal=req.goal)
    try:
        request.shape()  # usage errors (uneven splits, zero counts) before touching Slurm
    except UsageError as exc:
        learned = [f"{flag} {value}" for flag, mine, value in (
            ("--nodes", req.nodes, hints.nodes), ("--gpus", req.gpus, hints.gpus),
            ("--gpus-per-node", req.gpus_per_node, hints.gpus_per_node)) if mine is None and value is not None]
        if learned:
            raise UsageError(f"{exc.message} ({', '.join(learned)} taken from the sbatch options)") from None
        raise
    return Prepared(options=options, directives=directives, hints=hints, request=request,
                    partition=resolved.partition, topology=req.topology)


# ---------------------------------------------------------------------------------------------
# planning


@dataclass
class Plan:
    placement: Placement
    mode: str
    notes: list[str]
    topology: TopologyChoice | None = None
    slurm_version: tuple[int, int, int] | None = None
    reclaim: Reclaim | None = None  # borrowed jobs Slurm will preempt for this placement
    spread_now: Placement | None = None  # wait-switches by choice: the placement now that needs more leaves


class _PartitionsReadOnce:
    """A client whose partition table is read once: one plan needs it for the default partition,
    the topology Slurm applies to it and the reclaim rules (three ``scontrol show partition``
    calls otherwise). Everything else goes to the client itself."""

    def __init__(self, client: SlurmClient) -> None:
        self._client = client
        self._partitions: dict[str, dict[str, str]] | None = None

    def partitions(self) -> dict[str, dict[str, str]]:
        if self._partitions is None:
            self._partitions = self._client.partitions()
        return self._partitions

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def plan_for_slurm(client: SlurmClient, compiled: CompiledFabric, prepared: Prepared,
                   states: list[NodeState] | None = None, jobs: list[JobInfo] | None = None, *,
                   hold: bool = False) -> Plan:
    """Best placement now on Slurm's free state, else the best future one (mode wait-switches). With `hold`
    (submit's --switch-wait), a multi-host placement now on more leaf switches than the best one on the
    partition's usable capacity becomes that one, in mode wait-switches (Slurm waits up to T for it)."""
    client = cast(SlurmClient, _PartitionsReadOnce(client))  # per plan: a re-plan reads Slurm afresh
    states = client.node_states() if states is None else states
    partition = prepared.partition or default_partition(client)
    check_partition(states, partition)
    hints = prepared.hints
    request = prepared.request
    in_fabric = set(compiled.host_names)
    capacity = {h: g for h, g in capacity_gpus(states, partition, usable_only=False).items() if h in in_fabric}
    total = request.total_gpus
    where = f"partition {partition}" if partition else "the cluster"
    if total > sum(capacity.values()):
        raise InfeasibleError(f"request of {total} GPUs is larger than {where} "
                              f"({sum(capacity.values())} GPUs on {len(capacity)} nodes)")
    free = free_gpus_for_request(states, partition, cpus_per_gpu=hints.cpus_per_gpu,
                                 mem_per_gpu_mb=hints.mem_per_gpu_mb, features=hints.features,
                                 gpu_type=hints.gpu_type, exclude=request.exclude)
    free = {h: g for h, g in free.items() if h in in_fabric}
    jobs = client.jobs() if jobs is None else jobs
    free = subtract_pending_plans(free, jobs)
    choice = resolve_topology(compiled, prepared.topology, partition, lambda: client)
    segment_notes: list[str] = []
    request = segment_for(choice, request, segment_notes.append)
    version = client.version() if choice.layout is not None else None
    if may_reclaim(jobs, states, partition):
        # An owner's partition with borrowed GPUs: count them as free, pin the least-preempting plan.
        owner = replace(request, partition=partition)
        state = FreeState.from_dict(compiled, free, ignore_unknown=True, source="Slurm")
        reclaim = reclaim_for(client, compiled, state, owner, states, jobs, prepared.health,
                              owner_qos=_last_value(prepared.directives + prepared.options, "qos"), topology=choice)
        if reclaim is not None:
            notes = segment_notes + ([preempt_note(reclaim)] if reclaim.preempted else [])
            return Plan(reclaim.placement, "now", notes, choice, version, reclaim)
    def usable_capacity() -> dict[str, int]:
        """The partition's usable GPUs in the fabric with every running job ended: the best future placement's state."""
        return {h: g for h, g in capacity_gpus(states, partition, usable_only=True, exclude=request.exclude).items()
                if h in in_fabric}

    try:
        now = plan_placement(compiled, free, request, prepared.health, choice,
                             uplink_load=running_uplink_load(compiled, jobs, request.goal, capacity))
    except InfeasibleError as now_error:
        try:
            future = plan_placement(compiled, usable_capacity(), request, prepared.health, choice)
        except InfeasibleError as never:
            raise InfeasibleError(f"{never.message} (even with every running job finished in {where})") from None
        mode = "wait-block" if choice.layout is not None else "wait-switches"
        return Plan(future, mode, [*segment_notes, f"nothing fits now ({now_error.message})"], choice, version)
    if hold and choice.layout is None and len(now.allocation) > 1 and not hints.switches and not hints.defers_start:
        # A placement now on more leaves than the job needs: wait up to T for as few (issue #24, Slurm's --switches).
        try:
            compact = plan_placement(compiled, usable_capacity(), request, prepared.health, choice)
        except InfeasibleError:
            compact = None
        if compact is not None and compact.cost.leaf_switches < now.cost.leaf_switches:
            return Plan(compact, "wait-switches", segment_notes, choice, version, spread_now=now)
    return Plan(now, "now", segment_notes, choice, version)


def _last_value(options: Sequence[sb.Option], name: str) -> str | None:
    values = [o.value for o in options if o.name == name and o.value]
    return values[-1] if values else None


def preempt_note(reclaim: Reclaim) -> str:
    jobs = ", ".join(b.job_id for b in reclaim.preempted)
    return (f"Slurm preempts {len(reclaim.preempted)} borrowed job(s) ({jobs}; {reclaim.gpu_hours:.2f} GPU-h "
            f"already run), the least among placements of this pair_hops_sum")


SEGMENT_NODELIST_SLURM = (25, 11, 0)  # the first release known to take -w with several segments


def time_limit_seconds(prepared: Prepared) -> float | None:
    """The job's --time (the command line's, else the script's), in seconds; None: not given or unlimited."""
    text = _last_value(prepared.directives + prepared.options, "time")
    if text is None:
        return None
    try:
        seconds = parse_seconds(text)
    except DurationError as exc:
        raise UsageError(f"sbatch --time={text[:40]!r}: {exc}") from None
    return float(seconds) if seconds is not None else None


def switch_wait_for(prepared: Prepared, switch_wait: str) -> tuple[str, str]:
    """(T for --switches=N@T in Slurm's time format, why that long) under submit's --switch-wait rule."""
    rule = SwitchWait.parse(switch_wait)
    if not rule.share:
        return format_seconds(rule.seconds), ""
    limit = time_limit_seconds(prepared)
    seconds = rule.for_limit(limit)
    if limit is None:
        return format_seconds(seconds), f" (--switch-wait {rule.text()}, but the job gives no --time)"
    return format_seconds(seconds), f" ({rule.text()} of its --time {format_seconds(limit)})"


def sbatch_args_for(prepared: Prepared, plan: Plan, switch_wait: str,
                    token: str | None = None) -> tuple[list[str], list[str]]:
    """(sbatch options, notes) for a plan."""
    notes = list(plan.notes)
    placement = plan.placement
    switches = None
    segment = None
    exclude_pin = None
    layout = plan.topology.layout if plan.topology is not None else None
    if layout is not None:
        # topology/block ignores --switches; it keeps a job in one aggregated block by itself.
        if prepared.hints.switches:
            notes.append(f"--switches={prepared.hints.switches} is ignored by Slurm's topology/block")
        nodes = len(placement.allocation)
        user_segment = prepared.request.segment
        if user_segment:
            notes.append(f"keeping your --segment={user_segment}: {nodes // user_segment} segment(s), each in "
                         "one base block")
        if (user_segment and plan.mode == "now" and nodes > user_segment
                and (plan.slurm_version or (0, 0, 0)) < SEGMENT_NODELIST_SLURM):
            # Slurm before 25.11 refuses -w with several segments: leave it only the planned nodes.
            others = [h for _name, members in layout.blocks for h in members if h not in placement.allocation]
            exclude_pin = fold(sorted(set(others) | set(prepared.request.exclude)))
            notes.append("pinned with --exclude of every other block node: this Slurm refuses a node list "
                         "with --segment (25.11+ accepts one)")
        if (plan.mode == "wait-block" and nodes > layout.base_size and nodes % layout.base_size == 0
                and not prepared.hints.segment and (plan.slurm_version or (0, 0, 0)) >= (24, 5, 0)):
            segment = layout.base_size
            notes.append(f"submitted with --segment={segment}: Slurm waits for {nodes // layout.base_size} "
                         f"free base block(s) of {segment} nodes, the fewest blocks for {nodes} nodes")
        elif plan.mode == "wait-block":
            notes.append("submitted without a node list: Slurm's topology/block keeps the job in one "
                         "aggregated block by itself")
    elif plan.mode == "wait-switches":
        if prepared.hints.switches:
            notes.append(f"keeping your --switches={prepared.hints.switches}")
            switches = prepared.hints.switches
        else:
            wait, why = switch_wait_for(prepared, switch_wait)
            switches = f"{placement.cost.leaf_switches}@{wait}"
            if plan.spread_now is not None:
                notes.append(f"a placement now would take {plan.spread_now.cost.leaf_switches} leaf switches "
                             f"({fold(plan.spread_now.allocation)}); the job needs "
                             f"{placement.cost.leaf_switches}")
            notes.append(f"submitted with --switches={switches}: Slurm waits up to {wait}{why} for "
                         f"{len(placement.allocation)} nodes under {placement.cost.leaf_switches} leaf "
                         f"switch(es) (best future placement: pair_hops_sum {placement.cost.pair_hops_sum}), "
                         "then places the job anyway")
    elif prepared.hints.switches:
        switches = prepared.hints.switches
    sb.check_node_count(prepared.hints, len(placement.allocation))
    args = sb.build_sbatch_args(
        prepared.options,
        placement.allocation, fold(placement.allocation), prepared.hints,
        plan_comment(placement.cost.to_json(), placement.allocation, plan.mode, prepared.hints.comment, token,
                     segment=segment or (prepared.request.segment if layout is not None else None)),
        partition=prepared.partition if prepared.partition and not prepared.hints.partition else None,
        switches=switches if layout is None else None, pin_nodes=plan.mode == "now" and exclude_pin is None,
        segment=segment, exclude_nodes=exclude_pin,
    )
    return args, notes


# ---------------------------------------------------------------------------------------------
# submit + verify


def current_user() -> str:
    """The Unix user gpupool runs as (whose jobs a token lookup may adopt)."""
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


def plan_for_free_file(compiled: CompiledFabric, prepared: Prepared, free_path: str,
                       gpus_per_host: int | None = None) -> Plan:
    """`submit --dry-run --free FILE`: the placement on the file's free GPUs, without Slurm (as
    `plan --free`: the file is the partition's free state, tree hop distances unless --topology block)."""
    free = load_free_file(free_path, compiled, gpus_per_host=gpus_per_host)
    choice = resolve_topology(compiled, prepared.topology, prepared.partition, None)
    notes: list[str] = [f"planned on {free_path} without Slurm: node states, pending jobs and the partition "
                        "were not checked"]
    request = segment_for(choice, prepared.request, notes.append)
    return Plan(plan_placement(compiled, free, request, prepared.health, choice), "now", notes, choice)


def submit_planned(client: SlurmClient | None, compiled: CompiledFabric, req: SubmitRequest, *,
                   sleep: Callable[[float], None] | None = None,
                   clock: Callable[[], float] = time.monotonic) -> SubmitOutcome:
    """Plan and submit (see the module docstring). Dry runs plan but submit nothing."""
    sleep = sleep or time.sleep
    if req.free_path is not None and not req.dry_run:
        raise UsageError("--free plans without Slurm: give it with --dry-run (a real submit reads Slurm's state)")
    prepared = prepare(req)
    hold = bool(SwitchWait.parse(req.switch_wait))  # a bad --switch-wait is a usage error before Slurm is asked
    time_limit_seconds(prepared)  # as a bad --time
    if req.health_path:
        prepared.health = load_health_file(req.health_path, compiled)
    if req.token is not None and not TOKEN_RE.fullmatch(req.token):
        raise UsageError(f"--token {req.token[:40]!r}: expected the hex token an earlier gpupool submit printed")
    if req.dry_run:
        plan = plan_for_free_file(compiled, prepared, req.free_path, req.gpus_per_host) if req.free_path is not None else \
            plan_for_slurm(_needed(client), compiled, prepared, hold=hold)
        args, notes = sbatch_args_for(prepared, plan, req.switch_wait)
        return SubmitOutcome(_argv(args, req), plan.placement, plan.mode, notes=notes, topology=plan.topology,
                             reclaim=plan.reclaim)
    with submit_lock(req.lock_path or default_lock_path(), req.lock_timeout, sleep):
        return _submit_locked(_needed(client), compiled, req, prepared, sleep, clock, hold)


def _needed(client: SlurmClient | None) -> SlurmClient:
    if client is None:
        raise AssertionError("a Slurm client is needed unless --dry-run --free")  # pragma: no cover
    return client


def _argv(args: Sequence[str], req: SubmitRequest) -> list[str]:
    tail = [req.script, *req.script_args] if req.script is not None else []
    return ["sbatch", *args, *tail]


def _submit_locked(client: SlurmClient, compiled: CompiledFabric, req: SubmitRequest, prepared: Prepared,
                   sleep: Callable[[float], None], clock: Callable[[], float], hold: bool) -> SubmitOutcome:
    replanned = False
    notes: list[str] = []
    user = current_user()
    token = req.token or new_token()
    if req.token:
        earlier = find_token_job(client, token, user)
        if earlier is not None:
            return _adopted(client, compiled, prepared, earlier, token)
    for attempt in (1, 2):
        plan = plan_for_slurm(client, compiled, prepared, hold=hold)
        args, plan_notes = sbatch_args_for(prepared, plan, req.switch_wait, token)
        notes += plan_notes
        try:
            result = client.submit(args, req.script, req.script_args)
        except SlurmCommandError as exc:
            if attempt == 1 and plan.mode == "now" and is_node_rejection(exc):
                notes.append(f"Slurm rejected the node list ({exc.message}); re-planned")
                replanned = True
                token = new_token()  # nothing was created under the old one
                continue
            raise
        except EnvError as exc:
            # The answer is lost, not necessarily the job: look it up by token before anything else.
            found = _lookup_after_lost_answer(client, token, user, req.lost_answer_lookups, sleep)
            if found is None:
                raise EnvError(f"{exc.message}; the job may still be created: rerun with --token {token} "
                               "to pick it up instead of submitting twice") from None
            notes.append(f"sbatch's answer was lost ({exc.message}); found job {found.job_id} by its token")
            result = SubmitResult(job_id=found.job_id)
        outcome = SubmitOutcome(_argv(args, req), plan.placement, plan.mode, job_id=result.job_id,
                                replanned=replanned, notes=notes, token=token, topology=plan.topology,
                                reclaim=plan.reclaim)
        if plan.mode != "now" or prepared.hints.defers_start:
            outcome.job_state = "PENDING"
            return outcome
        job = wait_started(client, result.job_id, req.verify_timeout, sleep, clock)
        if job is None:
            raise InputError(f"job {result.job_id} disappeared right after submission (cancelled or failed at once?)")
        outcome.job_state = job.state
        base = job_state_word(job.state)
        if has_started(job.state):
            if set(job.nodes) != set(plan.placement.allocation):
                outcome.notes.append(f"job runs on {fold(job.nodes)}, not on the planned "
                                     f"{outcome.nodelist}")
            return outcome
        if plan.reclaim is not None and plan.reclaim.preempted and base == "PENDING":
            # Waiting for Resources is expected here: Slurm requeues the borrowers first.
            outcome.notes.append(f"job {result.job_id} is pending ({job.reason or 'not yet scheduled'}) while "
                                 f"Slurm preempts {len(plan.reclaim.preempted)} borrowed job(s)")
            return outcome
        if raced(job) and attempt == 1:
            client.cancel(result.job_id)
            notes.append(f"job {result.job_id} waited ({job.reason}) because a planned node was taken "
                         "or drained meanwhile; cancelled it, re-planned and resubmitted")
            replanned = True
            continue
        if base == "PENDING":
            outcome.notes.append(f"job {result.job_id} is pending ({job.reason or 'not yet scheduled'})")
        return outcome
    raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover


def _lookup_after_lost_answer(client: SlurmClient, token: str, user: str, tries: int,
                              sleep: Callable[[float], None]) -> JobInfo | None:
    for attempt in range(max(1, tries)):
        try:
            found = find_token_job(client, token, user)
        except EnvError:
            found = None
        if found is not None:
            return found
        if attempt + 1 < tries:
            sleep(min(2.0 * (attempt + 1), 10.0))
    return None


def _adopted(client: SlurmClient, compiled: CompiledFabric, prepared: Prepared, job: JobInfo,
             token: str) -> SubmitOutcome:
    """The outcome for a job an earlier run submitted under `token` (nothing is submitted again)."""
    allocation = dict(job.allocation) or parse_alloc_field(parse_plan_comment(job.comment).get("alloc", ""))
    known = set(compiled.host_names)
    if allocation and all(h in known for h in allocation):
        placement = Placement(allocation=allocation, cost=cost_of(compiled, allocation), algorithm="earlier run")
    else:
        placement = plan_for_slurm(client, compiled, prepared).placement
    mode = parse_plan_comment(job.comment).get("mode", "now")
    return SubmitOutcome(["sbatch"], placement, mode, job_id=job.job_id, job_state=job.state, token=token,
                         notes=[f"job {job.job_id} was submitted earlier with token {token}; not submitted again"])
