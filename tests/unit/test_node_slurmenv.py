"""What Slurm hands the Prolog: job GPUs, node gres, node name; and when `--drain` drains."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpupool.cli.context import AppContext
from gpupool.cli.main import main
from gpupool.node.deadline import Progress
from gpupool.node.facts import GpuFacts, GpuInventory
from gpupool.node.slurmenv import (
    job_gpu_ids,
    node_name,
    parse_gres_gpus,
    parse_scontrol_node,
    resolve_gpu_ids,
)
from tests.fakenvml.fakenvml_build import node_config


def test_job_gpu_ids_prefers_step_then_job_then_cuda() -> None:
    assert job_gpu_ids({"CUDA_VISIBLE_DEVICES": "0"}) is None  # not under Slurm
    env = {"SLURM_JOB_ID": "9", "CUDA_VISIBLE_DEVICES": "5", "SLURM_JOB_GPUS": "2,3"}
    assert job_gpu_ids(env) == ["2", "3"]
    assert job_gpu_ids({**env, "SLURM_STEP_GPUS": "3"}) == ["3"]
    assert job_gpu_ids({"SLURM_JOB_ID": "9", "CUDA_VISIBLE_DEVICES": "NoDevFiles"}) == []
    assert job_gpu_ids({"SLURM_JOB_ID": "9"}) == []  # a CPU-only job: no GPU of ours to check


def test_uuids_resolve_to_indices() -> None:
    uuids = {0: "GPU-aaa", 1: "GPU-bbb"}
    assert resolve_gpu_ids(["GPU-BBB", "0", "GPU-zzz"], uuids) == [1, 0]


def test_gres_parsing() -> None:
    assert parse_gres_gpus("gpu:8") == 8
    assert parse_gres_gpus("gpu:a100:4(S:0-1),gpu:h100:4(S:1),nic:2") == 8
    assert parse_gres_gpus("nic:2") is None
    line = "NodeName=gpu001 Arch=x86_64 CoresPerSocket=8 Gres=gpu:h100:8(S:0-1) NodeAddr=127.0.0.1"
    assert parse_gres_gpus(parse_scontrol_node(line)["Gres"]) == 8


def test_node_name_from_slurmd() -> None:
    assert node_name({"SLURMD_NODENAME": "gpu017"}) == "gpu017"
    assert node_name({}) != ""


class FakeSlurm:
    def __init__(self, gres: str | None = "gpu:8") -> None:
        self.gres = gres
        self.asked: list[str] = []
        self.drained: list[tuple[str, str]] = []

    def node_gres(self, node: str) -> str | None:
        self.asked.append(node)
        return self.gres

    def drain(self, node: str, reason: str) -> None:
        self.drained.append((node, reason))


class TwoGpus:
    def __init__(self, ecc: int) -> None:
        self.ecc = ecc

    def inventory(self, wanted: set[int] | None, topology: bool, progress: Progress) -> GpuInventory:
        gpus = [GpuFacts(index=i, ecc_uncorrected_volatile=self.ecc if i == 1 else 0) for i in range(2)]
        return GpuInventory(count=2, gpus=[g for g in gpus if wanted is None or g.index in wanted])


def run(argv: list[str], ecc: int, slurm: FakeSlurm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], config: str = "") -> tuple[int, str]:
    (tmp_path / "c.toml").write_text(node_config(tmp_path, config))
    monkeypatch.delenv("SLURM_CONF", raising=False)
    monkeypatch.setenv("GPUPOOL_CONFIG", str(tmp_path / "c.toml"))
    monkeypatch.setenv("SLURMD_NODENAME", "gpu007")
    monkeypatch.setenv("NO_COLOR", "1")
    context = AppContext(gpu_source=TwoGpus(ecc), slurm=slurm)  # type: ignore[arg-type]
    code = main([*argv, "--hca-source", "none"], obj=context)
    return code, capsys.readouterr().out


def test_prolog_drains_on_critical_with_the_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    slurm = FakeSlurm("gpu:2")
    code, out = run(["node", "check", "--prolog", "--drain"], 3, slurm, tmp_path, monkeypatch, capsys)
    assert code == 2
    assert slurm.drained == [("gpu007", "gpupool: gpu1 ecc-uncorrected: 3 volatile uncorrectable ECC error(s)")]
    assert out == "CRITICAL: gpupool: gpu1 ecc-uncorrected: 3 volatile uncorrectable ECC error(s)\n"


def test_no_drain_when_healthy_or_by_hand(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    slurm = FakeSlurm("gpu:2")
    code, out = run(["node", "check", "--prolog", "--drain"], 0, slurm, tmp_path, monkeypatch, capsys)
    assert (code, out, slurm.drained) == (0, "OK: node healthy\n", [])
    code, out = run(["node", "check", "--drain"], 3, slurm, tmp_path, monkeypatch, capsys)
    assert code == 2 and slurm.drained == []
    assert "gpu007: CRITICAL" in out and "ecc-uncorrected" in out and "\x1b[" not in out


def test_gres_mismatch_through_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "conf-cache").mkdir()
    (tmp_path / "conf-cache" / "slurm.conf").write_text(
        "NodeName=DEFAULT CPUs=64\nNodeName=gpu[001-009] Gres=gpu:h100:8 RealMemory=1000\n")
    slurm = FakeSlurm("gpu:2")
    code, out = run(["node", "check", "--json"], 0, slurm, tmp_path, monkeypatch, capsys,
                    config=f'[node]\nslurm_conf_dirs = ["{tmp_path / "conf-cache"}"]\n')
    report = json.loads(out)
    assert slurm.asked == []
    assert code == 2 and report["findings"][0]["message"] == \
        "2 GPU(s) visible to NVML, node is configured with 8"
