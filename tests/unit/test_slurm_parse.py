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
    assert parse._state_flags(state, flags) == frozenset(expected)  # uncached: the reading itself


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


# -- issue 29: whole records, every field read by hand from the 24.11 captures ------------------------

def _local(text: str) -> int:
    """scontrol prints local time without a zone: the epoch second of that wall-clock time here."""
    from datetime import datetime

    return int(datetime.strptime(text, "%Y-%m-%dT%H:%M:%S").timestamp())


def _expected_nodes_24_11() -> dict[str, object]:
    from gpupool.slurm.models import NodeState

    # scontrol-show-node-24.11.txt: Gres=gpu:8 (untyped), CPUTot=CPUEfctv=16, RealMemory=64000,
    # Partitions=gpu, ActiveFeatures=(null); gpu004 is IDLE+DRAIN, "bad hca [root@...]".
    used = {"gpu001": (3, 2, 1000), "gpu002": (2, 1, 2000), "gpu003": (2, 1, 2000)}
    nodes: dict[str, object] = {}
    for i in range(1, 9):
        name = f"gpu{i:03d}"
        gpus, cpus, mem = used.get(name, (0, 0, 0))
        flags = {"MIXED"} if name in used else {"IDLE", "DRAIN"} if name == "gpu004" else {"IDLE"}
        nodes[name] = NodeState(name=name, flags=frozenset(flags), gpus_total=8, gpus_used=gpus, gpu_types=(),
                                cpus_total=16, cpus_alloc=cpus, memory_mb=64000, memory_alloc_mb=mem,
                                partitions=("gpu",), features=(), reason="bad hca" if name == "gpu004" else "")
    return nodes


@pytest.mark.parametrize("source", ["text", "json"])
def test_node_records_24_11_field_by_field(source: str) -> None:
    if source == "text":
        found = parse.nodes_from_scontrol((FIXTURES / "scontrol-show-node-24.11.txt").read_text())
    else:
        found = parse.nodes_from_json(load("scontrol-show-nodes-24.11.json"))
    assert {n.name: n for n in found} == _expected_nodes_24_11()


def _expected_jobs_24_11() -> dict[str, object]:
    from gpupool.slurm.models import JobInfo, JobRequest

    # scontrol-show-job-24.11.txt, read by hand: jobs 1 and 2 run, 5 waits for all 8 nodes.
    return {
        "1": JobInfo(job_id="1", name="job.sh", user="root", account="root", partition="gpu", state="RUNNING",
                     reason="None", nodes=("gpu001",), allocation={"gpu001": 3},
                     request=JobRequest(nodes=1, gpus_per_node=3, required_nodes="gpu001", partition="gpu"),
                     start_time=_local("2026-11-29T23:52:40"), submit_time=_local("2026-11-29T23:52:39"),
                     qos="normal"),
        "2": JobInfo(job_id="2", name="job.sh", user="root", account="root", partition="gpu", state="RUNNING",
                     reason="None", nodes=("gpu002", "gpu003"), allocation={"gpu002": 2, "gpu003": 2},
                     request=JobRequest(nodes=2, gpus_per_node=2, required_nodes="gpu[002-003]", partition="gpu"),
                     comment="gpupool:pair_hops_sum=4", start_time=_local("2026-11-29T23:52:40"),
                     submit_time=_local("2026-11-29T23:52:39"), qos="normal"),
        "5": JobInfo(job_id="5", name="job.sh", user="root", account="root", partition="gpu", state="PENDING",
                     reason="Nodes_required_for_job_are_DOWN,_DRAINED_or_reserved_for_jobs_in_higher_priority_"
                            "partitions",
                     request=JobRequest(nodes=8, gpus_per_node=8, partition="gpu", switches="1@00:05:00"),
                     submit_time=_local("2026-11-29T23:52:42"), qos="normal"),
    }


def test_job_records_24_11_text_field_by_field() -> None:
    found = parse.jobs_from_scontrol((FIXTURES / "scontrol-show-job-24.11.txt").read_text())
    assert {j.job_id: j for j in found} == _expected_jobs_24_11()


def test_job_records_24_11_json_field_by_field() -> None:
    import dataclasses

    expected = _expected_jobs_24_11()
    # squeue-24.11.json was captured a moment apart: its pending job 5 says "state_reason": "Resources".
    expected["5"] = dataclasses.replace(expected["5"], reason="Resources")  # type: ignore[type-var]
    assert {j.job_id: j for j in parse.jobs_from_json(load("squeue-24.11.json"))} == expected


@pytest.mark.parametrize(("kv", "expected"), [
    ({"JobId": "9", "ArrayJobId": "7", "ArrayTaskId": "2"}, "7_2"),  # a started array task: squeue's 7_2
    ({"JobId": "7", "ArrayJobId": "7", "ArrayTaskId": "1-3"}, "7"),  # the pending remainder keeps 7
    ({"JobId": "9", "ArrayJobId": "7"}, "9"),
    ({"JobId": "9", "ArrayTaskId": "2"}, "9"),
    ({"JobId": "9", "ArrayJobId": "\u0667", "ArrayTaskId": "2"}, "9"),  # Arabic-Indic 7 is no job id
    ({}, ""),
])
def test_scontrol_job_id(kv: dict[str, str], expected: str) -> None:
    assert parse.scontrol_job_id(kv) == expected


