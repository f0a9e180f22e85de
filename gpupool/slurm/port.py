"""The Slurm port: `SlurmClient`, the one interface through which gpupool reaches Slurm, and the
registry its backends add themselves to (reframe-style: a backend module calls `register` when it
is imported; `gpupool.slurm.client.make_client` imports the backend modules by name and chooses).

Backends: `gpupool.slurm.commands` (the Slurm commands, always available) and
`gpupool.slurm.pyslurm_backend` (libslurm through pyslurm, when importable and matching).
Test fakes implement the same Protocol (`gpupool.slurm.fake.FakeSlurm`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from gpupool.registry import Registry
from gpupool.slurm.models import JobInfo, NodeState, PreemptionConfig, SubmitResult, TestOnlyResult


@runtime_checkable
class SlurmClient(Protocol):
    """What gpupool needs from Slurm. Every call is bounded by a timeout; failures raise `EnvError`
    (exit 3: Slurm missing/unreachable/slow) or `SlurmCommandError` (exit 4: Slurm refused)."""

    def version(self) -> tuple[int, int, int]: ...

    def node_states(self) -> list[NodeState]: ...

    def node_names(self) -> list[str]: ...

    def topology_text(self) -> str: ...

    def config(self) -> dict[str, str]: ...

    def jobs(self, user: str | None = None, job_ids: Sequence[str] | None = None) -> list[JobInfo]: ...

    def job(self, job_id: str) -> JobInfo: ...

    def partitions(self) -> dict[str, dict[str, str]]: ...

    def preemption(self) -> PreemptionConfig: ...

    def submit(self, sbatch_args: Sequence[str], script: str | None,
               script_args: Sequence[str] = ()) -> SubmitResult: ...

    def test_only(self, sbatch_args: Sequence[str], script: str | None) -> TestOnlyResult: ...

    def cancel(self, job_id: str) -> None: ...

    def node_gres(self, node: str) -> str | None: ...

    def drain(self, node: str, reason: str) -> None: ...


class BackendUnavailable(Exception):
    """A backend cannot serve on this machine (e.g. pyslurm missing); `str(exc)` says why."""


@dataclass(frozen=True)
class Backend:
    name: str
    preference: int  # `auto` tries backends from the highest preference down
    create: Callable[[float], SlurmClient]  # timeout -> client; raises BackendUnavailable


BACKENDS: Registry[Backend] = Registry("Slurm backend")


def register(backend: Backend) -> Backend:
    """Add a backend under its name (a module calls this at import time); a name taken already
    raises `DuplicateRegistration` instead of silently replacing the first backend."""
    return BACKENDS.register(backend)
