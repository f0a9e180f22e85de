"""slurm-plugins/ under a real slurmctld/slurmd testbed (scripts/testbed), with a fake NVML.

The Prolog/Epilog/TaskProlog are the scripts from slurm-plugins/, wrapped only to point them at
the fake libnvidia-ml.so (a per-node scenario) and a test config; job_submit.lua is generated
from a pools file. Runs its own small testbed (4 nodes) in a private state directory.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gpupool.pools.lua import render_job_submit_lua
from gpupool.pools.schema import parse_pools_text
from tests.fakenvml.fakenvml_build import build_fake_nvml, write_scenario
from tests.fakenvml.fakesysfs import dgx_like

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration

TESTBED = REPO / "scripts" / "testbed"
DGX_BUS_IDS = ["0000:18:00.0", "0000:19:00.0", "0000:2a:00.0", "0000:2b:00.0",
               "0000:98:00.0", "0000:99:00.0", "0000:aa:00.0", "0000:ab:00.0"]
POOLS = ("pools:\n  vision: {nodes: 'gpu[001-002]', owners: [vision]}\n  gpu: {nodes: 'gpu[001-004]'}\n"
         "accounts:\n  vision: {shares: 1}\n")

WRAPPER = """#!/bin/bash
# Test wrapper: point the real slurm-plugins script at the fake NVML and the test config.
export LD_LIBRARY_PATH={lib}
scenario={dir}/scenario-{kind}-$SLURMD_NODENAME.txt
[ -r "$scenario" ] || scenario={dir}/healthy.txt
export FAKENVML_CONFIG=$scenario
export GPUPOOL={gpupool} GPUPOOL_CONFIG={dir}/config.toml SLURM_CONF={slurm_conf}
export GPUPOOL_ENV_FILE={dir}/node-$SLURMD_NODENAME.env
{run}
"""


class Bed:
    def __init__(self, directory: Path, state: Path, env: dict[str, str]) -> None:
        self.directory = directory
        self.state = state
        self.env = env

    def run(self, *argv: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(argv), env=self.env, capture_output=True, text=True,
                              timeout=timeout, check=check)

    def sbatch(self, *args: str) -> str:
        return self.run("sbatch", "--parsable", "-o", str(self.directory / "job-%j.out"), *args).stdout.strip()

    def job_field(self, job: str, name: str) -> str:
        text = self.run("scontrol", "show", "job", job).stdout
        match = re.search(rf"\b{name}=(\S*)", text)
        return match.group(1) if match else ""

    def node_state(self, node: str) -> tuple[str, str]:
        out = self.run("sinfo", "-h", "-N", "-n", node, "-o", "%T|%E").stdout.splitlines()[0]
        state, _, reason = out.partition("|")
        return state, reason


def wait_until(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout:g} s waiting for {what}")


@pytest.fixture(scope="module")
def bed() -> Iterator[Bed]:
    if not TESTBED.exists() or shutil.which("slurmctld", path="/usr/sbin:/usr/bin") is None:
        pytest.fail("scripts/testbed or Slurm daemons missing (scripts/bootstrap installs them)")
    directory = Path(tempfile.mkdtemp(prefix="gpn-", dir="/tmp"))
    state = directory / "tb"
    library = build_fake_nvml(directory / "lib")
    write_scenario(directory / "healthy.txt", {"count": 8})
    write_scenario(directory / "scenario-prolog-gpu003.txt", {"count": 8, "gpu.*.ecc_uncorrected": 2})
    write_scenario(directory / "scenario-epilog-gpu004.txt", {"count": 8, "gpu.*.procs": 4242})
    # gpu002's GPUs sit where the fake sysfs (DGX-like) puts them, for the TaskProlog.
    write_scenario(directory / "scenario-task-gpu002.txt",
                   {"count": 8, **{f"gpu.{i}.busid": bus for i, bus in enumerate(DGX_BUS_IDS)}})
    dgx_like(directory / "sys")
    (directory / "kernel.log").write_text("")
    (directory / "config.toml").write_text(
        f'[node]\nhca_source = "none"\nsysfs_root = "{directory / "sys"}"\n'
        f'log_file = "{directory / "node.log"}"\nstate_dir = "{directory / "state"}"\n'
        f'kernel_log = "{directory / "kernel.log"}"\n')
    gpupool = REPO / ".venv" / "bin" / "gpupool"
    slurm_conf = state / "etc" / "slurm.conf"
    for kind, script in (("prolog", "prolog.d/50-gpupool-node-check"),
                         ("epilog", "epilog.d/50-gpupool-node-check"),
                         ("task", "task-prolog/gpupool-task-prolog")):
        plugin = REPO / "slurm-plugins" / script
        if kind == "task":
            run = f"exec {plugin}"
        else:  # keep what the plugin printed, for the assertions
            run = (f"{plugin} > {directory}/{kind}-out-$SLURM_JOB_ID.txt 2>&1\nrc=$?\n"
                   f"echo rc=$rc >> {directory}/{kind}-out-$SLURM_JOB_ID.txt\nexit $rc")
        wrapper = directory / f"{kind}-wrapper"
        wrapper.write_text(WRAPPER.format(lib=library.parent, dir=directory, kind=kind, gpupool=gpupool,
                                          slurm_conf=slurm_conf, run=run))
        wrapper.chmod(0o755)
    (directory / "job_submit.lua").write_text(
        render_job_submit_lua(parse_pools_text(POOLS), hosts_per_leaf=2, switch_wait_seconds=120,
                              switch_wait_share=0.25))
    from conftest import first_port_base, pick_port_base  # honour GPUPOOL_TESTBED_PYTEST_PORT_BASE

    base = pick_port_base(first_port_base("node"), 5)
    up = subprocess.run(
        [sys.executable, str(TESTBED), "up", "--state-dir", str(state), "--port-base", str(base),
         "--nodes", "5", "--gpus-per-node", "8", "--prolog", str(directory / "prolog-wrapper"),
         "--epilog", str(directory / "epilog-wrapper"), "--task-prolog", str(directory / "task-wrapper"),
         "--job-submit-lua", str(directory / "job_submit.lua")],
        capture_output=True, text=True, timeout=600)
    try:
        assert up.returncode == 0, f"testbed up failed:\n{up.stdout}\n{up.stderr}"
        exports = subprocess.run([sys.executable, str(TESTBED), "env", "--state-dir", str(state)],
                                 capture_output=True, text=True, timeout=60, check=True).stdout
        env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
        for line in exports.splitlines():
            key, _, value = line.removeprefix("export ").partition("=")
            env[key] = value.strip("'")
        testbed = Bed(directory, state, env)
        testbed.run("scontrol", "create", "partitionname=vision", "nodes=gpu[001-002]", "state=up")
        testbed.run("sacctmgr", "-i", "add", "account", "vision", check=False)
        testbed.run("sacctmgr", "-i", "add", "user", "root", "account=vision", check=False)
        yield testbed
    finally:
        subprocess.run([sys.executable, str(TESTBED), "down", "--state-dir", str(state)],
                       capture_output=True, text=True, timeout=300)
        shutil.rmtree(directory, ignore_errors=True)


def test_healthy_node_runs_the_job(bed: Bed) -> None:
    job = bed.sbatch("-w", "gpu001", "--gres=gpu:2", "--wait", "--wrap", "echo ran on $SLURM_JOB_GPUS")
    assert (bed.directory / f"job-{job}.out").read_text().strip() == "ran on 0,1"
    assert (bed.directory / f"prolog-out-{job}.txt").read_text().splitlines() == ["OK: node healthy", "rc=0"]
    assert bed.node_state("gpu001")[0] in ("idle", "mixed", "completing")  # completing: Epilog still running


def test_critical_prolog_drains_node_and_requeues_job(bed: Bed) -> None:
    job = bed.sbatch("-w", "gpu003", "--gres=gpu:1", "--wrap", "echo must not run")
    wait_until(lambda: bed.node_state("gpu003")[0].startswith("drain"), 60, "gpu003 to drain")
    state, reason = bed.node_state("gpu003")
    assert reason.startswith("gpupool: gpu0 ecc-uncorrected: 2 volatile uncorrectable ECC error(s)")
    wait_until(lambda: bed.job_field(job, "JobState") == "PENDING"
               and int(bed.job_field(job, "Restarts") or 0) >= 1, 60, f"job {job} to be requeued")
    # Held by default; SchedulerParameters=nohold_on_prolog_fail would let it run elsewhere.
    assert "requeued" in bed.job_field(job, "Reason")
    assert not (bed.directory / f"job-{job}.out").exists() or \
        "must not run" not in (bed.directory / f"job-{job}.out").read_text()
    assert "status=CRITICAL" in (bed.directory / "node.log").read_text()
    bed.run("scancel", job)


def test_epilog_drains_node_with_processes_left_behind(bed: Bed) -> None:
    job = bed.sbatch("-w", "gpu004", "--gres=gpu:1", "--wait", "--wrap", "echo done")
    assert (bed.directory / f"job-{job}.out").read_text().strip() == "done"
    wait_until(lambda: bed.node_state("gpu004")[0].startswith("drain"), 60, "gpu004 to drain")
    assert bed.node_state("gpu004")[1] == \
        "gpupool: gpu0 leftover-processes: compute process(es) 4242 left behind after the job"


def test_task_prolog_exports_the_nearest_hca(bed: Bed) -> None:
    job = bed.sbatch("-w", "gpu002", "--gres=gpu:1", "--wait", "--wrap",
                     'echo "$SLURM_JOB_GPUS $NCCL_IB_HCA $GPUPOOL_GPU_HCA"')
    gpu, hca, pairs = (bed.directory / f"job-{job}.out").read_text().split()
    assert hca == f"=mlx5_{int(gpu) // 2}:1"
    assert pairs == f"{gpu}:mlx5_{int(gpu) // 2}"


def test_job_submit_lua_routes_and_rejects(bed: Bed) -> None:
    owned = bed.sbatch("-A", "vision", "--gres=gpu:1", "--hold", "--wrap", "true")
    assert bed.job_field(owned, "Partition") == "vision"
    borrowed = bed.sbatch("--gpus=4", "--hold", "--wrap", "true")
    assert bed.job_field(borrowed, "Partition") == "vision,gpu"
    wide = bed.sbatch("-N", "3", "--gres=gpu:8", "--hold", "--wrap", "true")
    assert bed.job_field(wide, "Partition") == "gpu"  # vision has only 2 nodes
    assert bed.job_field(wide, "Switches") == "2@00:02:00"  # no --time: the fixed wait
    timed = bed.sbatch("-N", "3", "--gres=gpu:8", "-t", "1:00:00", "--hold", "--wrap", "true")
    assert bed.job_field(timed, "Switches") == "2@00:15:00"  # 25% of its hour (max_switch_wait allows it)
    chosen = bed.sbatch("-N", "3", "--switches=1", "--gres=gpu:8", "--hold", "--wrap", "true")
    assert bed.job_field(chosen, "Switches").startswith("1@")
    cpu_only = bed.sbatch("--hold", "--wrap", "true")
    assert bed.job_field(cpu_only, "Partition") == "gpu"
    rejected = bed.run("sbatch", "--gres=gpu:16", "--wrap", "true", check=False)
    assert rejected.returncode != 0
    assert "gpupool: no GPU pool can ever hold this request (16 GPUs per node)" in rejected.stderr
    too_wide = bed.run("sbatch", "-p", "vision", "-N", "3", "--gres=gpu:1", "--wrap", "true", check=False)
    assert too_wide.returncode != 0
    assert "can never run in partition vision: 3 nodes, vision has 2" in too_wide.stderr
    bed.run("scancel", owned, borrowed, wide, timed, chosen, cpu_only)


BROKEN_NODE_ENV = {
    "typo": 'GPUPOOL_CHECK_OPTIONS="--drain --drian"\n',
    "garbage": "this is ( not shell\n",
    "exits": "exit 1\n",
    "missing": "GPUPOOL=/nonexistent/bin/gpupool\n",
    "crash": "GPUPOOL={dir}/crashing-gpupool\n",
    "hang": "GPUPOOL={dir}/hanging-gpupool\nGPUPOOL_HARD_TIMEOUT=2\n",
}
BROKEN_LOG = {"typo": "node check could not run (exit 3)", "garbage": "node-gpu005.env fails (exit 2); ignored",
              "exits": "node-gpu005.env fails (exit 1); ignored", "missing": "gpupool not found at /nonexistent/bin/gpupool",
              "crash": "node check could not run (exit 1)", "hang": "node check killed after 2s"}


@pytest.mark.parametrize("case", list(BROKEN_NODE_ENV))
def test_broken_node_env_leaves_node_up_and_job_running(bed: Bed, case: str) -> None:
    crashing = bed.directory / "crashing-gpupool"
    crashing.write_text("#!/bin/sh\necho 'Traceback (most recent call last):' >&2\nexit 1\n")
    hanging = bed.directory / "hanging-gpupool"
    hanging.write_text("#!/bin/sh\nexec sleep 60\n")
    for stub in (crashing, hanging):
        stub.chmod(0o755)
    (bed.directory / "node-gpu005.env").write_text(BROKEN_NODE_ENV[case].format(dir=bed.directory))
    try:
        job = bed.sbatch("-w", "gpu005", "--gres=gpu:1", "--wait", "--wrap", "echo ran")
    finally:
        (bed.directory / "node-gpu005.env").unlink()
    assert (bed.directory / f"job-{job}.out").read_text().strip() == "ran"
    prolog = (bed.directory / f"prolog-out-{job}.txt").read_text()
    log_line = next(line for line in prolog.splitlines() if line.startswith("gpupool-prolog: "))
    assert BROKEN_LOG[case] in log_line and prolog.rstrip().endswith("rc=0")
    state, reason = bed.node_state("gpu005")
    assert state in ("idle", "mixed", "completing"), (state, reason)