def test_scontrol_job_records_find_the_record_by_the_id_asked() -> None:
    lines = ["JobId=9 ArrayJobId=7 ArrayTaskId=2 JobState=RUNNING NodeList=gpu001 TresPerNode=gres/gpu:1",
             "JobId=7 ArrayJobId=7 ArrayTaskId=3-4 JobState=PENDING NodeList=",
             "NodeName=gpu001 State=IDLE",
             "JobId=10 JobState=PENDING"]
    text = "\n".join(lines)
    assert [j.job_id for j in parse.scontrol_job_records(text, "7_2")] == ["7_2"]
    assert [j.job_id for j in parse.scontrol_job_records(text, "9")] == ["7_2"]  # its own JobId= too
    assert [j.job_id for j in parse.scontrol_job_records(text, " 7 ")] == ["7"]
    assert [j.job_id for j in parse.scontrol_job_records(text, "10")] == ["10"]
    assert parse.scontrol_job_records(text, "8") == []


@pytest.mark.parametrize(("text", "expected"), [
    ("Unknown", None), ("None", None), ("N/A", None), ("", None), (None, None), ("2026-13-40T99:00:00", None),
])
def test_scontrol_time_unknowns(text: str | None, expected: None) -> None:
    assert parse._scontrol_time(text) is expected


@pytest.mark.parametrize(("reason", "expected"), [
    ("bad hca [root@2026-11-29T23:52:42]", "bad hca"), ("bad hca", "bad hca"), ("", ""),
    ("[a] in the middle [slurm@2026-01-01T00:00:00]  ", "[a] in the middle"),
])
def test_node_reason_loses_only_the_trailing_user_and_time(reason: str, expected: str) -> None:
    assert parse._strip_reason(reason) == expected


def test_json_errors_read_every_spelling() -> None:
    doc = {"errors": [{"description": "Unable to contact slurm controller", "error": "x"}, {"error": "only error"},
                      {"error_number": 1}, "a plain string"]}
    assert parse.json_errors(doc) == ["Unable to contact slurm controller", "only error", "{'error_number': 1}",
                                      "a plain string"]
    assert parse.json_errors({}) == [] and parse.json_errors({"errors": None}) == []
    with pytest.raises(InputError, match="^Slurm job JSON has no 'jobs' list: only error$"):
        parse.jobs_from_json({"errors": [{"error": "only error"}]})
    with pytest.raises(InputError, match="^Slurm node JSON has no 'nodes' list$"):
        parse.nodes_from_json({})


@pytest.mark.parametrize(("text", "expected"), [
    ("Submitted batch job 12\n", ("12", "")), ("12\n", ("12", "")), ("12;cluster1\n", ("12", "cluster1")),
    ("sbatch: warning: x\n34\n", ("34", "")),
])
def test_parse_sbatch_output(text: str, expected: tuple[str, str]) -> None:
    assert parse.parse_sbatch_output(text) == expected


@pytest.mark.parametrize(("state", "flags", "expected"), [
    # sinfo(1) STATE suffixes: * not responding, ~ powered off, # powering up, % powering down,
    # ! pending power down, $ maintenance, @ pending reboot, ^ reboot issued, - planned (backfill).
    ("IDLE*~#%!$@^-", None, {"IDLE", "NOT_RESPONDING", "POWERED_DOWN", "POWERING_UP", "POWERING_DOWN",
                             "POWER_DOWN", "MAINT", "REBOOT_REQUESTED", "REBOOT_ISSUED", "PLANNED"}),
    ("down* + drain", None, {"DOWN", "NOT_RESPONDING", "DRAIN"}),
    (" not responding ", ("planned", "*"), {"NOT_RESPONDING", "PLANNED"}),
    ("*", None, {"NOT_RESPONDING"}),
    ("", None, set()), (None, None, set()), ([], "", set()),
])
def test_state_flags_every_suffix_and_spelling(state: object, flags: object, expected: set[str]) -> None:
    assert parse._state_flags(state, flags) == frozenset(expected)
    assert parse.state_flags(state, flags) == frozenset(expected)


