"""The shipped Prolog/Epilog scripts, run as slurmd runs them, with broken node.env and broken gpupool.

The job must fail only when gpupool itself reported CRITICAL; everything else is logged and exit 0.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fakenvml.fakenvml_build import (
    build_fake_nvml,
    fake_nvml_env,
    node_config,
    write_scenario,
)

REPO = Path(__file__).resolve().parents[2]

SCRIPTS = {"prolog": REPO / "slurm-plugins/prolog.d/50-gpupool-node-check",
           "epilog": REPO / "slurm-plugins/epilog.d/50-gpupool-node-check"}
SLURM_COMMANDS = ("scontrol", "sinfo", "squeue", "sbatch", "srun", "sacct")


@pytest.fixture(scope="module")
def fake_nvml(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_fake_nvml(tmp_path_factory.mktemp("fakenvml"))


def executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


class Node:
    """A compute node as the script sees it: slurmd's environment, node.env, config, a bin dir."""

    def __init__(self, tmp: Path, library: Path, scenario: dict[str, object]) -> None:
        self.tmp = tmp
        self.bin = tmp / "bin"
        self.bin.mkdir()
        self.calls = tmp / "slurm-calls.txt"
        for name in SLURM_COMMANDS:  # any Slurm command the check runs is recorded here
            executable(self.bin / name, f'#!/bin/sh\necho "{name} $*" >> {self.calls}\nexit 1\n')
        self.gpupool = executable(tmp / "gpupool", f'#!/bin/sh\nexec {sys.executable} -m gpupool "$@"\n')
        self.env_file = tmp / "node.env"
        self.config = tmp / "config.toml"
        self.config.write_text(node_config(tmp, f'[node]\nhca_source = "none"\nsysfs_root = "{tmp / "nosys"}"\n'))
        self.env = fake_nvml_env(library, write_scenario(tmp / "scenario.txt", scenario))
        for name in [k for k in self.env if k.startswith(("SLURM", "GPUPOOL", "CUDA_"))]:
            del self.env[name]
        self.env.update({
            "PATH": f"{self.bin}:/usr/bin:/bin", "SLURM_JOB_ID": "4242", "SLURMD_NODENAME": "gpu007",
            "SLURM_JOB_USER": "alice", "SLURM_JOB_UID": "1000", "SLURM_JOB_GPUS": "0,1",
            "SLURM_SCRIPT_CONTEXT": "prolog_slurmd", "GPUPOOL": str(self.gpupool),
            "GPUPOOL_CONFIG": str(self.config), "GPUPOOL_ENV_FILE": str(self.env_file),
        })

    def run(self, kind: str = "prolog", **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(SCRIPTS[kind])], env={**self.env, **env}, capture_output=True,
                              text=True, timeout=60, cwd=self.tmp)

    def slurm_calls(self) -> str:
        return self.calls.read_text() if self.calls.exists() else ""


@pytest.fixture
def node(tmp_path: Path, fake_nvml: Path) -> Node:
    return Node(tmp_path, fake_nvml, {"count": 8})


def test_healthy_node_runs_the_job_and_calls_no_slurm_command(node: Node) -> None:
    for kind in SCRIPTS:
        done = node.run(kind)
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines()[0] == "OK: node healthy"
    assert node.slurm_calls() == ""


@pytest.mark.parametrize("contents", [
    'GPUPOOL_CHECK_OPTIONS="--drain --drian"\n',  # typo in an option
    "GPUPOOL_CHECK_OPTIONS=--bogus-flag\n",
    'GPUPOOL_CHECK_OPTIONS="--drain *"\n',  # a glob must reach gpupool as text, not as file names
])
def test_bad_options_in_node_env_leave_the_job_running(node: Node, contents: str) -> None:
    node.env_file.write_text(contents)
    for kind in SCRIPTS:
        done = node.run(kind)
        assert done.returncode == 0, done.stderr
        assert f"gpupool-{kind}: node check could not run (exit 3)" in done.stderr
    assert node.slurm_calls() == ""


@pytest.mark.parametrize("contents", ["this is ( not shell\n", "exit 1\n", "sleep 30\n"])
def test_broken_node_env_is_ignored(node: Node, contents: str) -> None:
    node.env_file.write_text(contents)
    started = time.monotonic()
    done = node.run()
    assert time.monotonic() - started < 20
    assert done.returncode == 0, done.stderr
    assert "node.env fails" in done.stderr and "ignored" in done.stderr
    assert done.stdout.splitlines()[0] == "OK: node healthy"


