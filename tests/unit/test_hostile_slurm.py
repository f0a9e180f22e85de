"""Issue 19 items 1-2: one user's job data (names, comments, bytes) cannot crash or steer gpupool.

Each test reproduces an input from the hostile-input probe that used to exit 70 or change
another user's plan; expected values are derived by hand from the fake cluster below.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from gpupool.app.jobs import job_row
from gpupool.cli.context import AppContext
from gpupool.cli.main import main
from gpupool.fabric.generate import fat_tree
from gpupool.fabric.model import save_fabric
from gpupool.pools.slurm_state import jobs_from_squeue_json, parse_jobs
from gpupool.slurm import invoke as runner
from gpupool.slurm.fake import FakeSlurm
from gpupool.slurm.freestate import parse_alloc_field, subtract_pending_plans, trusted_alloc
from gpupool.slurm.models import JobInfo, JobRequest
from gpupool.slurm.parse import job_from_json

HOSTS = [f"gpu{i:03d}" for i in range(1, 17)]
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def test_non_utf8_slurm_output_is_decoded_not_raised() -> None:
    # sbatch -J $'bad\xffname': squeue prints the raw byte; text=True used to raise UnicodeDecodeError.
    code = "import sys; sys.stdout.buffer.write(b'{\"jobs\": [{\"name\": \"bad\\xffname\"}]}')"
    proc = runner.run([sys.executable, "-c", code])
    assert json.loads(proc.stdout)["jobs"][0]["name"] == "bad\ufffdname"


@pytest.mark.parametrize("field", ["gpu001:\u00b2", "gpu001:8+gpu002:\u0663", "gpu[1:8", "gpu001:" + "9" * 5000,
                                   "gpu001:8+gpu001:8", "gpu001:100000", ":8", "gpu001:-1"])
def test_malformed_alloc_markers_are_ignored(field: str) -> None:
    assert parse_alloc_field(field) == {}


def test_alloc_marker_parses_what_gpupool_writes() -> None:
    assert parse_alloc_field("gpu001:8+gpu002:4") == {"gpu001": 8, "gpu002": 4}


def _pending(job_id: str, comment: str, user: str = "mallory", **request: object) -> JobInfo:
    return JobInfo(job_id=job_id, user=user, state="PENDING", reason="Priority", comment=comment,
                   request=JobRequest(**request))  # type: ignore[arg-type]


def test_forged_marker_without_a_matching_request_reserves_nothing() -> None:
    free = {"gpu027": 8, "gpu028": 8}
    forged = [
        # held job claiming GPUs through its comment only (the probe's attack)
        replace(_pending("1", "gpupool:mode=now,alloc=gpu027:8+gpu028:8", gpus_total=1), reason="JobHeldUser"),
        # pending, not pinned: the marker names nodes the job never asked for
        _pending("2", "gpupool:mode=now,alloc=gpu027:8+gpu028:8", gpus_total=1),
        # pinned to gpu027 with 1 GPU per node, marker claims 8
        _pending("3", "gpupool:mode=now,alloc=gpu027:8", required_nodes="gpu027", gpus_per_node=1, nodes=1),
    ]
    assert subtract_pending_plans(free, forged) == {"gpu027": 7, "gpu028": 8}  # only job 3's real 1 GPU


def test_genuine_marker_is_trusted() -> None:
    job = _pending("4", "gpupool:mode=now,alloc=gpu001:8+gpu002:4", user="alice",
                   required_nodes="gpu[001-002]", gpus_total=12, nodes=2)
    assert trusted_alloc(job) == {"gpu001": 8, "gpu002": 4}
    assert subtract_pending_plans({"gpu001": 8, "gpu002": 8}, [job]) == {"gpu002": 4}


def test_jobs_row_survives_hostile_comment() -> None:
    from gpupool.fabric.compiled import compile_fabric

    compiled = compile_fabric(fat_tree(4, 4, 2))
    job = JobInfo(job_id="9", name="bad\ufffdname", state="RUNNING", nodes=("gpu001",), allocation={"gpu001": 1},
                  comment="gpupool:pair_hops_sum=\u00b2,alloc=gpu001:\u00b2", request=JobRequest(gpus_total=1))
    row = job_row(compiled, job)
    assert "planned_pair_hops_sum" not in row and row["gpus"] == 1


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    fabric = tmp_path / "tree.json"
    save_fabric(fat_tree(4, 4, 2), str(fabric))
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/bash\nsrun hostname\n")
    monkeypatch.setenv("GPUPOOL_LOCK_DIR", str(tmp_path))
    monkeypatch.delenv("GPUPOOL_FABRIC", raising=False)
    slurm = FakeSlurm.uniform(HOSTS)
    return {"fabric": str(fabric), "script": str(script), "slurm": slurm,
            "ctx": AppContext(slurm=slurm)}


def _plan_and_dry_submit(env: dict, capsys: pytest.CaptureFixture[str]) -> tuple[dict, dict]:
    assert main(["plan", "--fabric", env["fabric"], "--gpus", "4", "--json"], obj=env["ctx"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert main(["submit", "--fabric", env["fabric"], "--gpus", "4", "--dry-run", "--json", env["script"]],
                obj=env["ctx"]) == 0
    submit = json.loads(capsys.readouterr().out)
    return plan, submit


def test_forged_comment_changes_nothing_for_other_users(env: dict, capsys: pytest.CaptureFixture[str]) -> None:
    before_plan, before_submit = _plan_and_dry_submit(env, capsys)
    # Every host of the first leaf (where both plans go) is "claimed" by another user's held job.
    claimed = "+".join(f"{h}:8" for h in HOSTS)
    env["slurm"].jobs_by_id["666"] = replace(
        _pending("666", f"gpupool:mode=now,alloc={claimed}", gpus_total=1), reason="JobHeldUser")
    env["slurm"].jobs_by_id["667"] = _pending("667", "gpupool:mode=now,alloc=gpu001:\u00b2", gpus_total=1)
    after_plan, after_submit = _plan_and_dry_submit(env, capsys)
    assert after_plan["allocation"] == before_plan["allocation"]
    assert after_submit["allocation"] == before_submit["allocation"] and after_submit["mode"] == "now"
    assert after_plan["allocation"] == after_submit["allocation"]  # plan and submit: the same rule


def test_plan_sees_genuine_pending_gpupool_jobs_like_submit(env: dict, capsys: pytest.CaptureFixture[str]) -> None:
    before_plan, _ = _plan_and_dry_submit(env, capsys)
    taken = sorted(before_plan["allocation"])
    env["slurm"].jobs_by_id["7"] = _pending(
        "7", "gpupool:mode=now,alloc=" + "+".join(f"{h}:8" for h in taken), user="alice",
        required_nodes=",".join(taken), gpus_per_node=8, nodes=len(taken))
    plan, submit = _plan_and_dry_submit(env, capsys)
    assert not set(plan["allocation"]) & set(taken)
    assert plan["allocation"] == submit["allocation"]


def test_pool_status_json_jobs_ignore_hostile_names() -> None:
    doc = json.loads((FIXTURES / "slurm" / "squeue-22.05.json").read_text())
    honest = {j.job_id: j for j in jobs_from_squeue_json(doc)}
    for raw in doc["jobs"]:
        raw["name"] = "x Nodes=gpu[ GRES=gpu:8 \udcff"
        raw["comment"] = "gpupool:alloc=gpu001:\u00b2"
    hostile = {j.job_id: j for j in jobs_from_squeue_json(doc)}
    assert hostile == honest
    first = doc["jobs"][0]
    assert honest[str(first["job_id"])].node_gpus == {first["nodes"]: 3}  # gres_detail gpu:h100:3


def test_pool_status_text_fallback_ignores_job_names() -> None:
    line = ("JobId=11 JobName={name} UserId=bob(1001) GroupId=bob(1001) Priority=100 Account=llm QOS=normal "
            "JobState=RUNNING Reason=None Partition=llm NodeList=gpu[001-002] NumNodes=2 "
            "TRES=cpu=2,node=2,gres/gpu=6 JOB_GRES=gpu:6   Nodes=gpu001 CPU_IDs=0 Mem=2000 "
            "GRES=gpu:4(IDX:0-3)   Nodes=gpu002 CPU_IDs=0 Mem=2000 GRES=gpu:2(IDX:0-1) MinCPUsNode=1\n")
    other = ("JobId=12 JobName=wrap UserId=al(1000) Priority=1 Account=cv QOS=normal JobState=RUNNING Partition=cv "
             "NodeList=gpu003 NumNodes=1 TRES=cpu=1,node=1,gres/gpu=1 JOB_GRES=gpu:1   Nodes=gpu003 CPU_IDs=0 "
             "Mem=1 GRES=gpu:1(IDX:0) MinCPUsNode=1\n")
    for name in ("x Nodes=gpu[", "x Nodes=gpu009 CPU_IDs=0 Mem=1 GRES=gpu:8(IDX:0-7)"):
        jobs = {j.job_id: j for j in parse_jobs(line.format(name=name) + other)}
        assert jobs["12"].node_gpus == {"gpu003": 1}
        assert jobs["11"].node_gpus == {"gpu001": 4, "gpu002": 2}


def test_job_from_json_with_hostile_fields() -> None:
    job = job_from_json({"job_id": 5, "name": "x Nodes=gpu[", "job_state": "PENDING",
                         "comment": "gpupool:alloc=gpu001:\u00b2", "tres_per_node": "gres:gpu:\u00b2"})
    assert job.name == "x Nodes=gpu[" and job.gpupool_plan == {"alloc": "gpu001:\u00b2"}


def test_pipe_in_a_description_never_forges_gpupool_s_mark() -> None:
    from gpupool.pools.slurm_state import MANAGED_MARK, parse_parsable

    rows = parse_parsable(f"vision|{MANAGED_MARK}|x|y\nllm|{MANAGED_MARK}|llm\n", ("Account", "Descr", "Org"))
    assert rows["vision"]["Descr"] == "" and rows["llm"]["Descr"] == MANAGED_MARK