def test_preemption_from_the_22_05_captures_field_by_field() -> None:
    from gpupool.slurm.models import PreemptionConfig

    config = parse.config_from_scontrol((FIXTURES / "scontrol-show-config-22.05.txt").read_text())
    rows = [dict(zip(parse.QOS_PREEMPT_FIELDS, line.split("|"), strict=False))
            for line in (FIXTURES / "sacctmgr-show-qos-preempt-22.05.txt").read_text().splitlines() if line.strip()]
    # By hand: PreemptType=preempt/partition_prio, PreemptExemptTime=00:00:00; QOS normal (no Preempt,
    # cluster, no exempt time) and scavenger (requeue, exempt 00:05:00 = 300 s).
    assert parse.preemption_from(config, rows) == PreemptionConfig(
        preempt_type="preempt/partition_prio", exempt_time_s=0, qos_exempt_s={"scavenger": 300},
        qos_preempts={"normal": (), "scavenger": ()}, qos_mode={"normal": "CLUSTER", "scavenger": "REQUEUE"},
        qos_known=True)
    rows = [{"Name": " urgent ", "Preempt": "scavenger,,low", "PreemptMode": " requeue ", "PreemptExemptTime": "1-0"},
            {"Name": "", "Preempt": "x"}]
    assert parse.preemption_from({"PreemptType": " preempt/qos ", "PreemptExemptTime": "10:00"}, rows) == \
        PreemptionConfig(preempt_type="preempt/qos", exempt_time_s=600, qos_exempt_s={"urgent": 86400},
                         qos_preempts={"urgent": ("scavenger", "low")}, qos_mode={"urgent": "REQUEUE"})
    assert parse.preemption_from({}, None) == PreemptionConfig(qos_known=False)


@pytest.mark.parametrize(("job", "expected"), [
    ({"job_id": 9, "array_job_id": 7, "array_task_id": 2}, "7_2"),  # squeue names a started task 7_2
    ({"job_id": 7, "array_job_id": 7, "array_task_id": 0}, "7_0"),  # task 0 is a task
    ({"job_id": 7, "array_job_id": {"set": True, "infinite": False, "number": 7},
      "array_task_id": {"set": False, "infinite": False, "number": 0}}, "7"),  # the pending remainder
    ({"job_id": 12, "array_job_id": 0, "array_task_id": 3}, "12"),  # not an array
    ({"job_id": "12"}, "12"), ({}, "0"),
])
def test_json_job_id(job: dict[str, object], expected: str) -> None:
    assert parse._job_id(job) == expected


@pytest.mark.parametrize(("hosts", "detail", "per_node", "alloc", "expected"), [
    (["a", "b"], ["gpu:h100:3(IDX:0-2)", "gpu:1(IDX:0)"], "", "", {"a": 3, "b": 1}),  # per node, uneven
    (["a", "b"], ["gpu:0", "gpu:0"], "gres/gpu:2", "", {"a": 2, "b": 2}),  # released: the request
    (["a", "b"], ["gpu:4"], "gres/gpu:2", "", {"a": 2, "b": 2}),  # detail of another length: ignored
    (["a", "b"], [], "", "cpu=4,gres/gpu=6", {"a": 3, "b": 3}),  # the job's total, evenly
    (["a", "b"], [], "", "cpu=4,gres/gpu=5", {"a": 0, "b": 0}),  # uneven total: unknown per node
    (["a"], [], "", "", {"a": 0}), ([], [], "", "gres/gpu=4", {}),
])
def test_allocation_sources(hosts: list[str], detail: list[str], per_node: str, alloc: str,
                            expected: dict[str, int]) -> None:
    assert parse._allocation(hosts, detail, per_node, alloc) == expected


@pytest.mark.parametrize(("job", "switches", "segment"), [
    ({"required_switches": 1, "maximum_switch_wait_time": 300}, "1@00:05:00", None),
    ({"required_switches": 2, "wait4switch": 3725}, "2@01:02:05", None),  # 22.05's name for the wait
    ({"required_switches": 3}, "3@00:00:00", None),
    ({"required_switches": 0, "maximum_switch_wait_time": 300}, "", None),
    ({"segment_size": 18}, "", 18), ({"segment_size": 1}, "", 1), ({"segment_size": 0}, "", None),
    ({"segment_size": 0xFFFE}, "", None), ({"segment_size": 0xFFFD}, "", 0xFFFD),
])
def test_switches_and_segment_from_json(job: dict[str, int], switches: str, segment: int | None) -> None:
    assert parse._switches_json(job) == switches and parse._segment_json(job) == segment


def test_key_values_keep_spaces_repeats_and_order() -> None:
    line = "  JobId=5 Reason=ReqNodeNotAvail, UnavailableNodes:gpu004 Comment=two words Nodes=a GRES=gpu:1 Nodes=b "
    assert parse.key_values(line) == [("JobId", "5"), ("Reason", "ReqNodeNotAvail, UnavailableNodes:gpu004"),
                                      ("Comment", "two words"), ("Nodes", "a"), ("GRES", "gpu:1"), ("Nodes", "b")]
    assert parse.key_values("lead words A=1") == [("A", "1")]  # text before the first Key= belongs to none
    assert parse.key_values("") == []


@pytest.mark.parametrize(("value", "expected"), [
    ("(null)", ""), ("N/A", ""), (" None ", ""), (None, ""), ("", ""), (" gpu[1-2] ", "gpu[1-2]"), (0, ""),
])
def test_null_to_empty(value: object, expected: str) -> None:
    assert parse._null_to_empty(value) == expected


