"""Which jobs Slurm runs now (Slurm I/O only; costs and explanations are `gpupool.app.jobs`)."""

from __future__ import annotations

from gpupool.slurm.models import JobInfo
from gpupool.slurm.parse import NODE_HOLDING_STATES, job_state_word
from gpupool.slurm.port import SlurmClient


def is_running(job: JobInfo) -> bool:
    """Does the job hold its nodes now (any of parse.NODE_HOLDING_STATES, the one set both backends use)?"""
    return job_state_word(job.state) in NODE_HOLDING_STATES


def running_jobs(client: SlurmClient, user: str | None = None) -> list[JobInfo]:
    """Jobs that hold nodes now (running, completing, suspended, configuring), of `user` or everyone."""
    return [job for job in client.jobs(user=user) if is_running(job) and job.nodes]
