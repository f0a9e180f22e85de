"""Both Slurm backends on the same live Slurm 25.11 cluster must return the same models.

Runs only with `-m slurm2511` (needs scripts/build-slurm-25.11's Slurm 25.11.7 + pyslurm 25.11.2);
when those builds are missing the tests FAIL, never skip. The cluster (tests/support/slurm2511.py)
has typed (n1-n4 h100:4), untyped (n5-n6 gpu:4) and two-type (n7-n8 a100:2 + h100:2) nodes; GPUs
are not an accounted TRES (no slurmdbd), so a backend reading node TRES would see every GPU free. The scenario holds GPUs in RUNNING, SUSPENDED and COMPLETING jobs, an array, a
`--gpus=N` job, a held `--switches` job; expected GPU use per node is written out by hand below.
The CLI then runs on that same state with GPUPOOL_SLURM_BACKEND=commands and =pyslurm: `jobs`,
`plan`, `status`, `explain` and `submit --json` must print the same documents (up to the backend's
name, the timings and a submit's job id and token). About 1 min on two cores (scripts/test --slurm 25.11).
Port base: the first free one from $GPUPOOL_TESTBED_PYTEST_PORT_BASE (default 46000), in steps of 20.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from gpupool.errors import EnvError, InputError
from gpupool.slurm.client import make_client
from gpupool.slurm.port import SlurmClient
from tests.support.slurm2511 import REPO, Cluster, built, prefixes

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


# -- the CLI on the same live state: identical JSON up to the backend's name and the timings ---------


@pytest.fixture(scope="module")
def fabric(cluster: Cluster) -> Path:
    """The cluster's fabric: two leaves of four hosts under one spine (its topology.conf), generated
    by `gpupool fabric generate` (hosts n001..n008) and renamed to the cluster's n1..n8."""
    path = cluster.root / "fabric.json"
    _cli(["fabric", "generate", "fat-tree", "--leaves", "2", "--hosts-per-leaf", "4", "--spines", "1",
          "--prefix", "n", "-o", str(path)], backend="commands", json_out=False)
    path.write_text(re.sub(r"\bn00(\d)\b", r"n\1", path.read_text()))
    return path