def test_words_and_numbers_by_hand() -> None:
    assert parse.words("gpu, debug,(null),,N/A") == ["gpu", "debug"]
    assert parse.words(["a", " b ", "none", 3]) == ["a", "b", "3"]
    assert parse.words(None) == [] and parse.words(7) == ["7"]
    assert parse.number(" 12 ") == 12 and parse.number("1" * 19) is None and parse.number("-1", 4) == 4
    assert parse.number(2.0) == 2 and parse.number(2.5, 9) == 9 and parse.number(True, 3) == 3
    assert parse.number({"number": 6}) == 6  # "set" defaults to true
    assert parse.number({"set": True, "number": None}, 1) == 1 and parse.number(-3) is None


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


def test_records_with_only_an_id_read_as_empty() -> None:
    from gpupool.slurm.models import JobInfo, JobRequest, NodeState

    # By hand: nothing but the id given, every other field is its "not said" value.
    assert parse.job_from_scontrol("JobId=3") == JobInfo(job_id="3", request=JobRequest())
    assert parse.job_from_json({"job_id": 3}) == JobInfo(job_id="3", request=JobRequest())
    assert parse.node_from_scontrol("NodeName=n1") == NodeState(name="n1", flags=frozenset({"UNKNOWN"}))
    assert parse.node_from_json({"name": "n1"}) == NodeState(name="n1", flags=frozenset())
    assert parse.node_from_json({"hostname": "n2"}).name == "n2"
    # Lower-case state, a node range, Slurm's null spellings, a uid after the user name.
    line = ("JobId=4 JobName=a b UserId=bob(1000) Account=(null) QOS=N/A JobState=running Reason=None "
            "NumNodes=1-2 NodeList=gpu001 TresPerNode=gres/gpu:2 ExcNodeList=(null) Comment=(null)")
    assert parse.job_from_scontrol(line) == JobInfo(
        job_id="4", name="a b", user="bob", state="RUNNING", reason="None", nodes=("gpu001",),
        allocation={"gpu001": 2}, request=JobRequest(nodes=1, gpus_per_node=2))


# -- issue 29 (mutation survivors): the memo caches, the text node reader, sbatch --test-only ----------

@pytest.fixture(autouse=True)
def _forget_memos() -> None:
    # state_flags and node_from_scontrol remember what they read; a value remembered from an earlier
    # test (or process) would stand in for the reading each test here means to check.
    parse._STATE_FLAGS.clear()
    parse._NODE_FIELDS.clear()


def _expected_nodes_22_05() -> dict[str, object]:
    from gpupool.slurm.models import NodeState

    # scontrol-show-node-22.05.txt by hand: Gres=gpu:h100:8, CPUEfctv=CPUTot=16, RealMemory=64000,
    # ActiveFeatures=h100,ib on every node. (GresUsed count, CPUAlloc, AllocMem, Partitions, State):
    rows = {"gpu001": (3, 2, 1000, ("batch", "small"), {"MIXED"}),
            "gpu002": (2, 1, 64000, ("batch", "small"), {"MIXED"}),
            "gpu003": (2, 1, 64000, ("batch",), {"MIXED"}),
            "gpu004": (0, 0, 0, ("batch",), {"IDLE", "DRAIN"})}
    return {name: NodeState(name=name, flags=frozenset(flags), gpus_total=8, gpus_used=used, gpu_types=("h100",),
                            cpus_total=16, cpus_alloc=cpus, memory_mb=64000, memory_alloc_mb=mem,
                            partitions=partitions, features=("h100", "ib"),
                            reason="bad hca" if name == "gpu004" else "")
            for name, (used, cpus, mem, partitions, flags) in rows.items()}


@pytest.mark.parametrize(("capture", "expected"), [
    ("scontrol-show-node-22.05.txt", _expected_nodes_22_05),
    ("scontrol-show-node-24.11.txt", _expected_nodes_24_11),
    # 26.05 was captured from the same job mix as 24.11 (README): the same values, read by hand again.
    ("scontrol-show-node-26.05.txt", _expected_nodes_24_11),
])
def test_node_text_captures_field_by_field(capture: str, expected: object) -> None:
    found = parse.nodes_from_scontrol((FIXTURES / capture).read_text())
    assert [n.name for n in found] == sorted(expected())  # type: ignore[operator]
    assert {n.name: n for n in found} == expected()  # type: ignore[operator]


