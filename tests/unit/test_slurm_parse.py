"""Slurm output parsers on real 22.05 output and 23.11 / 24.05 schema fixtures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpupool.errors import InputError
from gpupool.slurm import parse
from gpupool.slurm.gres import gpu_count, memory_mb, parse_gres, tres_gpu_count
from gpupool.slurm.models import parse_plan_comment

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "slurm"


def load(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


@pytest.mark.parametrize(("text", "expected"), [
    ("gpu:h100:8", {"h100": 8}),
    ("gpu:8", {"": 8}),
    ("gpu:h100:8(S:0-1)", {"h100": 8}),
    ("gpu:a100:2,gpu:h100:4(S:0)", {"a100": 2, "h100": 4}),
    ("gpu:h100:2(IDX:0-1)", {"h100": 2}),
    ("gpu:h100:4(IDX:0-1,3-4),gpu:a100:1(IDX:5)", {"h100": 4, "a100": 1}),
    ("gpu:h100:0(IDX:N/A)", {"h100": 0}),
    ("gres:gpu:3", {"": 3}),
    ("gres/gpu:3", {"": 3}),
    ("gres:gpu:h100:2", {"h100": 2}),
    ("gpu", {"": 1}),
    ("nic:2,gpu:4", {"": 4}),
    ("N/A", {}),
    ("(null)", {}),
    ("", {}),
])
def test_parse_gres_forms(text: str, expected: dict[str, int]) -> None:
    assert parse_gres(text) == expected
    assert gpu_count(text) == sum(expected.values())


def test_tres_and_memory() -> None:
    assert tres_gpu_count("cpu=2,mem=1000M,gres/gpu=8,gres/gpu:h100=8") == 8
    assert tres_gpu_count("cpu=2,gres/gpu:h100=4") == 4
    assert tres_gpu_count("cpu=2,mem=1G") == 0
    assert memory_mb("62.50G") == 64000
    assert memory_mb("1000M") == 1000
    assert memory_mb("64000") == 64000
    assert memory_mb("1T") == 1024 * 1024


@pytest.mark.parametrize(("state", "flags", "expected"), [
    ("mixed", ["DRAIN"], {"MIXED", "DRAIN"}),
    (["IDLE", "DRAIN"], None, {"IDLE", "DRAIN"}),
    ("IDLE+DRAIN", None, {"IDLE", "DRAIN"}),
    ("DOWN*", None, {"DOWN", "NOT_RESPONDING"}),
    ("IDLE~", None, {"IDLE", "POWERED_DOWN"}),
    ("MIXED+RESERVED", None, {"MIXED", "RESERVED"}),
])
def test_state_flags(state: object, flags: object, expected: set[str]) -> None:
    assert parse.state_flags(state, flags) == frozenset(expected)


def test_number_objects() -> None:
    assert parse.number({"set": True, "infinite": False, "number": 5}) == 5
    assert parse.number({"set": False, "infinite": False, "number": 5}, -1) == -1
    assert parse.number({"set": True, "infinite": True, "number": 0}, None) is None
    assert parse.number("05") == 5
    assert parse.number(7) == 7


def test_nodes_22_05_json_and_text_agree() -> None:
    from_json = {n.name: n for n in parse.nodes_from_json(load("sinfo-22.05.json"))}
    from_text = {n.name: n for n in parse.nodes_from_scontrol((FIXTURES / "scontrol-show-node-22.05.txt").read_text())}
    assert sorted(from_json) == ["gpu001", "gpu002", "gpu003", "gpu004"]
    for name, node in from_json.items():
        other = from_text[name]
        assert (node.gpus_total, node.gpus_used, node.cpus_alloc, node.memory_alloc_mb, node.flags) == (
            other.gpus_total, other.gpus_used, other.cpus_alloc, other.memory_alloc_mb, other.flags), name
    gpu001 = from_json["gpu001"]
    assert (gpu001.gpus_total, gpu001.gpus_used, gpu001.free_gpus) == (8, 3, 5)
    assert gpu001.gpu_types == ("h100",)
    assert gpu001.partitions == ("batch", "small")
    assert gpu001.features == ("h100", "ib")
    assert gpu001.usable
    assert from_json["gpu004"].flags == {"IDLE", "DRAIN"}
    assert not from_json["gpu004"].usable
    assert from_text["gpu004"].reason == "bad hca"
    # job 2 took the whole memory of gpu002 (no DefMemPerCPU): no memory left there.
    assert from_json["gpu002"].free_memory_mb == 0


@pytest.mark.parametrize("version", ["23.11", "24.05"])
def test_nodes_newer_schema(version: str) -> None:
    nodes = {n.name: n for n in parse.nodes_from_json(load(f"scontrol-show-nodes-{version}.json"))}
    assert nodes["gpu001"].flags == {"IDLE"} and nodes["gpu001"].free_gpus == 8
    assert nodes["gpu002"].free_gpus == 5 and nodes["gpu002"].partitions == ("gpu", "debug")
    assert nodes["gpu003"].free_gpus == 0
    assert nodes["gpu004"].flags == {"IDLE", "DRAIN"} and not nodes["gpu004"].usable
    assert nodes["gpu005"].flags == {"DOWN", "NOT_RESPONDING"} and not nodes["gpu005"].usable
    assert not nodes["gpu006"].usable  # RESERVED
    assert nodes["gpu006"].gpus_total == 8 and nodes["gpu006"].gpus_used == 1
    assert set(nodes["gpu006"].gpu_types) == {"a100", "h100"}
    assert nodes["gpu007"].free_cpus == 0
    assert nodes["cpu001"].gpus_total == 0
    assert nodes["gpu001"].features == ("h100", "ib")


def test_jobs_22_05_json_and_text() -> None:
    jobs = {j.job_id: j for j in parse.jobs_from_json(load("squeue-22.05.json"))}
    assert jobs["1"].state == "RUNNING" and jobs["1"].allocation == {"gpu001": 3}
    assert jobs["2"].allocation == {"gpu002": 2, "gpu003": 2}
    assert jobs["2"].gpupool_plan == {"pair_hops_sum": "4"}
    assert jobs["7"].state == "PENDING" and jobs["7"].reason == "Resources" and jobs["7"].allocation == {}
    assert jobs["7"].request.gpus_per_node == 8 and jobs["7"].request.nodes == 2
    text = {j.job_id: j for j in parse.jobs_from_scontrol((FIXTURES / "scontrol-show-job-22.05.txt").read_text())}
    assert text["2"].allocation == jobs["2"].allocation
    assert text["7"].request.switches == "1@00:05:00"
    assert text["2"].request.required_nodes == "gpu[002-003]"
    assert text["1"].user == "root"


@pytest.mark.parametrize("version", ["23.11", "24.05"])
def test_jobs_newer_schema(version: str) -> None:
    jobs = {j.job_id: j for j in parse.jobs_from_json(load(f"squeue-{version}.json"))}
    assert jobs["101"].state == "RUNNING"
    assert jobs["101"].allocation == {"gpu002": 3, "gpu007": 2}  # uneven, from gres_detail
    assert jobs["101"].request.gpus_total == 5
    assert jobs["102"].allocation == {"gpu003": 8}
    pending = jobs["103"]
    assert pending.state == "PENDING" and pending.reason == "Resources" and pending.allocation == {}
    assert pending.request.required_nodes == "gpu[001,004]"
    assert pending.gpupool_plan["alloc"] == "gpu001:4+gpu004:4"
    assert pending.request.gpus_per_node == 4 and pending.request.nodes == 2
    assert jobs["105"].state == "COMPLETED" and jobs["105"].nodes == ()


def test_segment_size_is_read_where_squeue_reports_it() -> None:
    # 26.05's squeue --json says segment_size 0 for a job without --segment; 24.11's has no such key.
    doc = load("squeue-26.05.json")
    assert all(j["segment_size"] == 0 for j in doc["jobs"])
    assert all(j.request.segment is None for j in parse.jobs_from_json(doc))
    assert all("segment_size" not in j for j in load("squeue-24.11.json")["jobs"])
    assert all(j.request.segment is None for j in parse.jobs_from_json(load("squeue-24.11.json")))
    doc["jobs"][0]["segment_size"] = 4
    doc["jobs"][1]["segment_size"] = {"set": False, "infinite": False, "number": 0}
    jobs = parse.jobs_from_json(doc)
    assert [j.request.segment for j in jobs[:2]] == [4, None]


def test_plan_comment_stops_at_user_comment() -> None:
    assert parse_plan_comment("gpupool:pair_hops_sum=8,leaf_switches=1;a,b=c") == {
        "pair_hops_sum": "8", "leaf_switches": "1"}
    assert parse_plan_comment("not ours") == {}


def test_key_values_keeps_spaces_in_values() -> None:
    pairs = dict(parse.key_values("JobId=9 Reason=ReqNodeNotAvail, UnavailableNodes:gpu004 Dependency=(null)"))
    assert pairs["Reason"] == "ReqNodeNotAvail, UnavailableNodes:gpu004"
    assert pairs["Dependency"] == "(null)"


def test_sbatch_outputs() -> None:
    assert parse.parse_sbatch_output("Submitted batch job 42\n") == ("42", "")
    assert parse.parse_sbatch_output("42;cluster\n") == ("42", "cluster")
    with pytest.raises(InputError):
        parse.parse_sbatch_output("sbatch: nothing here")
    now_text = (FIXTURES / "sbatch-test-only-22.05.txt").read_text()
    later_text = (FIXTURES / "sbatch-test-only-later-22.05.txt").read_text()
    from datetime import datetime

    now = datetime.fromisoformat("2026-11-22T02:05:03").timestamp()
    soon = parse.parse_test_only(now_text, now=now)
    assert soon.nodes == ("gpu004",) and soon.starts_now and soon.partition == "batch"
    later = parse.parse_test_only(later_text, now=now)
    assert later.nodes == ("gpu001", "gpu002", "gpu003") and not later.starts_now


def test_versions() -> None:
    assert parse.parse_version("slurm-wlm 22.05.8\n") == (22, 5, 8)
    assert parse.parse_version("slurm 24.05.3") == (24, 5, 3)
    with pytest.raises(InputError):
        parse.parse_version("no version")


def test_bad_documents() -> None:
    with pytest.raises(InputError, match="no 'nodes'"):
        parse.nodes_from_json({"errors": [{"description": "Unable to contact slurm controller"}]})
    with pytest.raises(InputError, match="hostlist"):
        parse.expand_hostlist("gpu[001-")


NODE_LINE = ("NodeName=gpu007 Arch=x86_64 CoresPerSocket=1  CPUAlloc=4 CPUEfctv=14 CPUTot=16 CPULoad=0.10 "
             "AvailableFeatures=h100,ib ActiveFeatures=h100 Gres=gpu:h100:8(S:0-1) GresDrain=N/A "
             "GresUsed=gpu:h100:2(IDX:0-1) NodeAddr=gpu007 NodeHostName=gpu007 Version=24.11.5 "
             "OS=Linux 6.1.0 #1 SMP PREEMPT_DYNAMIC Debian 6.1.0  RealMemory=64000 AllocMem=8000 FreeMem=1 "
             "Sockets=16 Boards=1 State=MIXED+DRAIN ThreadsPerCore=1 TmpDisk=0 Weight=1 Owner=N/A MCS_label=N/A "
             "Partitions=gpu,debug  BootTime=None SlurmdStartTime=None LastBusyTime=None ResumeAfterTime=None "
             "CfgTRES=cpu=16 AllocTRES= CurrentWatts=0 AveWatts=0 ")


def test_node_text_fields_and_free_text_tail() -> None:
    # Values by hand from NODE_LINE: CPUEfctv wins over CPUTot, ActiveFeatures over AvailableFeatures.
    reason = "Reason=xid=79 on gpu 3 State=IDLE [root@2026-12-01T10:00:00]"
    node = parse.node_from_scontrol(NODE_LINE + reason + " Comment=Gres=gpu:1 GresUsed=gpu:8 Extra=x=1")
    assert (node.name, node.flags, node.gpus_total, node.gpus_used, node.gpu_types) == (
        "gpu007", {"MIXED", "DRAIN"}, 8, 2, ("h100",))
    assert (node.cpus_total, node.cpus_alloc, node.memory_mb, node.memory_alloc_mb) == (14, 4, 64000, 8000)
    assert (node.partitions, node.features) == (("gpu", "debug"), ("h100",))
    # The reason is read whole (text that looks like fields included), without Slurm's [user@time].
    assert node.reason == "xid=79 on gpu 3 State=IDLE"
    # A field Slurm did not print is not taken from the free text after it (a comment here).
    without_used = NODE_LINE.replace("GresUsed=gpu:h100:2(IDX:0-1) ", "")
    node = parse.node_from_scontrol(without_used + "Comment=GresUsed=gpu:8 State=IDLE Partitions=other")
    assert (node.gpus_used, node.flags, node.partitions, node.reason) == (0, {"MIXED", "DRAIN"}, ("gpu", "debug"), "")
    # No State at all reads as UNKNOWN (unusable), and a node without partitions has none.
    bare = parse.node_from_scontrol("NodeName=gpu9 CPUAlloc=0 CPUTot=8 Gres=gpu:4")
    assert (bare.flags, bare.partitions, bare.cpus_total, bare.gpus_total, bare.usable) == (
        {"UNKNOWN"}, (), 8, 4, False)


@pytest.mark.parametrize(("value", "expected"), [
    ("12", 12), (" 12 ", 12), ("-1", None), ("\u0663", None), ("1e3", None), ("", None), ("1" * 19, None),
    (3, 3), (-3, None), (True, None), (2.0, 2), (2.5, None), ({"set": True, "number": "7"}, 7),
    ({"number": {"number": 4}}, None), ({"set": True, "infinite": False, "number": -2}, None),
])
def test_number_every_spelling(value: object, expected: int | None) -> None:
    assert parse.number(value) == expected
