"""The pyslurm backend on stand-in pyslurm modules, run in the backend's real child process (fork):
mapping, version gate, GPU use from the jobs' per-node GRES, job states, ids, and deadlines.
Expected values are written out by hand from the stand-in objects below."""

from __future__ import annotations

import os
import sys
import time
import types
from types import SimpleNamespace
from typing import Any

import pytest

from gpupool.errors import EnvError, InputError
from gpupool.slurm.pyslurm_backend import (
    PyslurmClient,
    job_from_pyslurm,
    node_from_pyslurm,
    parse_job_id,
    pyslurm_unavailable_reason,
)
from gpupool.slurm.pyslurm_child import PyslurmChild


class RPCError(Exception):
    def __init__(self, errno: int, msg: str) -> None:
        super().__init__(msg)
        self.errno = errno


class FakeCommands:
    def __init__(self, version: tuple[int, int, int] = (25, 11, 7)) -> None:
        self._version = version
        self.submitted: list[Any] = []

    def version(self) -> tuple[int, int, int]:
        return self._version

    def jobs(self, user: Any = None, job_ids: Any = None) -> list[Any]:
        return []

    def submit(self, args: Any, script: Any, script_args: Any = ()) -> str:
        self.submitted.append((list(args), script))
        return "submitted"


class Gpu:
    def __init__(self, count: int) -> None:
        self.count = count


def tres(**gres: int) -> SimpleNamespace:
    """A stand-in for pyslurm's TrackableResources: `.gres` maps "gpu" / "gpu:h100" to GPU(count)."""
    return SimpleNamespace(gres={k.replace("_", ":"): Gpu(v) for k, v in gres.items()})


def node(name: str = "gpu001", **kw: Any) -> SimpleNamespace:
    # allocated_gres/allocated_tres say 8 busy GPUs (accounted TRES, typed and untyped): must be ignored.
    base = dict(name=name, state="MIXED", configured_gres={"gpu:h100": 8},
                allocated_gres={"gpu": 8, "gpu:h100": 8}, allocated_tres={"gres/gpu": "8"},
                effective_cpus=64, total_cpus=64, allocated_cpus=8, real_memory=512000,
                allocated_memory=1000, partitions=["gpu"], active_features=["h100"],
                available_features=["h100"], reason=None)
    base.update(kw)
    return SimpleNamespace(**base)


def job(job_id: int, state: str = "RUNNING", nodes: str | None = "gpu001", layout: dict[str, Any] | None = None,
        **kw: Any) -> SimpleNamespace:
    base = dict(id=job_id, name=f"j{job_id}", user_name="alice", account="vision", partition="gpu",
                state=state, state_reason="None", allocated_nodes=nodes, num_nodes=1, required_nodes=None,
                excluded_nodes=None, comment=None, start_time=1, submit_time=0, array_id=None,
                array_task_id=None, tres_per_node=None, tres_per_job=None, required_switches=None,
                max_wait_time_switches=None)
    base.update(kw)
    ns = SimpleNamespace(**base)
    ns.get_resource_layout_per_node = lambda: dict(layout or {})
    return ns


def gres_layout(**per_host: str) -> dict[str, Any]:
    """host -> gres dict as pyslurm's to_gres_dict gives it for gres_detail ("gpu:h100:2(IDX:0-1)")."""
    out: dict[str, Any] = {}
    for host, text in per_host.items():
        gres: dict[str, Any] = {}
        for item in text.split(","):
            name, typ, count = item.split(":")
            gres[f"{name}:{typ}"] = {"count": int(count), "indexes": "0"}
        out[host] = {"cpu_ids": "0", "gres": gres, "memory": 1}
    return out