def test_node_fields_from_raw_values_by_hand() -> None:
    # The order of _NODE_KEYS: State, Gres, GresUsed, CPUEfctv, CPUTot, CPUAlloc, RealMemory, AllocMem,
    # Partitions, ActiveFeatures, AvailableFeatures.
    raw = ("MIXED+DRAIN", "gpu:h100:4(S:0),gpu:a100:2", "gpu:h100:1(IDX:0)", "12", "16", "3", "512000", "1024",
           "gpu,debug", "ib", "ib,nvme")
    assert parse._node_fields(raw) == {
        "flags": frozenset({"MIXED", "DRAIN"}), "gpus_total": 6, "gpus_used": 1, "gpu_types": ("h100", "a100"),
        "cpus_total": 12, "cpus_alloc": 3, "memory_mb": 512000, "memory_alloc_mb": 1024,
        "partitions": ("gpu", "debug"), "features": ("ib",)}
    # Without CPUEfctv (22.05 before it existed) CPUTot counts; without ActiveFeatures the available ones.
    raw = ("IDLE", "gpu:2", "gpu:0", None, "16", "0", "1000", "0", "gpu", None, "ib,nvme")
    fields = parse._node_fields(raw)
    assert (fields["cpus_total"], fields["features"], fields["gpu_types"]) == (16, ("ib", "nvme"), ())
    # Nothing printed: UNKNOWN state, every count 0, nothing listed.
    assert parse._node_fields((None,) * 11) == {
        "flags": frozenset({"UNKNOWN"}), "gpus_total": 0, "gpus_used": 0, "gpu_types": (), "cpus_total": 0,
        "cpus_alloc": 0, "memory_mb": 0, "memory_alloc_mb": 0, "partitions": (), "features": ()}
    # Values Slurm prints for "none" or that are no count read as 0 / nothing, never as a wrong number.
    raw = ("", "(null)", "N/A", "", "x", "-1", "N/A", "", "(null)", "(null)", "")
    assert parse._node_fields(raw) == parse._node_fields((None,) * 11)


def test_node_text_reader_finds_each_field_at_its_own_key() -> None:
    # Keys that end like another key (CPUTot/CPUEfctv, Gres/GresUsed/GresDrain, AllocMem/RealMemory) and
    # a field at the very end of the line, without a space after it.
    line = ("NodeName=n1 GresDrain=gpu:7 Gres=gpu:h100:4 GresUsed=gpu:h100:3 CPUTot=32 CPUEfctv=30 CPUAlloc=5 "
            "RealMemory=2000 AllocMem=100 AvailableFeatures=a,b ActiveFeatures=a State=ALLOCATED Partitions=p,q")
    node = parse.node_from_scontrol(line)
    assert (node.gpus_total, node.gpus_used, node.cpus_total, node.cpus_alloc, node.memory_mb,
            node.memory_alloc_mb, node.features, node.flags, node.partitions) == (
        4, 3, 30, 5, 2000, 100, ("a",), {"ALLOCATED"}, ("p", "q"))
    # Each reading of the same values gives an equal record (the remembered fields are the same).
    assert parse.node_from_scontrol(line + "  ") == node
    # The name ends at the next key; a name Slurm never prints (empty, control characters) is refused.
    assert parse.node_from_scontrol("NodeName=gpu1  Arch=x86_64").name == "gpu1"
    for bad in ("NodeName= State=IDLE", "NodeName=", "NodeName=a\x01b State=IDLE", "State=IDLE NodeName=x"):
        with pytest.raises(InputError, match="node name"):
            parse.node_from_scontrol(bad)


@pytest.mark.parametrize(("tail", "reason"), [
    # Reason runs to the next optional trailer Slurm prints after it (slurm_sprint_node_table).
    (" Reason=bad hca [root@2026-11-22T02:05:12]", "bad hca"),
    (" Reason=xid 79 Comment=c", "xid 79"), (" Reason=r Extra=e", "r"), (" Reason=r InstanceId=i", "r"),
    (" Reason=r InstanceType=t", "r"), (" Reason=r ReservationName=maint", "r"),
    (" Reason=a Comment=Reason=b", "a"),
    # Without a Reason there is none, even when a comment or extra text spells one.
    (" Comment=x Reason=y", ""), (" Extra=Reason=y", ""), ("", ""),
])
def test_node_reason_ends_at_the_next_trailer(tail: str, reason: str) -> None:
    node = parse.node_from_scontrol("NodeName=n1 State=DOWN Partitions=p" + tail)
    assert (node.reason, node.flags, node.partitions) == (reason, {"DOWN"}, ("p",))


def test_fields_after_the_first_trailer_are_not_read() -> None:
    # A trailer comes after every field: whichever appears first ends the fixed part.
    for trailer in ("Reason", "Comment", "Extra", "InstanceId", "InstanceType", "ReservationName"):
        node = parse.node_from_scontrol(f"NodeName=n1 State=IDLE {trailer}=x Gres=gpu:4 CPUTot=8 Partitions=p")
        assert (node.gpus_total, node.cpus_total, node.partitions, node.flags) == (0, 0, (), {"IDLE"}), trailer


