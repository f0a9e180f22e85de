"""pool status: GPU accounting per pool and fair-share per account, from real Slurm 22.05 output."""

from __future__ import annotations

import json

import pytest

from gpupool.cli.context import AppContext
from gpupool.cli.main import main
from gpupool.pools.fragment import Fragment
from gpupool.pools.slurm_state import parse_jobs, parse_nodes
from gpupool.pools.status import (
    PoolDefinition,
    account_statuses,
    definitions_from_fragment,
    parse_sshare_tree,
    pool_statuses,
)

SSHARE = """\
Account|User|RawShares|NormShares|RawUsage|NormUsage|EffectvUsage|FairShare|LevelFS|GrpTRESMins|TRESRunMins
root|||0.000000|611||1.000000||||cpu=0
 root|root|1|0.009804|0|0.000000|0.000000|1.000000|inf||cpu=0
 default||1|0.009804|299|0.489787|0.489787||0.020017||cpu=0
  default|root|1|1.000000|299|0.489787|1.000000|0.250000|1.000000||cpu=0
 llm||70|0.686275|15|0.026153|0.026153||26.241184||cpu=0
  llm|root|1|1.000000|15|0.026153|1.000000|0.750000|1.000000||cpu=0
 vision||30|0.294118|295|0.484061|0.484061||0.607605||cpu=0
  vision|root|1|1.000000|295|0.484061|1.000000|0.500000|1.000000||cpu=0
"""


def _node(name: str, used: int, state: str = "MIXED") -> str:
    return (f"NodeName={name} Arch=x86_64 CoresPerSocket=1  CPUAlloc=2 CPUEfctv=16 Gres=gpu:4 GresDrain=N/A "
            f"GresUsed=gpu:{used}(IDX:0-{max(used - 1, 0)}) NodeAddr=127.0.0.1 OS=Linux 6.1 #1 SMP "
            f"State={state} Partitions=gpu CfgTRES=cpu=16,gres/gpu=4 AllocTRES=gres/gpu={used}\n")


NODES = (_node("gpu001", 4) + _node("gpu002", 2) + _node("gpu003", 0, "IDLE") + _node("gpu004", 0, "IDLE+DRAIN")
         + _node("gpu005", 4, "ALLOCATED") + _node("gpu006", 0, "DOWN*+NOT_RESPONDING"))

JOBS = (
    # llm borrowing 6 GPUs of vision's nodes through the scavenger partition
    "JobId=11 JobName=wrap UserId=bob(1001) GroupId=bob(1001) Priority=100 Account=llm QOS=scavenger "
    "JobState=RUNNING Reason=None Partition=scavenger NodeList=gpu[001-002] NumNodes=2 "
    "TRES=cpu=2,mem=4000M,node=2,billing=2,gres/gpu=6 JOB_GRES=gpu:6   Nodes=gpu001 CPU_IDs=0 Mem=2000 "
    "GRES=gpu:4(IDX:0-3)   Nodes=gpu002 CPU_IDs=0 Mem=2000 GRES=gpu:2(IDX:0-1) MinCPUsNode=1 TresPerNode=gres:gpu:4\n"
    # llm's own job on its own pool
    "JobId=12 JobName=wrap UserId=bob(1001) Priority=100 Account=llm QOS=normal JobState=RUNNING "
    "Partition=llm NodeList=gpu005 NumNodes=1 TRES=cpu=1,node=1,gres/gpu=4 JOB_GRES=gpu:4   Nodes=gpu005 "
    "CPU_IDs=0 Mem=2000 GRES=gpu:4(IDX:0-3) MinCPUsNode=1\n"
    # vision's pending jobs, one of them eligible for two partitions
    "JobId=13 JobName=wrap UserId=alice(1000) Priority=900 Account=vision QOS=normal JobState=PENDING "
    "Reason=Resources Partition=vision NodeList= NumNodes=2-2 TRES=cpu=2,node=2,billing=2,gres/gpu=8 MinCPUsNode=1\n"
    "JobId=14 JobName=wrap UserId=alice(1000) Priority=800 Account=vision QOS=normal JobState=PENDING "
    "Reason=Priority Partition=vision,scavenger NodeList= NumNodes=1 TRES=cpu=1,node=1,gres/gpu=2 MinCPUsNode=1\n"
)


