"""GPU count without slurmctld: slurm.conf/gres.conf on the node, the job's environment, the PCI bus."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpupool.node.checks import overall_status, run_checks
from gpupool.node.facts import CollectError, NodeFacts
from gpupool.node.gpucount import (
    conf_dirs,
    configured_gpus,
    expand_hostlist,
    gres_conf_gpus,
    gres_gpu_count,
    pci_nvidia_gpus,
    slurm_conf_gpus,
)
from gpupool.node.settings import NodeSettings
from tests.fakenvml.fakesysfs import add_gpu, add_pci_device, dgx_like

# Shaped like a real site slurm.conf (comments, continuation lines, NodeName=DEFAULT).
SLURM_CONF = """\
ClusterName=lab
SlurmctldHost=ctl01
GresTypes=gpu
NodeName=DEFAULT Sockets=2 CoresPerSocket=56 \\
    Gres=gpu:h100:8 RealMemory=2000000
NodeName=dgx[001-004,010] State=UNKNOWN   # HGX H100 nodes
NodeName=cpu[01-02] Gres=(null) CPUs=128
NodeName=a100-[1-2] Gres=gpu:a100:4,gpu:a10:1,nic:1
PartitionName=gpu Nodes=dgx[001-004,010] Default=YES
"""

GRES_CONF = """\
# gres.conf
AutoDetect=off
NodeName=dgx[001-004] Name=gpu Type=h100 File=/dev/nvidia[0-7]
NodeName=l40-1 Name=gpu Type=l40 File=/dev/nvidia0
NodeName=l40-1 Name=gpu Type=l40 File=/dev/nvidia[1-3]
Name=gpu Count=2
"""


def test_hostlist_expansion() -> None:
    assert expand_hostlist("dgx[001-003,010],cpu1") == ["dgx001", "dgx002", "dgx003", "dgx010", "cpu1"]
    assert expand_hostlist("/dev/nvidia[0-3]") == [f"/dev/nvidia{i}" for i in range(4)]
    assert expand_hostlist("r[1-2]n[01-02]") == ["r1n01", "r1n02", "r2n01", "r2n02"]


def test_gres_strings() -> None:
    assert gres_gpu_count("gpu:h100:8(S:0-1),nic:2") == 8
    assert gres_gpu_count("gpu:a100:4,gpu:a10:1") == 5
    assert gres_gpu_count("gres/gpu:2") == 2
    assert gres_gpu_count("(null)") is None and gres_gpu_count("nic:1") is None


def test_slurm_conf(tmp_path: Path) -> None:
    conf = tmp_path / "slurm.conf"
    conf.write_text(SLURM_CONF)
    assert slurm_conf_gpus("dgx010", conf) == 8  # from NodeName=DEFAULT across a continuation line
    assert slurm_conf_gpus("a100-2", conf) == 5
    assert slurm_conf_gpus("cpu01", conf) is None
    assert slurm_conf_gpus("elsewhere", conf) is None


def test_gres_conf(tmp_path: Path) -> None:
    conf = tmp_path / "gres.conf"
    conf.write_text(GRES_CONF)
    assert gres_conf_gpus("dgx002", conf) == 8 + 2  # its own line plus the line for every node
    assert gres_conf_gpus("l40-1", conf) == 1 + 3 + 2
    assert gres_conf_gpus("other", conf) == 2


def test_configless_cache_and_slurm_conf_env(tmp_path: Path) -> None:
    cache = tmp_path / "var/spool/slurmd/conf-cache"
    cache.mkdir(parents=True)
    (cache / "slurm.conf").write_text(SLURM_CONF)
    found = configured_gpus("dgx003", conf_dirs({}, [str(tmp_path / "etc/slurm"), str(cache)]))
    assert found is not None and (found.count, found.source) == (8, str(cache / "slurm.conf"))
    own = tmp_path / "own"
    own.mkdir()
    (own / "slurm.conf").write_text("NodeName=dgx003 Gres=gpu:2\n")
    found = configured_gpus("dgx003", conf_dirs({"SLURM_CONF": str(own / "slurm.conf")}, [str(cache)]))
    assert found is not None and found.count == 2
    assert configured_gpus("nowhere", conf_dirs({}, [str(cache)])) is None


def test_pci_bus(tmp_path: Path) -> None:
    dgx_like(tmp_path)
    # An NVSwitch (NVIDIA vendor, bridge class) is not a GPU.
    add_pci_device(tmp_path, "pci0000:10", ["0000:10:05.0", "0000:05:00.0"], vendor="0x10de",
                   pci_class="0x068000")
    add_gpu(tmp_path, "pci0000:90", ["0000:90:07.0", "0000:07:00.0"])
    found = pci_nvidia_gpus(tmp_path)
    assert found is not None and len(found) == 9 and "0000:05:00.0" not in found
    assert pci_nvidia_gpus(tmp_path / "missing") is None
    empty = tmp_path / "cpu"
    (empty / "sys/bus/pci/devices").mkdir(parents=True)
    assert pci_nvidia_gpus(empty) == []


NVML_DOWN = CollectError("nvml", "NVML init failed: Driver Not Loaded")


@pytest.mark.parametrize(("facts", "status"), [
    (NodeFacts(gpu_error=NVML_DOWN, pci_gpus=["0000:3b:00.0"]), "CRITICAL"),
    (NodeFacts(gpu_error=NVML_DOWN, pci_gpus=[], expected_gpus=8, expected_source="slurm.conf"), "CRITICAL"),
    (NodeFacts(gpu_error=NVML_DOWN, pci_gpus=[], job_gpus_on_node=2), "CRITICAL"),
    (NodeFacts(gpu_error=NVML_DOWN, pci_gpus=[]), "OK"),  # a CPU node
    (NodeFacts(gpu_error=NVML_DOWN, pci_gpus=None), "UNKNOWN"),  # cannot tell
])
def test_nvml_failure_is_critical_only_where_gpus_must_be(facts: NodeFacts, status: str) -> None:
    findings, unknown = run_checks(facts, NodeSettings())
    assert overall_status(findings, unknown) == status
    if status == "CRITICAL":
        assert findings[0].check == "nvml" and "Driver Not Loaded" in findings[0].message