# (capture, job id, start, processors, nodes, partition, preempts), each read by hand from the file.
TEST_ONLY_CAPTURES = [
    ("sbatch-test-only-22.05.txt", "4", "2026-11-22T02:05:04", 1, ("gpu004",), "batch", ()),
    ("sbatch-test-only-24.11.txt", "3", "2026-11-29T23:52:41", 1, ("gpu004",), "gpu", ()),
    ("sbatch-test-only-26.05.txt", "21", "2026-11-29T23:52:51", 1, ("gpu004",), "gpu", ()),
    ("sbatch-test-only-later-22.05.txt", "6", "2027-11-22T02:05:02", 3, ("gpu001", "gpu002", "gpu003"), "batch", ()),
    ("sbatch-test-only-later-24.11.txt", "4", "2027-11-29T23:52:40", 6,
     ("gpu001", "gpu002", "gpu003", "gpu004", "gpu005", "gpu006"), "gpu", ()),
    ("sbatch-test-only-later-26.05.txt", "22", "2027-11-29T23:52:50", 6,
     ("gpu001", "gpu002", "gpu003", "gpu004", "gpu005", "gpu006"), "gpu", ()),
    ("sbatch-test-only-preempts-22.05.txt", "7", "2026-11-30T02:41:02", 6,
     ("gpu004", "gpu005", "gpu006", "gpu007", "gpu008", "gpu009"), "vision", ("2", "1")),
]


@pytest.mark.parametrize(("capture", "job", "start", "cpus", "nodes", "partition", "preempts"), TEST_ONLY_CAPTURES)
def test_test_only_captures_field_by_field(capture: str, job: str, start: str, cpus: int, nodes: tuple[str, ...],
                                          partition: str, preempts: tuple[str, ...]) -> None:
    from gpupool.slurm.models import TestOnlyResult

    text = (FIXTURES / capture).read_text()
    expected = TestOnlyResult(job_id=job, start_time=start, processors=cpus, nodes=nodes, partition=partition,
                              starts_now=False, preempts=preempts)
    assert parse.parse_test_only(text) == expected  # no clock given: never "now"
    at = _local(start)
    # Slack 60 s by default: a start up to a minute after now still counts as now, not a second more.
    assert parse.parse_test_only(text, now=at - 60).starts_now
    assert not parse.parse_test_only(text, now=at - 61).starts_now
    assert parse.parse_test_only(text, now=at + 3600).starts_now
    assert parse.parse_test_only(text, now=at, slack_s=0).starts_now
    assert not parse.parse_test_only(text, now=at - 1, slack_s=0).starts_now
    assert parse.parse_test_only(text, now=at - 300, slack_s=300).starts_now


def test_test_only_reads_what_is_there_and_refuses_no_node_list() -> None:
    from gpupool.slurm.models import TestOnlyResult

    # One node ("on node"), no job id, start, processors or partition: their "not said" values.
    assert parse.parse_test_only("sbatch: would run on node gpu9\n", now=0.0) == TestOnlyResult(
        job_id="", start_time="", processors=0, nodes=("gpu9",), partition="", starts_now=False)
    # The line with the node list is the one read; other lines' words do not count (Preempts aside).
    text = ("sbatch: Job 99 queued in partition other using 8 processors\n"
            "sbatch: Job 5 to start at soon using 1 processor on nodes gpu[1-2] in partition p\n"
            "sbatch:   Preempts: 3\nsbatch:   Preempts: 4,,5\n")
    assert parse.parse_test_only(text, now=1e12) == TestOnlyResult(
        job_id="5", start_time="soon", processors=1, nodes=("gpu1", "gpu2"), partition="p", starts_now=False,
        preempts=("3", "4", "5"))
    for bad in ("", "sbatch: error: Batch job submission failed: Requested node configuration is not available",
                "Job 5 to start at 2026-01-01T00:00:00 using 1 processors"):
        with pytest.raises(InputError, match="no node list"):
            parse.parse_test_only(bad)


def test_job_text_per_node_gres_detail_by_hand() -> None:
    from gpupool.slurm.models import JobInfo, JobRequest

    # -d detail: 3 GPUs on gpu001 and 2 on gpu002 (--gpus=5, uneven); the job's total alone could not say so.
    line = ("JobId=12 JobName=train UserId=alice(1001) Account=vision QOS=normal JobState=RUNNING Reason=None "
            "NumNodes=2 NodeList=gpu[001-002] ReqNodeList=(null) ExcNodeList=gpu009 Partition=gpu "
            "TresPerJob=gres/gpu:5 AllocTRES=cpu=8,gres/gpu=5 "
            "Nodes=gpu001 CPU_IDs=0-3 Mem=100 GRES=gpu:h100:3(IDX:0-2) Nodes=gpu002 CPU_IDs=0 Mem=100 "
            "GRES=gpu:h100:2(IDX:0-1)")
    assert parse.job_from_scontrol(line) == JobInfo(
        job_id="12", name="train", user="alice", account="vision", partition="gpu", state="RUNNING", reason="None",
        nodes=("gpu001", "gpu002"), allocation={"gpu001": 3, "gpu002": 2},
        request=JobRequest(nodes=2, gpus_total=5, excluded_nodes="gpu009", partition="gpu"), qos="normal")
    # One detail entry for a range of nodes; a node of the job without an entry holds 0.
    ranged = parse.job_from_scontrol("JobId=13 JobState=RUNNING NodeList=gpu[001-003] "
                                     "Nodes=gpu[001-002] CPU_IDs=0-1 Mem=10 GRES=gpu:2(IDX:0-1)")
    assert ranged.allocation == {"gpu001": 2, "gpu002": 2, "gpu003": 0}
    # No detail: the job's GPU total split evenly (6 over 2 nodes); a job that holds no nodes has none.
    even = parse.job_from_scontrol("JobId=14 JobState=RUNNING NodeList=gpu[001-002] AllocTRES=cpu=4,gres/gpu=6")
    assert even.allocation == {"gpu001": 3, "gpu002": 3}
    done = parse.job_from_scontrol("JobId=15 JobState=COMPLETED NodeList=gpu001 TresPerNode=gres/gpu:2")
    assert (done.nodes, done.allocation, done.request.gpus_per_node) == ((), {}, 2)


