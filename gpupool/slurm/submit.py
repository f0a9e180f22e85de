"""The Slurm side of `gpupool submit`: the job comment gpupool records, sbatch rejections that mean
"those nodes are gone", finding a job by its submission token, and waiting for a job to start. Slurm I/O only; the flow that plans,
submits and verifies is `gpupool.app.submit`."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Mapping

from gpupool.slurm.freestate import format_alloc_field
from gpupool.slurm.invoke import SlurmCommandError
from gpupool.slurm.models import JobInfo, parse_plan_comment
from gpupool.slurm.port import SlurmClient

# sbatch rejections that mean "the nodes you named cannot take this job right now / any more".
NODE_REJECTIONS = (
    "Requested node configuration is not available",
    "Required node not available",
    "Invalid node name specified",
    "Node count specification invalid",
    "Requested nodes are busy",
)
# Pending reasons that mean the planned nodes were not free when Slurm looked.
RACE_REASONS = ("Resources", "ReqNodeNotAvail", "NodeDown", "Nodes_required_for_job_are_DOWN")


def default_partition(client: SlurmClient) -> str | None:
    for name, fields in client.partitions().items():
        if fields.get("Default", "").upper() == "YES":
            return name
    return None


def plan_comment(cost: Mapping[str, int], allocation: Mapping[str, int], mode: str,
                 user_comment: str | None, token: str | None = None, segment: int | None = None) -> str:
    """``gpupool:pair_hops_sum=..,leaf_switches=..,max_hops=..,mode=..[,token=..][,segment=S]
    [,alloc=h:g+...]`` (+ ``;user``)."""
    fields = [f"pair_hops_sum={cost['pair_hops_sum']}", f"leaf_switches={cost['leaf_switches']}",
              f"max_hops={cost['max_hops']}", f"mode={mode}"]
    if token:
        fields.append(f"token={token}")
    if segment:  # Slurm before 25.11 does not report a job's --segment: `jobs explain` reads it here
        fields.append(f"segment={segment}")
    if mode == "now":
        fields.append("alloc=" + format_alloc_field(allocation))
    text = "gpupool:" + ",".join(fields)
    return f"{text};{user_comment}" if user_comment else text


# A submission token: hex, as `new_token` makes it (anything else given to --token is a usage error).
TOKEN_RE = re.compile(r"[0-9a-f]{8,64}")


def new_token() -> str:
    return secrets.token_hex(16)


def find_token_job(client: SlurmClient, token: str, user: str) -> JobInfo | None:
    """The user's job whose gpupool comment carries `token`, if Slurm knows it."""
    for job in client.jobs(user=user):
        if job.user == user and parse_plan_comment(job.comment).get("token") == token:
            return job
    return None


def is_node_rejection(exc: SlurmCommandError) -> bool:
    text = exc.stderr + exc.stdout + exc.message
    return any(marker in text for marker in NODE_REJECTIONS)


def raced(job: JobInfo) -> bool:
    """The job waits because a node it was pinned to was taken or went down meanwhile."""
    return job.state.split("+")[0] == "PENDING" and any(job.reason.startswith(r) for r in RACE_REASONS)


def wait_started(client: SlurmClient, job_id: str, timeout: float, sleep: Callable[[float], None],
                 clock: Callable[[], float]) -> JobInfo | None:
    """Poll until the job runs or Slurm says why it waits; None if it vanished."""
    deadline = clock() + timeout
    job: JobInfo | None = None
    while True:
        found = client.jobs(job_ids=[job_id])
        job = found[0] if found else None
        if job is None:
            return None
        base = job.state.split("+")[0]
        if base != "PENDING":
            return job
        if job.reason and job.reason not in ("None", "") and any(job.reason.startswith(r) for r in RACE_REASONS):
            return job
        if clock() >= deadline:
            return job
        sleep(0.2)
