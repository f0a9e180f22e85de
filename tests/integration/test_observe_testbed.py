"""`pool report` and `status` on a real slurmctld + slurmdbd after a scripted small day of jobs.

Owners run on their pools, llm borrows vision's nodes through the scavenger partition, a vision
job reclaims them (preemption with requeue), llm runs on its own pool. The test recomputes every
lending figure from raw `sacct` output with its own small reader and compares.
"""

from __future__ import annotations

import getpass
import json
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.integration.conftest import Testbed, bring_up, first_port_base, run_testbed, wait_until

pytestmark = pytest.mark.integration

NODES = 8
GPUS = 4
VISION = {f"gpu{i:03d}" for i in range(1, 5)}
LLM = {f"gpu{i:03d}" for i in range(5, 9)}


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Testbed]:
    state_dir = tmp_path_factory.mktemp("observe-testbed")
    first = first_port_base("observe")
    testbed = Testbed.from_status(bring_up(state_dir, NODES, first, ["--gpus-per-node", str(GPUS)]), started_here=True)
    try:
        wait_until(lambda: "partition_prio" in testbed.run(["scontrol", "show", "config"]).stdout, 30,
                   message="PreemptType to take effect")
        yield testbed
    finally:
        run_testbed(["down", "--state-dir", str(state_dir)], timeout=180)


def _pools_yaml(user: str) -> str:
    return f"""\
pools:
  vision: {{nodes: "gpu[001-004]", owners: [vision]}}
  llm: {{nodes: "gpu[005-008]", owners: [llm]}}
accounts:
  vision: {{shares: 30, users: [{user}]}}
  llm:    {{shares: 70, users: [{user}]}}
"""


def _state(bed: Testbed, job_id: str) -> str:
    out = bed.run(["scontrol", "-o", "show", "job", job_id]).stdout
    fields = dict(f.split("=", 1) for f in out.split() if "=" in f)
    return fields.get("JobState", "GONE")


def _submit(bed: Testbed, cwd: Path, *args: str) -> str:
    return bed.run(["sbatch", "--parsable", "-o", "/dev/null", *args], check=True, cwd=cwd).stdout.strip().split(";")[0]