def test_job_json_fallback_fields_by_hand() -> None:
    from gpupool.slurm.models import JobInfo, JobRequest

    # 23.x spellings: nodes only under job_resources, nodes_count, a user id without a name, GPUs only in
    # tres_alloc_str (6 over 2 nodes: 3 each).
    job = {"job_id": 11, "job_state": ["RUNNING"], "user_id": 1001, "excluded_nodes": "gpu009",
           "nodes_count": {"set": True, "infinite": False, "number": 2}, "tres_alloc_str": "cpu=8,gres/gpu=6",
           "tres_per_job": "gres/gpu:6", "job_resources": {"nodes": {"list": "gpu[001-002]"}}}
    assert parse.job_from_json(job) == JobInfo(
        job_id="11", user="1001", state="RUNNING", nodes=("gpu001", "gpu002"), allocation={"gpu001": 3, "gpu002": 3},
        request=JobRequest(nodes=2, gpus_total=6, excluded_nodes="gpu009"))
    # The node list as a plain string (22.05's job_resources), and the top-level "nodes" first.
    job = {"job_id": 12, "job_state": "RUNNING", "user_name": "bob", "user_id": 1001, "node_count": 1,
           "nodes_count": 5, "tres_per_node": "gres/gpu:2", "job_resources": {"nodes": "gpu003"}}
    found = parse.job_from_json(job)
    assert (found.user, found.nodes, found.allocation, found.request.nodes) == ("bob", ("gpu003",), {"gpu003": 2}, 1)
    assert parse.job_from_json(dict(job, nodes="gpu004")).nodes == ("gpu004",)
    for resources in ({"nodes": {}}, {"nodes": None}, {}):
        assert parse.job_from_json(dict(job, job_resources=resources)).nodes == ()
    # Older squeue joins flags with "+": Slurm's name for RUNNING+CONFIGURING is CONFIGURING.
    assert parse.job_from_json({"job_id": 1, "job_state": "running+configuring"}).state == "CONFIGURING"
    assert parse.job_from_json({"job_id": 1, "job_state": "COMPLETED", "nodes": "gpu001"}).nodes == ()


def test_node_json_effective_cpus_and_features() -> None:
    node = parse.node_from_json({"name": "n1", "state": ["IDLE"], "cpus": 16, "effective_cpus": 14,
                                 "active_features": "a", "features": "a,b"})
    assert (node.cpus_total, node.features) == (14, ("a",))
    node = parse.node_from_json({"name": "n1", "cpus": 16, "effective_cpus": 0, "features": ["a", "b"]})
    assert (node.cpus_total, node.features) == (16, ("a", "b"))
    assert parse.node_from_json({"name": "n1", "state": 5}).flags == {"5"}


class _Failing(dict):  # a record whose every read fails with a long message
    def get(self, *_args: object) -> object:
        raise ValueError("v" * 100)


def test_json_document_errors_word_for_word() -> None:
    with pytest.raises(InputError) as info:
        parse.nodes_from_json({"nodes": {}})
    assert info.value.message == "Slurm node JSON: 'nodes' is not a list"
    with pytest.raises(InputError) as info:
        parse.nodes_from_json({"errors": [{"description": "down"}]})
    assert info.value.message == "Slurm node JSON has no 'nodes' list: down"
    with pytest.raises(InputError) as info:
        parse.nodes_from_json({"nodes": [_Failing()]})
    assert info.value.message == f"Slurm node JSON: malformed node record (ValueError: {'v' * 80})"
    with pytest.raises(InputError) as info:
        parse.jobs_from_json({"jobs": "x"})
    assert info.value.message == "Slurm job JSON: 'jobs' is not a list"
    with pytest.raises(InputError) as info:
        parse.jobs_from_json({"errors": []})
    assert info.value.message == "Slurm job JSON has no 'jobs' list"
    with pytest.raises(InputError) as info:
        parse.jobs_from_json({"jobs": [{"job_id": 1}, _Failing()]})
    assert info.value.message == f"Slurm job JSON: job #1: malformed record (ValueError: {'v' * 80})"


