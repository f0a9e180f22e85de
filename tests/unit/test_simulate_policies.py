"""The simulate-policy registry (gpupool.simulate.policies): registered once, duplicates refused, CLI help and the
docs table generated from it, a toy policy added in three steps; and gpupool/simulate has no import cycle."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from gpupool.app.simulate import parse_policies
from gpupool.errors import UsageError
from gpupool.fabric.compiled import compile_fabric
from gpupool.fabric.generate import fat_tree
from gpupool.placement.objective import Objective, PlacementGoal
from gpupool.registry import DuplicateRegistration
from gpupool.simulate.core import Choice, SimConfig
from gpupool.simulate.policies import (
    REGISTRY,
    PolicyRegistry,
    PolicySetup,
    SimPolicy,
    Strategies,
    free_strategies,
    goal_policy,
    policy_table,
)
from gpupool.simulate.scheduler import Simulator
from gpupool.simulate.speed import SpeedModel
from gpupool.simulate.workload import Job

REPO = Path(__file__).resolve().parents[2]
SIMULATE = REPO / "gpupool" / "simulate"
SMALL = compile_fabric(fat_tree(2, 2, 1))  # gpu001..gpu004


def _job(job_id: str, submit: float, duration: float, gpus: int, nodes: int = 1) -> Job:
    return Job(job_id=job_id, submit=submit, duration=duration, time_limit=duration, gpus=gpus, nodes=nodes)


def test_a_toy_policy_is_registered_and_run_in_three_steps() -> None:
    registry = PolicyRegistry()

    # 1. a placer: the first hosts, in fabric order, with the job's GPUs per node free (first fit).
    def first_fit(free: np.ndarray, job: Job) -> Choice | None:
        per_node = job.gpus_per_node if job.nodes else job.gpus
        hosts = np.flatnonzero(free >= per_node)[: max(job.nodes, 1)]
        return (hosts, np.full(hosts.size, per_node), 0.0) if hosts.size == max(job.nodes, 1) else None

    # 2. one registration.
    registry.register(SimPolicy("first-fit", "first hosts that fit", "a toy",
                                build=lambda setup: free_strategies(first_fit, setup)))
    # 3. run it.
    sim = Simulator(SMALL, "first-fit", SimConfig(gpus_per_host=4, record_starts=True), SpeedModel(), registry=registry)
    sim.run([_job("a", 0, 10, 4), _job("b", 0, 10, 2), _job("c", 0, 10, 1), _job("d", 1, 10, 4, 2),
             _job("e", 2, 5, 12, 3)])
    # By hand: a fills gpu001; b and c share gpu002 (2 + 1 of 4); d (2 x 2 GPUs) takes gpu003 and gpu004 at 1
    # (gpu002 has 1 left); e (3 x 4 GPUs) needs three empty hosts: gpu001, gpu002 at 10, and d's at 11: at 11.
    assert [(j, t, h) for j, t, h in sim.starts] == [
        ("a", 0, ["gpu001"]), ("b", 0, ["gpu002"]), ("c", 0, ["gpu002"]), ("d", 1, ["gpu003", "gpu004"]),
        ("e", 11, ["gpu001", "gpu002", "gpu003"])]
    assert sim.metrics.policy == "first-fit" and sim.metrics.jobs == 5
    assert "first-fit" not in REGISTRY  # the toy registry is its own


def test_a_placement_goal_is_one_registration() -> None:
    registry = PolicyRegistry()
    hops = PlacementGoal(objective=Objective.HOPS)
    policy = registry.register(goal_policy("toy-hops", "hops again", "a toy", lambda config: hops))
    assert policy.goal(None) is hops and not policy.needs_pools
    sim = Simulator(SMALL, "toy-hops", SimConfig(gpus_per_host=4, record_starts=True), SpeedModel(), registry=registry)
    sim.run([_job("a", 0, 10, 8, 2)])
    # Two whole hosts at the fewest pair hops: both on one leaf (gpu001+gpu002 or gpu003+gpu004).
    assert sim.starts[0][2] in (["gpu001", "gpu002"], ["gpu003", "gpu004"])


def test_a_second_registration_of_a_name_is_refused() -> None:
    registry = PolicyRegistry()
    policy = SimPolicy("x", "d", "m", build=lambda setup: Strategies(*[None] * 4))  # type: ignore[arg-type]
    registry.register(policy)
    with pytest.raises(DuplicateRegistration, match="simulate policy 'x' is already registered"):
        registry.register(SimPolicy("x", "other", "m", build=policy.build))
    assert registry["x"] is policy  # the first registration stands
    with pytest.raises(DuplicateRegistration, match="already registered"):
        REGISTRY.register(REGISTRY.policy("gpupool"))
    for bad in ("", " y", "a,b"):
        with pytest.raises(ValueError):
            registry.register(SimPolicy(bad, "d", "m", build=policy.build))


def test_unknown_policies_are_usage_errors_naming_the_known_ones() -> None:
    with pytest.raises(UsageError, match="slurm-tree"):
        REGISTRY.policy("nope")
    with pytest.raises(UsageError, match="pools-lend"):
        parse_policies("gpupool,nope")
    assert parse_policies(",".join(REGISTRY.names(pools=False))) == list(REGISTRY.names(pools=False))
    with pytest.raises(UsageError, match="needs --pools"):
        parse_policies("pools-lend")
    with pytest.raises(UsageError, match="needs a pools file"):
        Simulator(SMALL, "pools-lend", SimConfig(gpus_per_host=4), SpeedModel())


def test_the_docs_policy_table_is_the_registry() -> None:
    text = (REPO / "docs" / "simulate.md").read_text()
    found = re.search(r"<!-- generated: simulate-policies[^>]*-->\n(.*?)\n<!-- end: simulate-policies -->", text, re.S)
    assert found, "docs/simulate.md lost its generated policy table"
    assert found.group(1) == policy_table(), "run scripts/gen-docs"
    # An independent reading: the table's policy column is exactly the registered names, in order.
    rows = [line.split("|")[1].strip().strip("`") for line in found.group(1).splitlines()[2:]]
    assert rows == list(REGISTRY.names())


def test_the_cli_help_names_every_registered_policy() -> None:
    from gpupool.cli.main import cli

    result = CliRunner().invoke(cli, ["simulate", "--help"], terminal_width=400)
    assert result.exit_code == 0
    help_text = " ".join(result.output.split())
    for name in REGISTRY.names():
        assert re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", help_text), name


def test_every_policy_builds_from_its_setup() -> None:
    from gpupool.simulate.pooled import PoolLayout, PoolUnit

    layout = PoolLayout(pools=(PoolUnit("a", (0, 1), owners=("a",)), PoolUnit("b", (2, 3), owners=("b",))))
    for backfill in ("easy", "slurm"):
        for policy in REGISTRY.entries():
            built = policy.build(PolicySetup(SMALL, SimConfig(gpus_per_host=4, backfill=backfill),
                                             layout if policy.needs_pools else None))
            assert callable(built.placer) and built.placement and built.backfill and built.admission


def test_the_engine_and_strategies_never_compare_policy_names() -> None:
    names = set(REGISTRY.names())
    for module in ("scheduler.py", "core.py", "strategies.py", "pooled.py", "placers.py"):
        tree = ast.parse((SIMULATE / module).read_text())
        literals = {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)}
        assert not (literals & names), (module, literals & names)


def _runtime_imports(path: Path) -> set[str]:
    """gpupool.simulate modules this file imports when it runs (imports under `if TYPE_CHECKING:` are types only)."""
    tree = ast.parse(path.read_text())
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            skip.update(id(n) for child in node.body for n in ast.walk(child))
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) else []
        out.update(n.split(".")[2] for n in names if n.startswith("gpupool.simulate."))
    return out


def _all_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    found |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    return {n.split(".")[2] for n in found if n.startswith("gpupool.simulate.")}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    cycles: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return cycles


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c", "a"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_gpupool_simulate_has_no_import_cycle() -> None:
    modules = {p.stem: p for p in SIMULATE.glob("*.py")}
    runtime = {name: _runtime_imports(path) & set(modules) for name, path in modules.items()}
    assert not _cycles(runtime), _cycles(runtime)
    # The strategies and the pool policies do not reach the scheduler even for types (core.SimState stands for it).
    for name in ("core", "strategies", "pooled", "policies", "placers"):
        assert "scheduler" not in _all_imports(modules[name]), name
