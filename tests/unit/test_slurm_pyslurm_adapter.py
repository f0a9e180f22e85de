"""The pyslurm backend's mapping, version gate and timeouts, on a stand-in pyslurm module (the real
pyslurm is not installable against this machine's Slurm 22.05; see test_slurm_pyslurm.py)."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

import pytest

from gpupool.errors import EnvError, InputError
from gpupool.slurm import pyslurm_backend
from gpupool.slurm.pyslurm_backend import PyslurmClient, job_from_pyslurm, node_from_pyslurm


class RPCError(Exception):
    pass


class FakeCommands:
    def __init__(self, version: tuple[int, int, int] = (23, 11, 4)) -> None:
        self._version = version
        self.submitted: list[Any] = []

    def version(self) -> tuple[int, int, int]:
        return self._version

    def submit(self, args: Any, script: Any, script_args: Any = ()) -> str:
        self.submitted.append((list(args), script))
        return "submitted"


def node(**kw: Any) -> SimpleNamespace:
    base = dict(name="gpu001", state="MIXED", configured_gres={"gpu:h100": 8},
                allocated_gres={"gpu:h100": {"count": "3", "indexes": "0-2"}}, effective_cpus=64,
                total_cpus=64, allocated_cpus=8, real_memory=512000, allocated_memory=1000,
                partitions=["gpu"], active_features=["h100"], available_features=["h100"], reason=None)
    base.update(kw)
    return SimpleNamespace(**base)


def module(nodes: list[SimpleNamespace], jobs: list[Any] | None = None, delay: threading.Event | None = None,
           version: str = "23.11.0") -> SimpleNamespace:
    def load_nodes() -> dict[str, SimpleNamespace]:
        if delay is not None:
            delay.wait(5)
        return {n.name: n for n in nodes}

    return SimpleNamespace(RPCError=RPCError, version=lambda: version,
                           Nodes=SimpleNamespace(load=load_nodes),
                           Jobs=SimpleNamespace(load=lambda: {j.id: j for j in jobs or []}),
                           Job=SimpleNamespace(load=lambda i: next(j for j in jobs or [] if j.id == i)))


def test_node_mapping() -> None:
    state = node_from_pyslurm(node(state="MIXED+DRAIN"))
    assert state.gpus_total == 8 and state.gpus_used == 3 and state.gpu_types == ("h100",)
    assert state.flags == {"MIXED", "DRAIN"} and not state.usable
    assert (state.cpus_total, state.cpus_alloc, state.memory_mb, state.memory_alloc_mb) == (64, 8, 512000, 1000)


def test_job_mapping_uses_layout_per_node() -> None:
    job = SimpleNamespace(id=7, name="train", user_name="alice", account="vision", partition="gpu",
                          state="RUNNING", state_reason="None", allocated_nodes="gpu[001-002]",
                          num_nodes=2, required_nodes=None, excluded_nodes=None, comment="gpupool:pair_hops_sum=1",
                          start_time=1, submit_time=0, gres_per_node={"gpu": 4},
                          get_resource_layout_per_node=lambda: {
                              "gpu001": {"gres": {"gpu:h100": {"count": "4", "indexes": "0-3"}}},
                              "gpu002": {"gres": {"gpu:h100": {"count": "4", "indexes": "4-7"}}}})
    info = job_from_pyslurm(job)
    assert info.job_id == "7" and info.allocation == {"gpu001": 4, "gpu002": 4}
    assert info.request.gpus_per_node == 4 and info.gpupool_plan == {"pair_hops_sum": "1"}


def test_client_reads_and_delegates_writes() -> None:
    commands = FakeCommands()
    client = PyslurmClient(timeout=2, commands=commands, module=module([node(), node(name="gpu002")]))  # type: ignore[arg-type]
    assert [n.name for n in client.node_states()] == ["gpu001", "gpu002"]
    assert client.submit(["--nodes=1"], "job.sh") == "submitted"
    assert commands.submitted == [(["--nodes=1"], "job.sh")]
    with pytest.raises(InputError, match="unknown job id x"):
        client.job("x")


def test_client_call_is_bounded() -> None:
    gate = threading.Event()
    client = PyslurmClient(timeout=0.2, commands=FakeCommands(), module=module([node()], delay=gate))  # type: ignore[arg-type]
    try:
        with pytest.raises(EnvError, match="did not answer within 0.2s"):
            client.node_states()
    finally:
        gate.set()


def test_version_gate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pyslurm_backend, "_import_pyslurm", lambda: module([], version="25.11.0"))
    reason = pyslurm_backend.pyslurm_unavailable_reason(FakeCommands((22, 5, 8)))  # type: ignore[arg-type]
    assert reason == "pyslurm 25.11 does not match Slurm 22.05"
    monkeypatch.setattr(pyslurm_backend, "_import_pyslurm", lambda: module([], version="23.11.2"))
    assert pyslurm_backend.pyslurm_unavailable_reason(FakeCommands((23, 11, 4))) is None  # type: ignore[arg-type]

    def missing() -> None:
        raise ImportError("No module named 'pyslurm'")

    monkeypatch.setattr(pyslurm_backend, "_import_pyslurm", missing)
    assert "not importable" in (pyslurm_backend.pyslurm_unavailable_reason() or "")
