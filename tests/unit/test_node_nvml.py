"""`gpupool node check` against a fake libnvidia-ml.so (C, built here) loaded by the real pynvml."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gpupool.cli.context import AppContext
from gpupool.cli.main import main
from gpupool.node.deadline import Progress
from gpupool.node.gpu import NvmlGpuSource, collect_gpus
from tests.fakenvml.fakenvml_build import (
    build_fake_nvml,
    fake_nvml_env,
    node_config,
    write_scenario,
)
from tests.support.helpers import require_tool

GPUPOOL = [sys.executable, "-m", "gpupool"]


@pytest.fixture(scope="session")
def fake_nvml(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_tool("gcc", "cc", why="builds the fake libnvidia-ml.so.1")
    return build_fake_nvml(tmp_path_factory.mktemp("fakenvml"))


def run_check(fake_nvml: Path, tmp_path: Path, scenario: dict[str, object], *args: str,
              config: str = "", extra_env: dict[str, str] | None = None) -> tuple[int, dict, str]:
    scenario_file = write_scenario(tmp_path / "scenario.txt", scenario)
    config_file = tmp_path / "config.toml"
    config_file.write_text(node_config(tmp_path, config))
    env = fake_nvml_env(fake_nvml, scenario_file)
    env["GPUPOOL_CONFIG"] = str(config_file)
    for name in ("SLURM_JOB_ID", "SLURM_JOB_GPUS", "SLURM_STEP_GPUS", "CUDA_VISIBLE_DEVICES",
                 "SLURMD_NODENAME"):
        env.pop(name, None)
    env.update(extra_env or {})
    no_gpus_on_pci = tmp_path / "sysroot"  # the machine's own PCI bus must not count
    (no_gpus_on_pci / "sys/bus/pci/devices").mkdir(parents=True, exist_ok=True)
    done = subprocess.run([*GPUPOOL, "node", "check", "--json", "--hca-source", "none",
                           "--sysfs-root", str(no_gpus_on_pci), *args],
                          env=env, capture_output=True, text=True, timeout=60)
    return done.returncode, json.loads(done.stdout), done.stderr


def test_healthy_node_is_ok(fake_nvml: Path, tmp_path: Path) -> None:
    code, report, _ = run_check(fake_nvml, tmp_path, {"count": 8}, config="[node]\nexpected_gpus = 8\n")
    assert (code, report["status"], report["findings"]) == (0, "OK", [])
    assert report["gpu_count"] == 8 and report["checked_gpus"] == list(range(8))


@pytest.mark.parametrize(("scenario", "code", "status", "finding"), [
    ({"gpu.2.ecc_uncorrected": 3}, 2, "CRITICAL", ("ecc-uncorrected", "critical", "gpu2")),
    ({"gpu.1.remap_failure": 1}, 2, "CRITICAL", ("remapped-rows-failure", "critical", "gpu1")),
    ({"gpu.1.remap_pending": 1}, 1, "WARNING", ("remapped-rows-pending", "warning", "gpu1")),
    ({"gpu.0.retired_pending": 1}, 1, "WARNING", ("retired-pages-pending", "warning", "gpu0")),
    ({"gpu.3.temperature": 93}, 1, "WARNING", ("temperature", "warning", "gpu3")),
    ({"gpu.3.throttle": "0x40"}, 1, "WARNING", ("throttle", "warning", "gpu3")),
    ({"gpu.5.nvlink_down": 4}, 2, "CRITICAL", ("nvlink-down", "critical", "gpu5")),
    ({"gpu.6.pcie_width": 8}, 1, "WARNING", ("pcie-width", "warning", "gpu6")),
])
def test_faults_through_real_pynvml(fake_nvml: Path, tmp_path: Path, scenario: dict[str, object],
                                    code: int, status: str, finding: tuple[str, str, str]) -> None:
    got_code, report, _ = run_check(fake_nvml, tmp_path, {"count": 8, **scenario})
    assert (got_code, report["status"]) == (code, status)
    assert [(f["check"], f["severity"], f["subject"]) for f in report["findings"]] == [finding]


def test_fewer_gpus_than_gres_is_critical(fake_nvml: Path, tmp_path: Path) -> None:
    code, report, _ = run_check(fake_nvml, tmp_path, {"count": 7}, config="[node]\nexpected_gpus = 8\n")
    assert code == 2 and report["findings"][0]["check"] == "gpu-count"
    assert "7 GPU(s) visible" in report["findings"][0]["message"]


def test_prolog_checks_only_the_jobs_gpus(fake_nvml: Path, tmp_path: Path) -> None:
    scenario = {"count": 8, "gpu.0.ecc_uncorrected": 5, "gpu.4.procs": "4242"}
    job = {"SLURM_JOB_ID": "77", "SLURM_JOB_GPUS": "2,3"}
    code, report, _ = run_check(fake_nvml, tmp_path, scenario, "--prolog", extra_env=job)
    assert (code, report["status"], report["checked_gpus"]) == (0, "OK", [2, 3])
    job["SLURM_JOB_GPUS"] = "0,4"
    code, report, stderr = run_check(fake_nvml, tmp_path, scenario, "--prolog", extra_env=job)
    assert code == 2 and report["job_id"] == "77"
    assert {(f["check"], f["subject"]) for f in report["findings"]} == {
        ("ecc-uncorrected", "gpu0"), ("gpu-processes", "gpu4")}
    assert report["reason"].startswith("gpupool: gpu") and "status=CRITICAL" in stderr


def test_epilog_flags_processes_left_behind(fake_nvml: Path, tmp_path: Path) -> None:
    job = {"SLURM_JOB_ID": "78", "CUDA_VISIBLE_DEVICES": "1"}
    code, report, _ = run_check(fake_nvml, tmp_path, {"gpu.1.procs": "100,200"}, "--epilog", extra_env=job)
    assert code == 2
    assert [(f["check"], f["message"]) for f in report["findings"]] == [
        ("leftover-processes", "compute process(es) 100,200 left behind after the job")]


def test_warning_does_not_fail_the_prolog(fake_nvml: Path, tmp_path: Path) -> None:
    code, report, _ = run_check(fake_nvml, tmp_path, {"gpu.1.remap_pending": 1}, "--prolog")
    assert (code, report["status"]) == (0, "WARNING")


def test_hung_nvml_call_is_cut_off(fake_nvml: Path, tmp_path: Path) -> None:
    scenario = {"count": 2, "hang": "nvmlDeviceGetRemappedRows"}
    started = time.monotonic()
    code, report, _ = run_check(fake_nvml, tmp_path, scenario, "--prolog",
                                config="[node]\nnvml_timeout = 0.5\n")
    elapsed = time.monotonic() - started
    assert elapsed < 5, f"hung NVML call held the prolog for {elapsed:.1f} s"
    assert (code, report["status"]) == (2, "CRITICAL")
    assert "stuck in remapped_rows of gpu0" in report["findings"][0]["message"]
    code, report, _ = run_check(fake_nvml, tmp_path, scenario, "--prolog",
                                config='[node]\nnvml_timeout = 0.5\nnvml_timeout_status = "unknown"\n')
    assert (code, report["status"], report["findings"]) == (0, "UNKNOWN", [])
    code, report, _ = run_check(fake_nvml, tmp_path, scenario, "--prolog", "--strict",
                                config='[node]\nnvml_timeout = 0.5\nnvml_timeout_status = "unknown"\n')
    assert code == 3


def test_driver_not_loaded(fake_nvml: Path, tmp_path: Path) -> None:
    scenario = {"init": "driver_not_loaded"}
    code, report, _ = run_check(fake_nvml, tmp_path, scenario, config="[node]\nexpected_gpus = 4\n")
    assert code == 2 and report["findings"][0]["check"] == "nvml"
    assert "Driver Not Loaded" in report["findings"][0]["message"]
    code, report, _ = run_check(fake_nvml, tmp_path, scenario)  # CPU node: nothing expected
    assert (code, report["status"]) == (0, "OK")


def test_in_process_source_reads_fake_library(fake_nvml: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    scenario = write_scenario(tmp_path / "s.txt", {"count": 3, "gpu.1.busid": "0000:3b:00.0",
                                                   "gpu.2.nvlinks": 0, "gpu.0.switch": 7,
                                                   "gpu.1.switch": 7})
    monkeypatch.setenv("FAKENVML_CONFIG", str(scenario))
    inventory, error = collect_gpus(NvmlGpuSource(str(fake_nvml)), None, True, 10.0)
    assert error is None and inventory is not None
    assert inventory.driver_version == "535.104.05" and inventory.count == 3
    assert inventory.gpus[1].bus_id == "0000:3b:00.0"
    assert inventory.gpus[0].nvlink_active == [True] * 18 and inventory.gpus[2].nvlink_active == []
    assert inventory.common_ancestor == {(0, 1): 10, (0, 2): 40, (1, 2): 40}
    only_two = NvmlGpuSource(str(fake_nvml)).inventory({2}, False, Progress())
    assert [g.index for g in only_two.gpus] == [2] and only_two.count == 3


class ExplodingSource:
    def inventory(self, wanted: set[int] | None, topology: bool, progress: Progress) -> None:
        raise RuntimeError("bug in gpupool")


def test_internal_error_is_unknown_and_never_drains(capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text(node_config(tmp_path))
    monkeypatch.setenv("GPUPOOL_CONFIG", str(tmp_path / "c.toml"))
    drained: list[tuple[str, str]] = []

    class RecordingSlurm:
        def drain(self, node: str, reason: str) -> None:
            drained.append((node, reason))

    context = AppContext(gpu_source=ExplodingSource(), slurm=RecordingSlurm())  # type: ignore[arg-type]
    code = main(["node", "check", "--prolog", "--drain", "--json", "--hca-source", "none"], obj=context)
    report = json.loads(capsys.readouterr().out)
    assert (code, report["status"]) == (0, "UNKNOWN")
    assert report["unknown"] == ["internal error: RuntimeError: bug in gpupool"]
    assert drained == []
    context = AppContext(gpu_source=context.gpu_source, slurm=context.slurm)
    assert main(["node", "check", "--prolog", "--drain", "--strict", "--json", "--hca-source", "none"], obj=context) == 3
    assert drained and drained[0][1].startswith("gpupool: UNKNOWN: internal error")
