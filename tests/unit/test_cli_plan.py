"""`gpupool plan` in-process: JSON contract, human output, exit codes, free state from a fake Slurm."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpupool.cli.context import AppContext
from gpupool.cli.main import main
from gpupool.errors import EnvError
from gpupool.fabric.generate import dragonfly, fat_tree
from gpupool.fabric.model import save_fabric
from gpupool.slurm.models import NodeState

CONTRACT_COST_KEYS = {"pair_hops_sum", "mean_hops", "max_hops", "leaf_switches", "groups"}


@pytest.fixture()
def tree_fabric(tmp_path: Path) -> str:
    path = tmp_path / "tree.json"
    save_fabric(fat_tree(4, 4, 2), str(path))  # leaf k holds gpu(4k-3)..gpu(4k)
    return str(path)


def _free(tmp_path: Path, free: dict[str, int]) -> str:
    path = tmp_path / "free.json"
    path.write_text(json.dumps(free))
    return str(path)


def _json(capsys: pytest.CaptureFixture[str]) -> dict:
    return json.loads(capsys.readouterr().out)


def test_plan_json_contract(tree_fabric: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    free = _free(tmp_path, {"gpu001": 2, "gpu005": 8, "gpu006": 8, "gpu007": 8})
    assert main(["plan", "--gpus", "12", "--free", free, "--fabric", tree_fabric, "--json"]) == 0
    doc = _json(capsys)
    assert doc["feasible"] is True
    # One full host plus 4 GPUs on another, both on leaf 2 (gpu005-008); gpu001 (leaf 1) stays free.
    assert sorted(doc["allocation"].values()) == [4, 8]
    assert set(doc["allocation"]) <= {"gpu005", "gpu006", "gpu007"}
    hosts = sorted(doc["allocation"])
    assert doc["nodelist"] == f"gpu[{hosts[0][3:]}{'-' if int(hosts[1][3:]) == int(hosts[0][3:]) + 1 else ','}{hosts[1][3:]}]"
    assert set(doc["cost"]) >= CONTRACT_COST_KEYS
    assert doc["cost"]["pair_hops_sum"] == 8 * 4 * 2
    assert doc["cost"]["leaf_switches"] == 1
    assert isinstance(doc["elapsed_ms"], float)
    assert doc["slurm_reference"]["mode"] == "slurm-tree"
    assert doc["slurm_reference"]["cost"]["pair_hops_sum"] >= doc["cost"]["pair_hops_sum"]


def test_plan_human_output_draws_the_tree(tree_fabric: str, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    free = _free(tmp_path, {"gpu001": 2, "gpu005": 8, "gpu006": 8})
    assert main(["plan", "--gpus", "8", "--free", free, "--fabric", tree_fabric]) == 0
    out = capsys.readouterr().out
    assert "leaf02" in out and "gpu005: 8 GPUs" in out
    assert "slurm-tree reference" in out and "pair_hops_sum" in out
    assert "\x1b[" not in out  # not a terminal: no ANSI codes


def test_plan_infeasible_prints_json_and_exits_1(tree_fabric: str, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    free = _free(tmp_path, {"gpu001": 2, "gpu005": 3})
    assert main(["plan", "--gpus", "9", "--free", free, "--fabric", tree_fabric, "--json"]) == 1
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert doc["feasible"] is False
    assert captured.err.startswith("gpupool: error:") and "largest feasible request is 5 GPUs" in captured.err


def test_plan_exit_codes(tree_fabric: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    free = _free(tmp_path, {"gpu001": 2, "ghost": 3})
    assert main(["plan", "--gpus", "1", "--free", free, "--fabric", tree_fabric]) == 4
    assert "ghost" in capsys.readouterr().err
    assert main(["plan", "--gpus", "1", "--free", free, "--fabric", tree_fabric, "--ignore-unknown", "--json"]) == 0
    assert _json(capsys)["allocation"] == {"gpu001": 1}
    assert main(["plan", "--gpus", "0", "--free", free, "--fabric", tree_fabric]) == 2
    assert capsys.readouterr().err == "gpupool: error: --gpus must be a positive number, got 0\n"
    assert main(["plan", "--gpus", "1", "--free", str(tmp_path / "missing.json"), "--fabric", tree_fabric]) == 4
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["plan", "--gpus", "1", "--free", str(bad), "--fabric", tree_fabric]) == 4
    err = capsys.readouterr().err
    assert "bad.json:1" in err and "Traceback" not in err


def test_plan_options_exclude_max_hops_gpus_per_node(tree_fabric: str, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    free = _free(tmp_path, {f"gpu{i:03d}": 8 for i in range(1, 17)})
    args = ["plan", "--gpus", "16", "--gpus-per-node", "4", "--exclude", "gpu[001-002]", "--max-hops", "2",
            "--free", free, "--fabric", tree_fabric, "--json"]
    assert main(args) == 0
    doc = _json(capsys)
    assert len(doc["allocation"]) == 4 and set(doc["allocation"].values()) == {4}
    assert not {"gpu001", "gpu002"} & set(doc["allocation"])
    assert doc["cost"]["max_hops"] == 2


class FakeSlurm:
    def __init__(self, nodes: list[NodeState]) -> None:
        self.nodes = nodes

    def node_states(self) -> list[NodeState]:
        return self.nodes

    def jobs(self) -> list[object]:
        return []  # plan subtracts pending gpupool jobs' GPUs like submit does

    def config(self) -> dict[str, str]:
        return {"TopologyPlugin": "topology/tree"}

    def partitions(self) -> dict[str, dict[str, str]]:
        return {"gpu": {"PartitionName": "gpu", "Default": "YES"}}


def test_plan_reads_free_state_from_slurm(tree_fabric: str, capsys: pytest.CaptureFixture[str]) -> None:
    nodes = [NodeState(name=f"gpu{i:03d}", flags=frozenset({"MIXED"}), gpus_total=8, gpus_used=8 - free,
                       partitions=("gpu",))
             for i, free in [(1, 8), (2, 1), (9, 8), (10, 8)]]
    nodes.append(NodeState(name="gpu011", flags=frozenset({"IDLE", "DRAIN"}), gpus_total=8, partitions=("gpu",)))
    ctx = AppContext(slurm=FakeSlurm(nodes))  # type: ignore[arg-type]
    assert main(["plan", "--gpus", "16", "--fabric", tree_fabric, "--json"], obj=ctx) == 0
    assert _json(capsys)["allocation"] == {"gpu009": 8, "gpu010": 8}
    ctx = AppContext(slurm=FakeSlurm(nodes))  # type: ignore[arg-type]
    assert main(["plan", "--nodes", "1", "--gpus-per-node", "9", "--fabric", tree_fabric], obj=ctx) == 2
    assert "more than any host has" in capsys.readouterr().err
    ctx = AppContext(slurm=FakeSlurm(nodes))  # type: ignore[arg-type]
    assert main(["plan", "--gpus", "1", "--partition", "nope", "--fabric", tree_fabric], obj=ctx) == 4


def test_plan_on_dragonfly_reports_groups_and_bound(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "df.json"
    save_fabric(dragonfly(3, 2, 2, 1), str(path))
    free = _free(tmp_path, {f"gpu{i:03d}": 4 for i in range(1, 13)})
    assert main(["plan", "--gpus", "12", "--free", free, "--fabric", str(path), "--json"]) == 0
    doc = _json(capsys)
    assert doc["cost"]["groups"] == 1
    assert doc["lower_bound"] <= doc["cost"]["pair_hops_sum"]
    assert doc["slurm_reference"]["mode"] == "slurm-dragonfly"


def test_stale_fabric_cache_is_rebuilt(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "fabric.json"
    save_fabric(fat_tree(2, 2, 1), str(path))
    free = _free(tmp_path, {"gpu001": 4})
    assert main(["plan", "--gpus", "4", "--free", free, "--fabric", str(path), "--json"]) == 0
    capsys.readouterr()
    save_fabric(fat_tree(2, 2, 1, prefix="node"), str(path))  # same shape, new host names
    assert main(["plan", "--gpus", "4", "--free", free, "--fabric", str(path)]) == 4
    assert "gpu001" in capsys.readouterr().err
    free = _free(tmp_path, {"node001": 4})
    assert main(["plan", "--gpus", "4", "--free", free, "--fabric", str(path), "--json"]) == 0
    assert _json(capsys)["allocation"] == {"node001": 4}


def test_plan_without_slurm_is_an_environment_error(tree_fabric: str, capsys: pytest.CaptureFixture[str]) -> None:
    class Unreachable(FakeSlurm):
        def node_states(self) -> list[NodeState]:
            raise EnvError("slurmctld is not reachable")

    ctx = AppContext(slurm=Unreachable([]))  # type: ignore[arg-type]
    assert main(["plan", "--gpus", "4", "--fabric", tree_fabric], obj=ctx) == 3
    assert "slurmctld is not reachable" in capsys.readouterr().err


def test_free_file_with_partition_asks_slurm_for_its_hosts(tree_fabric: str, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    # gpu001-gpu008 (leaves 1-2) are in partition "a", gpu009-gpu016 (leaves 3-4) in "b".
    nodes = [NodeState(name=f"gpu{i:03d}", flags=frozenset({"IDLE"}), gpus_total=8,
                       partitions=("a",) if i <= 8 else ("b",)) for i in range(1, 17)]
    free = _free(tmp_path, {"gpu001": 2, "gpu002": 2, "gpu009": 8, "gpu010": 8})
    argv = ["plan", "--gpus", "16", "--free", free, "--fabric", tree_fabric, "--json"]
    assert main([*argv, "--partition", "nosuch"], obj=AppContext(slurm=FakeSlurm(nodes))) == 4  # type: ignore[arg-type]
    err = capsys.readouterr().err
    assert "unknown partition 'nosuch'" in err and "a, b" in err
    assert main([*argv, "--partition", "b"], obj=AppContext(slurm=FakeSlurm(nodes))) == 0  # type: ignore[arg-type]
    assert _json(capsys)["allocation"] == {"gpu009": 8, "gpu010": 8}
    # partition a has only 4 free GPUs in the file: nothing fits there
    assert main([*argv, "--partition", "a"], obj=AppContext(slurm=FakeSlurm(nodes))) == 1  # type: ignore[arg-type]
    capsys.readouterr()
    # without --partition a free file needs no Slurm at all
    assert main(argv) == 0
    assert _json(capsys)["allocation"] == {"gpu009": 8, "gpu010": 8}


def test_broken_first_party_import_is_an_internal_error_not_a_missing_command(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import sys

    for name in ("gpupool.cli.fabric", "gpupool.cli.fabric_audit", "gpupool.app.audit"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.setitem(sys.modules, "gpupool.audit.run", None)  # importing it now raises ImportError
    assert main(["fabric", "audit", "--help"]) == 70
    err = capsys.readouterr().err
    assert "No such command" not in err and "Slurm" not in err
    assert "internal error" in err and "command 'fabric' cannot be loaded" in err and "gpupool.audit.run" in err
