"""Import layers (docs/architecture.md): which gpupool package may import which, checked over the source.

Every `import` / `from ... import` anywhere in a module counts (top level, inside functions, under
TYPE_CHECKING), so a layer cannot be crossed by hiding the import in a function.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# First-party packages each layer may import (besides itself); "pkg.mod" allows that one module only.
# `validate` (the boundary validators) is a leaf like `errors`: every layer may use it, it uses only `errors`.
# `jit` (the lazy Numba decorator, gpupool/jit.py) is a leaf too: it imports nothing first-party.
# `registry` (the one plug-in registry type) is a leaf as well: no first-party import.
BASE = {"errors", "validate", "jit", "registry"}
# The domain modules `cli` may import: the types it renders (and the dependencies AppContext holds),
# the sbatch spelling reader plan/submit parse options with, and rendering helpers over those types.
CLI_MODELS = {
    "fabric.model", "fabric.compiled", "fabric.blocks",                          # Fabric, CompiledFabric, BlockLayout
    "placement.model", "placement.objective", "placement.reclaim",               # Request, Placement, goal, Reclaim
    "placement.block", "placement.nvlink",                                       # block_usage / nvlink_usage (render)
    "slurm.port", "slurm.sbatch",                                                # AppContext's SlurmClient; sbatch options
    "pools.apply", "pools.status", "pools.slurm_state",                                 # ApplyReport, StatusReport, CommandRunner
    "observe.lending", "observe.fragmentation",                                  # LendingReport, Fragmentation
    "observe.metrics",                                                           # metric Family, its exposition
    "node.topo", "node.gpu", "node.hca",                                         # LEGEND, AppContext's sources
    "audit.rollup",                                                            # severities and monitoring codes
    "simulate.report",                                                           # the simulate table's rows
    "simulate.policies",                                                         # the policy registry: --policies help
}
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "jit": set(),
    "registry": set(),
    "validate": {"errors"},
    # the --switches=N@T wait rule that submit, the generated job_submit.lua and the simulator share
    "switch_wait": {"errors"},
    "config": BASE,
    "fsutil": BASE,
    "findings": BASE,
    "ibtools": BASE,
    "hostlist": BASE,
    "fabric": BASE | {"fsutil", "ibtools", "hostlist"},
    "placement": BASE | {"fabric"},
    "slurm": BASE | {"fsutil", "hostlist"},
    "pools": BASE | {"fabric", "fsutil", "hostlist", "slurm"},
    "audit": BASE | {"fabric", "findings", "fsutil", "hostlist", "ibtools", "slurm"},
    # node reads the fabric file (plain model, no numpy) for the expected HCA port rates.
    "node": BASE | {"findings", "fsutil", "hostlist", "fabric.model"},
    # observe is pure over data others read: of the Slurm layer only the GRES string parser.
    "observe": BASE | {"fabric", "findings", "hostlist", "placement", "slurm.gres"},
    # simulate replays a workload file on the fabric with placement's kernels: no Slurm I/O at all.
    "simulate": BASE | {"fabric", "fsutil", "placement", "switch_wait"},
    "app": BASE | {"config", "fabric", "findings", "fsutil", "hostlist", "ibtools", "placement", "slurm", "pools",
                   "switch_wait",
                   "audit", "node", "observe", "simulate"},
    # cli parses, calls a use case in `app` and renders: of the domain packages it may import only the
    # model types and rendering helpers it shows (CLI_MODELS), never their logic (discover, export, checks...).
    "cli": BASE | {"app", "config", "findings", "fsutil", "hostlist", "switch_wait"} | CLI_MODELS,
    # the warm step (bootstrap) runs commands in-process to compile their kernels ahead of time.
    "warm": BASE | {"cli", "fabric"},
    "__main__": {"cli"},
    "__init__": set(),
}
# Modules a layer must not reach even inside an allowed package: the CLI plans through `app`, and
# Slurm backends are chosen by `gpupool.slurm.client.make_client`, never imported by callers.
FORBIDDEN_MODULES: dict[str, tuple[str, ...]] = {
    "cli": ("gpupool.placement.engine", "gpupool.placement.slurm_reference", "gpupool.slurm.pyslurm_backend",
            "gpupool.slurm.invoke", "gpupool.slurm.commands", "gpupool.slurm.freestate", "gpupool.slurm.submit",
            "gpupool.slurm.jobs"),
    "app": ("gpupool.slurm.pyslurm_backend",),
}
# Third-party imports `placement` may use (it is pure computation over arrays).
PLACEMENT_THIRD_PARTY = {"numpy", "numba"}


def imports_of(path: Path) -> list[tuple[int, list[str]]]:
    """(line, names the statement may import) for every import statement in the file.

    `from gpupool.slurm import client` may import gpupool.slurm or its submodule gpupool.slurm.client,
    so both names are candidates; the statement breaks a rule when any candidate does.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, list[str]]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, [alias.name]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]))
        elif isinstance(node, ast.ImportFrom) and node.level:
            found.append((node.lineno, [".relative"]))
    return found


