"""`gpupool fabric nvlink`: NVLink domains merged from node reports into the fabric, with the
problems named and doubtful hosts left out of every domain (hand-made reports, hand-worked results)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpupool.cli.main import main
from gpupool.fabric.generate import fat_tree
from gpupool.fabric.model import load_fabric, save_fabric

UUID_A = "aaaaaaaa-0000-0000-0000-000000000001"
UUID_B = "bbbbbbbb-0000-0000-0000-000000000002"


def _gpu(index: int, uuid: str = UUID_A, clique: int = 1, state: str = "completed", status: int = 0) -> dict:
    return {"index": index, "cluster_uuid": uuid, "clique_id": clique, "state": state, "status": status,
            "health_mask": 2}


def _write(tmp_path: Path, name: str, doc: object) -> str:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(doc))
    return str(path)


@pytest.fixture
def fabric(tmp_path: Path) -> str:
    path = tmp_path / "fabric.json"
    save_fabric(fat_tree(2, 4, 1), str(path))  # gpu[001-004] on leaf01, gpu[005-008] on leaf02
    return str(path)


def _run(fabric: str, tmp_path: Path, reports: dict[str, object], capsys: pytest.CaptureFixture[str]) -> dict:
    files = [_write(tmp_path, name, doc) for name, doc in reports.items()]
    out = str(tmp_path / "out.json")
    assert main(["fabric", "nvlink", "--fabric", fabric, "-o", out, "--json", *files]) == 0
    return json.loads(capsys.readouterr().out)


def test_reports_make_domains_and_the_block_file(fabric: str, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    reports: dict[str, object] = {f"gpu{i:03d}": {"node": f"gpu{i:03d}", "nvlink_domain": {
        "gpus": [_gpu(g, UUID_A if i <= 4 else UUID_B) for g in range(4)]}} for i in range(1, 9)}
    doc = _run(fabric, tmp_path, reports, capsys)
    assert [(d["name"], d["hosts"]) for d in doc["domains"]] == [
        ("nvl-aaaaaaaa-1", ["gpu001", "gpu002", "gpu003", "gpu004"]),
        ("nvl-bbbbbbbb-1", ["gpu005", "gpu006", "gpu007", "gpu008"])]
    assert doc["problems"] == []
    merged = load_fabric(str(tmp_path / "out.json"))
    assert merged.nvlink_domains[1].cluster_uuid == UUID_B and merged.nvlink_domains[1].clique_id == 1
    assert main(["fabric", "export", "--fabric", str(tmp_path / "out.json"), "--format", "slurm-block"]) == 0
    # Lines 1-2: the header and the comment explaining BlockSizes.
    assert capsys.readouterr().out.splitlines()[2:] == [
        "BlockName=nvl-aaaaaaaa-1 Nodes=gpu[001-004]", "BlockName=nvl-bbbbbbbb-1 Nodes=gpu[005-008]",
        "BlockSizes=4,8"]


def test_doubtful_hosts_are_left_out_with_named_problems(fabric: str, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    reports: dict[str, object] = {
        "gpu001": {"node": "gpu001", "nvlink_domain": {"gpus": [_gpu(0), _gpu(1)]}},
        "gpu002": {"node": "gpu002", "nvlink_domain": {"gpus": [_gpu(0), _gpu(1, clique=2)]}},  # GPUs disagree
        "gpu003": {"node": "gpu003", "nvlink_domain": {"gpus": [_gpu(0, state="in_progress"),
                                                                 _gpu(1, status=999)]}},  # none registered
        "gpu004": {"node": "gpu004", "nvlink_domain": {"gpus": [_gpu(0), _gpu(1, state="in_progress")]}},
        "gpu005a": {"node": "gpu005", "nvlink_domain": {"gpus": [_gpu(0)]}},
        "gpu005b": {"node": "gpu005", "nvlink_domain": {"gpus": [_gpu(0, UUID_B)]}},  # two domains claim gpu005
        "gpu006": {"node": "gpu006", "nvlink_domain": None},  # PCIe / HGX: no domain, no problem
        "gpu999": {"node": "gpu999", "nvlink_domain": {"gpus": [_gpu(0)]}},  # not in the fabric
    }
    doc = _run(fabric, tmp_path, reports, capsys)
    # gpu001 and gpu004 (in the domain, one GPU still registering) are the domain; nobody else is.
    assert [(d["name"], d["hosts"]) for d in doc["domains"]] == [("nvl-aaaaaaaa-1", ["gpu001", "gpu004"])]
    got = sorted((p["check"], p["subject"]) for p in doc["problems"])
    assert got == [("nvlink-gpus-disagree", "gpu002"), ("nvlink-host-claimed-twice", "gpu005"),
                   ("nvlink-host-unknown", "gpu999"), ("nvlink-no-report", "2 hosts"),
                   ("nvlink-registration-incomplete", "gpu003"), ("nvlink-registration-incomplete", "gpu004")]
    unknown = next(p for p in doc["problems"] if p["check"] == "nvlink-host-unknown")
    assert unknown["source"].endswith("gpu999.json")


@pytest.mark.parametrize(("doc", "field"), [
    ({"nvlink_domain": None}, "no \"node\""),
    ({"node": "gpu[1]", "nvlink_domain": None}, "node"),
    ({"node": "gpu001", "nvlink_domain": {"gpus": [{"index": 0, "state": "done"}]}}, "gpus[0].state"),
    ({"node": "gpu001", "nvlink_domain": {"gpus": [_gpu(0, uuid="XYZ")]}}, "gpus[0].cluster_uuid"),
    ({"node": "gpu001", "nvlink_domain": {"gpus": [{**_gpu(0), "clique_id": -3}]}}, "gpus[0].clique_id"),
    ({"node": "gpu001", "nvlink_domain": [1]}, "nvlink_domain"),
])
def test_a_malformed_report_is_exit_4_naming_file_and_field(fabric: str, tmp_path: Path, doc: object, field: str,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    good = _write(tmp_path, "good", {"node": "gpu002", "nvlink_domain": None})
    bad = _write(tmp_path, "bad", doc)
    out = tmp_path / "out.json"
    assert main(["fabric", "nvlink", "--fabric", fabric, "-o", str(out), good, bad]) == 4
    err = capsys.readouterr().err
    assert err.startswith("gpupool: error: ") and "bad.json" in err and field in err
    assert not out.exists()  # nothing half-written


def test_a_domain_across_leaves_is_named(fabric: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # gpu004 (leaf01) and gpu005 (leaf02) report one domain: kept, and named as crossing leaves.
    reports: dict[str, object] = {h: {"node": h, "nvlink_domain": {"gpus": [_gpu(0)]}} for h in ("gpu004", "gpu005")}
    doc = _run(fabric, tmp_path, reports, capsys)
    assert [d["hosts"] for d in doc["domains"]] == [["gpu004", "gpu005"]]
    assert ("nvlink-domain-across-leaves", "nvl-aaaaaaaa-1") in {(p["check"], p["subject"]) for p in doc["problems"]}