def test_options_are_split_into_words_without_globbing(node: Node) -> None:
    argv_file = node.tmp / "argv.txt"
    node.gpupool = executable(node.tmp / "argv-gpupool",
                              f'#!/bin/sh\nfor a in "$@"; do echo "[$a]"; done > {argv_file}\necho "OK: x"\n')
    (node.tmp / "not-an-option").write_text("")
    node.env_file.write_text('GPUPOOL_CHECK_OPTIONS="--drain   --json *"\n')
    done = node.run(GPUPOOL=str(node.gpupool))
    assert done.returncode == 0
    assert argv_file.read_text().split() == ["[node]", "[check]", "[--prolog]", "[--drain]", "[--json]", "[*]"]


@pytest.mark.parametrize(("stub", "log"), [
    ("echo 'Traceback (most recent call last):' >&2; exit 1", "could not run (exit 1)"),
    ("echo 'Usage: gpupool node check' >&2; exit 2", "could not run (exit 2)"),  # 2 without CRITICAL
    ("echo 'CRITICAL-ish but crashed'; exit 139", "could not run (exit 139)"),
    ("sleep 60", "killed after 1s"),
])
def test_crashing_or_hanging_gpupool_leaves_the_job_running(node: Node, stub: str, log: str) -> None:
    broken = executable(node.tmp / "broken-gpupool", f"#!/bin/sh\n{stub}\n")
    started = time.monotonic()
    done = node.run(GPUPOOL=str(broken), GPUPOOL_HARD_TIMEOUT="1")
    assert time.monotonic() - started < 20
    assert done.returncode == 0
    assert log in done.stderr
    strict = node.run(GPUPOOL=str(broken), GPUPOOL_HARD_TIMEOUT="1", GPUPOOL_STRICT="1")
    assert strict.returncode != 0


def test_missing_gpupool_is_logged_not_fatal(node: Node) -> None:
    done = node.run(GPUPOOL=str(node.tmp / "nope" / "gpupool"))
    assert done.returncode == 0 and "gpupool not found at" in done.stderr
    node.env_file.write_text('GPUPOOL_CHECK_OPTIONS="--drain --strict"\n')
    assert node.run(GPUPOOL=str(node.tmp / "nope" / "gpupool")).returncode == 1


def test_bad_config_is_unknown_not_critical(node: Node) -> None:
    node.config.write_text("[node]\nno_such_key = 1\n")
    done = node.run()
    assert done.returncode == 0 and done.stdout.startswith("UNKNOWN:")
    node.env_file.write_text("GPUPOOL_STRICT=1\n")
    assert node.run().returncode == 3 - 2  # the script's own strict failure code


@pytest.mark.parametrize("options", ["--drain", "--drain --json"])
def test_real_critical_fails_the_job(tmp_path: Path, fake_nvml: Path, options: str) -> None:
    node = Node(tmp_path, fake_nvml, {"count": 8, "gpu.1.ecc_uncorrected": 4})
    node.env_file.write_text(f'GPUPOOL_CHECK_OPTIONS="{options}"\n')
    done = node.run()
    assert done.returncode == 2, done.stderr
    assert "gpupool-prolog: node check CRITICAL" in done.stderr
    # --drain asked scontrol to drain (the stub fails, the exit code still fails the job).
    assert node.slurm_calls().startswith("scontrol update nodename=gpu007 state=drain reason=gpupool: gpu1")


def test_scripts_are_executable_bash() -> None:
    for script in SCRIPTS.values():
        assert os.access(script, os.X_OK)
        subprocess.run(["bash", "-n", str(script)], check=True)


@pytest.mark.parametrize("contents", ["exit 1\n", "this is ( not shell\n"])
def test_task_prolog_ignores_a_broken_node_env(node: Node, contents: str) -> None:
    node.env_file.write_text(contents)
    stub = executable(node.tmp / "topo-gpupool", "#!/bin/sh\necho 'export NCCL_IB_HCA==mlx5_0:1'\n")
    done = subprocess.run([str(REPO / "slurm-plugins/task-prolog/gpupool-task-prolog")],
                          env={**node.env, "GPUPOOL": str(stub)}, capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout) == (0, "export NCCL_IB_HCA==mlx5_0:1\n")


def test_deep_only_in_the_epilog(node: Node) -> None:
    argv_file = node.tmp / "argv.txt"
    stub = executable(node.tmp / "argv-gpupool", f'#!/bin/sh\necho "$@" >> {argv_file}\necho "OK: x"\n')
    node.env_file.write_text("GPUPOOL_DEEP=1\n")
    for kind in SCRIPTS:
        assert node.run(kind, GPUPOOL=str(stub)).returncode == 0
    assert argv_file.read_text().splitlines() == ["node check --prolog --drain", "node check --epilog --drain --deep"]