def _allowed_module(parts: list[str], allowed: set[str]) -> bool:
    """`parts` (after "gpupool") name a module listed as "pkg.mod" in `allowed`, or something inside it."""
    return any(".".join(parts[:i]) in allowed for i in range(2, len(parts) + 1))


def _breaks(layer: str, module: str) -> str | None:
    """Why `layer` may not import `module`, or None."""
    parts = module.split(".")
    if parts[0] == "":
        return "relative import (use absolute gpupool.* imports)"
    if parts[0] == "gpupool":
        if len(parts) < 2 or parts[1].startswith("__"):
            return None  # the package itself (`from gpupool import __version__`)
        allowed = ALLOWED[layer]
        if parts[1] != layer and parts[1] not in allowed and not _allowed_module(parts[1:], allowed):
            return f"{layer} must not import {module}"
        if any(module == f or module.startswith(f + ".") for f in FORBIDDEN_MODULES.get(layer, ())):
            return f"{layer} must not import {module}"
        return None
    if layer == "placement" and parts[0] not in sys.stdlib_module_names and parts[0] not in PLACEMENT_THIRD_PARTY:
        return f"placement must not import {module} (only numpy/numba beyond the stdlib)"
    return None


def violations(package_root: Path) -> list[str]:
    """Every import in `package_root` (a gpupool/ tree) that breaks the table above."""
    out: list[str] = []
    for path in sorted(package_root.rglob("*.py")):
        layer = path.relative_to(package_root).with_suffix("").parts[0]
        if layer not in ALLOWED:
            out.append(f"{path}: package {layer!r} has no row in the layer table")
            continue
        for line, candidates in imports_of(path):
            why = next((w for w in (_breaks(layer, m) for m in candidates) if w), None)
            if why:
                out.append(f"{path.relative_to(package_root.parent)}:{line}: {why}")
    return out


def test_gpupool_keeps_its_layers() -> None:
    assert violations(REPO / "gpupool") == []


