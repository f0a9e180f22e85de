"""`gpupool plan` against the testbed's Slurm: the free state comes from slurmctld, no options needed."""

from __future__ import annotations

import json

import pytest

from tests.integration.conftest import Testbed, wait_until

pytestmark = pytest.mark.integration


def plan(testbed: Testbed, *args: str) -> dict:
    proc = testbed.run(["gpupool", "plan", *args, "--json"], timeout=120)
    assert proc.returncode in (0, 1), proc.stderr
    return json.loads(proc.stdout)


def test_plan_reads_slurm_and_avoids_busy_nodes(testbed: Testbed) -> None:
    testbed.cancel_all()
    k = testbed.gpus_per_node
    doc = plan(testbed, "--gpus", str(2 * k), "--gpus-per-node", str(k))
    assert doc["feasible"] is True
    assert sorted(doc["allocation"].values()) == [k, k]
    assert set(doc["allocation"]) <= set(testbed.nodes)
    busy = sorted(doc["allocation"])[0]
    proc = testbed.run(["sbatch", "--parsable", f"--gres=gpu:{k}", "-w", busy, "--wrap", "sleep 300"], check=True)
    job = proc.stdout.strip().split(";")[0]
    try:
        wait_until(lambda: testbed.run(["squeue", "-h", "-j", job, "-o", "%T"]).stdout.strip() == "RUNNING", 60,
                   message=f"job {job} running")
        again = plan(testbed, "--gpus", str(2 * k), "--gpus-per-node", str(k))
        assert again["feasible"] is True
        assert busy not in again["allocation"]
        # Slurm's own choice is computed on the same state: it never beats the plan.
        reference = again["slurm_reference"]
        if reference["feasible"]:
            assert again["cost"]["pair_hops_sum"] <= reference["cost"]["pair_hops_sum"]
    finally:
        testbed.run(["scancel", job])
        testbed.cancel_all()


def test_plan_more_than_the_cluster_is_infeasible(testbed: Testbed) -> None:
    total = len(testbed.nodes) * testbed.gpus_per_node
    proc = testbed.run(["gpupool", "plan", "--gpus", str(total + 1)], timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.startswith("gpupool: error:") and "largest feasible request" in proc.stderr