def test_unreadable_output_messages_show_200_characters() -> None:
    with pytest.raises(InputError) as info:
        parse.parse_sbatch_output(" " + "x" * 300)
    assert info.value.message == f"cannot read a job id from sbatch output: {'x' * 200!r}"
    with pytest.raises(InputError) as info:
        parse.parse_test_only("y" * 300)
    assert info.value.message == f"cannot read sbatch --test-only output (no node list): {'y' * 200!r}"
    with pytest.raises(InputError) as info:
        parse.node_from_scontrol("NodeName=a\x01" + "b" * 100)
    assert info.value.message == ("scontrol show nodes: a node name "
                                  f"{('a' + chr(1) + 'b' * 100)[:64]!r} Slurm never prints (corrupt output?)")


def test_node_text_first_key_and_first_trailer() -> None:
    # Each field at its first key (Slurm prints each once); the reason up to the first trailer after it.
    node = parse.node_from_scontrol("NodeName=n1 State=IDLE CPUTot=8 State=DOWN CPUTot=4 Reason=a Extra=b Reason=c")
    assert (node.flags, node.cpus_total, node.reason) == ({"IDLE"}, 8, "a")
    assert parse.node_from_scontrol("NodeName=n1 State=IDLE Reason=a Comment=b Comment=c").reason == "a"
    with pytest.raises(InputError, match="node name"):
        parse.node_from_scontrol("  NodeName=n1 State=IDLE")  # a record starts with NodeName=


def test_state_flags_remembers_each_spelling_by_both_arguments() -> None:
    assert parse.state_flags("mixed", ["DRAIN"]) == {"MIXED", "DRAIN"}
    assert parse.state_flags("mixed", None) == {"MIXED"}
    assert parse.state_flags("mixed", ["DRAIN"]) == {"MIXED", "DRAIN"}
    # Spellings that are not plain strings or lists of strings are read each time, never mixed up.
    assert parse.state_flags(("IDLE", "DRAIN")) == {"IDLE", "DRAIN"}
    assert parse.state_flags(["IDLE", 5]) == {"IDLE", "5"}
    assert parse.state_flags([7, "DOWN"]) == {"7", "DOWN"}
    assert parse.state_flags("IDLE", ("DRAIN",)) == {"IDLE", "DRAIN"}
    assert parse.state_flags("IDLE", ("RESERVED",)) == {"IDLE", "RESERVED"}
    assert parse.state_flags(5) == {"5"}


def test_allocation_counts_are_integers() -> None:
    found = parse._allocation(["a", "b"], [], "", "gres/gpu=6")
    assert found == {"a": 3, "b": 3} and all(type(v) is int for v in found.values())


def test_config_lines_by_hand() -> None:
    # The first "=" splits; a key has no blank and is not empty; the first value of a key is kept.
    text = "=x\nA B = c\nword\nK = v=w\nK = other\nSchedulerParameters     = bf_window=60,bf_max_job_test=10\n"
    assert parse.config_from_scontrol(text) == {"K": "v=w", "SchedulerParameters": "bf_window=60,bf_max_job_test=10"}


def test_preemption_rows_without_name_or_mode() -> None:
    from gpupool.slurm.models import PreemptionConfig

    rows = [{"Preempt": "x"}, {"Name": "low"}]
    assert parse.preemption_from({}, rows) == PreemptionConfig(qos_preempts={"low": ()}, qos_mode={"low": ""},
                                                               qos_known=True)


def test_small_readers_at_their_edges() -> None:
    # 18 ASCII digits are a number (Slurm's 64-bit ids fit), 19 are not (test_words_and_numbers_by_hand).
    assert parse.number("9" * 18) == 999_999_999_999_999_999
    # A task id without an array id is no array task: the job's own id.
    assert parse._job_id({"job_id": 12, "array_task_id": 3}) == "12"
    # --switches wait of exactly one hour: 1@01:00:00.
    assert parse._switches_json({"required_switches": 1, "maximum_switch_wait_time": 3600}) == "1@01:00:00"
    with pytest.raises(InputError) as info:
        parse.parse_version(" no version here ")
    assert info.value.message == "cannot read a Slurm version from 'no version here'"


def test_number_zero_negative_and_other_mappings() -> None:
    from types import MappingProxyType

    # 0 is a count (an object's 0 too); a negative value is not one Slurm prints for a count.
    assert parse.number({"set": True, "number": 0}, 9) == 0 and parse.number({"number": "0"}, 9) == 0
    assert parse.number(0.0, 9) == 0 and parse.number(-2.0, 9) == 9 and parse.number(3.0, 9) == 3
    # Any mapping spells a 23.02+ number object, not only a dict.
    assert parse.number(MappingProxyType({"set": True, "number": 5})) == 5


@pytest.mark.parametrize(("state", "word", "started"), [
    ("RUNNING+CONFIGURING", "RUNNING", True), ("CONFIGURING", "CONFIGURING", True), ("RUNNING", "RUNNING", True),
    ("PENDING", "PENDING", False), ("COMPLETING+X", "COMPLETING", False),
])
def test_job_state_word_and_started(state: str, word: str, started: bool) -> None:
    assert parse.job_state_word(state) == word and parse.has_started(state) is started
