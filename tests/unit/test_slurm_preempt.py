"""Who an owner's job may preempt, read from real Slurm 22.05 output of a testbed with pools applied
(tests/fixtures/slurm/README.md, "22.05 with pools and borrowers"): job 1 holds gpu004 and gpu005
(4 GPUs each) and job 2 holds 2 GPUs of gpu007, both in partition scavenger (PriorityTier 1) under
QOS scavenger; vision (gpu[004-009]) and llm (gpu[001-003,010-012]) have PriorityTier 10."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from gpupool.slurm import parse
from gpupool.slurm.commands import CommandsClient
from gpupool.slurm.models import PreemptionConfig
from gpupool.slurm.preempt import exempt_seconds, preemptible_jobs
from gpupool.slurm.pyslurm_backend import job_from_pyslurm

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "slurm"
STARTED = 1796006448  # both jobs' start_time in the capture


def _text(name: str) -> str:
    return (FIXTURES / name).read_text()


def _jobs() -> list:
    return parse.jobs_from_json(json.loads(_text("squeue-scavenger-22.05.json")))


def _partitions() -> dict[str, dict[str, str]]:
    return parse.partitions_from_scontrol(_text("scontrol-show-partition-pools-22.05.txt"))


def _qos_rows() -> list[dict[str, str]]:
    return [dict(zip(parse.QOS_PREEMPT_FIELDS, line.split("|"), strict=False))
            for line in _text("sacctmgr-show-qos-preempt-22.05.txt").splitlines() if line.strip()]


def _config() -> PreemptionConfig:
    return parse.preemption_from(parse.config_from_scontrol(_text("scontrol-show-config-22.05.txt")), _qos_rows())


NODE_PARTITIONS = {f"gpu{i:03d}": ("gpu", "scavenger", "vision" if 4 <= i <= 9 else "llm") for i in range(1, 13)}


@pytest.mark.parametrize(("text", "seconds"), [
    ("00:05:00", 300), ("1-02:03:04", 93784), ("05:30", 330), ("7", 420), ("2-3", 183600),
    ("00:00:00", 0), ("", None), ("N/A", None), ("UNLIMITED", None), ("1:x:3", None), ("-1", None),
    # Only ASCII digits: "²".isdigit() is True but int("²") raises; "٣" (Arabic-Indic 3) is no number here.
    ("²", None), ("1-²:00", None), ("\u0663:00", None), ("1-02:\u0663", None), ("1234567890:00", None),
    ("52560000:00", 3153600000),
    # 123456789 minutes is 234 years, past slurm.duration's bound of 100 years: no finite duration read.
    ("123456789:00", None), ("0-0", 0), ("1-", None), ("-", None), ("1-2:3:4:5", None),
])
def test_duration_seconds(text: str, seconds: int | None) -> None:
    assert parse.duration_seconds(text) == seconds


def test_jobs_carry_their_qos_and_partition_from_both_command_outputs() -> None:
    by_json = {j.job_id: j for j in _jobs()}
    by_scontrol = {j.job_id: j for j in parse.jobs_from_scontrol(_text("scontrol-show-job-scavenger-22.05.txt"))}
    for jobs in (by_json, by_scontrol):
        assert {k: (j.qos, j.partition) for k, j in jobs.items()} == {"1": ("scavenger", "scavenger"),
                                                                     "2": ("scavenger", "scavenger")}
        assert jobs["1"].allocation == {"gpu004": 4, "gpu005": 4}
        assert jobs["2"].allocation == {"gpu007": 2}
    assert by_json["1"].start_time == STARTED


def test_pyslurm_job_carries_its_qos() -> None:
    ns = SimpleNamespace(id=1, name="wrap", user_name="root", account="llm", partition="scavenger",
                         qos="scavenger", state="RUNNING", state_reason="None", allocated_nodes="gpu007",
                         num_nodes=1, required_nodes=None, excluded_nodes=None, comment=None,
                         start_time=STARTED, submit_time=STARTED, array_id=None, array_task_id=None,
                         tres_per_node=None, tres_per_job=None, required_switches=None, max_wait_time_switches=None)
    ns.get_resource_layout_per_node = lambda: {"gpu007": {"gres": {"gpu": {"count": 2, "indexes": "0-1"}}}}
    info = job_from_pyslurm(ns)
    assert info.qos == "scavenger" and info.allocation == {"gpu007": 2}


def test_preemption_settings_from_config_and_sacctmgr() -> None:
    config = _config()
    assert config.preempt_type == "preempt/partition_prio"
    assert config.exempt_time_s == 0
    assert config.qos_exempt_s == {"scavenger": 300}
    assert config.qos_mode == {"normal": "CLUSTER", "scavenger": "REQUEUE"}
    assert config.qos_known
    assert not parse.preemption_from(parse.config_from_scontrol(_text("scontrol-show-config-22.05.txt")), None).qos_known


def test_commands_backend_reads_config_and_qos(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, fixture in (("scontrol", "scontrol-show-config-22.05.txt"), ("sacctmgr", "sacctmgr-show-qos-preempt-22.05.txt")):
        path = bin_dir / name
        path.write_text(f'#!/bin/sh\ncat "{FIXTURES / fixture}"\n')
        path.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    assert CommandsClient().preemption() == _config()
    (bin_dir / "sacctmgr").write_text("#!/bin/sh\necho 'sacctmgr: error: slurmdbd unreachable' >&2\nexit 1\n")
    without = CommandsClient().preemption()
    assert without.preempt_type == "preempt/partition_prio" and not without.qos_known and without.qos_exempt_s == {}


def test_scavenger_jobs_on_the_owners_nodes_are_preemptible_with_their_qos_exempt_time() -> None:
    found = preemptible_jobs(_jobs(), _partitions(), _config(), "vision", STARTED + 600,
                             node_partitions=NODE_PARTITIONS)
    assert {p.job.job_id: (p.run_seconds, p.exempt_seconds, p.protected) for p in found} == {
        "1": (600, 300, False), "2": (600, 300, False)}
    young = preemptible_jobs(_jobs(), _partitions(), _config(), "vision", STARTED + 60, node_partitions=NODE_PARTITIONS)
    assert all(p.protected for p in young)


def test_only_partitions_of_a_higher_tier_preempt_and_only_on_their_nodes() -> None:
    # llm's nodes hold no borrower; scavenger and gpu have the same tier (1) as the borrowers.
    for owner in ("llm", "scavenger", "gpu"):
        assert preemptible_jobs(_jobs(), _partitions(), _config(), owner, STARTED + 600,
                                node_partitions=NODE_PARTITIONS) == []
    off = {**_partitions(), "scavenger": {**_partitions()["scavenger"], "PreemptMode": "OFF"}}
    assert preemptible_jobs(_jobs(), off, _config(), "vision", STARTED + 600, node_partitions=NODE_PARTITIONS) == []
    none = replace(_config(), preempt_type="preempt/none")
    assert preemptible_jobs(_jobs(), _partitions(), none, "vision", STARTED + 600) == []


def test_qos_preemption_follows_the_owner_qos_preempt_list() -> None:
    config = replace(_config(), preempt_type="preempt/qos", qos_preempts={"normal": ("scavenger",), "scavenger": ()})
    found = preemptible_jobs(_jobs(), _partitions(), config, "vision", STARTED + 600, node_partitions=NODE_PARTITIONS,
                             owner_qos="normal")
    assert sorted(p.job.job_id for p in found) == ["1", "2"]
    assert preemptible_jobs(_jobs(), _partitions(), config, "vision", STARTED + 600, node_partitions=NODE_PARTITIONS,
                            owner_qos="scavenger") == []


def test_partition_qos_exempt_time_ranks_before_the_job_qos_then_slurm_conf() -> None:
    job = _jobs()[0]
    parts = {**_partitions(), "scavenger": {**_partitions()["scavenger"], "QoS": "scavenger-vision"}}
    config = replace(_config(), exempt_time_s=30, qos_exempt_s={"scavenger": 300, "scavenger-vision": 900})
    assert exempt_seconds(job, parts, config) == 900
    assert exempt_seconds(job, _partitions(), config) == 300
    assert exempt_seconds(job, _partitions(), replace(config, qos_exempt_s={})) == 30


def test_test_only_lists_the_jobs_slurm_would_preempt() -> None:
    result = parse.parse_test_only(_text("sbatch-test-only-preempts-22.05.txt"))
    assert result.nodes == ("gpu004", "gpu005", "gpu006", "gpu007", "gpu008", "gpu009")
    assert result.preempts == ("2", "1")
    assert parse.parse_test_only(_text("sbatch-test-only-22.05.txt")).preempts == ()