def _plant(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "gpupool"
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def test_checker_catches_a_planted_placement_to_slurm_import(tmp_path: Path) -> None:
    root = _plant(tmp_path, {
        "placement/__init__.py": "",
        "placement/engine.py": "import numpy as np\nfrom gpupool.fabric.compiled import CompiledFabric\n",
        "placement/planning.py": "def f():\n    from gpupool.slurm.client import make_client\n    return make_client\n",
    })
    assert violations(root) == ["gpupool/placement/planning.py:2: placement must not import gpupool.slurm.client"]


def test_checker_catches_other_crossings(tmp_path: Path) -> None:
    root = _plant(tmp_path, {
        "fabric/model.py": "from gpupool import placement\n",
        "slurm/client.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import gpupool.cli.main\n",
        "pools/apply.py": "from gpupool.app.plan import plan_placement\n",
        "cli/plan.py": "from gpupool.placement.engine import place\nfrom gpupool.app.plan import run_plan\n",
        "placement/kernels.py": "import rich\nimport numba\nimport itertools\n",
        "observe/lending.py": "from gpupool.slurm.gres import tres_gpu_count\nfrom gpupool.slurm.invoke import run\n",
        "observe/jobreport.py": "from gpupool.slurm import gres\nfrom gpupool.app.plan import plan_placement\n",
    })
    assert sorted(violations(root)) == sorted([
        "gpupool/cli/plan.py:1: cli must not import gpupool.placement.engine",
        "gpupool/fabric/model.py:1: fabric must not import gpupool.placement",
        "gpupool/observe/jobreport.py:1: observe must not import gpupool.slurm",
        "gpupool/observe/jobreport.py:2: observe must not import gpupool.app.plan",
        "gpupool/observe/lending.py:2: observe must not import gpupool.slurm.invoke",
        "gpupool/placement/kernels.py:1: placement must not import rich (only numpy/numba beyond the stdlib)",
        "gpupool/pools/apply.py:1: pools must not import gpupool.app.plan",
        "gpupool/slurm/client.py:3: slurm must not import gpupool.cli.main",
    ])


def test_checker_keeps_cli_to_app_and_model_types(tmp_path: Path) -> None:
    root = _plant(tmp_path, {
        "cli/fabric.py": "from gpupool.fabric.export import export\nfrom gpupool.fabric.model import Fabric\n",
        "cli/node.py": "def f():\n    from gpupool.node.checks import run_checks\n    from gpupool.app.node import run_node_check\n",
        "cli/audit.py": "from gpupool.audit import live_fabric as live\nfrom gpupool.audit.rollup import CRITICAL\n",
    })
    assert sorted(violations(root)) == sorted([
        "gpupool/cli/audit.py:1: cli must not import gpupool.audit",
        "gpupool/cli/fabric.py:1: cli must not import gpupool.fabric.export",
        "gpupool/cli/node.py:2: cli must not import gpupool.node.checks",
    ])


# ---------------------------------------------------------------------------------------------
# Import cycles inside a package


def module_graph(package_root: Path, *, top_level_only: bool) -> dict[str, set[str]]:
    """module -> first-party modules of the same package it imports (only statements that run at
    import time when `top_level_only`: module body, not functions nor `if TYPE_CHECKING:`)."""
    modules: dict[str, Path] = {}
    for path in package_root.rglob("*.py"):
        parts = path.relative_to(package_root.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        statements = tree.body if top_level_only else list(ast.walk(tree))
        for node in statements:
            candidates: list[str] = []
            if isinstance(node, ast.Import):
                candidates = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                candidates = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            package = name.split(".")[:2]
            graph[name] |= {c for c in candidates if c in modules and c != name and c.split(".")[:2] == package}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


# Cycles broken only by an import inside a function (they do not fail at import time, but a module
# pair that needs each other is one design): listed here to be removed, never added to.
KNOWN_DEFERRED_CYCLES: list[list[str]] = []  # none left (#28): every package is a one-way graph


def test_no_import_cycle_at_import_time_inside_any_package() -> None:
    assert cycles(module_graph(REPO / "gpupool", top_level_only=True)) == []


def test_deferred_import_cycles_only_shrink() -> None:
    found = cycles(module_graph(REPO / "gpupool", top_level_only=False))
    new = [c for c in found if not any(set(c) <= set(known) for known in KNOWN_DEFERRED_CYCLES)]
    assert new == [], f"new import cycle(s): {new}"
    gone = [k for k in KNOWN_DEFERRED_CYCLES if not any(set(c) & set(k) for c in found)]
    assert gone == [], f"cycle(s) no longer there, remove them from KNOWN_DEFERRED_CYCLES: {gone}"


def test_cycle_check_finds_a_planted_cycle(tmp_path: Path) -> None:
    root = _plant(tmp_path, {
        "simulate/__init__.py": "",
        "simulate/scheduler.py": "from gpupool.simulate.pooled import Pooled\n",
        "simulate/pooled.py": "from gpupool.simulate import scheduler as engine\n",
        "simulate/lazy.py": "def f():\n    from gpupool.simulate.scheduler import x\n",
        "simulate/other.py": "def g():\n    from gpupool.simulate.lazy import f\n",
        "fabric/model.py": "from gpupool.simulate.scheduler import x\n",  # across packages: not this check
    })
    assert cycles(module_graph(root, top_level_only=True)) == [["gpupool.simulate.pooled", "gpupool.simulate.scheduler"]]
    assert cycles(module_graph(root, top_level_only=False)) == [["gpupool.simulate.pooled",
                                                                  "gpupool.simulate.scheduler"]]
