"""GPU <-> HCA affinity from a fake PCI tree, and the TaskProlog lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpupool.cli.main import main
from gpupool.node.facts import GpuFacts, GpuInventory
from gpupool.node.hca import SysfsHcaSource
from gpupool.node.topo import PciLocation, build_topology, pci_level, task_prolog_lines
from tests.fakenvml.fakesysfs import ACTIVE, DOWN, add_gpu, add_hca, add_pci_device, dgx_like


def loc(root: str, *chain: str, numa: int | None = 0) -> PciLocation:
    return PciLocation(bus_id=chain[-1], root=root, chain=chain, numa_node=numa)


def test_pci_levels() -> None:
    gpu = loc("pci0000:10", "rp1", "up1", "dn1", "gpu")
    assert pci_level(gpu, gpu) == "X"
    assert pci_level(gpu, loc("pci0000:10", "rp1", "up1", "dn2", "hca")) == "PIX"
    # Behind a second switch: two switches between them.
    assert pci_level(gpu, loc("pci0000:10", "rp1", "up1", "dn3", "up2", "dn4", "hca")) == "PXB"
    assert pci_level(gpu, loc("pci0000:10", "rp2", "up3", "dn5", "hca")) == "PHB"
    assert pci_level(gpu, loc("pci0000:20", "rp3", "hca", numa=0)) == "NODE"
    assert pci_level(gpu, loc("pci0000:90", "rp4", "hca", numa=1)) == "SYS"


def test_dgx_like_tree_gives_each_gpu_the_hca_on_its_switch(tmp_path: Path) -> None:
    dgx_like(tmp_path)
    topology = build_topology(tmp_path, None, SysfsHcaSource(tmp_path).ports())
    assert [g.bus_id for g in topology.gpus][:2] == ["0000:18:00.0", "0000:19:00.0"]
    assert [topology.nearest_hcas(i) for i in range(8)] == [
        ["mlx5_0"], ["mlx5_0"], ["mlx5_1"], ["mlx5_1"], ["mlx5_2"], ["mlx5_2"], ["mlx5_3"], ["mlx5_3"]]
    assert topology.level("gpu0", "mlx5_0") == "PIX"
    assert topology.level("gpu0", "mlx5_1") == "PHB"
    assert topology.level("gpu0", "mlx5_2") == "SYS"
    assert topology.level("gpu0", "gpu1") == "PIX"


def test_nvml_levels_win_for_gpu_pairs(tmp_path: Path) -> None:
    dgx_like(tmp_path)
    inventory = GpuInventory(count=2, gpus=[GpuFacts(0, bus_id="0000:18:00.0"),
                                            GpuFacts(1, bus_id="0000:99:00.0")],
                             common_ancestor={(0, 1): 40})
    topology = build_topology(tmp_path, inventory, [])
    assert topology.level("gpu0", "gpu1") == "NODE"  # from NVML, sysfs alone would say SYS
    assert topology.nearest_hcas(1) == ["mlx5_2"]


def test_task_prolog_one_gpu_per_task(tmp_path: Path) -> None:
    dgx_like(tmp_path)
    topology = build_topology(tmp_path, None, SysfsHcaSource(tmp_path).ports())
    env = {"SLURM_JOB_ID": "7", "SLURM_LOCALID": "0"}
    assert task_prolog_lines(topology, env, ["5"]) == [
        "export NCCL_IB_HCA==mlx5_2:1", "export GPUPOOL_GPU_HCA=5:mlx5_2"]
    # One process driving GPUs 2 and 7: both nearest HCAs, in GPU order.
    assert task_prolog_lines(topology, env, ["2", "7"])[0] == "export NCCL_IB_HCA==mlx5_1:1,mlx5_3:1"
    # Eight ranks on the node, each seeing all GPUs: rank 6 drives GPU 6.
    ranks = {"SLURM_JOB_ID": "7", "SLURM_LOCALID": "6", "SLURM_TASKS_PER_NODE": "8(x2)"}
    assert task_prolog_lines(topology, ranks, [str(i) for i in range(8)])[0] == \
        "export NCCL_IB_HCA==mlx5_3:1"


def test_task_prolog_skips_down_ports(tmp_path: Path) -> None:
    bridge = "pci0000:00"
    add_gpu(tmp_path, bridge, ["0000:00:01.0", "0000:01:00.0", "0000:02:00.0", "0000:03:00.0"])
    hca = add_pci_device(tmp_path, bridge, ["0000:00:01.0", "0000:01:00.0", "0000:02:01.0", "0000:04:00.0"])
    add_hca(tmp_path, "mlx5_0", hca, {1: DOWN, 2: ACTIVE})
    topology = build_topology(tmp_path, None, SysfsHcaSource(tmp_path).ports())
    assert task_prolog_lines(topology, {}, None)[0] == "export NCCL_IB_HCA==mlx5_0:2"


def test_topo_cli_json_and_task_prolog(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    dgx_like(tmp_path)
    monkeypatch.setenv("GPUPOOL_CONFIG", str(tmp_path / "none.toml"))
    (tmp_path / "none.toml").write_text("")
    assert main(["node", "topo", "--json", "--no-nvml", "--sysfs-root", str(tmp_path)]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["matrix"]["gpu3"]["mlx5_1"] == "PIX"
    assert document["gpus"][7]["nearest_hcas"] == ["mlx5_3"]
    assert document["hcas"][0]["numa_node"] == 0
    monkeypatch.setenv("SLURM_JOB_ID", "1")
    monkeypatch.setenv("SLURM_STEP_GPUS", "0")
    assert main(["node", "topo", "--task-prolog", "--no-nvml", "--sysfs-root", str(tmp_path)]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "export NCCL_IB_HCA==mlx5_0:1"
    assert main(["node", "topo", "--json", "--task-prolog", "--no-nvml"]) == 2
    assert "cannot be combined" in capsys.readouterr().err
