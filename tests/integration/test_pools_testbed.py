"""pool apply/status on a real slurmctld + slurmdbd + MariaDB (a throw-away 8-node testbed).

The testbed's slurm.conf carries the lines docs/pools.md asks admins for: partition-priority
preemption with requeue, and an `include` of gpupool's partition fragment.
"""

from __future__ import annotations

import getpass
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import Testbed, bring_up, first_port_base, run_testbed, wait_until

pytestmark = pytest.mark.integration

NODES = 8
GPUS = 4
FRAGMENT = "gpupool-partitions.conf"


def pools_yaml(user: str, vision_shares: int = 30, llm_shares: int = 70) -> str:
    return f"""\
pools:
  vision:
    nodes: gpu[001-004]
    owners: [vision]
    max_time: 2-00:00:00
  llm:
    nodes: gpu[005-008]
    owners: [llm]
accounts:
  vision: {{shares: {vision_shares}, users: [{user}]}}
  llm:    {{shares: {llm_shares}, users: [{user}]}}
queues:
  urgent: {{priority: 1000, max_gpus: 16, max_gpus_per_user: 8}}
"""


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Testbed]:
    state_dir = tmp_path_factory.mktemp("pools-testbed")
    status = bring_up(state_dir, NODES, first_port_base("pools"), ["--gpus-per-node", str(GPUS)])
    testbed = Testbed.from_status(status, started_here=True)
    try:
        conf = Path(testbed.env["SLURM_CONF"])
        assert f"include {conf.parent / FRAGMENT}" in conf.read_text()
        wait_until(lambda: "partition_prio" in testbed.run(["scontrol", "show", "config"]).stdout, 30,
                   message="PreemptType to take effect")
        yield testbed
    finally:
        run_testbed(["down", "--state-dir", str(state_dir)], timeout=180)