def fake_module(nodes: list[SimpleNamespace] | None = None, jobs: list[SimpleNamespace] | None = None,
                version: Any = "25.11.2", hang: float = 0.0) -> types.ModuleType:
    mod = types.ModuleType("pyslurm")
    by_id = {j.id: j for j in jobs or []}

    def load_nodes() -> dict[str, SimpleNamespace]:
        if hang:
            time.sleep(hang)
        return {n.name: n for n in nodes or []}

    def load_job(job_id: int) -> SimpleNamespace:
        if job_id not in by_id:
            raise RPCError(2017, "Invalid job id specified")
        return by_id[job_id]

    mod.RPCError = RPCError  # type: ignore[attr-defined]
    mod.Nodes = SimpleNamespace(load=load_nodes)  # type: ignore[attr-defined]
    mod.Jobs = SimpleNamespace(load=lambda: dict(by_id))  # type: ignore[attr-defined]
    mod.Job = SimpleNamespace(load=load_job)  # type: ignore[attr-defined]
    if isinstance(version, types.ModuleType):
        mod.version = version  # type: ignore[attr-defined]
    else:
        mod.__version__ = version  # type: ignore[attr-defined]
    return mod


def client(mod: types.ModuleType, timeout: float = 5.0) -> PyslurmClient:
    return PyslurmClient(timeout=timeout, commands=FakeCommands(), loader=lambda: mod)  # type: ignore[arg-type]


# -- 1. version -------------------------------------------------------------------------------

def test_version_is_read_from_the_version_module_and_dunder() -> None:
    version_module = types.ModuleType("pyslurm.version")
    version_module.__version__ = "25.11.2"  # type: ignore[attr-defined]
    # pyslurm 24.11+: `pyslurm.version` is a module (calling it fails); either attribute must work.
    as_module = fake_module(version=version_module)
    assert pyslurm_unavailable_reason(FakeCommands(), PyslurmChild(5, lambda: as_module)) is None  # type: ignore[arg-type]
    assert pyslurm_unavailable_reason(FakeCommands(), PyslurmChild(5, lambda: fake_module())) is None  # type: ignore[arg-type]


def test_version_mismatch_is_named() -> None:
    reason = pyslurm_unavailable_reason(FakeCommands((22, 5, 8)), PyslurmChild(5, lambda: fake_module()))  # type: ignore[arg-type]
    assert reason == "pyslurm 25.11 does not match Slurm 22.05"


# -- 2. safe import ---------------------------------------------------------------------------

def _fatal_loader() -> Any:
    # What libslurm's fatal() does inside `import pyslurm` without a configuration.
    os.write(2, b"pyslurm: fatal: Could not establish a configuration source\n")
    os._exit(1)


def _missing_loader() -> Any:
    raise ModuleNotFoundError("No module named 'pyslurm'")


def test_fatal_in_import_ends_only_the_child(capfd: pytest.CaptureFixture[str]) -> None:
    reason = pyslurm_unavailable_reason(FakeCommands(), PyslurmChild(5, _fatal_loader))  # type: ignore[arg-type]
    assert reason is not None and "Could not establish a configuration source" in reason
    assert "fatal" not in capfd.readouterr().err  # libslurm's line never reaches our stderr
    reason = pyslurm_unavailable_reason(FakeCommands(), PyslurmChild(5, _missing_loader))  # type: ignore[arg-type]
    assert reason == "cannot import pyslurm (ModuleNotFoundError: No module named 'pyslurm')"


