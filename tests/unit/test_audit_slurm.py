"""Slurm drift: node sets and `scontrol show topology` against the fabric, through a fake SlurmView."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpupool.audit.slurm_drift import check_node_sets, check_topology, parse_topology
from gpupool.cli.context import AppContext
from gpupool.cli.main import main
from gpupool.errors import EnvError
from gpupool.fabric.compiled import compile_fabric
from gpupool.fabric.export import export_slurm_tree
from gpupool.fabric.generate import fat_tree
from gpupool.fabric.model import save_fabric

# What `scontrol show topology` (Slurm 22.05) prints for gpupool's topology.conf of fat_tree(4, 4, 2):
# upper switches list every node below them as Nodes= too.
SCONTROL_OK = """\
SwitchName=leaf01 Level=0 LinkSpeed=1 Nodes=gpu[001-004]
SwitchName=leaf02 Level=0 LinkSpeed=1 Nodes=gpu[005-008]
SwitchName=leaf03 Level=0 LinkSpeed=1 Nodes=gpu[009-012]
SwitchName=leaf04 Level=0 LinkSpeed=1 Nodes=gpu[013-016]
SwitchName=spine01 Level=1 LinkSpeed=1 Nodes=gpu[001-016] Switches=leaf[01-04]
"""
NODES = [f"gpu{i:03d}" for i in range(1, 17)]


class FakeSlurm:
    def __init__(self, nodes: list[str], topology: str, fail: bool = False) -> None:
        self.nodes, self.topology, self.fail = nodes, topology, fail

    def node_names(self) -> list[str]:
        if self.fail:
            raise EnvError("sinfo: Slurm unreachable: Unable to contact slurm controller")
        return self.nodes

    def topology_text(self) -> str:
        return self.topology


@pytest.fixture
def expected_conf() -> str:
    return export_slurm_tree(compile_fabric(fat_tree(4, 4, 2)))


def test_parse_topology_reads_scontrol_and_topology_conf(expected_conf: str) -> None:
    actual = parse_topology(SCONTROL_OK)
    assert actual["leaf02"].nodes == [f"gpu{i:03d}" for i in range(5, 9)]
    assert actual["spine01"].switches == ["leaf01", "leaf02", "leaf03", "leaf04"]
    assert set(parse_topology(expected_conf)) == set(actual)


def test_matching_topology_has_no_drift(expected_conf: str) -> None:
    report = check_topology(SCONTROL_OK, expected_conf, NODES)
    assert report.findings == [] and report.diff == ""


def test_moved_host_is_reported_with_diff_and_corrected_conf(expected_conf: str) -> None:
    drifted = SCONTROL_OK.replace("Nodes=gpu[001-004]", "Nodes=gpu[001-005]").replace(
        "Nodes=gpu[005-008]", "Nodes=gpu[006-008]")
    report = check_topology(drifted, expected_conf, NODES)
    subjects = {(f.check, f.subject) for f in report.findings}
    assert subjects == {("slurm-topology-drift", "leaf01"), ("slurm-topology-drift", "leaf02")}
    leaf01 = next(f for f in report.findings if f.subject == "leaf01")
    assert "gpu[001-005]" in leaf01.message and "leaf02 has gpu005" in leaf01.message
    assert "-SwitchName=leaf01 Nodes=gpu[001-005]" in report.diff
    assert "+SwitchName=leaf01 Nodes=gpu[001-004]" in report.diff
    assert report.corrected == expected_conf


def test_no_topology_and_unplaced_node(expected_conf: str) -> None:
    (finding,) = check_topology("", expected_conf, NODES).findings
    assert finding.subject == "topology"
    partial = SCONTROL_OK.replace("Nodes=gpu[013-016]", "Nodes=gpu[013-015]").replace("gpu[001-016]", "gpu[001-015]")
    subjects = {f.subject for f in check_topology(partial, expected_conf, NODES).findings}
    assert subjects == {"gpu016"}


def test_node_sets_both_ways() -> None:
    found = check_node_sets(["gpu001", "gpu002", "login1"], ["gpu001", "gpu002", "gpu003"])
    assert {(f.check, f.subject) for f in found} == {("slurm-node-not-in-fabric", "login1"),
                                                     ("fabric-host-not-in-slurm", "gpu003")}


def _audit(tmp_path: Path, slurm: FakeSlurm, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict]:  # type: ignore[type-arg]
    path = tmp_path / "fabric.json"
    save_fabric(fat_tree(4, 4, 2), str(path))
    ctx = AppContext(slurm=slurm)  # type: ignore[arg-type]
    code = main(["fabric", "audit", "--fabric", str(path), "--slurm", "--json"], ctx)
    return code, json.loads(capsys.readouterr().out)


def test_cli_slurm_drift_and_extras(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, doc = _audit(tmp_path, FakeSlurm(NODES + ["gpu017"], SCONTROL_OK), capsys)
    assert code == 1
    assert [(f["check"], f["subject"]) for f in doc["findings"]] == [("slurm-node-not-in-fabric", "gpu017")]
    assert "topology_conf" not in doc
    # leaf04 left out of the spine: Slurm sees two trees where the fabric has one.
    drifted = SCONTROL_OK.replace("Nodes=gpu[001-016] Switches=leaf[01-04]", "Nodes=gpu[001-012] Switches=leaf[01-03]")
    code, doc = _audit(tmp_path, FakeSlurm(NODES, drifted), capsys)
    assert code == 1 and doc["findings"][0]["subject"] == "upper levels"
    assert doc["topology_conf"].count("SwitchName=") == 5 and "topology_diff" in doc


def test_cli_unreachable_slurm_is_unknown(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, doc = _audit(tmp_path, FakeSlurm(NODES, SCONTROL_OK, fail=True), capsys)
    assert code == 3
    assert doc["status"] == "UNKNOWN" and doc["findings"] == []
    assert "Unable to contact slurm controller" in doc["unchecked"][0]


def test_block_topology_is_compared_with_the_fabric_blocks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocks = "".join(f"BlockName=leaf{i:02d} Nodes=gpu[{4 * i - 3:03d}-{4 * i:03d}]\n" for i in range(1, 5))
    code, doc = _audit(tmp_path, FakeSlurm(NODES, blocks + "BlockSizes=4,8,16\n"), capsys)
    assert (code, doc["findings"]) == (0, [])
    moved = blocks.replace("gpu[001-004]", "gpu[001-003]").replace("gpu[005-008]", "gpu[004-008]")
    code, doc = _audit(tmp_path, FakeSlurm(NODES, moved), capsys)
    assert {f["subject"] for f in doc["findings"]} == {"leaf01", "leaf02"}
    assert doc["topology_conf"].startswith("# topology.conf (topology/block")