@pytest.fixture(scope="module")
def pools_file(bed: Testbed, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pools") / "pools.yaml"
    path.write_text(pools_yaml(getpass.getuser()))
    return path


def gpupool(bed: Testbed, *args: str, cwd: Path | None = None) -> tuple[int, str, str]:
    proc = bed.run(["gpupool", *args], timeout=120, cwd=cwd)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture(scope="module")
def applied(bed: Testbed, pools_file: Path) -> dict[str, object]:
    code, out, err = gpupool(bed, "pool", "apply", str(pools_file), "--json")
    assert code == 0, err
    return json.loads(out)


def test_two_units_show_up_in_sinfo_sacctmgr_and_sshare(bed: Testbed, applied: dict[str, object]) -> None:
    assert applied["applied"] is True
    made = {(c["kind"], c["name"], c["action"]) for c in applied["changes"]}  # type: ignore[union-attr]
    assert {("partition", "vision", "create"), ("partition", "llm", "create"), ("partition", "scavenger", "create"),
            ("account", "vision", "create"), ("account", "llm", "create"), ("qos", "urgent", "create"),
            ("qos", "scavenger", "create")} <= made

    sinfo = bed.run(["sinfo", "-h", "-o", "%R|%N|%l"], check=True).stdout.split()
    assert {"vision|gpu[001-004]|2-00:00:00", "llm|gpu[005-008]|infinite", "scavenger|gpu[001-008]|infinite"} <= set(sinfo)

    assoc = bed.run(["sacctmgr", "-P", "-n", "show", "assoc", "format=Account,User,Fairshare,QOS"], check=True).stdout
    rows = {tuple(line.split("|")[:2]): line.split("|")[2:] for line in assoc.splitlines()}
    assert rows[("vision", "")][0] == "30" and rows[("llm", "")][0] == "70"
    assert {"urgent", "scavenger"} <= set(rows[("llm", "")][1].split(","))
    assert ("llm", getpass.getuser()) in rows

    qos = bed.run(["sacctmgr", "-P", "-n", "show", "qos", "format=Name,Priority,GrpTRES,MaxTRESPU,Preempt,Description"],
                  check=True).stdout
    assert "urgent|1000|gres/gpu=16|gres/gpu=8|scavenger|gpupool-managed" in qos.splitlines()

    sshare = bed.run(["sshare", "-P", "-n", "-a", "-o", "Account,User,RawShares"], check=True).stdout
    shares = {line.split("|")[0].strip(): line.split("|")[2] for line in sshare.splitlines() if line.split("|")[1] == ""}
    assert shares["vision"] == "30" and shares["llm"] == "70"


def test_second_apply_changes_nothing_and_partitions_survive_reconfigure(
        bed: Testbed, applied: dict[str, object], pools_file: Path) -> None:
    code, out, err = gpupool(bed, "pool", "apply", str(pools_file), "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["changes"] == [] and doc["applied"] is True
    warnings = [line for line in err.splitlines() if line.startswith("gpupool: warning:")]
    # Preemption is configured and the fragment included; only the testbed's catch-all `gpu`
    # partition (all nodes) is reported, as it reaches into the owned pools.
    assert len(warnings) == 1 and "partition 'gpu' (not managed by gpupool)" in warnings[0], err

    fragment = Path(bed.env["SLURM_CONF"]).parent / FRAGMENT
    assert "PartitionName=vision" in fragment.read_text()
    bed.run(["scontrol", "reconfigure"], check=True)  # drops partitions not in slurm.conf (+ includes)
    time.sleep(1)
    code, out, err = gpupool(bed, "pool", "apply", str(pools_file), "--json")
    assert code == 0 and json.loads(out)["changes"] == [], err


def test_dry_run_reports_a_change_without_making_it(bed: Testbed, applied: dict[str, object], tmp_path: Path) -> None:
    changed = tmp_path / "pools.yaml"
    changed.write_text(pools_yaml(getpass.getuser(), vision_shares=40, llm_shares=60))
    code, out, err = gpupool(bed, "pool", "apply", str(changed), "--dry-run", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["applied"] is False
    assert {(c["kind"], c["name"], c["action"]) for c in doc["changes"]} == {
        ("account", "vision", "modify"), ("account", "llm", "modify")}
    assoc = bed.run(["sacctmgr", "-P", "-n", "show", "assoc", "where", "account=vision", "format=User,Fairshare"],
                    check=True).stdout
    assert "|30" in assoc


def _job_state(bed: Testbed, job_id: str) -> dict[str, str]:
    out = bed.run(["scontrol", "-o", "show", "job", job_id]).stdout
    return dict(field.split("=", 1) for field in out.split() if "=" in field)


def _submit(bed: Testbed, cwd: Path, *args: str) -> str:
    proc = bed.run(["sbatch", "--parsable", "-o", "/dev/null", *args], check=True, cwd=cwd)
    return proc.stdout.strip().split(";")[0]


def test_owner_job_preempts_borrower(bed: Testbed, applied: dict[str, object], tmp_path: Path) -> None:
    bed.cancel_all()
    borrower = _submit(bed, tmp_path, "-p", "scavenger", "-q", "scavenger", "-A", "llm", "-N4",
                       "--gpus-per-node=4", "-w", "gpu[001-004]", "--wrap", "sleep 600")
    wait_until(lambda: _job_state(bed, borrower).get("JobState") == "RUNNING", 60, message="borrower running")

    code, out, err = gpupool(bed, "pool", "status", "--json")
    assert code == 0, err
    vision = next(p for p in json.loads(out)["pools"] if p["name"] == "vision")
    assert vision["gpus_borrowed"] == 16 and vision["gpus_idle"] == 0

    owner = _submit(bed, tmp_path, "-p", "vision", "-A", "vision", "-N4", "--gpus-per-node=4", "--wrap", "sleep 600")
    wait_until(lambda: _job_state(bed, owner).get("JobState") == "RUNNING", 90, message="owner job running")
    state = _job_state(bed, borrower)
    assert state["JobState"] in {"PENDING", "REQUEUED", "PREEMPTED", "REQUEUE_HOLD"}, state
    assert int(state.get("Restarts", "0")) >= 1 or state["JobState"] != "RUNNING"
    bed.cancel_all()


def _fairshare(bed: Testbed) -> dict[str, float]:
    out = bed.run(["sshare", "-P", "-n", "-a", "-o", "Account,User,FairShare"], check=True).stdout
    factors: dict[str, float] = {}
    for line in out.splitlines():
        account, user, factor = (x.strip() for x in line.split("|")[:3])
        if user and factor:
            factors[account] = max(factors.get(account, 0.0), float(factor))
    return factors


@pytest.mark.slow
def test_pending_jobs_start_in_fair_share_order(bed: Testbed, applied: dict[str, object], tmp_path: Path) -> None:
    bed.cancel_all()
    # Give llm (70 shares) more usage than vision (30) can justify, so fair-share favours vision.
    usage = _submit(bed, tmp_path, "-p", "llm", "-A", "llm", "-N4", "--exclusive", "--wrap", "sleep 30")
    wait_until(lambda: _job_state(bed, usage).get("JobState") not in {"PENDING", "RUNNING", "CONFIGURING"}, 90,
               message="usage job to finish")
    wait_until(lambda: (f := _fairshare(bed)) and f.get("vision", 0) > f.get("llm", 1), 150,
               message="sshare to rank vision above llm")

    blocker = _submit(bed, tmp_path, "-p", "gpu", "-A", "vision", "-N8", "--exclusive", "--wrap", "sleep 600")
    wait_until(lambda: _job_state(bed, blocker).get("JobState") == "RUNNING", 60, message="blocker running")
    # Submitted in the same second, llm first: FIFO would start llm, fair-share must start vision.
    llm_job = _submit(bed, tmp_path, "-p", "gpu", "-A", "llm", "-N8", "--exclusive", "--wrap", "sleep 20")
    vision_job = _submit(bed, tmp_path, "-p", "gpu", "-A", "vision", "-N8", "--exclusive", "--wrap", "sleep 20")
    llm_state, vision_state = _job_state(bed, llm_job), _job_state(bed, vision_job)
    assert int(vision_state["Priority"]) > int(llm_state["Priority"])

    code, out, err = gpupool(bed, "pool", "status", "--json")
    assert code == 0, err
    accounts = {a["name"]: a for a in json.loads(out)["accounts"]}
    assert accounts["vision"]["fairshare"] > accounts["llm"]["fairshare"]

    bed.run(["scancel", blocker], check=True)
    first = wait_until(lambda: next((j for j in (vision_job, llm_job)
                                     if _job_state(bed, j).get("JobState") == "RUNNING"), None), 90,
                       message="a pending job to start")
    assert first == vision_job
    assert _job_state(bed, llm_job)["JobState"] == "PENDING"
    bed.cancel_all()


def test_unknown_node_is_input_error(bed: Testbed, applied: dict[str, object], tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(pools_yaml(getpass.getuser()).replace("gpu[005-008]", "gpu[005-009]"))
    code, out, err = gpupool(bed, "pool", "apply", str(bad))
    assert code == 4
    assert err.strip() == (f"gpupool: error: {bad}:7: pools.llm.nodes: unknown node(s) not in Slurm's node "
                           "list: gpu009")


def test_slurmdbd_down_is_environment_error(bed: Testbed, applied: dict[str, object], pools_file: Path) -> None:
    pid = int((bed.state_dir / "run" / "slurmdbd.pid").read_text().split()[0])
    import os
    import signal

    os.kill(pid, signal.SIGTERM)  # our own throw-away testbed's slurmdbd
    wait_until(lambda: bed.run(["sacctmgr", "-n", "show", "cluster"]).returncode != 0, 30, message="slurmdbd down")
    code, out, err = gpupool(bed, "pool", "apply", str(pools_file))
    assert code == 3
    assert err.startswith("gpupool: error:") and "Traceback" not in err and len(err.strip().splitlines()) == 1
