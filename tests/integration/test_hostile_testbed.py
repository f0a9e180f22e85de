"""Issue 19 on a real slurmctld + slurmdbd testbed: a SIGKILLed `pool apply` is finished by one
rerun, and a hostile job (non-UTF-8 name that looks like scontrol fields, forged gpupool comment)
changes nothing gpupool decides for anyone else and crashes no command."""

from __future__ import annotations

import getpass
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import Testbed, bring_up, first_port_base, run_testbed, wait_until

pytestmark = pytest.mark.integration

NODES = 8
GPUS = 4


def pools_yaml(user: str) -> str:
    pools = "\n".join(f"  p{i}:\n    nodes: gpu[{2 * i - 1:03d}-{2 * i:03d}]\n    owners: [a{i}]" for i in range(1, 5))
    accounts = "\n".join(f"  a{i}: {{shares: {10 * i}, users: [{user}]}}" for i in range(1, 5))
    return f"pools:\n{pools}\naccounts:\n{accounts}\nqueues:\n  urgent: {{priority: 100, max_gpus: 8}}\n"


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Testbed]:
    state_dir = tmp_path_factory.mktemp("hostile-testbed")
    first = first_port_base("hostile")
    status = bring_up(state_dir, NODES, first, ["--gpus-per-node", str(GPUS)])
    testbed = Testbed.from_status(status, started_here=True)
    try:
        yield testbed
    finally:
        run_testbed(["down", "--state-dir", str(state_dir)], timeout=180)


def gpupool(bed: Testbed, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = bed.run(["gpupool", *args], timeout=180, env=env)
    return proc.returncode, proc.stdout, proc.stderr


def test_sigkill_during_pool_apply_then_one_rerun_converges(bed: Testbed, tmp_path: Path) -> None:
    pools = tmp_path / "pools.yaml"
    pools.write_text(pools_yaml(getpass.getuser()))
    # A shim scontrol that stalls right after Slurm created the first partition, so the kill lands
    # mid-way deterministically: the partition exists, the fragment does not name it yet.
    real = shutil.which("scontrol", path=bed.full_env()["PATH"])
    assert real
    shim_dir = tmp_path / "shim"
    shim_dir.mkdir()
    marker = tmp_path / "created"
    shim = shim_dir / "scontrol"
    shim.write_text(f'#!/bin/bash\n"{real}" "$@"\nrc=$?\nif [ "$1" = create ]; then touch "{marker}"; sleep 300; fi\n'
                    "exit $rc\n")
    shim.chmod(0o755)
    env = bed.full_env({"PATH": f"{shim_dir}:{bed.full_env()['PATH']}"})
    proc = subprocess.Popen(["gpupool", "pool", "apply", str(pools), "--json"], env=env, cwd=bed.work_dir,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_until(marker.exists, 120, message="the first partition to be created")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # gpupool and its stalled scontrol child
        proc.wait(timeout=30)
    partitions = bed.run(["scontrol", "-o", "show", "partition"], check=True).stdout
    assert "PartitionName=p1 " in partitions  # the interrupted run left a partition behind

    code, out, err = gpupool(bed, "pool", "apply", str(pools), "--json")
    assert code == 0, err
    doc = json.loads(out)
    fragment = Path(doc["fragment"])
    owned = {line.split()[0].split("=", 1)[1] for line in fragment.read_text().splitlines()
             if line.startswith("PartitionName=")}
    assert owned == {"p1", "p2", "p3", "p4", "scavenger"}  # scavenger: the default borrowing partition
    assert not Path(f"{fragment}.journal").exists()
    code, out, err = gpupool(bed, "pool", "apply", str(pools), "--json")
    assert code == 0 and json.loads(out)["changes"] == [], out + err


def test_hostile_job_changes_nothing_for_others(bed: Testbed, tmp_path: Path) -> None:
    bed.cancel_all()

    def decisions() -> tuple[dict, dict]:
        code, out, err = gpupool(bed, "plan", "--gpus", "4", "--json")
        assert code == 0, err
        plan = json.loads(out)
        code, out, err = gpupool(bed, "submit", "--gpus", "4", "--dry-run", "--json", "--", "--wrap=true")
        assert code == 0, err
        return plan, json.loads(out)

    plan_before, submit_before = decisions()
    claimed = "+".join(f"{h}:{GPUS}" for h in bed.nodes)
    hostile_name = os.fsdecode(b"bad\xffname x Nodes=gpu[ GRES=gpu:8")
    bed.run(["sbatch", "--parsable", "-H", "-J", hostile_name, "-o", "/dev/null",
             "--comment", f"gpupool:pair_hops_sum=\u00b2,mode=now,alloc={claimed}", "--wrap", "true"], check=True)
    bed.run(["sbatch", "--parsable", "-H", "-J", "x", "-o", "/dev/null",
             "--comment", "gpupool:alloc=gpu001:\u00b2", "--wrap", "true"], check=True)
    try:
        plan_after, submit_after = decisions()
        assert plan_after["allocation"] == plan_before["allocation"]
        assert submit_after["allocation"] == submit_before["allocation"] and submit_after["mode"] == "now"
        for command in (["jobs", "--all", "--json"], ["pool", "status", "--json"]):
            code, out, err = gpupool(bed, *command)
            assert code == 0 and "internal error" not in err, (command, err)
            json.loads(out)
    finally:
        bed.cancel_all()
        time.sleep(0.5)
