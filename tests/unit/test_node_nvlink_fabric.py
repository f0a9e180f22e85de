"""NVLink fabric membership (nvmlDeviceGetGpuFabricInfoV) through the real pynvml and the fake
libnvidia-ml.so: `node topo --json` reports it, `node check` judges it; NOT_SUPPORTED is no domain."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fakenvml.fakenvml_build import (
    build_fake_nvml,
    fake_nvml_env,
    node_config,
    write_scenario,
)
from tests.support.helpers import require_tool

GPUPOOL = [sys.executable, "-m", "gpupool"]
CLUSTER = "0123456789ABCDEF0123456789abcdef"
CLUSTER_TEXT = "01234567-89ab-cdef-0123-456789abcdef"  # the same 16 bytes, 8-4-4-4-12
NVL = {"count": 4, "gpu.*.fabric": "completed", "gpu.*.fabric_cluster": CLUSTER, "gpu.*.fabric_clique": 7,
       "gpu.*.fabric_health": 0x2}  # 0x2: DEGRADED_BW_FALSE


@pytest.fixture(scope="session")
def fake_nvml(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_tool("gcc", "cc", why="builds the fake libnvidia-ml.so.1")
    return build_fake_nvml(tmp_path_factory.mktemp("fakenvml"))


def run(fake_nvml: Path, tmp_path: Path, scenario: dict[str, object], *args: str) -> tuple[int, dict]:
    config = tmp_path / "config.toml"
    config.write_text(node_config(tmp_path))
    env = fake_nvml_env(fake_nvml, write_scenario(tmp_path / "scenario.txt", scenario))
    env["GPUPOOL_CONFIG"] = str(config)
    env["SLURMD_NODENAME"] = "gpu017"
    for name in ("SLURM_JOB_ID", "SLURM_JOB_GPUS", "SLURM_STEP_GPUS", "CUDA_VISIBLE_DEVICES"):
        env.pop(name, None)
    root = tmp_path / "sysroot"
    (root / "sys/bus/pci/devices").mkdir(parents=True, exist_ok=True)
    done = subprocess.run([*GPUPOOL, "node", *args, "--json", "--sysfs-root", str(root)], env=env,
                          capture_output=True, text=True, timeout=60)
    return done.returncode, json.loads(done.stdout)


def test_no_fabric_info_is_no_domain_not_an_error(fake_nvml: Path, tmp_path: Path) -> None:
    for scenario in ({"count": 4}, {"count": 4, "gpu.*.fabric": "state_not_supported"}):
        code, topo = run(fake_nvml, tmp_path, scenario, "topo")
        assert code == 0 and topo["nvlink_domain"] is None and topo["node"] == "gpu017"
        code, report = run(fake_nvml, tmp_path, scenario, "check", "--hca-source", "none")
        assert (code, report["findings"], report["unknown"], report["nvlink_domain"]) == (0, [], [], None)


def test_a_registered_node_reports_its_domain(fake_nvml: Path, tmp_path: Path) -> None:
    code, topo = run(fake_nvml, tmp_path, NVL, "topo")
    assert code == 0
    domain = topo["nvlink_domain"]
    assert (domain["cluster_uuid"], domain["clique_id"], domain["complete"]) == (CLUSTER_TEXT, 7, True)
    assert [(g["index"], g["state"], g["status"], g["health_mask"]) for g in domain["gpus"]] == \
        [(i, "completed", 0, 2) for i in range(4)]
    code, report = run(fake_nvml, tmp_path, NVL, "check", "--hca-source", "none")
    assert (code, report["findings"]) == (0, [])
    assert report["nvlink_domain"]["cluster_uuid"] == CLUSTER_TEXT


@pytest.mark.parametrize(("extra", "subject", "words"), [
    ({"gpu.3.fabric": "in_progress"}, "gpu3", "not complete (in_progress)"),
    ({"gpu.1.fabric": "not_started"}, "gpu1", "not complete (not_started)"),
    ({"gpu.2.fabric_status": 999}, "gpu2", "registration failed (NVML status 999)"),
    ({"gpu.0.fabric_health": 0x1}, "gpu0", "bandwidth degraded"),  # DEGRADED_BW_TRUE
    ({"gpu.2.fabric_clique": 8}, "node", "2 NVLink domains"),
    ({"gpu.3.fabric": "unsupported"}, "gpu3", "no NVLink fabric info"),
])
def test_fabric_problems_are_warnings(fake_nvml: Path, tmp_path: Path, extra: dict[str, object], subject: str,
                                      words: str) -> None:
    code, report = run(fake_nvml, tmp_path, {**NVL, **extra}, "check", "--hca-source", "none")
    assert code == 1 and report["status"] == "WARNING"
    assert [(f["check"], f["subject"]) for f in report["findings"]] == [("nvlink-fabric", subject)]
    assert words in report["findings"][0]["message"]
    # Degraded bandwidth is a health problem of a registered GPU: the domain itself is complete.
    assert report["nvlink_domain"]["complete"] is (subject == "gpu0")


def test_the_v1_call_and_an_old_pynvml_are_handled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Drivers before R550 lack nvmlDeviceGetGpuFabricInfoV (pynvml: FunctionNotFound): the v1
    structure is read; a pynvml without fabric support at all gives no domain, not a crash."""
    import ctypes
    import types

    from gpupool.node.gpu import _fabric_info

    class FunctionNotFound(Exception):
        pass

    class Info:
        def __init__(self) -> None:
            self.clusterUuid = bytes(range(16))
            self.status, self.cliqueId, self.state = 0, 5, 3

    def v2(_handle: object, _info: object) -> None:
        raise FunctionNotFound

    monkeypatch.setattr(ctypes, "byref", lambda obj: obj)  # the fakes take the structure itself
    old = types.SimpleNamespace(NVMLError_FunctionNotFound=FunctionNotFound, c_nvmlGpuFabricInfoV_t=Info,
                                nvmlDeviceGetGpuFabricInfoV=v2, c_nvmlGpuFabricInfo_t=Info,
                                nvmlDeviceGetGpuFabricInfo=lambda _handle, _info: None)
    fabric = _fabric_info(old, object())
    assert fabric is not None
    assert (fabric.cluster_uuid, fabric.clique_id, fabric.state, fabric.health_mask) == \
        ("00010203-0405-0607-0809-0a0b0c0d0e0f", 5, "completed", None)
    ancient = types.SimpleNamespace(NVMLError_FunctionNotFound=FunctionNotFound)
    assert _fabric_info(ancient, object()) is None