def _finished(bed: Testbed, job_id: str) -> bool:
    return _state(bed, job_id) in {"COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "GONE"}


def _hosts(bed: Testbed, nodelist: str) -> list[str]:
    return bed.run(["scontrol", "show", "hostnames", nodelist], check=True).stdout.split()


def _recompute(bed: Testbed, since: datetime, until: datetime) -> tuple[dict[str, dict[str, float]], str]:
    """An independent reader: GPUs from AllocTRES / NNodes, nodes from `scontrol show hostnames`."""
    fmt = "%Y-%m-%dT%H:%M:%S"
    raw = bed.run(["sacct", "-a", "-X", "-D", "-P", "-n", "-S", since.strftime(fmt), "-E", until.strftime(fmt),
                   "-o", "JobIDRaw,State,Account,NNodes,Start,End,NodeList,AllocTRES,Eligible"], check=True).stdout
    figures = {p: {"used": 0.0, "owner": 0.0, "lent": 0.0, "borrowed": 0.0, "lost": 0.0, "preempted": 0.0}
               for p in ("vision", "llm")}
    owners = {"vision": VISION, "llm": LLM}
    for line in raw.splitlines():
        job, state, account, nnodes, start, end, nodelist, tres, _eligible = line.split("|")
        gpus = next((int(t.split("=")[1]) for t in tres.split(",") if t.startswith("gres/gpu=")), 0)
        if start in {"Unknown", "None"} or not gpus:
            continue
        t0 = max(datetime.strptime(start, fmt), since)
        t1 = min(datetime.strptime(end, fmt) if end not in {"Unknown", "None"} else until, until)
        if t1 <= t0:
            continue
        per_node = gpus / int(nnodes) * (t1 - t0).total_seconds() / 3600
        preempted = set()
        for host in _hosts(bed, nodelist):
            pool = next(p for p, members in owners.items() if host in members)
            figures[pool]["used"] += per_node
            if account == pool:
                figures[pool]["owner"] += per_node
            else:
                figures[pool]["lent"] += per_node
                figures[account]["borrowed"] += per_node
                if state.startswith("PREEMPTED"):
                    preempted.add(pool)
            if state.split()[0] in {"PREEMPTED", "REQUEUED"}:
                figures[pool]["lost"] += per_node
        for pool in preempted:
            figures[pool]["preempted"] += 1
    return figures, raw


def test_pool_report_matches_raw_sacct_after_a_small_day(bed: Testbed, tmp_path: Path) -> None:
    spec = tmp_path / "pools.yaml"
    spec.write_text(_pools_yaml(getpass.getuser()))
    proc = bed.run(["gpupool", "pool", "apply", str(spec)], timeout=120)
    assert proc.returncode == 0, proc.stderr
    bed.cancel_all()
    since = datetime.now().replace(microsecond=0) - timedelta(seconds=1)

    own = _submit(bed, tmp_path, "-p", "vision", "-A", "vision", "-N2", "--gpus-per-node=4", "-w", "gpu[001-002]",
                  "--wrap", "sleep 3")
    borrower = _submit(bed, tmp_path, "-p", "scavenger", "-q", "scavenger", "-A", "llm", "-N4", "--gpus-per-node=4",
                       "-w", "gpu[001-004]", "--wrap", "sleep 600")
    wait_until(lambda: _state(bed, borrower) == "RUNNING", 90, message="borrower running")
    time.sleep(3)
    reclaim = _submit(bed, tmp_path, "-p", "vision", "-A", "vision", "-N4", "--gpus-per-node=4", "--wrap", "sleep 4")
    wait_until(lambda: _state(bed, reclaim) == "RUNNING", 90, message="owner job reclaiming its pool")
    llm_own = _submit(bed, tmp_path, "-p", "llm", "-A", "llm", "-N1", "--gpus-per-node=2", "--wrap", "sleep 3")
    wait_until(lambda: all(_finished(bed, j) for j in (own, reclaim, llm_own)), 120, message="jobs to finish")
    bed.cancel_all()
    time.sleep(1)
    until = datetime.now().replace(microsecond=0) + timedelta(seconds=1)
    # slurmdbd records job ends asynchronously: wait until sacct shows nothing still running.
    wait_until(lambda: "RUNNING" not in bed.run(["sacct", "-a", "-X", "-n", "-P", "-o", "State", "-S",
                                                 since.strftime("%Y-%m-%dT%H:%M:%S")]).stdout, 60,
               message="sacct to record every end")
    time.sleep(max(0.0, (until - datetime.now()).total_seconds()) + 0.5)

    proc = bed.run(["gpupool", "pool", "report", str(spec), "--since", since.isoformat(), "--until", until.isoformat(),
                    "--json"], timeout=120)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    expected, raw = _recompute(bed, since, until)
    pools = {p["name"]: p for p in doc["pools"]}
    hours = (until - since).total_seconds() / 3600
    for name in ("vision", "llm"):
        got = pools[name]
        want = expected[name]
        context = f"{name}: {got}\nraw sacct:\n{raw}"
        assert got["available_gpu_hours"] == pytest.approx(16 * hours, abs=1e-5), context
        assert got["used_gpu_hours"] == pytest.approx(want["used"], abs=1e-5), context
        assert got["owner_gpu_hours"] == pytest.approx(want["owner"], abs=1e-5), context
        assert got["lent_gpu_hours"] == pytest.approx(want["lent"], abs=1e-5), context
        assert got["borrowed_gpu_hours"] == pytest.approx(want["borrowed"], abs=1e-5), context
        assert got["lost_gpu_hours"] == pytest.approx(want["lost"], abs=1e-5), context
        assert got["jobs_preempted"] == want["preempted"], context
    # The script: llm borrowed vision's nodes, and vision reclaimed them once.
    assert pools["vision"]["lent_gpu_hours"] > 0 and pools["llm"]["borrowed_gpu_hours"] > 0, raw
    assert pools["vision"]["jobs_preempted"] == 1, raw
    assert pools["vision"]["owner_jobs_started"] >= 2
    accounts = {a["name"]: a for a in doc["accounts"]}
    assert accounts["vision"]["norm_shares"] == pytest.approx(0.3, abs=0.01)

    # status reads the free state from the same Slurm: all 8 nodes idle again, 4 GPUs each.
    bed.wait_all_idle(60)
    proc = bed.run(["gpupool", "status", "--shapes", "1,4,32", "--json"], timeout=120)
    assert proc.returncode == 0, proc.stderr
    status = json.loads(proc.stdout)
    assert status["free_gpus"] == NODES * GPUS
    assert status["gpus_per_node"] == GPUS  # K from Slurm's configured GPUs
    assert status["largest"]["anywhere"] == 32

    # The other views on the same Slurm: the per-job report, metrics and the HTML page.
    proc = bed.run(["gpupool", "jobs", "--report", own, "--json"], timeout=120)
    assert proc.returncode == 0, proc.stderr
    job = json.loads(proc.stdout)
    assert job["allocation"] == {"gpu001": 4, "gpu002": 4} and job["leaves"] == 1
    assert job["optimum"]["cost"]["pair_hops_sum"] == job["cost"]["pair_hops_sum"]

    proc = bed.run(["gpupool", "metrics", "--pools", str(spec), "--shapes", "4,32"],
                   timeout=120)
    assert proc.returncode == 0, proc.stderr
    from prometheus_client.parser import text_string_to_metric_families

    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(proc.stdout) for s in family.samples}
    assert samples[("gpupool_pool_capacity_gpus", (("pool", "vision"),))] == 16
    assert samples[("gpupool_pool_free_gpus", (("pool", "llm"),))] == 16
    assert samples[("gpupool_free_gpus", ())] == NODES * GPUS
    assert all(samples[("gpupool_collector_up", (("source", s),))] == 1 for s in ("fragmentation", "pools", "audit"))

    page = tmp_path / "report.html"
    proc = bed.run(["gpupool", "report", "--html", str(page), "--pools", str(spec),
                    "--since", since.isoformat(), "--until", until.isoformat()], timeout=120)
    assert proc.returncode == 0, proc.stderr
    html = page.read_text()
    assert f'data-lent="{pools["vision"]["lent_gpu_hours"]:.3f}"' in html and 'class="leaf"' in html
