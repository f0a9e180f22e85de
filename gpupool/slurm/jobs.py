"""Which jobs Slurm runs now (Slurm I/O only; costs and explanations are `gpupool.app.jobs`)."""

from __future__ import annotations

from gpupool.slurm.models import JobInfo
from gpupool.slurm.port import SlurmClient

RUNNING_STATES = ("RUNNING", "COMPLETING", "SUSPENDED", "CONFIGURING")


def is_running(job: JobInfo) -> bool:
    return job.state.split("+")[0] in RUNNING_STATES


def running_jobs(client: SlurmClient, user: str | None = None) -> list[JobInfo]:
    """Jobs that hold nodes now (running, completing, suspended, configuring), of `user` or everyone."""
    return [job for job in client.jobs(user=user) if is_running(job) and job.nodes]