def test_jobs_parse_per_node_gpus_from_detail() -> None:
    jobs = {j.job_id: j for j in parse_jobs(JOBS)}
    assert jobs["11"].node_gpus == {"gpu001": 4, "gpu002": 2}
    assert jobs["11"].gpus == 6 and jobs["11"].user == "bob" and jobs["11"].qos == "scavenger"
    assert jobs["14"].partitions == ("vision", "scavenger") and jobs["14"].pending


def test_nodes_parse_states_and_gres() -> None:
    nodes = parse_nodes(NODES)
    assert nodes["gpu002"].gpus == 4 and nodes["gpu002"].gpus_used == 2
    assert nodes["gpu004"].down and nodes["gpu006"].down and not nodes["gpu003"].down


def test_pool_gpu_accounting() -> None:
    definitions = [PoolDefinition("vision", ["gpu001", "gpu002", "gpu003", "gpu004"], ["vision"], "owned"),
                   PoolDefinition("llm", ["gpu005", "gpu006"], ["llm"], "owned"),
                   PoolDefinition("scavenger", [f"gpu00{i}" for i in range(1, 7)], [], "scavenger")]
    result = {p.name: p for p in pool_statuses(definitions, parse_nodes(NODES), parse_jobs(JOBS))}
    vision = result["vision"]
    assert (vision.gpus_total, vision.gpus_allocated, vision.gpus_down, vision.gpus_idle) == (16, 6, 4, 6)
    assert vision.gpus_borrowed == 6  # llm's scavenger job on vision's nodes
    assert (vision.jobs_pending, vision.gpus_pending, vision.jobs_running) == (2, 10, 0)
    llm = result["llm"]
    assert (llm.gpus_total, llm.gpus_allocated, llm.gpus_down, llm.gpus_idle, llm.gpus_borrowed) == (8, 4, 4, 0, 0)
    assert llm.jobs_running == 1
    scavenger = result["scavenger"]
    assert scavenger.gpus_borrowed == 6 and scavenger.jobs_running == 1 and scavenger.jobs_pending == 1


def test_fair_share_per_account() -> None:
    rows = parse_sshare_tree(SSHARE)
    accounts = {a.name: a for a in account_statuses(rows, {"vision", "llm"})}
    assert set(accounts) == {"vision", "llm"}
    assert accounts["llm"].shares == 70 and accounts["vision"].shares == 30
    assert accounts["llm"].parent == "root"
    assert accounts["llm"].fairshare == pytest.approx(0.75)
    assert accounts["vision"].fairshare == pytest.approx(0.5)
    assert accounts["vision"].raw_usage == 295
    everything = account_statuses(rows, None)
    assert {a.name for a in everything} == {"default", "llm", "vision"}


def test_nested_accounts_get_their_parent() -> None:
    text = ("Account|User|RawShares|NormShares|RawUsage|NormUsage|EffectvUsage|FairShare|LevelFS\n"
            "root|||0.0|0||1.0||\n"
            " ai||10|0.5|0|0.0|0.0||inf\n"
            "  vision||3|0.3|0|0.0|0.0||inf\n"
            "   vision|alice|1|1.0|0|0.0|0.0|1.0|inf\n"
            "  llm||7|0.7|0|0.0|0.0||inf\n"
            " physics||10|0.5|0|0.0|0.0||inf\n")
    parents = {a.name: a.parent for a in account_statuses(parse_sshare_tree(text), None)}
    assert parents == {"ai": "root", "vision": "ai", "llm": "ai", "physics": "root"}


def test_scavenger_is_recognised_from_the_fragment() -> None:
    fragment = Fragment("f", "", {
        "vision": "PartitionName=vision Nodes=gpu[001-004] AllowAccounts=vision PriorityTier=10",
        "scavenger": "PartitionName=scavenger Nodes=gpu[001-008] AllowAccounts=ALL AllowQos=scavenger PreemptMode=REQUEUE",
        "open": "PartitionName=open Nodes=gpu[005-008] AllowAccounts=ALL"})
    roles = {d.name: (d.role, len(d.nodes), d.owners) for d in definitions_from_fragment(fragment, {})}
    assert roles == {"vision": ("owned", 4, ["vision"]), "scavenger": ("scavenger", 8, []), "open": ("shared", 4, [])}