def test_cli_with_a_fatal_pyslurm_prints_one_error_line(tmp_path: Any) -> None:
    import subprocess

    package = tmp_path / "pyslurm"
    package.mkdir()
    (package / "__init__.py").write_text(
        "import os\nos.write(2, b'fatal: Could not establish a configuration source\\n')\nos._exit(1)\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path), GPUPOOL_SLURM_BACKEND="pyslurm", GPUPOOL_SLURM_TIMEOUT="5")
    proc = subprocess.run([sys.executable, "-m", "gpupool", "jobs", "--json"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpupool: error: pyslurm backend requested but unusable")
    assert "Could not establish a configuration source" in lines[0]


# -- 3. GPU use from the jobs' per-node GRES -----------------------------------------------------

def test_gpus_used_come_from_job_gres_not_node_tres() -> None:
    nodes = [node("gpu001"), node("gpu002"), node("gpu003", configured_gres={"gpu:a100": 2, "gpu:h100": 2})]
    jobs = [
        job(1, nodes="gpu[001-002]", num_nodes=2, tres_per_node=tres(gpu=3),
            layout=gres_layout(gpu001="gpu:h100:3", gpu002="gpu:h100:3")),
        job(2, nodes="gpu001", layout=gres_layout(gpu001="gpu:h100:2")),
        # typed GPUs of two kinds on one node: 1 + 2, each counted once
        job(3, nodes="gpu003", layout=gres_layout(gpu003="gpu:a100:1,gpu:h100:2")),
        job(4, state="PENDING", nodes=None, tres_per_node=tres(gpu=8)),
    ]
    states = {n.name: n for n in client(fake_module(nodes, jobs)).node_states()}
    assert {k: (v.gpus_total, v.gpus_used) for k, v in states.items()} == {
        "gpu001": (8, 5), "gpu002": (8, 3), "gpu003": (4, 3)}
    assert states["gpu003"].gpu_types == ("a100", "h100")


def test_node_with_no_jobs_is_free_whatever_its_tres_says() -> None:
    state = node_from_pyslurm(node(state="MIXED+DRAIN"))
    assert (state.gpus_total, state.gpus_used, state.gpu_types) == (8, 0, ("h100",))
    assert state.flags == {"MIXED", "DRAIN"} and not state.usable
    assert (state.cpus_total, state.cpus_alloc, state.memory_mb, state.memory_alloc_mb) == (64, 8, 512000, 1000)
    # pyslurm says IDLE when no CPU is allocated; GPUs in use make it MIXED, as slurmctld says.
    assert node_from_pyslurm(node(state="IDLE", allocated_memory=0), gpus_used=1).flags == {"MIXED"}
    assert node_from_pyslurm(node(state="IDLE", allocated_memory=0)).flags == {"IDLE"}


# -- 4. --gpus and --switches ------------------------------------------------------------------

def test_gpus_total_and_switches_are_read() -> None:
    # What pyslurm 25.11.2 gives for `sbatch -N2 --gpus=h100:12 --switches=1@5:00`: tres_per_job does
    # not parse ("gres/gpu:h100:12" has no "="), the requested TRES has the total under both names.
    info = job_from_pyslurm(job(5, state="PENDING", nodes=None, num_nodes=2, tres_per_job=None, gres_per_node={},
                                requested_tres=tres(gpu=12, gpu_h100=12),
                                required_switches=1, max_wait_time_switches=300))
    assert info.request.gpus_total == 12 and info.request.gpus_per_node is None
    # `--gpus-per-node=3`: gres_per_node is {"gres/gpu": 3}; the requested TRES total is not per job.
    per_node = job_from_pyslurm(job(9, state="PENDING", nodes=None, num_nodes=2, gres_per_node={"gres/gpu": 3},
                                    requested_tres=tres(gpu=6)))
    assert (per_node.request.gpus_per_node, per_node.request.gpus_total) == (3, None)
    # Running `--gpus=5` on two nodes, no accounted GPU TRES: the total is what Slurm allocated (4 + 1).
    running = job_from_pyslurm(job(10, nodes="n[5-6]", num_nodes=2, gres_per_node={},
                                   layout={"n5": {"gres": {"gpu": {"count": 4, "indexes": "0-3"}}},
                                           "n6": {"gres": {"gpu": {"count": 1, "indexes": "0"}}}}))
    assert running.request.gpus_total == 5 and running.allocation == {"n5": 4, "n6": 1}
    assert info.request.total_gpus == 12 and info.request.switches == "1@300s"
    assert job_from_pyslurm(job(6)).request.switches == ""


# -- 5. states that hold nodes ----------------------------------------------------------------

@pytest.mark.parametrize("state", ["RUNNING", "SUSPENDED", "COMPLETING", "CONFIGURING", "STOPPED"])
def test_states_that_hold_nodes_keep_their_gpus(state: str) -> None:
    jobs = [job(7, state=state, layout=gres_layout(gpu001="gpu:h100:4"))]
    info = client(fake_module([node()], jobs)).jobs()[0]
    assert info.state == state and info.nodes == ("gpu001",) and info.allocation == {"gpu001": 4}
    # slurmctld releases a COMPLETING job's GRES when it ends (its Epilog may still run).
    assert client(fake_module([node()], jobs)).node_states()[0].gpus_used == (0 if state == "COMPLETING" else 4)


@pytest.mark.parametrize("state", ["PENDING", "COMPLETED", "CANCELLED", "FAILED"])
def test_states_that_release_nodes(state: str) -> None:
    jobs = [job(8, state=state, layout=gres_layout(gpu001="gpu:h100:4"))]
    info = client(fake_module([node()], jobs)).jobs()[0]
    assert info.nodes == () and info.allocation == {}
    assert client(fake_module([node()], jobs)).node_states()[0].gpus_used == 0


# -- 6. ids ------------------------------------------------------------------------------------

def test_job_ids_unknown_and_arrays() -> None:
    jobs = [job(13, state="PENDING", nodes=None, array_id=13, array_task_id=None),
            job(14, array_id=13, array_task_id=1, layout=gres_layout(gpu001="gpu:h100:1")),
            job(20)]
    c = client(fake_module([node()], jobs))
    assert [j.job_id for j in c.jobs()] == ["13", "13_1", "20"]
    assert c.job("13_1").allocation == {"gpu001": 1}  # not job 131
    assert c.job("20").job_id == "20"
    for unknown in ("131", "13_2", "x", "13_", ""):
        with pytest.raises(InputError, match="unknown job id"):
            c.job(unknown)
    assert parse_job_id("13_1") == (13, 1) and parse_job_id("131") == (131, None) and parse_job_id("1_x") is None


def test_other_rpc_errors_are_environment_errors() -> None:
    mod = fake_module()

    def refuse(job_id: int) -> None:
        raise RPCError(1007, "Unable to contact slurm controller (connect failure)")

    mod.Job = SimpleNamespace(load=refuse)  # type: ignore[attr-defined]
    with pytest.raises(EnvError, match="connect failure"):
        client(mod).job("5")


def test_writes_go_through_the_commands() -> None:
    commands = FakeCommands()
    c = PyslurmClient(timeout=5, commands=commands, loader=lambda: fake_module())  # type: ignore[arg-type]
    assert c.submit(["--nodes=1"], "job.sh") == "submitted"  # type: ignore[comparison-overlap]
    assert commands.submitted == [(["--nodes=1"], "job.sh")]


# -- 7. deadlines ------------------------------------------------------------------------------

def test_a_hung_rpc_is_killed_at_the_deadline() -> None:
    c = client(fake_module([node()], hang=60), timeout=0.5)
    start = time.monotonic()
    with pytest.raises(EnvError, match="did not answer within 0.5s"):
        c.node_states()
    assert time.monotonic() - start < 5
    assert c.child._proc is None  # killed, not left behind


def test_a_hung_import_is_killed_at_the_deadline() -> None:
    def hang() -> Any:
        time.sleep(60)

    start = time.monotonic()
    reason = pyslurm_unavailable_reason(FakeCommands(), PyslurmChild(0.5, hang))  # type: ignore[arg-type]
    assert reason is not None and "did not answer within 0.5s" in reason
    assert time.monotonic() - start < 5


def test_json_names_the_backend_that_served() -> None:
    from gpupool.cli.context import AppContext
    from gpupool.slurm.commands import CommandsClient

    assert AppContext(slurm=CommandsClient()).with_backend({"a": 1}) == {"a": 1, "backend": "commands"}
    assert client(fake_module()).name == "pyslurm"
    assert AppContext().with_backend({"a": 1}) == {"a": 1}  # --free FILE: Slurm never asked


def test_missing_pyslurm_is_found_without_forking(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from gpupool.slurm import pyslurm_child

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    forked: list[str] = []
    monkeypatch.setattr(pyslurm_child.multiprocessing, "get_context", lambda *a: forked.append("fork"))
    reason = pyslurm_unavailable_reason(FakeCommands())  # type: ignore[arg-type]
    assert reason == "cannot import pyslurm (ModuleNotFoundError: No module named 'pyslurm')" and forked == []


def test_a_missing_slurm_conf_is_found_without_forking(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    import importlib.util

    from gpupool.slurm import pyslurm_child

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object())
    monkeypatch.setenv("SLURM_CONF", str(tmp_path / "nope.conf"))
    forked: list[str] = []
    monkeypatch.setattr(pyslurm_child.multiprocessing, "get_context", lambda *a: forked.append("fork"))
    reason = pyslurm_unavailable_reason(FakeCommands())  # type: ignore[arg-type]
    assert reason == f"cannot import pyslurm (SLURM_CONF={tmp_path / 'nope.conf'} does not exist)" and forked == []
