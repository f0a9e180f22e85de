"""The local testbed (scripts/testbed): Slurm sees the gpupool fabric, jobs run, ibsim serves it."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gpupool.fabric.model import load_fabric
from testbed.daemons import marked_processes
from tests.integration.conftest import (
    TESTBED_SCRIPT,
    Testbed,
    first_port_base,
    pick_port_base,
    run_testbed,
    wait_until,
)

pytestmark = pytest.mark.integration


def expand(testbed: Testbed, hostlist: str) -> list[str]:
    return testbed.run(["scontrol", "show", "hostnames", hostlist], check=True).stdout.split()


def fabric_leaves(path: Path) -> dict[str, set[str]]:
    """Leaf switch name -> hosts cabled to it, straight from the gpupool fabric file."""
    fabric = load_fabric(str(path))
    leaves: dict[str, set[str]] = {}
    for index, neighbours in enumerate(fabric.neighbours()):
        node = fabric.nodes[index]
        if node.type != "switch":
            continue
        hosts = {fabric.nodes[j].host for j, _ in neighbours if fabric.nodes[j].host}
        if hosts:
            leaves[node.name] = {h for h in hosts if h}
    return leaves


def slurm_topology(testbed: Testbed) -> list[dict[str, str]]:
    out = testbed.run(["scontrol", "show", "topology"], check=True).stdout
    return [dict(tok.split("=", 1) for tok in line.split() if "=" in tok)
            for line in out.splitlines() if line.startswith("SwitchName=")]


def submit(testbed: Testbed, *args: str) -> str:
    proc = testbed.run(["sbatch", "--parsable", *args], check=True)
    return proc.stdout.strip().split(";")[0]


def job_state(testbed: Testbed, job_id: str) -> str:
    proc = testbed.run(["squeue", "-h", "-j", job_id, "-o", "%T"])
    return proc.stdout.strip()


def ibnetdiscover_hosts(testbed: Testbed) -> set[str]:
    """First word of every CA node description ibnetdiscover finds through ibsim."""
    proc = testbed.run(["ibsim-run", "ibnetdiscover"], timeout=120, check=True)
    return {m.group(1) for m in re.finditer(r'^Ca\s+\d+\s+"[^"]+"\s+#\s+"(\S+)', proc.stdout, re.M)}


def pid_files(state_dir: Path) -> dict[str, int]:
    return {p.stem: int(p.read_text().split()[0]) for p in (state_dir / "run").glob("*.pid")
            if not p.stem.endswith(".daemon")}


def alive(pid: int) -> bool:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return text[text.rindex(")") + 2] != "Z"


def test_every_slurm_program_is_the_release_asked_for_and_no_mount_leaks(testbed: Testbed) -> None:
    release = os.environ.get("GPUPOOL_TESTBED_SLURM") or "22.05"
    for program in ("sbatch", "squeue", "scontrol", "sinfo", "sacctmgr", "sshare"):
        out = testbed.run([program, "--version"], check=True).stdout
        assert re.fullmatch(rf"slurm(-wlm)? {re.escape(release)}\.\d+\n", out), (program, out)
    # The daemons' versions, from their own logs: slurmctld and every slurmd started this release.
    ctld_log = (testbed.state_dir / "log" / "slurmctld.log").read_text()
    assert re.search(rf"slurmctld version {re.escape(release)}\.\d+ started", ctld_log)
    # Chroot releases mount /proc, /dev, /sys and binds only in the daemons' own mount namespaces.
    mounts = Path("/proc/self/mounts").read_text()
    assert "gpupool-testbed" not in mounts and os.sep + "chroot-" not in mounts


def test_sinfo_shows_every_fabric_host_idle_with_gpus(testbed: Testbed) -> None:
    testbed.cancel_all()
    testbed.wait_all_idle()
    states = testbed.node_states()
    assert sorted(states) == sorted(load_fabric(str(testbed.fabric_path)).host_names())
    assert len(states) == len(testbed.nodes)
    assert {gres for _, gres in states.values()} == {f"gpu:{testbed.gpus_per_node}"}


def test_slurm_topology_matches_the_gpupool_fabric(testbed: Testbed) -> None:
    switches = slurm_topology(testbed)
    slurm_leaves = {s["SwitchName"]: set(expand(testbed, s["Nodes"]))
                    for s in switches if s.get("Level") == "0"}
    assert slurm_leaves == fabric_leaves(testbed.fabric_path)
    # One switch spans every host: a job may be placed anywhere in the tree.
    widest = max(len(expand(testbed, s["Nodes"])) for s in switches if "Nodes" in s)
    assert widest == len(testbed.nodes)


def test_two_node_gpu_job_runs_with_its_gres(testbed: Testbed) -> None:
    testbed.cancel_all()
    job_id = submit(testbed, "--gres=gpu:8", "-N2", "--wrap", "sleep 30")
    try:
        wait_until(lambda: job_state(testbed, job_id) == "RUNNING", 60, message=f"job {job_id} running")
        detail = testbed.run(["scontrol", "show", "job", "-d", job_id], check=True).stdout
        assert "NumNodes=2 " in detail
        assert "gres/gpu=16" in detail
        nodelist = re.search(r"\bNodeList=(\S+)", detail)
        assert nodelist and len(expand(testbed, nodelist.group(1))) == 2
        # `-d` lists per-node GRES indices (nodes with the same allocation share a line).
        with_all_gpus = [name for nodes in re.findall(r"^\s+Nodes=(\S+) .*GRES=gpu:8\(IDX:0-7\)",
                                                      detail, re.M)
                         for name in expand(testbed, nodes)]
        assert sorted(with_all_gpus) == expand(testbed, nodelist.group(1))
    finally:
        testbed.cancel_all()


def test_slurmdbd_accounting_knows_the_cluster_and_root(testbed: Testbed) -> None:
    clusters = testbed.run(["sacctmgr", "-n", "-P", "show", "cluster", "format=cluster,controlport"],
                           check=True).stdout.split()
    assert f"gpupool|{testbed.port_base}" in clusters
    assoc = testbed.run(["sacctmgr", "-n", "-P", "show", "assoc", "where", "user=root",
                         "format=account,user"], check=True).stdout.split()
    assert "default|root" in assoc
    shares = testbed.run(["sshare", "-n", "-P", "-a", "-o", "Account,User"], check=True).stdout
    assert "default|root" in shares.split()


def test_ibnetdiscover_through_ibsim_shows_every_host(testbed: Testbed) -> None:
    assert ibnetdiscover_hosts(testbed) == set(testbed.nodes)


def test_ibsim_console_unlink_and_relink_a_host(testbed: Testbed) -> None:
    net = (testbed.state_dir / "ibsim.net").read_text()
    cas = re.findall(r'^(?:Ca|Hca)\s+\d+\s+"([^"]+)"\s+#\s+"(\S+)', net, re.M)
    node_id, host = cas[-1]  # not the first record: ibsim attaches clients to the first port
    try:
        testbed.ibsim_console(f'Unlink "{node_id}"')
        assert host not in ibnetdiscover_hosts(testbed)
    finally:
        testbed.ibsim_console(f'ReLink "{node_id}"')
        testbed.run_sm()
    assert host in ibnetdiscover_hosts(testbed)


def test_env_lines_point_a_clean_shell_at_the_testbed(testbed: Testbed) -> None:
    clean = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/")}
    script = (f'eval "$({sys.executable} {TESTBED_SCRIPT} env --state-dir {testbed.state_dir})" && '
              'sinfo -h -o %D && echo "$GPUPOOL_FABRIC" && command -v gpupool')
    proc = subprocess.run(["bash", "-c", script], env=clean, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    count, fabric, gpupool = proc.stdout.split()
    assert int(count) == len(testbed.nodes)
    assert Path(fabric) == testbed.fabric_path
    assert Path(gpupool).parent == Path(sys.executable).parent


def test_a_release_that_cannot_be_built_fails_loudly_and_leaves_nothing(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    # Nothing listens on port 9 of loopback: debootstrap cannot fetch the suite.
    env = {"GPUPOOL_TESTBED_CACHE": str(cache), "GPUPOOL_TESTBED_MIRROR": "http://127.0.0.1:9/debian"}
    proc = run_testbed(["up", "--state-dir", str(tmp_path / "tb"), "--slurm", "24.11", "--nodes", "2",
                        "--port-base", "47000"], env=env, timeout=300)
    assert proc.returncode == 3, proc.stderr
    assert "testbed: error: debootstrap trixie failed" in proc.stderr
    assert [p.name for p in cache.iterdir() if not p.name.endswith((".lock", ".build.log"))] == []
    assert not list((tmp_path / "tb").glob("run/*.pid"))  # no daemon was started


def test_up_refuses_a_taken_port_quickly(tmp_path: Path) -> None:
    # Above this session's other testbeds (scripts/test --parallel gives each release 6000 ports).
    base = pick_port_base(first_port_base("testbed-cli"), 4)
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", base))
        blocker.listen()
        started = time.monotonic()
        proc = run_testbed(["up", "--state-dir", str(tmp_path / "tb"), "--port-base", str(base),
                            "--nodes", "4"], timeout=120)
    assert proc.returncode == 3
    assert proc.stderr.startswith(f"testbed: error: port {base} (slurmctld) on 127.0.0.1 is in use")
    assert time.monotonic() - started < 30
    assert not list((tmp_path / "tb" / "run").glob("*.pid"))


@pytest.mark.slow
def test_lifecycle_up_twice_repair_and_down_leave_nothing(make_testbed) -> None:  # type: ignore[no-untyped-def]
    bed: Testbed = make_testbed(4)
    job_id = submit(bed, "--gres=gpu:1", "-N1", "--wrap", "sleep 300")
    wait_until(lambda: job_state(bed, job_id) == "RUNNING", 60, message="job running")

    again = bed.testbed("up")
    assert again.returncode == 0 and "already running" in again.stderr
    other = bed.testbed("up", "--nodes", "8")
    assert other.returncode == 1 and "other settings" in other.stderr

    # A dead slurmd makes status fail; `up` starts just that one again.
    victim = bed.nodes[-1]
    os.kill(pid_files(bed.state_dir)[f"slurmd-{victim}"], signal.SIGKILL)
    wait_until(lambda: bed.testbed("status").returncode == 1, 10, message="status to notice")
    assert victim in bed.testbed("status").stdout
    repaired = bed.testbed("up")
    assert repaired.returncode == 0, repaired.stderr
    assert bed.testbed("status").returncode == 0

    daemons = pid_files(bed.state_dir)
    assert {"munged", "mariadb", "slurmdbd", "slurmctld", "ibsim"} <= set(daemons)
    assert set(daemons.values()) <= marked_processes(bed.state_dir)

    def job_sleeps() -> list[int]:
        found = []
        for pid in marked_processes(bed.state_dir):
            try:
                if Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:2] == [b"sleep", b"300"]:
                    found.append(pid)
            except OSError:
                continue
        return found

    # The job's own processes (forked by slurmstepd, not by us) count as ours too. RUNNING in squeue
    # comes before the step's processes exist (a loaded CI run once looked too early): wait for them.
    wait_until(lambda: len(job_sleeps()) == 1, 60, message="the job's sleep among the testbed's processes")
    ours = marked_processes(bed.state_dir)

    down = bed.testbed("down")
    assert down.returncode == 0, down.stderr
    assert [pid for pid in ours if alive(pid)] == []
    assert marked_processes(bed.state_dir) == set()
    assert bed.testbed("status").returncode == 1
