"""Bounded Slurm command runs and their error classes (exit 3 vs exit 4)."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from gpupool.cli.errors import exit_code_for
from gpupool.errors import EnvError
from gpupool.slurm.invoke import SlurmCommandError, is_unreachable, run


def fake_command(directory: Path, name: str, body: str) -> str:
    path = directory / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_success_returns_output(tmp_path: Path) -> None:
    cmd = fake_command(tmp_path, "scontrol", 'echo "slurm 23.11.4"')
    assert run([cmd, "--version"]).stdout.strip() == "slurm 23.11.4"


def test_missing_command_is_env_error() -> None:
    with pytest.raises(EnvError, match="not found: no-such-slurm-cmd") as info:
        run(["no-such-slurm-cmd"])
    assert exit_code_for(info.value) == 3


def test_timeout_is_bounded_env_error(tmp_path: Path) -> None:
    cmd = fake_command(tmp_path, "squeue", "sleep 5")
    start = time.monotonic()
    with pytest.raises(EnvError, match="did not answer within 0.3s"):
        run([cmd], timeout=0.3)
    assert time.monotonic() - start < 3.0


@pytest.mark.parametrize("message", [
    "sbatch: error: Batch job submission failed: Unable to contact slurm controller (connect failure)",
    "squeue: error: slurm_load_jobs error: Socket timed out on send/recv operation",
    "sacctmgr: error: slurmdbd: Connection refused",
    "sinfo: fatal: Could not establish a configuration source",
])
def test_unreachable_daemon_is_env_error(tmp_path: Path, message: str) -> None:
    cmd = fake_command(tmp_path, "sbatch", f'echo "{message}" >&2; exit 1')
    with pytest.raises(EnvError) as info:
        run([cmd])
    assert exit_code_for(info.value) == 3
    assert "unreachable" in info.value.message
    assert is_unreachable(message)


def test_rejection_is_input_error_with_stderr(tmp_path: Path) -> None:
    cmd = fake_command(tmp_path, "sbatch",
                       'echo "sbatch: error: invalid partition specified: nosuch" >&2\n'
                       'echo "sbatch: error: Batch job submission failed: Invalid partition name specified" >&2\n'
                       "exit 1")
    with pytest.raises(SlurmCommandError) as info:
        run([cmd, "-p", "nosuch"])
    assert exit_code_for(info.value) == 4
    assert "invalid partition specified: nosuch" in info.value.message
    assert "Invalid partition name specified" in info.value.stderr
    assert info.value.argv[1:] == ["-p", "nosuch"]


def test_check_false_returns_failed_process(tmp_path: Path) -> None:
    cmd = fake_command(tmp_path, "scontrol", 'echo "slurm_load_jobs error: Invalid job id specified" >&2; exit 1')
    proc = run([cmd], check=False)
    assert proc.returncode == 1 and "Invalid job id" in proc.stderr


def test_env_is_added_to_environment(tmp_path: Path) -> None:
    cmd = fake_command(tmp_path, "scontrol", 'echo "$SLURM_CONF:$HOME"')
    out = run([cmd], env={"SLURM_CONF": "/x/slurm.conf"}).stdout.strip()
    assert out == f"/x/slurm.conf:{os.environ.get('HOME', '')}"
