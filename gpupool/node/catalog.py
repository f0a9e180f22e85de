"""The node check registry: every check of `gpupool node check` is its function plus the ids it
reports (default severity, opt-in or not, what its finding means), registered once where the function
is written (`@node_check(...)` in gpupool/node/checks.py).

This module is the bare registry: it imports no check. `gpupool.node.checks.node_checks()` hands out
the registry with gpupool's own checks in it; `NodeSettings` takes default severities and the opt-in set
from it, the `[node]` config table and `[node.severity]` accept its ids (kebab-case, or the old
snake_case spelling), `evaluate` runs its checks in registration order, and the check table in slurm-plugins/README.md is generated from it
(scripts/gen-docs; a unit test compares). `Judge` records results only under registered ids.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gpupool.findings import check_id
from gpupool.registry import DuplicateRegistration, Registry


@dataclass(frozen=True)
class NodeCheck:
    """One id a check reports."""

    name: str  # kebab-case id: the `check` of its results and findings
    severity: str  # default severity; `[node.severity]` overrides it
    what: str  # when it reports a finding (the docs table's text)
    enabled: bool = True  # runs unless `[node] disabled_checks` names it (False: opt-in)


@dataclass(frozen=True)
class NodeCheckRun:
    """A registered check function: `run(judge, facts)` once per node, or with `per_gpu`
    `run(judge, gpu, context)` for every checked GPU (gpupool.node.checks.GpuContext)."""

    name: str  # its first id
    reports: tuple[NodeCheck, ...]
    per_gpu: bool
    run: Callable[..., None]


NODE_CHECKS: Registry[NodeCheck] = Registry("node check")  # by id
NODE_CHECK_RUNS: Registry[NodeCheckRun] = Registry("node check function")  # in the order they run


def node_check(name: str = "", severity: str = "", what: str = "", *, enabled: bool = True, per_gpu: bool = False,
               reports: tuple[NodeCheck, ...] = ()) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Decorator: register the function as a node check. One id: `@node_check(id, severity, what)`;
    several ids from one function: `@node_check(reports=(NodeCheck(...), ...))`. A taken id raises."""
    rows = reports or (NodeCheck(name, severity, what, enabled),)
    for row in rows:
        if check_id(row.name) != row.name:
            raise ValueError(f"node check id {row.name!r} is not kebab-case")
        if row.name in NODE_CHECKS:
            raise DuplicateRegistration(f"node check {row.name!r} is already registered")

    def add(run: Callable[..., None]) -> Callable[..., None]:
        NODE_CHECK_RUNS.register(NodeCheckRun(rows[0].name, rows, per_gpu, run))
        for row in rows:
            NODE_CHECKS.register(row)
        return run

    return add


def unregister(name: str) -> None:
    """Take a check function and its ids out again (tests that register a toy one)."""
    for row in NODE_CHECK_RUNS[name].reports:
        NODE_CHECKS.unregister(row.name)
    NODE_CHECK_RUNS.unregister(name)
