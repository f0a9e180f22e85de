"""Import budget of the interactive commands (issue #26): `plan --json` imports only what it uses.

Not timed: module sets. A child process runs the command in-process and reports `sys.modules`;
every third-party package it loaded must be on the command's list, and first-party packages it has
no use for (Slurm backends with --free, audits, pools, simulation, node checks) must not appear.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gpupool.fabric.generate import dragonfly, fat_tree
from gpupool.fabric.model import save_fabric

# Third-party top-level packages `plan --json` may import (besides the standard library).
PLAN_THIRD_PARTY = {"numpy", "click", "ClusterShell"}
# What Numba brings along; allowed only when no current AOT kernel build is installed (gpupool.warm).
NUMBA_FAMILY = {"numba", "llvmlite", "scipy", "yaml", "cython_runtime", "coverage"}  # coverage: when installed
# Never on plan's path: rendering (--json), YAML, Slurm clients, other domains.
PLAN_FORBIDDEN_FIRST_PARTY = ("gpupool.slurm.commands", "gpupool.slurm.pyslurm_backend", "gpupool.slurm.invoke",
                              "gpupool.audit", "gpupool.pools", "gpupool.simulate", "gpupool.node",
                              "gpupool.observe", "gpupool.warm")

CHILD = """
import contextlib, io, json, sys
from gpupool.cli.main import main
with contextlib.redirect_stdout(io.StringIO()) as out:
    rc = main(sys.argv[1:])
from gpupool import jit
print(json.dumps({"rc": rc, "aot": bool(jit.aot_table()), "modules": sorted(sys.modules),
                  "stdout": out.getvalue()}))
