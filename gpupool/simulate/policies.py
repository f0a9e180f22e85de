"""The simulate-policy registry: every policy `gpupool simulate --policies` knows, registered once.

A policy is a name, what it models (for `--help` and the table in docs/simulate.md, both generated
from here), and a factory that builds its strategies for one run: a placer (where a job would go on a
free-GPU array) and a placement, backfill and admission strategy (`strategies.py`, `pooled.py`).
The engine looks a policy up by name and runs what the factory built; it never compares names.

Adding a policy (docs/architecture.md, "How to add a simulate policy"):
1. write its placer, or a placement goal (`placement.objective.PlacementGoal`);
2. `register(goal_policy("name", "what it does", "what it models", lambda config: GOAL))`, or
   `register(SimPolicy("name", ..., build=...))` for anything else;
3. run it: `gpupool simulate --policies name` (or `engine.Simulator(compiled, "name", ...)`); `scripts/gen-docs`
   and `scripts/gen-man` bring the docs table and the man pages up to date.

This module imports no placement code at import time (the CLI reads names and help from it); a
factory imports what it needs when it builds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gpupool.errors import BadRequest, param
from gpupool.registry import Registry

if TYPE_CHECKING:
    import numpy as np

    from gpupool.fabric.compiled import CompiledFabric
    from gpupool.placement.objective import PlacementGoal
    from gpupool.simulate.core import Admission, Backfill, Placement, Placer, SimConfig
    from gpupool.simulate.pooled import PoolLayout
    from gpupool.switch_wait import SwitchWait


@dataclass(frozen=True)
class PolicySetup:
    """What a policy's factory builds from: the fabric, the run's configuration and the pools (pool policies)."""

    compiled: CompiledFabric
    config: SimConfig
    layout: PoolLayout | None = None
    loads: Callable[[], np.ndarray] | None = None  # running jobs' uplink loads (a goal that reads them)


@dataclass(frozen=True)
class Strategies:
    """One run's policy: a placer and a placement, backfill and admission strategy."""

    placer: Placer
    placement: Placement
    backfill: Backfill
    admission: Admission


def _no_goal(config: SimConfig | None) -> PlacementGoal | None:
    return None


@dataclass(frozen=True)
class SimPolicy:
    """A simulate policy: its name, one line of what it does, what it models, and its strategies' factory."""

    name: str
    description: str
    models: str
    build: Callable[[PolicySetup], Strategies]
    # The placement goal the policy plans with (gpupool policies), for the result document; None otherwise.
    goal: Callable[[SimConfig | None], PlacementGoal | None] = _no_goal
    needs_pools: bool = False  # it replays a pools file (--pools)


class PolicyRegistry(Registry[SimPolicy]):
    """Policies by name, in registration order (`gpupool.registry.Registry`: a second registration of a name
    raises `DuplicateRegistration`); `policy(name)` is the one lookup, a BadRequest naming the known ones."""

    def __init__(self) -> None:
        super().__init__("simulate policy")

    def register(self, entry: SimPolicy) -> SimPolicy:
        if not entry.name or entry.name != entry.name.strip() or "," in entry.name:
            raise ValueError(f"simulate policy name {entry.name!r}: non-empty, no spaces around it, no comma")
        return super().register(entry)

    def policy(self, name: str) -> SimPolicy:
        found = self._entries.get(name)
        if found is None:
            raise BadRequest(f"unknown policy {name!r} (known: {', '.join(self)})")
        return found

    def names(self, *, pools: bool | None = None) -> tuple[str, ...]:
        """Registered names (pools=True: the pool policies only; False: the others; None: all)."""
        return tuple(p.name for p in self.entries() if pools is None or p.needs_pools == pools)


REGISTRY = PolicyRegistry()
register = REGISTRY.register


# ---------------------------------------------------------------------------------------------- factories
# A policy's hold for a compact placement (Slurm's --switches=N@T) from the run's configuration: (T, N).
HoldRule = Callable[["SimConfig"], "tuple[SwitchWait, int]"]


def configured_hold(config: SimConfig) -> tuple[SwitchWait, int]:
    """gpupool-wait's hold: `--switches N@T` as configured (default 0@300, Slurm's max_switch_wait)."""
    return config.switch_wait(), config.wait_leaves