def _run_cli(argv: list[str], backend: str, fabric: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`gpupool ARGV` in a fresh process with that backend (pyslurm from the build's target dir)."""
    pythonpath = os.pathsep.join(p for p in (str(prefixes()[1]), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "GPUPOOL_SLURM_BACKEND": backend, "GPUPOOL_SLURM_TIMEOUT": "20", "PYTHONPATH": pythonpath}
    if fabric is not None:
        env["GPUPOOL_FABRIC"] = str(fabric)
    return subprocess.run([sys.executable, "-m", "gpupool", *argv], capture_output=True, text=True,
                          timeout=120, env=env, cwd=REPO)


def _cli(argv: list[str], backend: str, fabric: Path | None = None, json_out: bool = True) -> Any:
    proc = _run_cli(["--json", *argv] if json_out else argv, backend, fabric)
    assert proc.returncode == 0, (backend, argv, proc.returncode, proc.stderr)
    if os.environ.get("GPUPOOL_TEST_DUMP"):  # to read what the CLI said
        with open(os.environ["GPUPOOL_TEST_DUMP"], "a") as out:
            out.write(f"== {backend} {argv}\n{proc.stdout}\n")
    return json.loads(proc.stdout) if json_out else proc.stdout


TIMING_KEYS = frozenset({"elapsed_ms", "placement_ms", "total_ms"})


def _without_timings(doc: Any) -> Any:
    """The document less its timings (they differ run to run by nature)."""
    if isinstance(doc, dict):
        return {k: _without_timings(v) for k, v in doc.items() if k not in TIMING_KEYS}
    if isinstance(doc, list):
        return [_without_timings(v) for v in doc]
    return doc


def _both(argv: list[str], fabric: Path, names_backend: bool = True) -> dict[str, Any]:
    """`gpupool --json ARGV` with each backend, less the backend's name and the timings."""
    docs = {name: _cli(argv, name, fabric) for name in BACKENDS}
    for name, doc in docs.items():
        if names_backend:
            assert doc.get("backend") == name, (argv, name, doc.get("backend"))
    return {name: _without_timings({k: v for k, v in doc.items() if k != "backend"}) for name, doc in docs.items()}


def test_cli_jobs_json_is_identical(scenario: dict[str, str], fabric: Path) -> None:
    docs = _both(["jobs", "--all"], fabric)
    assert docs["commands"] == docs["pyslurm"]
    # Independent of both: the running jobs of the scenario, by id, on the nodes sbatch pinned them to.
    rows = {row["job_id"]: row for row in docs["commands"]["jobs"]}
    array = scenario["array"]
    assert {scenario[k] for k in ("typed", "per_node", "gpus_total", "two_types", "suspended")} | {
        f"{array}_{t}" for t in (1, 2, 3)} <= set(rows), sorted(rows)
    assert (rows[scenario["typed"]]["nodelist"], rows[scenario["typed"]]["allocation"]) == ("n1", {"n1": 2})
    assert rows[scenario["per_node"]]["allocation"] == {"n2": 3, "n3": 3}


@pytest.mark.parametrize("request_args", [
    ["--gpus", "4"], ["--gpus", "6"], ["--gpus-per-node", "2", "--nodes", "3"], ["--gpus-per-node", "1", "--nodes", "6"],
], ids=["gpus4", "gpus6", "2x3", "1x6"])
def test_cli_plan_json_is_identical(scenario: dict[str, str], fabric: Path, request_args: list[str]) -> None:
    docs = _both(["plan", *request_args], fabric)
    assert docs["commands"] == docs["pyslurm"]


def test_cli_plan_beyond_the_free_gpus_is_exit_1_on_both(scenario: dict[str, str], fabric: Path) -> None:
    # 12 GPUs are free (by hand, below): 13 cannot be placed.
    for name in BACKENDS:
        proc = _run_cli(["--json", "plan", "--gpus", "13"], name, fabric)
        assert proc.returncode == 1, (name, proc.returncode, proc.stderr)


def test_cli_free_gpu_views_are_identical(scenario: dict[str, str], fabric: Path) -> None:
    docs = _both(["status", "--gpus-per-node", "4"], fabric, names_backend=False)
    assert docs["commands"] == docs["pyslurm"]
    # By hand (test_free_gpus_per_node_agree_and_match_the_scenario): free n1 2, n2 1, n3 1, n4 3,
    # n5 + n6 3, n7 1, n8 1 = 12; the most on one host is 3 (n4), and no host is wholly free.
    doc = docs["commands"]
    assert doc["free_gpus"] == 12 and doc["largest"]["anywhere"] == 3
    assert doc["largest_whole_node_gpus"]["anywhere"] == 0


def test_cli_explain_json_is_identical(scenario: dict[str, str], fabric: Path) -> None:
    docs = _both(["explain", scenario["held"]], fabric)
    assert docs["commands"] == docs["pyslurm"]


def test_cli_submit_json_is_identical(scenario: dict[str, str], cluster: Cluster, fabric: Path) -> None:
    """The same request submitted with each backend in turn, each job cancelled and gone from its
    node before the next: the same placement, sbatch line and outcome, up to the job id and the
    per-submit random token (which the job comment carries)."""
    script = cluster.root / "jobs" / "cli-submit.sh"
    script.write_text("#!/bin/sh\nsleep 600\n")
    docs: dict[str, Any] = {}
    for name in BACKENDS:
        doc = _cli(["submit", "--gpus", "2", "--", f"--output={cluster.root}/jobs/%j.out", str(script)], name, fabric)
        assert doc.get("backend") == name and doc["job_state"] == "RUNNING", (name, doc)
        job_id = doc.pop("job_id")
        subprocess.run(["scancel", job_id], check=True, timeout=30)
        deadline = time.monotonic() + 60
        while squeue_states().get(job_id) in {"RUNNING", "COMPLETING"} and time.monotonic() < deadline:
            time.sleep(0.5)
        assert squeue_states().get(job_id) not in {"RUNNING", "COMPLETING"}, job_id
        token = doc.pop("token")
        assert len(token) >= 8, token
        docs[name] = json.loads(json.dumps(_without_timings({k: v for k, v in doc.items() if k != "backend"}))
                                .replace(token, "TOKEN"))
    assert docs["commands"] == docs["pyslurm"]
    # By hand: 2 GPUs fit on one host only where 2 or more are free: n1 (2 free), n4 (3) or n5/n6.
    assert len(docs["commands"]["allocation"]) == 1 and sum(docs["commands"]["allocation"].values()) == 2


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