class CannedSlurm:
    def __call__(self, argv: list[str]) -> str:
        if argv[0] == "squeue":  # a Slurm without squeue --json: status falls back to scontrol text
            from gpupool.slurm.invoke import SlurmCommandError

            raise SlurmCommandError("squeue: unrecognized option '--json'")
        if argv[:3] == ["scontrol", "show", "config"]:
            return "SLURM_CONF = /nonexistent/slurm.conf\n"
        if "node" in argv:
            return NODES
        if "partition" in argv:
            return ""
        if "job" in argv:
            return JOBS
        if argv[0] == "sshare":
            return SSHARE
        raise AssertionError(argv)


def test_status_cli_json_with_a_pools_file(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    pools = tmp_path / "pools.yaml"
    pools.write_text("pools:\n  vision: {nodes: 'gpu[001-004]', owners: [vision]}\n"
                     "  llm: {nodes: 'gpu[005-006]', owners: [llm]}\n"
                     "accounts:\n  vision: {shares: 30}\n  llm: {shares: 70}\n")
    code = main(["pool", "status", str(pools), "--json"], AppContext(slurm_runner=CannedSlurm()))
    out, err = capsys.readouterr()
    assert code == 0, err
    doc = json.loads(out)
    by_name = {p["name"]: p for p in doc["pools"]}
    assert by_name["vision"]["gpus_borrowed"] == 6 and by_name["vision"]["gpus_total"] == 16
    assert by_name["scavenger"]["role"] == "scavenger"
    assert {a["name"] for a in doc["accounts"]} == {"vision", "llm"}


def test_status_cli_human_output_without_pools(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["pool", "status"], AppContext(slurm_runner=CannedSlurm()))
    out, err = capsys.readouterr()
    assert code == 0
    assert "no gpupool partitions found" in err
    assert "Fair-share" in out and "\x1b[" not in out


def test_lending_and_borrowing_against_limits() -> None:
    from gpupool.pools.schema import parse_pools_text
    from gpupool.pools.status import (
        account_statuses,
        definitions_from_file,
        with_borrowing,
        with_lending,
    )

    spec = parse_pools_text("""\
pools:
  vision: {nodes: 'gpu[001-004]', owners: [vision], lend_limit: 50%, min_runtime: "0:30"}
  llm: {nodes: 'gpu[005-006]', quota: {llm: 4}}
accounts:
  vision: {shares: 30}
  llm: {shares: 70, borrow_limit: 6}
""")
    hosts = {"vision": [f"gpu00{i}" for i in range(1, 5)], "llm": ["gpu005", "gpu006"]}
    # The fixture's job 11 runs in `scavenger`; vision lends through its own partition here.
    jobs = parse_jobs(JOBS.replace("Partition=scavenger NodeList", "Partition=scavenger-vision NodeList"))
    nodes = parse_nodes(NODES)
    definitions = definitions_from_file(spec, hosts, {})
    assert [(d.name, d.role) for d in definitions][-2:] == [("scavenger", "scavenger"),
                                                            ("scavenger-vision", "scavenger")]
    lending = {d.name for d in definitions if d.role == "scavenger"}
    pools = {p.name: with_lending(spec, p, jobs, nodes, lending) for p in pool_statuses(definitions, nodes, jobs)}
    # By hand: job 11 holds 4 + 2 GPUs on gpu001/gpu002; vision has 4 nodes x 4 GPUs, 50% = 8.
    vision = pools["vision"]
    assert (vision.lending_partition, vision.gpus_lent, vision.lend_limit, vision.min_runtime_s) == (
        "scavenger-vision", 6, 8, 30)
    assert pools["llm"].lending_partition == "scavenger" and pools["llm"].lend_limit is None
    accounts = {a.name: with_borrowing(spec, a, jobs, lending)
                for a in account_statuses(parse_sshare_tree(SSHARE), {"vision", "llm"})}
    llm = accounts["llm"]
    # job 11 (6 GPUs, lending partition) is borrowed; job 12 (4 GPUs in partition llm) is within quota.
    assert (llm.gpus_borrowed, llm.borrow_limit) == (6, 6)
    assert [(q.pool, q.qos, q.gpus_quota, q.gpus_used) for q in llm.quota] == [("llm", "llm-llm", 4, 4)]
    assert accounts["vision"].gpus_borrowed == 0 and accounts["vision"].quota == ()
