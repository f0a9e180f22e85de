"""pyslurm backend: runs only where pyslurm is importable (PyPI's pyslurm builds against Slurm 25.11
only, so on this 22.05 machine these tests skip with that reason)."""

from __future__ import annotations

import pytest

pyslurm = pytest.importorskip("pyslurm", reason="pyslurm is not importable here (PyPI builds need Slurm 25.11 headers)")


def test_version_check_against_running_slurm() -> None:
    from gpupool.slurm.commands import CommandsClient
    from gpupool.slurm.pyslurm_backend import pyslurm_unavailable_reason

    reason = pyslurm_unavailable_reason(CommandsClient())
    if reason is not None:
        assert "does not match" in reason or "cannot read" in reason
    else:
        from gpupool.slurm.pyslurm_backend import PyslurmClient

        nodes = PyslurmClient().node_states()
        assert all(n.name for n in nodes)
