"""The pyslurm backend against whatever pyslurm this machine has (none, or a real one on PYTHONPATH,
e.g. the one scripts/build-slurm-25.11 builds). The probe runs in the backend's child process, so a
pyslurm without a reachable Slurm configuration cannot end pytest; nothing here imports pyslurm."""

from __future__ import annotations

from gpupool.slurm.pyslurm_backend import pyslurm_unavailable_reason


def test_probe_never_kills_the_caller_and_reads_the_version() -> None:
    reason = pyslurm_unavailable_reason(None, timeout=30)
    # Missing, unconfigured (libslurm's fatal) or fine: never "cannot read pyslurm's version".
    assert reason is None or "cannot read" not in reason
