"""`plan` and `submit` on an owner's partition whose GPUs are lent (FakeSlurm): the borrowed jobs
counted as free, the least-preempting placement pinned, the preempted jobs shown. Expectations by
hand on fat_tree(3, 2, 1): gpu001-002 on leaf01, gpu003-004 on leaf02, gpu005-006 on leaf03."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from gpupool.cli.context import AppContext
from gpupool.cli.main import main
from gpupool.fabric.generate import fat_tree
from gpupool.fabric.model import save_fabric
from gpupool.slurm.fake import FakeSlurm
from gpupool.slurm.models import JobInfo, JobRequest, NodeState, PreemptionConfig

HOSTS = [f"gpu{i:03d}" for i in range(1, 7)]
HOUR = 3600
PARTITION_PRIO = PreemptionConfig(preempt_type="preempt/partition_prio", qos_exempt_s={"scavenger": 600})


def _slurm(config: PreemptionConfig = PARTITION_PRIO) -> FakeSlurm:
    nodes = {h: NodeState(name=h, flags=frozenset({"IDLE"}), gpus_total=8, cpus_total=64, memory_mb=512000,
                          partitions=("vision", "scavenger")) for h in HOSTS}
    slurm = FakeSlurm(nodes=nodes, partitions_map={"vision": HOSTS, "scavenger": HOSTS}, default_partition="vision")
    slurm.partition_fields = {"vision": {"PriorityTier": "10", "PreemptMode": "REQUEUE", "QoS": "N/A"},
                                "scavenger": {"PriorityTier": "1", "PreemptMode": "REQUEUE", "QoS": "N/A"}}
    slurm.preemption_config = config
    return slurm


def _borrow(slurm: FakeSlurm, job_id: str, hosts: list[str], age_s: int) -> None:
    for host in hosts:
        slurm.use(host, 8)
    slurm.jobs_by_id[job_id] = JobInfo(
        job_id=job_id, user="other", account="llm", partition="scavenger", qos="scavenger", state="RUNNING",
        nodes=tuple(hosts), allocation=dict.fromkeys(hosts, 8),
        request=JobRequest(nodes=len(hosts), gpus_per_node=8, partition="scavenger"),
        start_time=int(time.time()) - age_s)


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    fabric = tmp_path / "tree.json"
    save_fabric(fat_tree(3, 2, 1), str(fabric))
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/bash\nsrun hostname\n")
    monkeypatch.setenv("GPUPOOL_LOCK_DIR", str(tmp_path))
    monkeypatch.delenv("GPUPOOL_FABRIC", raising=False)
    slurm = _slurm()
    # leaf01: A (16 GPUs x 1 h = 16 GPU-h); leaf02: B + C (8 + 8 GPU-h, 2 jobs); leaf03: D (16 x 0.5 h = 8 GPU-h).
    _borrow(slurm, "11", ["gpu001", "gpu002"], HOUR)
    _borrow(slurm, "12", ["gpu003"], HOUR)
    _borrow(slurm, "13", ["gpu004"], HOUR)
    _borrow(slurm, "14", ["gpu005", "gpu006"], HOUR // 2)
    return {"fabric": str(fabric), "script": str(script), "slurm": slurm, "ctx": AppContext(slurm=slurm)}


def run(env: dict, *args: str) -> int:
    return main([*args[:1], "--fabric", env["fabric"], *args[1:]], obj=env["ctx"])


def test_plan_json_names_the_jobs_it_preempts(env: dict, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(env, "plan", "--partition", "vision", "--nodes", "2", "--gpus-per-node", "8", "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["allocation"] == {"gpu005": 8, "gpu006": 8}
    preempt = doc["preempt"]
    assert [j["job_id"] for j in preempt["jobs"]] == ["14"]
    assert preempt["count"] == 1 and preempt["protected"] == 0 and preempt["candidates"] == 4
    assert preempt["gpu_hours"] == pytest.approx(8.0, abs=0.05)
    assert preempt["jobs"][0]["gpus"] == 16 and preempt["jobs"][0]["allocation"] == {"gpu005": 8, "gpu006": 8}
    assert preempt["exhaustive"] is True


def test_plan_human_prints_the_preemptions(env: dict, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(env, "plan", "--partition", "vision", "--nodes", "2", "--gpus-per-node", "8") == 0
    out = capsys.readouterr().out
    assert "preempts: job 14 (16 GPUs, 8.0" in out
    assert "+ 8 reclaimed" in out


def test_protected_borrower_is_left_alone(env: dict, capsys: pytest.CaptureFixture[str]) -> None:
    slurm: FakeSlurm = env["slurm"]
    slurm.jobs_by_id["14"] = JobInfo(**{**slurm.jobs_by_id["14"].__dict__, "start_time": int(time.time()) - 60})
    assert run(env, "plan", "--partition", "vision", "--nodes", "2", "--gpus-per-node", "8", "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    # D (job 14) is inside scavenger's 600 s PreemptExemptTime: A (one job, 16 GPU-h) beats B + C (two jobs).
    assert [j["job_id"] for j in doc["preempt"]["jobs"]] == ["11"]
    assert doc["allocation"] == {"gpu001": 8, "gpu002": 8}


def test_submit_pins_the_least_preempting_nodes_and_waits_for_slurm(env: dict,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert run(env, "submit", "--partition", "vision", "--nodes", "2", "--gpus-per-node", "8", "--json",
               "--verify-timeout", "0", env["script"]) == 0
    doc = json.loads(capsys.readouterr().out)
    slurm: FakeSlurm = env["slurm"]
    assert "--nodelist=gpu[005-006]" in slurm.submitted[0]
    assert [j["job_id"] for j in doc["preempt"]["jobs"]] == ["14"]
    # The fake does not preempt: the job waits for Resources, which is expected, not a race to retry.
    assert slurm.cancelled == [] and len(slurm.submitted) == 1
    assert any("preempts 1 borrowed job" in n for n in doc["notes"])


def test_submit_dry_run_shows_the_preemption(env: dict, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(env, "submit", "--partition", "vision", "--nodes", "2", "--gpus-per-node", "8", "--dry-run",
               "--json", env["script"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert any(a == "--nodelist=gpu[005-006]" for a in doc["sbatch"])
    assert doc["preempt"]["count"] == 1


def test_without_preemption_in_slurm_nothing_is_reclaimed(env: dict, capsys: pytest.CaptureFixture[str]) -> None:
    env["slurm"].preemption_config = PreemptionConfig(preempt_type="preempt/none")
    assert run(env, "plan", "--partition", "vision", "--nodes", "2", "--gpus-per-node", "8", "--json") == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["feasible"] is False and "preempt" not in doc


def test_explain_names_the_borrowers_a_pinned_owner_job_waits_for(env: dict,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert run(env, "submit", "--partition", "vision", "--nodes", "2", "--gpus-per-node", "8", "--json",
               "--verify-timeout", "0", env["script"]) == 0
    job_id = json.loads(capsys.readouterr().out)["job_id"]
    assert run(env, "explain", job_id, "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert [(b["job_id"], b["gpus"], b["protected"]) for b in doc["preempting"]] == [("14", 16, False)]
    assert any("Slurm may preempt on the pinned nodes: 14" in n for n in doc["notes"])
    # Job 14 made younger than scavenger's 600 s PreemptExemptTime: still protected, for about 540 s more.
    slurm: FakeSlurm = env["slurm"]
    slurm.jobs_by_id["14"] = JobInfo(**{**slurm.jobs_by_id["14"].__dict__, "start_time": int(time.time()) - 60})
    assert run(env, "explain", job_id, "--json") == 0
    (borrower,) = json.loads(capsys.readouterr().out)["preempting"]
    assert borrower["protected"] and 530 <= borrower["protected_for_s"] <= 540