def default_hold(config: SimConfig) -> tuple[SwitchWait, int]:
    """The hold `gpupool submit` and the generated job_submit.lua ask Slurm for by default:
    --switches=<fewest leaves>@<`switch_wait.DEFAULT` of the job's time limit>."""
    from gpupool.switch_wait import DEFAULT

    return DEFAULT, 0


def free_strategies(placer: Placer, setup: PolicySetup, *, hold: HoldRule | None = None) -> Strategies:
    """A placer on the whole fabric: FIFO admission, the backfill model of the run's configuration."""
    from gpupool.simulate.strategies import FifoAdmission, FreePlacement, backfill_for

    placement = FreePlacement(*hold(setup.config)) if hold is not None else FreePlacement()
    return Strategies(placer=placer, placement=placement,
                      backfill=backfill_for(setup.config, setup.compiled.n_hosts), admission=FifoAdmission())


def goal_policy(name: str, description: str, models: str, goal: Callable[[SimConfig | None], PlacementGoal], *,
                hold: HoldRule | None = None) -> SimPolicy:
    """A gpupool policy: `placement.engine.place` under `goal(config)` on the whole fabric (hold: a
    --switches=N@T rule, `configured_hold` or `default_hold`). One registration adds a placement goal."""
    def build(setup: PolicySetup) -> Strategies:
        from gpupool.simulate.placers import goal_placer

        return free_strategies(goal_placer(setup.compiled, goal(setup.config), setup.config, setup.loads), setup,
                               hold=hold)
    return SimPolicy(name, description, models, build, goal=goal)


def chooser_policy(name: str, description: str, models: str,
                   chooser: Callable[[CompiledFabric], Callable[..., dict[str, int] | None]], *,
                   hold: HoldRule | None = None) -> SimPolicy:
    """An emulation of Slurm's node selection (`chooser(compiled)`) on the whole fabric (hold: as goal_policy)."""
    def build(setup: PolicySetup) -> Strategies:
        from gpupool.simulate.placers import chooser_placer

        return free_strategies(chooser_placer(setup.compiled, chooser(setup.compiled)), setup, hold=hold)
    return SimPolicy(name, description, models, build)


def _default_goal(config: SimConfig | None) -> PlacementGoal:
    from gpupool.placement.objective import DEFAULT_GOAL

    return DEFAULT_GOAL


def _hops_goal(config: SimConfig | None) -> PlacementGoal:
    from gpupool.placement.objective import Objective, PlacementGoal

    return PlacementGoal(objective=Objective.HOPS)


def _pack_goal(config: SimConfig | None) -> PlacementGoal:
    from gpupool.placement.objective import Objective, PlacementGoal

    return config.pack_goal if config is not None else PlacementGoal(objective=Objective.PACK)


def _contention_goal(config: SimConfig | None) -> PlacementGoal:
    from gpupool.placement.objective import Objective, PlacementGoal

    return PlacementGoal(objective=Objective.CONTENTION)


def _pack_uplinks_goal(config: SimConfig | None) -> PlacementGoal:
    from dataclasses import replace

    return replace(_pack_goal(config), uplinks=True)


def _tree(compiled: CompiledFabric) -> Callable[..., dict[str, int] | None]:
    from gpupool.simulate.placers import slurm_tree_chooser

    return slurm_tree_chooser(compiled)


def _block(compiled: CompiledFabric) -> Callable[..., dict[str, int] | None]:
    from gpupool.simulate.placers import slurm_block_chooser

    return slurm_block_chooser(compiled)


def _tuned(compiled: CompiledFabric) -> Callable[..., dict[str, int] | None]:
    from gpupool.simulate.tuned import tuned_chooser

    return tuned_chooser(compiled)


def pool_policy(name: str, description: str, models: str, *, lending: bool) -> SimPolicy:
    """Business units' pools (a pools file): gpupool's placement inside the hosts a job's account may use."""
    def build(setup: PolicySetup) -> Strategies:
        from gpupool.placement.objective import DEFAULT_GOAL
        from gpupool.simulate.placers import goal_placer
        from gpupool.simulate.pooled import pool_strategies

        if setup.layout is None:
            raise BadRequest(f"policy {name} needs a pools file ({param('pools')})")
        placement, backfill, admission = pool_strategies(setup.compiled.n_hosts, setup.config, setup.layout,
                                                         lending=lending)
        return Strategies(placer=goal_placer(setup.compiled, DEFAULT_GOAL, setup.config), placement=placement,
                          backfill=backfill, admission=admission)
    return SimPolicy(name, description, models, build, needs_pools=True)


