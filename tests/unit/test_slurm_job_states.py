"""Job states and array task ids read the same way from every Slurm output (issue 15).

Expected values are Slurm's own, written by hand: job_state_string() in Slurm 25.11's
src/common/slurm_protocol_defs.c names a job by its first set flag (COMPLETING before STAGE_OUT
before CONFIGURING ...) and else by its base state; scontrol's JobId= of an array task is the
task's own job id, while squeue and the JSON name it ARRAY_TASK.
"""

from __future__ import annotations

import pytest

from gpupool.slurm import parse


@pytest.mark.parametrize(("raw", "expected"), [
    (["CANCELLED", "COMPLETING"], "COMPLETING"),
    (["COMPLETED", "COMPLETING"], "COMPLETING"),
    (["RUNNING", "CONFIGURING"], "CONFIGURING"),
    (["RUNNING", "SIGNALING"], "SIGNALING"),
    (["PENDING", "REQUEUED"], "REQUEUED"),
    (["RUNNING"], "RUNNING"),
    (["SUSPENDED"], "SUSPENDED"),
    ("COMPLETING", "COMPLETING"),  # 22.05 spells one word already
    ("pending", "PENDING"),
    ([], ""),
])
def test_json_job_state_is_slurms_one_word(raw: object, expected: str) -> None:
    job = parse.job_from_json({"job_id": 4, "job_state": raw, "nodes": "n1"})
    assert job.state == expected


@pytest.mark.parametrize(("raw", "holds"), [
    (["CANCELLED", "COMPLETING"], True),   # in its Epilog: still on its nodes
    (["RUNNING", "SIGNALING"], True),
    (["RUNNING", "CONFIGURING"], True),
    (["SUSPENDED"], True),
    (["CANCELLED"], False),
    (["PENDING", "REQUEUED"], False),
])
def test_json_jobs_that_hold_their_nodes_list_them(raw: object, holds: bool) -> None:
    job = parse.job_from_json({"job_id": 4, "job_state": raw, "nodes": "n[1-2]", "tres_per_node": "gres/gpu:2"})
    assert job.nodes == (("n1", "n2") if holds else ())
    assert job.allocation == ({"n1": 2, "n2": 2} if holds else {})


def _scontrol(job_id: int, array: int | None = None, task: str | None = None, state: str = "RUNNING",
              nodes: str = "n8") -> str:
    array_part = f" ArrayJobId={array} ArrayTaskId={task}" if array is not None else ""
    return (f"JobId={job_id}{array_part} JobName=wrap UserId=u(1) Account=a JobState={state} Reason=None "
            f"Partition=gpu NodeList={nodes} NumNodes=1 TresPerNode=gres/gpu:1 "
            f"Nodes={nodes} CPU_IDs=0 Mem=500 GRES=gpu:h100:1(IDX:{job_id % 4})")


# `scontrol -d -o show job 7` for an array 7 whose tasks 1-3 run as jobs 8, 9 and 7 (the last task
# started keeps the array's id), and one pending remainder record.
ARRAY_7 = "\n".join([_scontrol(8, 7, "1"), _scontrol(9, 7, "2"), _scontrol(7, 7, "3"),
                     _scontrol(10, 10, "4-5", state="PENDING", nodes="(null)")])


def test_scontrol_array_tasks_are_named_array_task() -> None:
    assert [j.job_id for j in parse.jobs_from_scontrol(ARRAY_7)] == ["7_1", "7_2", "7_3", "10"]


@pytest.mark.parametrize(("asked", "found"), [
    ("7_2", "7_2"),   # by ARRAY_TASK
    ("9", "7_2"),     # by the task's own job id
    ("7", "7_3"),     # the array's id: the task that kept it
    ("10", "10"),     # a pending remainder
    ("7_9", None),
    ("11", None),
])
def test_scontrol_lookup_by_the_id_asked(asked: str, found: str | None) -> None:
    records = parse.scontrol_job_records(ARRAY_7, asked)
    assert [j.job_id for j in records] == ([found] if found else [])


def test_scontrol_completing_job_keeps_its_nodes() -> None:
    job = parse.job_from_scontrol(_scontrol(5, state="COMPLETING", nodes="n4"))
    assert job.state == "COMPLETING" and job.allocation == {"n4": 1}


def test_completing_job_whose_gres_were_released_shows_what_it_was_given() -> None:
    # slurmctld releases a COMPLETING job's GRES before its Epilog ends: scontrol -d prints an empty
    # GRES= and the JSON an empty gres_detail; the job still holds the node with what it asked for.
    line = _scontrol(5, state="COMPLETING", nodes="n4").replace("GRES=gpu:h100:1(IDX:1)", "GRES=")
    assert parse.job_from_scontrol(line).allocation == {"n4": 1}
    job = parse.job_from_json({"job_id": 5, "job_state": ["CANCELLED", "COMPLETING"], "nodes": "n4",
                               "gres_detail": [""], "tres_per_node": "gres/gpu:2"})
    assert job.allocation == {"n4": 2}
