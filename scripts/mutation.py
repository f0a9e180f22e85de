#!/usr/bin/env python3
"""Mutation testing of gpupool's core modules with mutmut (issue 29): `scripts/test --mutation`.

    scripts/test --mutation                         every core module (a weekly-sized run: hours)
    scripts/test --mutation gpupool/validate.py     one module (or several, or a package directory)
    scripts/test --mutation --changed [BASE]        the core modules changed against BASE (default
                                                    main, committed or not): what CI can afford

Each module is mutated in a scratch copy of the working tree (the checkout is never touched) and
checked by its fast tests (CORE below); mutmut runs only the tests that reach the mutated function,
in forked children (`--max-children`, default 2). The report prints, per module: mutants, killed
(tests failed, timed out or crashed), survived, no tests, not checked (the time limit,
`--time-limit` seconds per module, default 1800, ran out), and the score
killed / (mutants - not checked). Survivors listed with a reason in tests/mutation-survivors.md
(equivalent mutants, reviewed) are shown apart; a module passes with a score >= 90% or when every
survivor is reviewed. Exit 1 if a module fails, 2 on a usage error.
mutmut does not mutate decorated functions (the Numba kernels): their tests are the brute-force
oracles (tests/unit/test_placement_exact.py, test_reclaim.py).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SURVIVORS = REPO / "tests" / "mutation-survivors.md"
TARGET = 0.90

# Core module (a file or a directory glob) -> the fast tests that check it.
CORE: dict[str, list[str]] = {
    "gpupool/validate.py": ["tests/unit/test_validate.py", "tests/unit/test_hostile_inputs.py"],
    "gpupool/hostlist.py": ["tests/unit/test_hostlist.py"],
    "gpupool/placement/*.py": ["tests/unit/test_placement_exact.py", "tests/unit/test_placement_errors.py",
                               "tests/unit/test_placement_graph.py", "tests/unit/test_placement_health.py",
                               "tests/unit/test_block_placement.py", "tests/unit/test_reclaim.py"],
    "gpupool/fabric/export.py": ["tests/unit/test_export_expected.py", "tests/unit/test_fabric_model.py",
                                 "tests/unit/test_fabric_topology_yaml.py", "tests/unit/test_fabric_hostile.py",
                                 "tests/unit/test_golden_independent.py", "tests/unit/test_fabric_director.py",
                                 "tests/unit/test_registries.py"],
    "gpupool/fabric/blocks.py": ["tests/unit/test_block_placement.py", "tests/unit/test_fabric_topology_yaml.py"],
    "gpupool/audit/checks/*.py": ["tests/unit/test_audit_check_findings.py", "tests/unit/test_audit_checks.py",
                                  "tests/unit/test_audit_traits.py",
                                  "tests/unit/test_audit_fixture.py", "tests/unit/test_audit_realworld.py"],
    "gpupool/node/checks.py": ["tests/unit/test_node_checks.py", "tests/unit/test_node_check_results.py",
                               "tests/unit/test_node_health.py"],
    "gpupool/slurm/parse.py": ["tests/unit/test_slurm_parse.py", "tests/unit/test_slurm_job_states.py",
                               "tests/unit/test_slurm_releases.py", "tests/unit/test_hostile_slurm.py",
                               "tests/unit/test_hostile_issue29.py", "tests/unit/test_slurm_preempt.py",
                               "tests/unit/test_slurm_client.py", "tests/unit/test_slurm_freestate.py"],
    "gpupool/slurm/duration.py": ["tests/unit/test_slurm_duration.py", "tests/unit/test_slurm_preempt.py"],
    "gpupool/pools/schema.py": ["tests/unit/test_pools_schema.py", "tests/unit/test_pools_lending.py"],
    "gpupool/simulate/scheduler.py": ["tests/unit/test_simulate_engine.py", "tests/unit/test_simulate_pools.py"],
}
KILLED = {1, 3, 24, 36, 152, 255, -24, -9, -11}  # failed, pytest internal error, timeouts, crashes
SURVIVED = {0}
NO_TESTS = {5, 33}


def core_for(path: str) -> str | None:
    """The CORE key a file belongs to."""
    for pattern in CORE:
        if path == pattern or fnmatch.fnmatch(path, pattern):
            return pattern
    return None


def git_lines(*args: str) -> list[str]:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()


def select(requested: list[str], changed: str | None) -> list[tuple[str, str]]:
    """(what to mutate: a file or a CORE glob, the CORE key whose tests check it)."""
    if changed is not None:
        # Changed on this branch since it left BASE, committed or not (BASE's own later commits aside).
        files = git_lines("diff", "--name-only", f"{changed}...HEAD") + git_lines("diff", "--name-only", "HEAD")
        files += git_lines("ls-files", "-o", "--exclude-standard")
        picked = sorted({f for f in files if f.endswith(".py") and core_for(f) and (REPO / f).exists()})
        return [(f, core_for(f)) for f in picked]  # type: ignore[misc]
    if not requested:
        return [(key, key) for key in CORE]
    chosen: list[tuple[str, str]] = []
    for item in requested:
        item = item.rstrip("/")
        key = core_for(item)
        target = item
        if key is None:
            key = core_for(f"{item}/x.py")
            target = key or item
        if key is None:
            raise SystemExit(f"mutation: error: {item} is not a core module (one of: {', '.join(CORE)})")
        if (target, key) not in chosen:
            chosen.append((target, key))
    return chosen


def reviewed_survivors() -> dict[str, str]:
    """Mutant name -> reason, from the `- `name`: reason` lines of tests/mutation-survivors.md."""
    if not SURVIVORS.exists():
        return {}
    found = re.findall(r"^- `([^`]+)`: (.+)$", SURVIVORS.read_text(), re.MULTILINE)
    return dict(found)


def scratch_copy() -> Path:
    """The working tree (tracked and untracked, not ignored files) in a temporary directory."""
    root = Path(tempfile.mkdtemp(prefix="gpupool-mutation-"))
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for name in files:
        source = REPO / name
        if name and source.is_file():
            target = root / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return root


def run_module(target: str, key: str, max_children: int, time_limit: float, reviewed: set[str],
               max_shown: int) -> dict[str, object]:
    root = scratch_copy()
    tests = [t for t in CORE[key] if (root / t).exists()]
    config = ("\n[tool.mutmut]\n"
              'source_paths = ["gpupool"]\n'
              f"only_mutate = {json.dumps([target])}\n"
              # Everything the tests read besides gpupool/ (examples/pools.yaml, README walkthroughs, man pages).
              'also_copy = ["tests", "scripts", "slurm-plugins", "docs", "man", "testbed", "examples", "vendor", '
              '"setup.cfg", "README.md"]\n'
              'pytest_add_cli_args = ["-p", "no:cacheprovider", "-q"]\n'
              f"pytest_add_cli_args_test_selection = {json.dumps(tests)}\n")
    with (root / "pyproject.toml").open("a") as handle:
        handle.write(config)
    # mutmut forks one child per mutant from the process that ran the tests once (its stats run). A
    # parallel kernel run there under Numba's OpenMP threading layer makes every forked child raise
    # SIGTERM on its own first parallel call ("fork() called from a process already using GNU
    # OpenMP"): the mutant would read -15, neither killed nor survived. The workqueue layer is fork-safe.
    env = dict(os.environ, NUMBA_CACHE_DIR=str(root / ".numba-cache"), GPUPOOL_FUZZ_EXAMPLES="20",
               NUMBA_THREADING_LAYER="workqueue")
    started = time.monotonic()
    log = root / "mutmut.log"
    try:
        with log.open("wb") as sink:
            subprocess.run([sys.executable, "-m", "mutmut", "run", "--max-children", str(max_children)], cwd=root,
                           env=env, stdout=sink, stderr=subprocess.STDOUT, timeout=time_limit, check=False)
        timed_out = False
    except subprocess.TimeoutExpired:
        timed_out = True
    # mutmut's own last words: why nothing was checked when its clean run or stats run failed.
    log_tail = log.read_text(errors="replace").replace("\r", "\n").splitlines()[-15:]
    results: dict[str, int | None] = {}
    for meta in (root / "mutants").rglob("*.py.meta"):
        source = str(meta.relative_to(root / "mutants"))[:-len(".meta")]
        if source == target or fnmatch.fnmatch(source, target):
            results.update(json.loads(meta.read_text())["exit_code_by_key"])
    shows = {}
    # One `mutmut show` per open survivor (a second or more each on a busy machine): the first max_shown.
    for name, code in results.items():
        if code in SURVIVED and name not in reviewed and len(shows) < max_shown:
            shows[name] = subprocess.run([sys.executable, "-m", "mutmut", "show", name], cwd=root, env=env,
                                         capture_output=True, text=True, check=False).stdout
    shutil.rmtree(root, ignore_errors=True)
    return {"results": results, "shows": shows, "seconds": time.monotonic() - started, "timed_out": timed_out,
            "log_tail": log_tail}


def diff_lines(show: str) -> str:
    return " | ".join(line for line in show.splitlines()
                      if line[:1] in "+-" and not line.startswith(("+++", "---")))


def main() -> int:
    parser = argparse.ArgumentParser(prog="scripts/test --mutation", description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help="core modules (files or package directories)")
    parser.add_argument("--changed", nargs="?", const="main", metavar="BASE",
                        help="only the core modules changed against BASE (default main)")
    parser.add_argument("--max-children", type=int, default=2)
    parser.add_argument("--time-limit", type=float, default=1800.0, help="seconds per module")
    parser.add_argument("--max-shown", type=int, default=60, metavar="N",
                        help="print the diff of the first N open survivors per module (the rest by name)")
    args = parser.parse_args()
    chosen = select(args.modules, args.changed)
    if not chosen:
        print("mutation: no core module changed")
        return 0
    reviewed = reviewed_survivors()
    failed = False
    rows = []
    for target, key in chosen:
        print(f"== mutmut: {target} (tests: {' '.join(CORE[key])})", flush=True)
        run = run_module(target, key, args.max_children, args.time_limit, set(reviewed), args.max_shown)
        codes = list(run["results"].values())  # type: ignore[attr-defined]
        total = len(codes)
        killed = sum(1 for c in codes if c in KILLED)
        survivors = [n for n, c in run["results"].items() if c in SURVIVED]  # type: ignore[attr-defined]
        no_tests = sum(1 for c in codes if c in NO_TESTS)
        unchecked = sum(1 for c in codes if c is None)
        other = total - killed - len(survivors) - no_tests - unchecked
        checked = total - unchecked
        score = killed / checked if checked else 0.0
        open_survivors = [n for n in survivors if n not in reviewed]
        # "other": mutmut's suspicious results (an exit code that is neither pass nor fail): unknown.
        ok = checked > 0 and unchecked == 0 and (score >= TARGET or (not open_survivors and not other))
        if other:
            odd = sorted({str(c) for c in codes if c not in KILLED | SURVIVED | NO_TESTS and c is not None})
            print(f"   {other} mutants ended with other exit codes ({', '.join(odd)}): not counted as killed")
        failed |= not ok
        if checked == 0:
            print("   nothing was checked; mutmut's output ended with:")
            for line in run["log_tail"]:  # type: ignore[attr-defined]
                if line.strip():
                    print(f"   | {line}")
        rows.append((target, total, killed, len(survivors), len(survivors) - len(open_survivors), no_tests, other,
                     unchecked, score, run["seconds"], ok))
        for name in open_survivors:
            shown = run["shows"].get(name)  # type: ignore[attr-defined]
            print(f"   survived: {name}" + (f": {diff_lines(shown)}" if shown is not None else ""))
    print()
    print(f"{'module':32} {'mutants':>7} {'killed':>6} {'survived':>8} {'reviewed':>8} {'no-test':>7} "
          f"{'other':>5} {'unchecked':>9} {'score':>6} {'seconds':>7}")
    for key, total, killed, survived, ok_survived, no_tests, other, unchecked, score, seconds, ok in rows:
        print(f"{key:32} {total:7} {killed:6} {survived:8} {ok_survived:8} {no_tests:7} {other:5} {unchecked:9} "
              f"{score:6.1%} {seconds:7.0f}{'' if ok else '  FAIL'}")
    print("score = killed / (mutants - unchecked); a module passes at >= 90% or with every survivor reviewed "
          f"in {SURVIVORS.relative_to(REPO)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