"""


def _modules_of(*argv: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, *argv], capture_output=True, text=True, timeout=300,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


def _third_party(modules: list[str]) -> set[str]:
    tops = {m.split(".")[0] for m in modules}
    return {m for m in tops if m not in sys.stdlib_module_names and not m.startswith("_") and m != "gpupool"}


@pytest.mark.parametrize("kind", ["fat-tree", "dragonfly"])
def test_plan_json_imports_only_its_budget(tmp_path: Path, kind: str) -> None:
    fabric = fat_tree(4, 4, 2) if kind == "fat-tree" else dragonfly(4, 3, 2, 1)
    path = tmp_path / "fabric.json"
    save_fabric(fabric, str(path))
    free = tmp_path / "free.json"
    free.write_text(json.dumps({h: 4 for h in fabric.hosts()}))
    doc = _modules_of("plan", "--fabric", str(path), "--free", str(free), "--gpus", "6", "--json")
    assert doc["rc"] == 0 and json.loads(doc["stdout"])["feasible"] is True
    extra = _third_party(doc["modules"]) - PLAN_THIRD_PARTY
    if not doc["aot"]:
        extra -= NUMBA_FAMILY  # no AOT build here: the kernels need Numba, and Numba brings these
    assert extra == set(), f"plan --json imported {sorted(extra)}"
    assert "rich" not in _third_party(doc["modules"])  # --json renders nothing with rich
    loaded = [m for m in doc["modules"] if m.startswith(PLAN_FORBIDDEN_FIRST_PARTY)]
    assert loaded == []


def test_budget_check_catches_a_heavy_import(tmp_path: Path) -> None:
    # The same check over a child that also imports rich and the Slurm commands: both are caught.
    proc = subprocess.run([sys.executable, "-c", "import sys, json, rich.table, gpupool.slurm.commands;"
                           "print(json.dumps(sorted(sys.modules)))"], capture_output=True, text=True, timeout=120,
                          check=True)
    modules = json.loads(proc.stdout)
    assert "rich" in _third_party(modules) - PLAN_THIRD_PARTY
    assert "gpupool.slurm.commands" in [m for m in modules if m.startswith(PLAN_FORBIDDEN_FIRST_PARTY)]


def test_kernels_use_gpupool_jit_not_numba_directly() -> None:
    # A module importing numba itself loads it on every command (and its kernels miss the AOT build).
    package = Path(__file__).resolve().parents[2] / "gpupool"
    allowed = {package / "jit.py", package / "warm.py"}
    direct = [str(p.relative_to(package)) for p in package.rglob("*.py") if p not in allowed
              and any(line.lstrip().startswith(("import numba", "from numba")) for line in p.read_text().splitlines())]
    assert direct == []
    from gpupool import warm
    kernel_modules = {str(p.relative_to(package.parent)).removesuffix(".py").replace("/", ".")
                      for p in package.rglob("*.py") if p not in allowed and "@njit" in p.read_text()}
    assert kernel_modules <= set(warm.KERNEL_MODULES)  # every kernel module keys (and joins) the AOT build


# `jobs`, `status` and `explain` read Slurm (the commands backend) and plan: the same third-party
# budget as `plan`, no rich with --json, and none of the first-party packages they have no use for.
SLURM_READERS_FORBIDDEN = ("gpupool.slurm.pyslurm_backend", "gpupool.audit", "gpupool.simulate", "gpupool.node",
                           "gpupool.warm", "gpupool.observe.html", "gpupool.observe.metrics", "gpupool.observe.lending",
                           "gpupool.pools.apply")
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "slurm"


def _fake_slurm(bin_dir: Path) -> None:
    """scontrol and squeue answering from the Slurm 24.11 captures (8 nodes, jobs 1, 2 and 5)."""
    bin_dir.mkdir()
    answers = {"--version": "scontrol-version-24.11.txt", "-d -o show nodes": "scontrol-show-node-24.11.txt",
               "-d -o show job 5": "scontrol-show-job-24.11.txt", "show config": "scontrol-show-config-22.05.txt",
               "-o show partition": "scontrol-show-partition-24.11.txt"}
    cases = "".join(f'  "{args}") cat "{FIXTURES / name}" ;;\n' for args, name in answers.items())
    (bin_dir / "scontrol").write_text(f'#!/bin/sh\ncase "$*" in\n{cases}  *) exit 1 ;;\nesac\n')
    (bin_dir / "squeue").write_text(f'#!/bin/sh\ncat "{FIXTURES / "squeue-24.11.json"}"\n')
    for tool in ("scontrol", "squeue"):
        (bin_dir / tool).chmod(0o755)


@pytest.mark.parametrize("argv", [("jobs", "--all", "--json"), ("status", "--json"), ("explain", "5", "--json")])
def test_slurm_reading_commands_import_only_their_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         argv: tuple[str, ...]) -> None:
    import os

    fabric = tmp_path / "fabric.json"
    save_fabric(fat_tree(4, 4, 2), str(fabric))  # hosts gpu001..gpu016, the captures' gpu001..gpu008 among them
    _fake_slurm(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    monkeypatch.setenv("GPUPOOL_SLURM_BACKEND", "commands")
    doc = _modules_of(*argv, "--fabric", str(fabric))
    assert doc["rc"] == 0, doc["stdout"]
    json.loads(doc["stdout"])
    extra = _third_party(doc["modules"]) - PLAN_THIRD_PARTY
    if not doc["aot"]:
        extra -= NUMBA_FAMILY
    assert extra == set(), f"{argv[0]} imported {sorted(extra)}"
    loaded = [m for m in doc["modules"] if m.startswith(SLURM_READERS_FORBIDDEN)]
    assert loaded == [], f"{argv[0]} imported {loaded}"


@pytest.mark.parametrize("command", ["plan", "submit", "node check"])
def test_page_and_metrics_libraries_stay_off_the_interactive_paths(tmp_path: Path, command: str) -> None:
    # Jinja2 renders the HTML pages and prometheus_client the metrics: neither may load on the Prolog
    # (`node check`) or on a user's plan/submit, which must start fast.
    fabric = fat_tree(2, 2, 1)
    path = tmp_path / "fabric.json"
    save_fabric(fabric, str(path))
    free = tmp_path / "free.json"
    free.write_text(json.dumps({h: 8 for h in fabric.hosts()}))
    argv = {"plan": ["plan", "--fabric", str(path), "--free", str(free), "--gpus", "8", "--json"],
            "submit": ["submit", "--dry-run", "--fabric", str(path), "--free", str(free), "--gpus", "8",
                       "--wrap", "hostname"],
            "node check": ["node", "check", "--json"]}[command]
    doc = _modules_of(*argv)
    loaded = {m.split(".")[0] for m in doc["modules"]} & {"jinja2", "markupsafe", "prometheus_client"}
    assert loaded == set(), f"{command} imported {sorted(loaded)}"
