"""`gpupool submit`, `jobs` and `explain` in-process against the in-memory FakeSlurm."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from gpupool.cli.context import AppContext
from gpupool.cli.main import main
from gpupool.errors import EnvError
from gpupool.fabric.generate import fat_tree
from gpupool.fabric.model import save_fabric
from gpupool.slurm.fake import FakeSlurm
from gpupool.slurm.models import JobInfo, JobRequest, NodeState

HOSTS = [f"gpu{i:03d}" for i in range(1, 17)]
COST_KEYS = {"pair_hops_sum", "mean_hops", "max_hops", "leaf_switches", "groups"}


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    fabric = tmp_path / "tree.json"
    save_fabric(fat_tree(4, 4, 2), str(fabric))
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/bash\n#SBATCH -J train\nsrun hostname\n")
    monkeypatch.setenv("GPUPOOL_LOCK_DIR", str(tmp_path))
    monkeypatch.delenv("GPUPOOL_FABRIC", raising=False)
    slurm = FakeSlurm.uniform(HOSTS)
    return {"fabric": str(fabric), "script": str(script), "slurm": slurm,
            "ctx": AppContext(slurm=slurm)}


def run(env: dict, *args: str) -> int:
    return main([*args[:1], "--fabric", env["fabric"], *args[1:]], obj=env["ctx"])


def test_submit_json(env: dict, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(env, "submit", "--gpus", "16", "--gpus-per-node", "8", "--json", "--verify-timeout", "0",
               "--", "--mem=4G", env["script"], "arg1") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["feasible"] is True and set(doc["cost"]) >= COST_KEYS
    assert doc["job_id"] == "100" and doc["job_state"] == "RUNNING"
    assert sum(doc["allocation"].values()) == 16 and doc["cost"]["leaf_switches"] == 1
    submitted = env["slurm"].submitted[0]
    assert submitted[0] == "--mem=4G" and f"--nodelist={doc['nodelist']}" in submitted
    assert doc["sbatch"][-2:] == [env["script"], "arg1"]


def test_submit_human_prints_sbatch_line(env: dict, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(env, "submit", "--gpus", "4", "--verify-timeout", "0", env["script"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "Submitted batch job 100\n"
    assert "pair_hops_sum 0" in captured.err


def test_submit_dry_run_prints_command(env: dict, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(env, "submit", "--gpus", "16", "--dry-run", "--", "-J", "my job", env["script"]) == 0
    line = capsys.readouterr().out.strip()
    argv = shlex.split(line)
    assert argv[:3] == ["sbatch", "-J", "my job"] and argv[-1] == env["script"]
    assert any(a.startswith("--nodelist=") for a in argv) and "--gres=gpu:8" in argv
    assert env["slurm"].submitted == []


def test_submit_conflict_is_one_line_usage_error(env: dict, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(env, "submit", "--gpus", "8", "--", "-w", "gpu001", env["script"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gpupool: error: sbatch arguments: sbatch option -w gpu001 conflicts")
    assert err.count("\n") == 1 and env["slurm"].submitted == []


def test_submit_missing_script_exit_4(env: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(env, "submit", "--gpus", "8", str(tmp_path / "missing.sh")) == 4
    assert "missing.sh: batch script not found" in capsys.readouterr().err


def test_submit_slurm_down_exit_3(env: dict, capsys: pytest.CaptureFixture[str]) -> None:
    class Down(FakeSlurm):
        def node_states(self) -> list[NodeState]:
            raise EnvError("scontrol: Slurm unreachable: Unable to contact slurm controller")

    env["ctx"].slurm = Down(nodes={})
    assert run(env, "submit", "--gpus", "8", env["script"]) == 3
    assert capsys.readouterr().err.startswith("gpupool: error: scontrol: Slurm unreachable")


def test_submit_too_large_exit_1(env: dict, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(env, "submit", "--gpus", "200", env["script"]) == 1
    assert "larger than partition gpu" in capsys.readouterr().err


def test_jobs_reports_live_cost(env: dict, capsys: pytest.CaptureFixture[str]) -> None:
    slurm: FakeSlurm = env["slurm"]
    # One compact job (one leaf) and one spread over two leaves.
    slurm.jobs_by_id["7"] = JobInfo(job_id="7", user="alice", state="RUNNING", partition="gpu",
                                    nodes=("gpu001", "gpu002"), allocation={"gpu001": 8, "gpu002": 8})
    slurm.jobs_by_id["8"] = JobInfo(job_id="8", user="bob", state="RUNNING", partition="gpu",
                                    nodes=("gpu003", "gpu005"), allocation={"gpu003": 4, "gpu005": 4},
                                    comment="gpupool:pair_hops_sum=32")
    slurm.jobs_by_id["9"] = JobInfo(job_id="9", user="bob", state="PENDING", partition="gpu")
    assert run(env, "jobs", "--all", "--json") == 0
    rows = {r["job_id"]: r for r in json.loads(capsys.readouterr().out)["jobs"]}
    assert set(rows) == {"7", "8"}
    assert rows["7"]["cost"]["pair_hops_sum"] == 64 * 2 and rows["7"]["cost"]["leaf_switches"] == 1
    assert rows["8"]["cost"]["pair_hops_sum"] == 16 * 4 and rows["8"]["cost"]["leaf_switches"] == 2
    assert rows["8"]["planned_pair_hops_sum"] == 32
    assert run(env, "jobs", "--user", "alice", "--json") == 0
    assert [r["job_id"] for r in json.loads(capsys.readouterr().out)["jobs"]] == ["7"]
    assert run(env, "jobs", "--user", "alice", "--all") == 2


def test_explain_pending_job(env: dict, capsys: pytest.CaptureFixture[str]) -> None:
    slurm: FakeSlurm = env["slurm"]
    # The job is pinned to hosts on two leaves; one of them is busy.
    slurm.use("gpu001", 8)
    slurm.jobs_by_id["12"] = JobInfo(
        job_id="12", user="alice", state="PENDING", reason="Resources", partition="gpu",
        request=JobRequest(nodes=2, gpus_per_node=8, required_nodes="gpu[001,005]", partition="gpu"))
    assert run(env, "explain", "12", "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["reason"] == "Resources" and doc["asks"]["gpus"] == 16
    assert doc["best_now"]["cost"]["leaf_switches"] == 1 and doc["best_now"]["cost"]["pair_hops_sum"] == 128
    assert doc["pinned"]["cost"]["pair_hops_sum"] == 64 * 4
    assert doc["cost_difference"]["pair_hops_sum"] == 256 - 128
    assert any("gpu001" in n for n in doc["notes"])
    assert run(env, "explain", "404") == 4


def test_explain_unpinned_job_compares_with_recorded_plan(env: dict, capsys: pytest.CaptureFixture[str]) -> None:
    slurm: FakeSlurm = env["slurm"]
    slurm.jobs_by_id["13"] = JobInfo(
        job_id="13", user="alice", state="PENDING", reason="Resources", partition="gpu",
        comment="gpupool:pair_hops_sum=256,leaf_switches=2,max_hops=4,mode=wait-switches",
        request=JobRequest(nodes=2, gpus_per_node=8, partition="gpu", switches="2@01:00:00"))
    assert run(env, "explain", "13", "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["pinned"] is None and doc["planned"] == {"pair_hops_sum": 256, "mode": "wait-switches",
                                                         "leaf_switches": 2}
    assert doc["best_now"]["cost"]["pair_hops_sum"] == 128
    assert doc["cost_difference"] == {"pair_hops_sum": 128, "leaf_switches": 1}
    env["ctx"].json = False  # the context object is shared between the two in-process runs
    assert run(env, "explain", "13") == 0
    out = capsys.readouterr().out
    assert "best placement now" in out and "pair_hops_sum +128" in out
