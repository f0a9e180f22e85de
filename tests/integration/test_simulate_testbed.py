"""`gpupool simulate` on the testbed's own sacct history: the export command of docs/simulate.md
is read back job for job, and the command from the README runs on it and writes the report."""

from __future__ import annotations

import json
import os

import pytest

from gpupool.simulate.workload import SACCT_FIELDS
from tests.integration.conftest import SLURM_RELEASE, Testbed, wait_until

pytestmark = pytest.mark.integration


def _sacct(testbed: Testbed, ids: list[str], *fmt: str) -> str:
    proc = testbed.run(["sacct", "-a", "-X", *fmt, "--noconvert", "-j", ",".join(ids)], timeout=60, check=True)
    return proc.stdout


def test_simulate_replays_the_testbed_sacct_history(testbed: Testbed, tmp_path_factory: pytest.TempPathFactory) \
        -> None:
    testbed.cancel_all()
    k = testbed.gpus_per_node
    # (nodes, GPUs per node) of the jobs submitted; each sleeps 1 s.
    shapes = [(2, k), (1, 1), (1, k), (3, k), (1, 2)]
    ids = []
    for nodes, per_node in shapes:
        proc = testbed.run(["sbatch", "--parsable", "-N", str(nodes), f"--gres=gpu:{per_node}", "-t", "5",
                            "--wrap", "sleep 1"], check=True)
        ids.append(proc.stdout.strip().split(";")[0])
    wait_until(lambda: not testbed.job_ids(), 180, message="the jobs to finish")

    def all_recorded() -> bool:
        out = _sacct(testbed, ids, "-P", "-n", "--format=JobIDRaw,State")
        states = [line.split("|")[1] for line in out.splitlines() if line]
        return len(states) == len(ids) and all(s == "COMPLETED" for s in states)

    wait_until(all_recorded, 120, message="sacct to record the jobs as COMPLETED")
    work = tmp_path_factory.mktemp("simulate")
    parsable = work / "sacct.txt"
    parsable.write_text(_sacct(testbed, ids, "-P", f"--format={','.join(SACCT_FIELDS)}"))
    as_json = work / "sacct.json"
    as_json.write_text(_sacct(testbed, ids, "--json"))
    report = work / "out.html"
    for workload in (parsable, as_json):
        proc = testbed.run(["gpupool", "simulate", "--fabric", str(testbed.fabric_path), "--workload", str(workload),
                            "--gpus-per-host", str(k), "--policies", "slurm-tree,gpupool,gpupool-wait",
                            "--report", str(report), "--json"], timeout=300)
        assert proc.returncode == 0, proc.stderr
        doc = json.loads(proc.stdout)
        assert doc["workload"]["stats"]["jobs"] == len(shapes), doc["workload"]
        for policy in doc["policies"]:
            assert policy["jobs"] == len(shapes)
            assert policy["multi_node_jobs"] == sum(1 for n, _ in shapes if n > 1), (workload.name, policy, doc)
        sizes = [n * p for n, p in shapes]
        bins = {"1 GPU": (1, 1), "2-8 GPUs": (2, 8), "9-64 GPUs": (9, 64), ">64 GPUs": (65, 1 << 40)}
        expected = {name: sum(lo <= s <= hi for s in sizes) for name, (lo, hi) in bins.items()}
        got = {name: v["jobs"] for name, v in doc["policies"][0]["wait_s_by_size"].items()}
        assert got == {name: n for name, n in expected.items() if n}
        assert report.stat().st_size > 10_000 and "<svg" in report.read_text()


def _with_repo_on_path(testbed: Testbed) -> dict[str, str]:
    """PYTHONPATH for a script of scripts/: this checkout first (gpupool, scripts.*), then the testbed's own."""
    from tests.integration.conftest import REPO

    return {"PYTHONPATH": os.pathsep.join(p for p in (str(REPO), testbed.full_env().get("PYTHONPATH", "")) if p)}


def test_slurm_tree_emulation_picks_the_nodes_slurm_picks(testbed: Testbed) -> None:
    """On random fragmented states, the simulator's slurm-tree policy chooses what sbatch --test-only does."""
    import sys

    from tests.integration.conftest import REPO

    testbed.cancel_all()
    proc = testbed.run([sys.executable, str(REPO / "scripts" / "calibrate_slurm_tree.py"), "--states", "10",
                        "--requests", "10", "--seed", "3", "--json"], timeout=900, env=_with_repo_on_path(testbed))
    doc = json.loads(proc.stdout)
    assert doc["cases"] >= 90, doc
    assert doc["agreement"] >= 0.95, doc["disagreements"]


