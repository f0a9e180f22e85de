"""What Slurm tells a Prolog/Epilog/TaskProlog: the job's GPUs, the node name, its gres; draining."""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from typing import Protocol

GPU_ENV_ORDER = ("SLURM_STEP_GPUS", "SLURM_JOB_GPUS", "CUDA_VISIBLE_DEVICES")


def job_gpu_ids(env: Mapping[str, str]) -> list[str] | None:
    """GPU ids of the job/step (indices or UUIDs as Slurm gave them); None when not under a GPU job.

    SLURM_STEP_GPUS/SLURM_JOB_GPUS hold node-global indices; CUDA_VISIBLE_DEVICES is the fallback
    (in the Prolog it is global too, inside a cgroup-constrained task it may be renumbered).
    """
    if not env.get("SLURM_JOB_ID"):
        return None
    for name in GPU_ENV_ORDER:
        value = env.get(name)
        if value is None:
            continue
        value = value.strip()
        if value in ("", "NoDevFiles"):
            return []
        return [item.strip() for item in value.split(",") if item.strip()]
    return []


def resolve_gpu_ids(ids: list[str], uuids_by_index: Mapping[int, str]) -> list[int]:
    """Turn indices or GPU UUIDs into NVML indices (unknown UUIDs are dropped)."""
    by_uuid = {uuid.lower(): index for index, uuid in uuids_by_index.items() if uuid}
    result: list[int] = []
    for item in ids:
        if item.isdigit():
            result.append(int(item))
        elif item.lower() in by_uuid:
            result.append(by_uuid[item.lower()])
    return result


def node_name(env: Mapping[str, str]) -> str:
    """Slurm's name for this node (SLURMD_NODENAME in Prolog/Epilog), else the short host name."""
    return env.get("SLURMD_NODENAME") or socket.gethostname().split(".")[0]


_GRES_GPU = re.compile(r"(?:^|,)gpu(?::[A-Za-z0-9_.-]+)?:(\d+)")


def parse_gres_gpus(gres: str) -> int | None:
    """'gpu:a100:8(S:0-1),nic:2' -> 8 (types summed); None when the node has no gpu gres."""
    total = 0
    found = False
    for match in _GRES_GPU.finditer(gres.replace("gres/", "")):
        total += int(match.group(1))
        found = True
    return total if found else None


def parse_scontrol_node(text: str) -> dict[str, str]:
    """`scontrol show node NAME` (or -o) output -> key/value dict."""
    values: dict[str, str] = {}
    for token in re.findall(r"(\w+)=(\S*)", text):
        values.setdefault(token[0], token[1])
    return values


class SlurmNodeClient(Protocol):
    """The two calls of the Slurm port (`gpupool.slurm.port.SlurmClient`) a node check uses."""

    def node_gres(self, node: str) -> str | None:
        ...

    def drain(self, node: str, reason: str) -> None:
        ...


def running_under_slurm(env: Mapping[str, str] | None = None) -> bool:
    return bool((env if env is not None else os.environ).get("SLURM_JOB_ID"))
