"""CommandsClient against fake Slurm commands on PATH: version-dependent command choice, parsing,
filters, error classes; backend selection (pyslurm is skipped where not importable)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from gpupool.errors import EnvError, InputError
from gpupool.slurm.client import SlurmClient, make_client
from gpupool.slurm.commands import CommandsClient
from gpupool.slurm.fake import FakeSlurm

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "slurm"


def install(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.fixture
def slurm_bin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    log = tmp_path / "calls.log"
    monkeypatch.setenv("FAKE_SLURM_LOG", str(log))
    return bin_dir


def calls(bin_dir: Path) -> list[str]:
    log = bin_dir.parent / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


def fixture_cat(name: str) -> str:
    return f'echo "$0 $*" >> "$FAKE_SLURM_LOG"; cat "{FIXTURES / name}"'


def serve_scontrol(version: str, nodes_fixture: str) -> str:
    """A fake scontrol: its version, and the node text fixture for `-d -o show nodes` (logged)."""
    return ('echo "$0 $*" >> "$FAKE_SLURM_LOG"\n'
            f'if [ "$1" = "--version" ]; then echo "slurm-wlm {version}"; exit 0; fi\n'
            f'if [ "$*" = "-d -o show nodes" ]; then cat "{FIXTURES / nodes_fixture}"; exit 0; fi\n'
            'echo "fake scontrol: $* not served" >&2; exit 1')


def test_22_05_reads_scontrol_text(slurm_bin: Path) -> None:
    install(slurm_bin, "scontrol", serve_scontrol("22.05.8", "scontrol-show-node-22.05.txt"))
    install(slurm_bin, "squeue", fixture_cat("squeue-22.05.json"))
    client = CommandsClient()
    assert client.version() == (22, 5, 8)
    nodes = {n.name: n.free_gpus for n in client.node_states()}
    # The fixture's state, counted by hand: gpu001 has 3 of 8 GPUs taken, gpu002/gpu003 2 each, gpu004 none.
    assert nodes == {"gpu001": 5, "gpu002": 6, "gpu003": 6, "gpu004": 8}
    # 22.05 ignores squeue --jobs with --json: the client filters itself.
    assert [j.job_id for j in client.jobs(job_ids=["2"])] == ["2"]
    assert [j.job_id for j in client.jobs(user="nobody")] == []
    client.node_states()
    logged = calls(slurm_bin)
    assert sum("--version" in c for c in logged) == 1  # version asked once
    assert sum(c.endswith("scontrol -d -o show nodes") for c in logged) == 2
    assert not any("--json" in c and ("sinfo" in c or "show nodes" in c) for c in logged)


@pytest.mark.parametrize("release", ["24.11", "26.05"])
def test_newer_releases_read_the_same_text(slurm_bin: Path, release: str) -> None:
    install(slurm_bin, "scontrol", serve_scontrol(f"{release}.5", f"scontrol-show-node-{release}.txt"))
    client = CommandsClient()
    nodes = {n.name: n for n in client.node_states()}
    assert sorted(nodes) == [f"gpu{i:03d}" for i in range(1, 9)]
    assert nodes["gpu004"].reason == "bad hca" and not nodes["gpu004"].usable
    assert any(c.endswith("scontrol -d -o show nodes") for c in calls(slurm_bin))


def test_old_slurm_falls_back_to_scontrol_text(slurm_bin: Path) -> None:
    install(slurm_bin, "scontrol",
            'if [ "$1" = "--version" ]; then echo "slurm 20.11.9"; exit 0; fi\n'
            'case "$*" in *node*) cat "' + str(FIXTURES / "scontrol-show-node-22.05.txt") + '";;\n'
            '*job*) cat "' + str(FIXTURES / "scontrol-show-job-22.05.txt") + '";; esac')
    client = CommandsClient()
    assert {n.name for n in client.node_states()} == {"gpu001", "gpu002", "gpu003", "gpu004"}
    assert client.job("2").allocation == {"gpu002": 2, "gpu003": 2}


def test_unknown_job_and_unreachable(slurm_bin: Path) -> None:
    install(slurm_bin, "scontrol",
            'if [ "$1" = "--version" ]; then echo "slurm 22.05.8"; exit 0; fi\n'
            'case "$*" in *nodes*) echo "slurm_load_node error: Unable to contact slurm controller (connect failure)" >&2;;\n'
            '*) echo "slurm_load_jobs error: Invalid job id specified" >&2;; esac; exit 1')
    client = CommandsClient()
    with pytest.raises(InputError, match="unknown job id 77"):
        client.job("77")
    with pytest.raises(EnvError, match="Slurm unreachable"):
        client.node_states()


def test_slow_controller_is_bounded(slurm_bin: Path) -> None:
    install(slurm_bin, "scontrol", "sleep 5")
    with pytest.raises(EnvError, match="did not answer within 0.2s"):
        CommandsClient(timeout=0.2).version()


def test_submit_and_test_only_outputs(slurm_bin: Path) -> None:
    install(slurm_bin, "sbatch",
            'case "$*" in *--test-only*) cat "' + str(FIXTURES / "sbatch-test-only-22.05.txt") + '" >&2;;\n'
            '*) echo "$*" >> "$FAKE_SLURM_LOG"; echo "Submitted batch job 4242";; esac')
    install(slurm_bin, "scancel", 'echo "scancel $*" >> "$FAKE_SLURM_LOG"')
    client = CommandsClient()
    result = client.submit(["--nodes=1", "--comment=gpupool:a=1"], "job.sh", ["x y"])
    assert result.job_id == "4242"
    assert calls(slurm_bin)[-1] == "--nodes=1 --comment=gpupool:a=1 job.sh x y"
    assert client.test_only(["-N1"], "job.sh").nodes == ("gpu004",)
    client.cancel("4242")
    assert calls(slurm_bin)[-1] == "scancel 4242"


def test_make_client_picks_commands_without_pyslurm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GPUPOOL_SLURM_BACKEND", raising=False)
    try:
        import pyslurm  # noqa: F401
    except ImportError:
        assert isinstance(make_client(), CommandsClient)
    else:  # pragma: no cover - only where pyslurm exists
        pytest.skip("pyslurm importable here")
    monkeypatch.setenv("GPUPOOL_SLURM_BACKEND", "pyslurm")
    with pytest.raises(EnvError, match="pyslurm backend requested but unusable"):
        make_client()


def test_fake_and_commands_satisfy_protocol() -> None:
    assert isinstance(CommandsClient(), SlurmClient)
    assert isinstance(FakeSlurm.uniform(["gpu001"]), SlurmClient)


def test_sshare_and_sacctmgr_parsing(slurm_bin: Path) -> None:
    install(slurm_bin, "sshare", 'printf "Account|User|RawShares|NormShares|FairShare\\nroot||||1.0\\n vision||30|0.3|0.5\\n"')
    install(slurm_bin, "sacctmgr", 'printf "vision|30\\nllm|70\\n"')
    client = CommandsClient()
    rows = client.sshare()
    assert rows[1] == {"Account": "vision", "User": "", "RawShares": "30", "NormShares": "0.3", "FairShare": "0.5"}
    assert client.sacctmgr_show("account", ["Account", "Fairshare"]) == [
        {"Account": "vision", "Fairshare": "30"}, {"Account": "llm", "Fairshare": "70"}]
    assert json.dumps(rows)  # plain data