# ---------------------------------------------------------------------------------------------- the policies
register(chooser_policy(
    "slurm-tree", "Slurm's node selection under topology/tree",
    "Slurm 22.05's select/cons_tres with topology/tree (dragonfly: TopologyParam=dragonfly), "
    "`placement.slurm_reference`", _tree))
register(chooser_policy(
    "slurm-block", "Slurm's node selection under topology/block",
    "Slurm 23.11+ topology/block on the fabric's own blocks, `placement.block.slurm_block_reference`", _block))
register(chooser_policy(
    "slurm-tuned", "slurm-tree with the --switches gpupool's job_submit.lua adds",
    "topology/tree (`placement.slurm_reference`) for plain sbatch jobs, with what `gpupool pool lua` adds by "
    "default: a multi-node job waits up to 25% of its time limit for its fewest leaf switches "
    "(--switches=N@T, `switch_wait.DEFAULT`)", _tree, hold=default_hold))
register(chooser_policy(
    "slurm-weights", "slurm-tree with the node weights gpupool sets",
    "topology/tree with `fabric export --format slurm-weights` (pack-leaf) weights, plain sbatch jobs", _tuned))
register(goal_policy(
    "gpupool", "what `plan` and `submit` do by default",
    "`placement.engine.place` with the default placement goal (`placement.objective.DEFAULT_GOAL`); a multi-node "
    "job whose placement spans more leaves than it needs waits up to 25% of its time limit for fewer, as "
    "`submit` asks Slurm with --switches=N@T (`switch_wait.DEFAULT`)", _default_goal, hold=default_hold))
register(goal_policy(
    "gpupool-wait", "gpupool's placement, holding multi-host jobs as --switches says",
    "gpupool's placement with Slurm's --switches=N@T as configured (--switches, default 0@300): a multi-host "
    "job on more than N leaves waits up to T", _default_goal, hold=configured_hold))
register(goal_policy(
    "gpupool-hops", "the hops objective", "`placement.engine.place` with the hops objective (fewest pair hops)",
    _hops_goal))
register(goal_policy(
    "gpupool-pack", "the pack objective", "`placement.engine.place` with the pack objective (--hop-slack, --size-mix)",
    _pack_goal))
register(goal_policy(
    "gpupool-contention", "the contention objective",
    "`placement.engine.place` with the contention objective (fewest pair hops, then off the uplinks running "
    "multi-node jobs load)", _contention_goal))
register(goal_policy(
    "gpupool-pack-uplinks", "pack, then off loaded uplinks",
    "`placement.engine.place` with the pack objective, its ties broken by the contention score", _pack_uplinks_goal))
register(goal_policy(
    "gpupool-contention-wait", "gpupool-contention, holding multi-host jobs for fewer leaves",
    "gpupool-contention with Slurm's --switches=N@T, as gpupool-wait", _contention_goal, hold=configured_hold))
register(pool_policy(
    "pools-nolend", "each unit on its own and the open pools (needs --pools)",
    "pool partitions at owner priority, no scavenger partition", lending=False))
register(pool_policy(
    "pools-lend", "pools, lending idle GPUs to preemptible borrowers (needs --pools)",
    "pool partitions plus the scavenger partition (lowest tier, PreemptMode=REQUEUE, lend and borrow limits)",
    lending=True))


def policy_help() -> str:
    """The --policies help text."""
    plain = ", ".join(f"{p.name} ({p.description})" for p in REGISTRY.entries() if not p.needs_pools)
    pooled = ", ".join(REGISTRY.names(pools=True))
    return f"Comma-separated: {plain}; with --pools: {pooled} (docs/simulate.md, \"Policies\")."


def policy_table() -> str:
    """The Markdown table of policies in docs/simulate.md (`scripts/gen-docs` writes it; tests fail on drift)."""
    lines = ["| policy | what it does | what it models | needs --pools |", "| --- | --- | --- | --- |"]
    lines += [f"| `{p.name}` | {p.description} | {p.models} | {'yes' if p.needs_pools else 'no'} |"
              for p in REGISTRY.entries()]
    return "\n".join(lines)