# The weighted emulation (slurm-tuned) is checked against 22.05 only: on 24.11 and 26.05 it picked
# Slurm's nodes in 3% of the cases (26.05, --weights random), so newer releases weigh nodes otherwise
# (docs/simulate.md says slurm-tuned models 22.05's weight tiers).
@pytest.mark.skipif(tuple(int(p) for p in SLURM_RELEASE.split(".")) > (22, 5),
                    reason=f"the weighted tree emulation models Slurm 22.05 (this run: {SLURM_RELEASE})")
@pytest.mark.parametrize("weights", ["random", "pack-leaf"])
def test_slurm_tree_emulation_with_node_weights_picks_the_nodes_slurm_picks(testbed: Testbed, weights: str) -> None:
    """The same with node Weight= set live (random per node, or gpupool's default plan, slurm-tuned)."""
    import sys

    from tests.integration.conftest import REPO

    testbed.cancel_all()
    proc = testbed.run([sys.executable, str(REPO / "scripts" / "calibrate_slurm_tree.py"), "--states", "10",
                        "--requests", "10", "--seed", "5", "--weights", weights, "--json"], timeout=900,
                       env=_with_repo_on_path(testbed))
    doc = json.loads(proc.stdout)
    assert doc["weights"] == weights
    assert doc["cases"] >= 90, doc
    assert doc["agreement"] >= 0.95, doc["disagreements"]


# CI replays 30 jobs each way; GPUPOOL_REALITY_JOBS=200 runs the full-size check (about 5 and 13 min).
REALITY_JOBS = int(os.environ.get("GPUPOOL_REALITY_JOBS", "30"))


@pytest.mark.parametrize("via", ["sbatch", "gpupool"])
def test_reality_check_start_order_and_nodes(testbed: Testbed, via: str) -> None:
    """A short trace run with plain sbatch (replayed with slurm-tree) or gpupool submit (replayed with
    gpupool), replayed from its own sacct export: the model agrees with what happened."""
    import sys

    from tests.integration.conftest import REPO

    testbed.cancel_all()
    # sbatch: jobs of up to 16 hosts arriving every 0.5 s on average, so about half of them queue.
    # gpupool submit takes seconds per call here, which spaces its jobs out: the default trace.
    shape = ["--max-nodes", "16", "--span", str(0.5 * REALITY_JOBS)] if via == "sbatch" else []
    proc = testbed.run([sys.executable, str(REPO / "scripts" / "reality_check_simulate.py"), "--jobs",
                        str(REALITY_JOBS), "--seed", "2", "--via", via, *shape, "--json"],
                       timeout=900 + 12 * REALITY_JOBS)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    print(doc)  # the figures, for the log
    assert doc["jobs"] == REALITY_JOBS
    if via == "sbatch":
        assert doc["jobs_that_waited_2s_or_more"] >= REALITY_JOBS // 6, doc  # the order check needs a queue
    # Long queues (the 200-job run: 175 of 200 jobs waited) are where the backfill model matters: EASY
    # agreed on 87% of pairs there, the Slurm-like model this script replays with (a reservation per blocked job) on 95%.
    floor = 0.9 if REALITY_JOBS <= 50 else 0.8
    assert doc["start_order_share"] >= floor, doc
    # As compact as predicted: the same number of leaf switches per job.
    assert doc["same_leaf_count_share"] >= floor, doc
    # Exact node sets agree until a job ends a second apart from the replay (Slurm's 1 s clock and its
    # scheduling latency), after which ties between equal hosts break differently and the drift cascades.
    # gpupool submit plans seconds before sbatch records the submission, and under CI load that moves
    # even jobs started before the first end (26.05 runs matched 4/30 overall, 3/4 before the first
    # end): its exact nodes are reported, not judged; leaf counts and start order above are.
    assert doc["started_before_first_end"] >= 1, doc
    if via == "sbatch" and REALITY_JOBS <= 50:
        assert doc["same_nodes_share"] >= 0.25, doc
