"""Both Slurm backends on the same live Slurm 25.11 cluster must return the same models.

Runs only with `-m slurm2511` (needs scripts/build-slurm-25.11's Slurm 25.11.7 + pyslurm 25.11.2);
when those builds are missing the tests FAIL, never skip. The cluster (tests/integration/slurm2511.py)
has typed (n1-n4 h100:4), untyped (n5-n6 gpu:4) and two-type (n7-n8 a100:2 + h100:2) nodes; GPUs
are not an accounted TRES (no slurmdbd), so a backend reading node TRES would see every GPU free. The scenario holds GPUs in RUNNING, SUSPENDED and COMPLETING jobs, an array, a
`--gpus=N` job, a held `--switches` job; expected GPU use per node is written out by hand below.
Port base: the first free one from $GPUPOOL_TESTBED_PYTEST_PORT_BASE (default 46000), in steps of 20.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from gpupool.errors import EnvError, InputError
from gpupool.slurm.client import make_client
from gpupool.slurm.port import SlurmClient
from tests.integration.slurm2511 import Cluster, built, prefixes

pytestmark = pytest.mark.slurm2511
BACKENDS = ("commands", "pyslurm")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    missing = built()
    if missing:
        pytest.fail(missing)
    prefix, pydir = prefixes()
    port = _free_port_base(int(os.environ.get("GPUPOOL_TESTBED_PYTEST_PORT_BASE", "46000")))
    # A short root: unix socket paths must stay under 108 bytes.
    root = Path(tmp_path_factory.mktemp("s2511"))
    c = Cluster(root=root, port_base=port, prefix=prefix)
    patch = pytest.MonkeyPatch()
    for key, value in c.env().items():
        patch.setenv(key, value)
    patch.syspath_prepend(str(pydir))  # the pyslurm child is forked from here and imports it
    try:
        c.start()
        yield c
    finally:
        c.stop()
        patch.undo()


def _free_port_base(first: int, span: int = 20) -> int:
    """First base from `first` (step `span`) whose ports base..base+span-1 are free: a testbed just
    stopped on the same base may still hold them."""
    for base in range(first, first + 50 * span, span):
        if all(_port_free(port) for port in range(base, base + span)):
            return base
    pytest.fail(f"no free port base at or above {first}")


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT leftovers are fine
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def sbatch(cluster: Cluster, *args: str) -> str:
    proc = subprocess.run(["sbatch", "--parsable", f"--output={cluster.root}/jobs/%j.out", *args,
                           "--wrap", "sleep 600"], capture_output=True, text=True, timeout=60, check=True)
    return proc.stdout.strip().split(";")[0]


def squeue_states() -> dict[str, str]:
    out = subprocess.run(["squeue", "-h", "-o", "%i %T"], capture_output=True, text=True, timeout=30, check=True)
    return dict(line.split() for line in out.stdout.splitlines() if line.strip())


def wait_states(wanted: dict[str, str], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    states: dict[str, str] = {}
    while time.monotonic() < deadline:
        states = squeue_states()
        if all(states.get(k) == v for k, v in wanted.items()):
            return
        time.sleep(0.5)
    pytest.fail(f"jobs did not reach {wanted}: {states}")


@pytest.fixture(scope="module")
def scenario(cluster: Cluster) -> dict[str, str]:
    ids = {
        "typed": sbatch(cluster, "--gres=gpu:h100:2", "-w", "n1"),
        "per_node": sbatch(cluster, "-N2", "--gpus-per-node=3", "-w", "n[2-3]"),
        "gpus_total": sbatch(cluster, "-N2", "--gpus=5", "-w", "n[5-6]"),
        "two_types": sbatch(cluster, "--gres=gpu:3", "-w", "n7"),
        "suspended": sbatch(cluster, "--gres=gpu:1", "-w", "n4"),
        "completing": sbatch(cluster, "--gres=gpu:2", "-w", "n4"),
        "array": sbatch(cluster, "--array=1-3", "--gres=gpu:1", "-w", "n8"),
        "held": sbatch(cluster, "--hold", "-N2", "--gpus=6", "--switches=1@5:00"),
    }
    array = ids["array"]
    running = {v: "RUNNING" for k, v in ids.items() if k not in ("array", "held")}
    running.update({f"{array}_{t}": "RUNNING" for t in (1, 2, 3)})
    wait_states(running)
    subprocess.run(["scontrol", "suspend", ids["suspended"]], check=True, timeout=30)
    (cluster.root / "jobs" / f"slow-{ids['completing']}").touch()  # its Epilog sleeps: COMPLETING
    subprocess.run(["scancel", ids["completing"]], check=True, timeout=30)
    wait_states({ids["suspended"]: "SUSPENDED", ids["completing"]: "COMPLETING", ids["held"]: "PENDING"})
    return ids


def clients() -> dict[str, SlurmClient]:
    return {name: make_client(timeout=10, backend=name) for name in BACKENDS}


def test_pyslurm_backend_is_usable_and_auto_picks_it(cluster: Cluster) -> None:
    client = make_client(timeout=10, backend="pyslurm")
    assert getattr(client, "name", None) == "pyslurm"
    assert getattr(make_client(timeout=10), "name", None) == "pyslurm"


def test_free_gpus_per_node_agree_and_match_the_scenario(scenario: dict[str, str]) -> None:
    by_backend = {name: {n.name: n for n in c.node_states()} for name, c in clients().items()}
    used = {name: {k: v.gpus_used for k, v in nodes.items()} for name, nodes in by_backend.items()}
    # By hand: n1 h100:2; n2, n3 3 each; n4 1 (suspended; the COMPLETING job's 2 are released when
    # it ends, before its Epilog finishes); n5 + n6 5 (--gpus=5); n7 3 of a100:2 + h100:2; n8 one
    # per array task.
    for name in BACKENDS:
        u = used[name]
        assert (u["n1"], u["n2"], u["n3"], u["n4"], u["n7"], u["n8"]) == (2, 3, 3, 1, 3, 3), (name, u)
        assert u["n5"] + u["n6"] == 5 and 1 <= u["n5"] <= 4 and 1 <= u["n6"] <= 4, (name, u)
        assert {k: v.gpus_total for k, v in by_backend[name].items()} == {f"n{i}": 4 for i in range(1, 9)}
        assert by_backend[name]["n7"].gpu_types == ("a100", "h100")
        assert by_backend[name]["n5"].gpu_types == ()
    commands, pyslurm = by_backend["commands"], by_backend["pyslurm"]
    assert sorted(commands) == sorted(pyslurm)
    for node in commands:
        assert asdict(commands[node]) == asdict(pyslurm[node]), node


def _comparable(job: Any) -> dict[str, Any]:
    doc = asdict(job)
    # --switches: 25.11's squeue --json has required_switches (0 = none) but no wait4switch, so the
    # commands say "1@0s" / "0@0s" where pyslurm says "1@300s" / "": compare the switch count only.
    count = doc["request"]["switches"].split("@")[0]
    doc["request"]["switches"] = int(count) if count else 0
    return doc


def test_jobs_agree(scenario: dict[str, str]) -> None:
    listed = {name: {j.job_id: j for j in c.jobs(user=None)} for name, c in clients().items()}
    array = scenario["array"]
    expected_ids = {v for k, v in scenario.items() if k != "array"} | {f"{array}_{t}" for t in (1, 2, 3)}
    for name in BACKENDS:
        assert expected_ids <= set(listed[name]), (name, sorted(listed[name]))
        jobs = listed[name]
        assert jobs[scenario["suspended"]].state == "SUSPENDED" and jobs[scenario["suspended"]].allocation == {"n4": 1}
        assert jobs[scenario["completing"]].state == "COMPLETING"
        assert jobs[scenario["gpus_total"]].request.gpus_total == 5
        held = jobs[scenario["held"]]
        assert held.state == "PENDING" and held.request.gpus_total == 6 and held.request.switches.startswith("1@")
        assert sum(jobs[f"{array}_{t}"].allocation.get("n8", 0) for t in (1, 2, 3)) == 3
    for job_id in sorted(expected_ids):
        assert _comparable(listed["commands"][job_id]) == _comparable(listed["pyslurm"][job_id]), job_id


def test_completing_job_agrees(scenario: dict[str, str]) -> None:
    # squeue --json lists ["CANCELLED", "COMPLETING"]; Slurm (scontrol, squeue %T, pyslurm) names
    # it COMPLETING, and it keeps its node while its Epilog runs.
    listed = {name: {j.job_id: j for j in c.jobs(user=None)} for name, c in clients().items()}
    job_id = scenario["completing"]
    for name in BACKENDS:
        job = listed[name][job_id]
        assert (job.state, job.nodes, job.allocation) == ("COMPLETING", ("n4",), {"n4": 2}), name
    assert _comparable(listed["commands"][job_id]) == _comparable(listed["pyslurm"][job_id])


@pytest.mark.parametrize("backend", BACKENDS)
def test_job_lookup_and_unknown_ids(scenario: dict[str, str], backend: str) -> None:
    client = make_client(timeout=10, backend=backend)
    for key in ("typed", "gpus_total", "two_types", "held"):
        assert client.job(scenario[key]).job_id == scenario[key]
    array = scenario["array"]
    task_2 = client.job(f"{array}_2")
    assert task_2.job_id == f"{array}_2" and task_2.allocation == {"n8": 1}
    # The array's own id is the task that kept it (the last started), as squeue lists it.
    assert client.job(array).job_id in {f"{array}_{t}" for t in (1, 2, 3)}
    for unknown in ("999999", f"{scenario['array']}_9"):
        with pytest.raises(InputError, match="unknown job id"):
            client.job(unknown)


def test_job_detail_agrees(scenario: dict[str, str]) -> None:
    both = clients()
    array = scenario["array"]
    asked = [scenario[k] for k in ("typed", "per_node", "gpus_total", "two_types", "suspended", "completing",
                                   "held")]
    for job_id in [*asked, array, f"{array}_1", f"{array}_2", f"{array}_3"]:
        assert _comparable(both["commands"].job(job_id)) == _comparable(both["pyslurm"].job(job_id)), job_id


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_hung_slurmctld_is_exit_3_within_the_timeout(cluster: Cluster, scenario: dict[str, str],
                                                        backend: str) -> None:
    client = make_client(timeout=10, backend=backend)
    client.jobs()  # started (pyslurm: child forked and imported) while slurmctld answers
    # GPUPOOL_SLURM_TIMEOUT=3 as the client sees it (the pyslurm child holds its own copy).
    client.timeout = 3  # type: ignore[attr-defined]
    if backend == "pyslurm":
        client.child.timeout = 3  # type: ignore[attr-defined]
    ctld = cluster.procs["slurmctld"]
    os.kill(ctld.pid, signal.SIGSTOP)
    try:
        start = time.monotonic()
        with pytest.raises(EnvError):
            client.node_states()
        assert time.monotonic() - start < 6
    finally:
        os.kill(ctld.pid, signal.SIGCONT)
