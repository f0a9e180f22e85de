"""`gpupool submit` / `jobs` / `explain` on the testbed's real Slurm (64 nodes, topology/tree)."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import REPO, Testbed, wait_until

pytestmark = pytest.mark.integration


def load_bench() -> Any:
    name = "gpupool_bench_slurm_quality"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / "bench_slurm_quality.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def slurm_environ(testbed: Testbed) -> Iterator[None]:
    """The testbed's Slurm/fabric environment for in-process library calls."""
    saved = dict(os.environ)
    env = testbed.full_env()
    os.environ.update({k: v for k, v in env.items() if k in ("SLURM_CONF", "PATH", "GPUPOOL_FABRIC")})
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture
def clean(testbed: Testbed) -> Any:
    testbed.cancel_all()
    yield testbed
    testbed.cancel_all()


@pytest.fixture
def script(testbed: Testbed, tmp_path: Path) -> str:
    path = tmp_path / "job.sh"
    path.write_text("#!/bin/sh\n#SBATCH --mem=100\nsleep 600\n")
    return str(path)


def submit(testbed: Testbed, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return testbed.run(["gpupool", "submit", *args], timeout=timeout)


def job_allocation(testbed: Testbed, job_id: str) -> tuple[str, dict[str, int]]:
    """(state, host -> GPUs) from `scontrol -d show job` (per-node GRES detail)."""
    out = testbed.run(["scontrol", "-d", "-o", "show", "job", job_id], check=True).stdout
    state = re.search(r"JobState=(\S+)", out).group(1)  # type: ignore[union-attr]
    from gpupool.slurm.parse import job_from_scontrol

    return state, dict(job_from_scontrol(out.strip()).allocation)


def fill(testbed: Testbed, used: dict[str, int]) -> None:
    for host, gpus in used.items():
        testbed.run(["sbatch", "--quiet", "--job-name=filler", f"--nodelist={host}", f"--gres=gpu:{gpus}",
                     "--mem=100", "--wrap", "sleep 600"], check=True)
    wait_until(lambda: "PENDING" not in testbed.run(["squeue", "-h", "-o", "%T"]).stdout, 60,
               message="filler jobs running")


def test_submitted_jobs_start_on_the_planned_nodes(clean: Testbed, script: str) -> None:
    k = clean.gpus_per_node
    # Fragment the first leaves so the compact choice is not simply "the first hosts".
    fill(clean, {h: (i % 3) + 1 for i, h in enumerate(clean.nodes[:20])})
    for args in (["--gpus", str(2 * k), "--gpus-per-node", str(k)], ["--gpus", str(k + k // 2)], ["--gpus", "3"]):
        proc = submit(clean, *args, "--json", script)
        assert proc.returncode == 0, proc.stderr
        doc = json.loads(proc.stdout)
        assert doc["mode"] == "now" and doc["job_id"]
        state, allocation = job_allocation(clean, doc["job_id"])
        assert state == "RUNNING"
        assert set(allocation) == set(doc["allocation"])
        assert sum(allocation.values()) == sum(doc["allocation"].values())
        if len(set(doc["allocation"].values())) == 1:
            assert allocation == doc["allocation"]
        comment = clean.run(["squeue", "-h", "-j", doc["job_id"], "-o", "%k"]).stdout.strip()
        assert comment.startswith(f"gpupool:pair_hops_sum={doc['cost']['pair_hops_sum']},")
    # `gpupool jobs` recomputes the cost from the live allocations.
    proc = clean.run(["gpupool", "jobs", "--all", "--json"], timeout=60)
    assert proc.returncode == 0, proc.stderr
    rows = [r for r in json.loads(proc.stdout)["jobs"] if "planned_pair_hops_sum" in r]
    assert len(rows) == 3
    assert all(r["cost"]["pair_hops_sum"] == r["planned_pair_hops_sum"] for r in rows
               if len(set(r["allocation"].values())) == 1)


def test_quality_against_slurm_test_only(clean: Testbed) -> None:
    bench = load_bench()
    with slurm_environ(clean):
        cases, summary = bench.run_benchmark(cases=40, states=4, seed=11, busy_share=0.6, progress=False,
                                             total_share=0.25)
    assert summary["comparable"] >= 30, summary
    assert summary["share_le"] >= 0.99, summary
    assert summary["strictly_lower_where_slurm_above_optimum"], summary
    assert summary["only_slurm_feasible"] == 0, [c for c in cases if c.gpupool is None and c.slurm is not None]


def test_twenty_concurrent_submits(clean: Testbed, script: str) -> None:
    k = clean.gpus_per_node
    gpus = k // 2 + 1  # odd sizes fragment nodes and make overlaps likely if locking failed

    def one(_: int) -> subprocess.CompletedProcess[str]:
        return submit(clean, "--gpus", str(gpus), "--json", script, timeout=300)

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(one, range(20)))
    ids = []
    for proc in results:
        if proc.returncode == 0:
            ids.append(json.loads(proc.stdout)["job_id"])
        else:  # a clear error, never a traceback
            assert proc.stderr.startswith("gpupool: error:") and proc.stderr.count("\n") == 1, proc.stderr
    assert len(ids) == 20 and len(set(ids)) == 20
    queued = clean.job_ids()
    assert sorted(queued) == sorted(ids)  # no duplicate or stray job
    used: dict[str, int] = {}
    for job_id in ids:
        state, allocation = job_allocation(clean, job_id)
        assert state == "RUNNING"
        for host, g in allocation.items():
            used[host] = used.get(host, 0) + g
    assert all(g <= k for g in used.values()), used
    assert sum(used.values()) == 20 * gpus


def test_node_drained_between_plan_and_submit_replans(clean: Testbed, script: str) -> None:
    """The planned nodes are drained right before sbatch: the job is cancelled and re-planned once."""
    from gpupool.app.submit import SubmitRequest, submit_planned
    from gpupool.fabric.compiled import load_compiled
    from gpupool.hostlist import expand as expand_hostlist
    from gpupool.slurm.commands import CommandsClient

    drained: list[str] = []

    class DrainFirst(CommandsClient):
        def submit(self, sbatch_args, script, script_args=()):  # type: ignore[no-untyped-def]
            if not drained:
                nodelist = next(a.split("=", 1)[1] for a in sbatch_args if a.startswith("--nodelist="))
                drained.extend(expand_hostlist(nodelist))
                clean.run(["scontrol", "update", f"nodename={nodelist}", "state=drain", "reason=gpupool-test"],
                          check=True)
            return super().submit(sbatch_args, script, script_args)

    try:
        with slurm_environ(clean):
            client = DrainFirst(timeout=30)
            outcome = submit_planned(client, load_compiled(str(clean.fabric_path)),
                                     SubmitRequest(gpus=2 * clean.gpus_per_node, gpus_per_node=clean.gpus_per_node,
                                                   script=script, lock_path=str(Path(script).parent / "lock")))
        assert drained and outcome.replanned
        assert not set(outcome.placement.allocation) & set(drained)
        assert outcome.job_state == "RUNNING"
        assert clean.job_ids() == [outcome.job_id]  # the first job was cancelled: nothing twice
    finally:
        if drained:
            clean.run(["scontrol", "update", f"nodename={','.join(drained)}", "state=resume"])


def test_bad_input_and_faults(clean: Testbed, script: str, tmp_path: Path) -> None:
    total = len(clean.nodes) * clean.gpus_per_node
    cases = [
        (["--gpus", "8", "--", "-p", "nosuch", script], 4, "unknown partition 'nosuch'"),
        (["--gpus", "8", "--", "-A", "nosuch", script], 4, "sbatch: "),
        (["--gpus", str(total + 8), script], 1, "larger than partition"),
        (["--gpus", "8", "--", "-w", clean.nodes[0], script], 2, "conflicts with gpupool"),
        (["--gpus", "16", "--gpus-per-node", "8", "--", "-N", "3", script], 2, "--nodes 3 taken from the sbatch"),
        (["--gpus", "8", str(tmp_path / "missing.sh")], 4, "missing.sh: batch script not found"),
    ]
    for args, code, message in cases:
        proc = submit(clean, *args)
        assert proc.returncode == code, (args, proc.stderr)
        assert proc.stderr.startswith("gpupool: error:") and message in proc.stderr, (args, proc.stderr)
    assert clean.job_ids() == []  # nothing was submitted


def test_unreachable_controller_is_exit_3_and_bounded(clean: Testbed, script: str, tmp_path: Path) -> None:
    conf = Path(clean.env["SLURM_CONF"]).read_text()
    dead = re.sub(r"(?m)^SlurmctldPort=\d+", "SlurmctldPort=9", conf)
    (tmp_path / "etc").mkdir()
    for extra in Path(clean.env["SLURM_CONF"]).parent.iterdir():
        if extra.is_file() and extra.name != "slurm.conf":
            (tmp_path / "etc" / extra.name).write_bytes(extra.read_bytes())
    (tmp_path / "etc" / "slurm.conf").write_text(dead)
    start = time.monotonic()
    proc = clean.run(["gpupool", "submit", "--gpus", "8", script], timeout=60,
                     env={"SLURM_CONF": str(tmp_path / "etc" / "slurm.conf"), "GPUPOOL_SLURM_TIMEOUT": "4"})
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr.startswith("gpupool: error:") and proc.stderr.count("\n") == 1
    assert time.monotonic() - start < 30


def test_explain_pending_job(clean: Testbed, script: str) -> None:
    k = clean.gpus_per_node
    first, second = clean.nodes[0], clean.nodes[-1]  # two different leaf switches
    fill(clean, {first: k})
    proc = clean.run(["sbatch", "--parsable", f"--nodelist={first},{second}", "--nodes=2", f"--gres=gpu:{k}",
                      "--mem=100", "--wrap", "sleep 60"], check=True)
    job_id = proc.stdout.strip().split(";")[0]
    wait_until(lambda: clean.run(["squeue", "-h", "-j", job_id, "-o", "%r"]).stdout.strip() not in ("", "None"),
               30, message="pending reason")
    proc = clean.run(["gpupool", "explain", job_id, "--json"], timeout=60)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["state"] == "PENDING" and doc["reason"] in ("Resources", "Priority")
    assert doc["asks"]["gpus"] == 2 * k and doc["asks"]["gpus_per_node"] == k
    assert doc["best_now"]["cost"]["leaf_switches"] == 1
    assert doc["pinned"]["cost"]["leaf_switches"] == 2
    assert doc["cost_difference"]["pair_hops_sum"] > 0


def test_nothing_fits_now_waits_for_compact_switches(clean: Testbed, script: str) -> None:
    k = clean.gpus_per_node
    fill(clean, dict.fromkeys(clean.nodes, 1))  # one GPU busy everywhere: no whole node is free
    proc = submit(clean, "--gpus", str(2 * k), "--gpus-per-node", str(k), "--switch-wait", "10:00", "--json", script)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["mode"] == "wait-switches" and doc["cost"]["leaf_switches"] == 1
    assert any("--switches=1@00:10:00" in note for note in doc["notes"])
    assert not any(a.startswith("--nodelist=") for a in doc["sbatch"])
    out = clean.run(["scontrol", "-o", "show", "job", doc["job_id"]], check=True).stdout
    assert "JobState=PENDING" in out and re.search(r"Switches=1@\d", out), out


def test_a_spread_placement_now_waits_for_compact_switches(clean: Testbed, script: str) -> None:
    from gpupool.fabric.compiled import load_compiled

    k = clean.gpus_per_node
    compiled = load_compiled(str(clean.fabric_path))
    leaves: dict[int, list[str]] = {}
    for host in clean.nodes:
        leaves.setdefault(int(compiled.host_tree_leaf[compiled.host_index()[host]]), []).append(host)
    per_leaf = min(len(members) for members in leaves.values())
    # Every leaf full but one host: two whole hosts are free now only on two different leaves.
    fill(clean, {h: k for members in leaves.values() for h in members[1:]})
    proc = submit(clean, "--gpus", str(2 * k), "--gpus-per-node", str(k), "--json", "--", "-t", "2:00:00", script)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert per_leaf >= 2 and doc["mode"] == "wait-switches" and doc["cost"]["leaf_switches"] == 1
    assert "--switches=1@00:30:00" in doc["sbatch"]  # 25% of the 2 h limit
    assert not any(a.startswith("--nodelist=") for a in doc["sbatch"])
    out = clean.run(["scontrol", "-o", "show", "job", doc["job_id"]], check=True).stdout
    assert "JobState=PENDING" in out and "Switches=1@00:30:00" in out, out


def test_a_job_waiting_for_switches_holds_no_nodes_back(clean: Testbed) -> None:
    """The simulator's model of --switches=N@T (docs/simulate.md, "Waiting for a compact placement"): a job
    waiting for its switch count keeps its place in the queue but holds nothing back from later jobs."""
    from gpupool.fabric.compiled import load_compiled

    k = clean.gpus_per_node
    compiled = load_compiled(str(clean.fabric_path))
    leaves: dict[int, list[str]] = {}
    for host in clean.nodes:
        leaves.setdefault(int(compiled.host_tree_leaf[compiled.host_index()[host]]), []).append(host)
    fill(clean, {h: k for members in leaves.values() for h in members[1:]})  # one whole host free per leaf
    held = clean.run(["sbatch", "--parsable", "-N", "2", f"--gres=gpu:{k}", "--switches=1@30:00", "-t", "60",
                      "--mem=100", "--wrap", "sleep 600"], check=True).stdout.strip().split(";")[0]
    time.sleep(3)  # a scheduling pass sees the held job first
    later = clean.run(["sbatch", "--parsable", "-N", "1", f"--gres=gpu:{k}", "-t", "60", "--mem=100",
                       "--wrap", "sleep 600"], check=True).stdout.strip().split(";")[0]

    def state(job: str) -> str:
        return clean.run(["squeue", "-h", "-j", job, "-o", "%T"]).stdout.strip()

    wait_until(lambda: state(later) == "RUNNING", 30, message="the later one-node job running")
    assert state(held) == "PENDING"


def test_slow_controller_is_exit_3_and_bounded(clean: Testbed, script: str) -> None:
    """slurmctld stopped (SIGSTOP): connections hang instead of failing; gpupool gives up in time."""
    import signal

    pid = int((clean.state_dir / "run" / "slurmctld.pid").read_text().split()[0])
    os.kill(pid, signal.SIGSTOP)
    try:
        start = time.monotonic()
        proc = clean.run(["gpupool", "submit", "--gpus", "8", "--json", script], timeout=60,
                         env={"GPUPOOL_SLURM_TIMEOUT": "3"})
        elapsed = time.monotonic() - start
    finally:
        os.kill(pid, signal.SIGCONT)
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout == "" and proc.stderr.startswith("gpupool: error:") and "3s" in proc.stderr
    assert elapsed < 20
    wait_until(lambda: clean.run(["scontrol", "ping"]).returncode == 0, 60, message="slurmctld back")
    assert clean.job_ids() == []
