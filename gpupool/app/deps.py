"""The real dependencies a command gets when no test replaced them (AppContext builds them lazily):
the CLI never imports a Slurm client or runner itself."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gpupool.pools.slurm_state import CommandRunner
    from gpupool.slurm.port import SlurmClient


def real_slurm_client() -> SlurmClient:
    """The Slurm port: `make_client()`'s backend ($GPUPOOL_SLURM_BACKEND, else the best available)."""
    from gpupool.slurm.client import make_client

    return make_client()


def real_command_runner() -> CommandRunner:
    """Slurm admin commands, argv -> stdout (pools' transaction runner)."""
    from gpupool.pools.slurm_state import slurm_runner

    return slurm_runner()
