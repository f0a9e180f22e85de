"""Health placement sees: broken hosts skipped with their reason, degraded leaves avoided only on a tie,
`fabric audit --drain-broken`'s cap. Expected placements are worked out by hand on small fat-trees."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from gpupool.app.plan import health_from_node_states, load_health_file, run_plan
from gpupool.audit.placement_health import choose_drains, health_from_findings
from gpupool.cli.context import AppContext
from gpupool.cli.main import main
from gpupool.errors import InputError
from gpupool.fabric.compiled import compile_fabric
from gpupool.fabric.generate import fat_tree
from gpupool.fabric.model import save_fabric
from gpupool.placement.health import Health, place_with_health
from gpupool.placement.model import FreeState, Request
from gpupool.slurm.fake import FakeSlurm

# fat_tree(3, 2, 1): gpu001-002 on leaf01, gpu003-004 on leaf02, gpu005-006 on leaf03, one spine.
THREE_LEAVES = compile_fabric(fat_tree(3, 2, 1))
TWO_NODES = Request(gpus_per_node=8, nodes=2)


def _free(free: dict[str, int]) -> FreeState:
    return FreeState.from_dict(THREE_LEAVES, free)


def _audit_doc(*findings: dict[str, object]) -> dict[str, object]:
    return {"status": "CRITICAL", "findings": list(findings)}


HCA_DOWN = {"check": "hca-missing", "severity": "critical", "subject": "gpu001 HCA-1",
            "message": "HCA gpu001 HCA-1 (0x1) of the reference is not in the fabric (was on leaf01 port 1): ...",
            "details": {"host": "gpu001"}}


def test_excluded_host_is_never_used_and_reported(tmp_path: Path) -> None:
    fabric = tmp_path / "f.json"
    save_fabric(fat_tree(3, 2, 1), str(fabric))
    free = tmp_path / "free.json"
    free.write_text(json.dumps(dict.fromkeys(THREE_LEAVES.host_names, 8)))
    health = tmp_path / "audit.json"
    health.write_text(json.dumps(_audit_doc(HCA_DOWN)))
    outcome = run_plan(THREE_LEAVES, TWO_NODES, free_path=str(free), ignore_unknown=False,
                       slurm=lambda: pytest.fail("no Slurm with --free"), health_path=str(health))  # type: ignore[arg-type,return-value]
    assert outcome.skipped == {"gpu001": "HCA gpu001 HCA-1 down"}
    assert outcome.placement is not None
    # Two whole hosts on one leaf: leaf02 or leaf03 (gpu002 alone is left on leaf01).
    assert outcome.placement.allocation in ({"gpu003": 8, "gpu004": 8}, {"gpu005": 8, "gpu006": 8})


def test_excluded_host_only_fit_is_infeasible_with_the_reason(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    fabric = tmp_path / "f.json"
    save_fabric(fat_tree(3, 2, 1), str(fabric))
    free = tmp_path / "free.json"
    free.write_text(json.dumps({"gpu001": 8}))
    health = tmp_path / "audit.json"
    health.write_text(json.dumps(_audit_doc(HCA_DOWN)))
    argv = ["plan", "--gpus", "8", "--free", str(free), "--fabric", str(fabric), "--health", str(health)]
    assert main([*argv, "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["feasible"] is False and doc["skipped"] == {"gpu001": "HCA gpu001 HCA-1 down"}
    assert main(argv) == 1
    assert "skipped: gpu001 (HCA gpu001 HCA-1 down)" in capsys.readouterr().err


def test_plan_human_output_names_the_skipped_host(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fabric = tmp_path / "f.json"
    save_fabric(fat_tree(3, 2, 1), str(fabric))
    free = tmp_path / "free.json"
    free.write_text(json.dumps({"gpu001": 8, "gpu002": 8}))
    health = tmp_path / "audit.json"
    health.write_text(json.dumps(_audit_doc(HCA_DOWN)))
    assert main(["plan", "--gpus", "8", "--free", str(free), "--fabric", str(fabric), "--health", str(health)]) == 0
    out = capsys.readouterr().out
    assert "gpu002: 8 GPUs" in out and "gpu001:" not in out
    assert "skipped: gpu001 (HCA gpu001 HCA-1 down)" in out


def test_degraded_leaf_is_avoided_on_a_tie() -> None:
    free = _free(dict.fromkeys(THREE_LEAVES.host_names, 8))
    baseline = place_with_health(THREE_LEAVES, free, TWO_NODES, Health())
    assert set(baseline.allocation) in ({"gpu001", "gpu002"}, {"gpu003", "gpu004"}, {"gpu005", "gpu006"})
    health = Health(degraded_leaves={"leaf01": "1 of 2 uplinks", "leaf02": "0 of 1 uplinks"})
    placed = place_with_health(THREE_LEAVES, free, TWO_NODES, health)
    # Two hosts on one leaf is 8*8 pairs at 2 hops either way: leaf03 costs nothing more.
    assert placed.allocation == {"gpu005": 8, "gpu006": 8}
    assert placed.cost.pair_hops_sum == 8 * 8 * 2 == baseline.cost.pair_hops_sum


def test_degraded_leaf_is_kept_when_avoiding_it_costs_hops() -> None:
    # Only leaf01 has two free hosts; off leaf01/leaf02 no pair sits on one leaf (4 hops apart).
    free = _free({"gpu001": 8, "gpu002": 8, "gpu003": 8, "gpu005": 8})
    health = Health(degraded_leaves={"leaf01": "1 of 2 uplinks"})
    placed = place_with_health(THREE_LEAVES, free, TWO_NODES, health)
    assert placed.allocation == {"gpu001": 8, "gpu002": 8}
    assert placed.cost.pair_hops_sum == 8 * 8 * 2


def test_degraded_leaf_is_kept_when_nothing_else_fits() -> None:
    free = _free({"gpu001": 8, "gpu002": 8})
    placed = place_with_health(THREE_LEAVES, free, TWO_NODES, Health(degraded_leaves={"leaf01": "x"}))
    assert placed.allocation == {"gpu001": 8, "gpu002": 8}


def test_findings_to_health() -> None:
    hosts = ["gpu001", "gpu002", "gpu003"]
    found = health_from_findings([
        {"check": "hca-missing", "severity": "critical", "subject": "gpu002 mlx5_0", "message": "m"},  # no details
        {"check": "link-missing", "severity": "warning", "subject": "spine01 port 3", "message": "m"},
        {"check": "link-missing", "severity": "critical", "subject": "leaf01 port 1", "message": "m",
         "details": {"host": "gpu001"}},
        {"check": "host-rails-missing", "severity": "warning", "subject": "gpu003", "message": "m",
         "details": {"hcas": 3, "expected": 4, "missing": ["mlx5_3"]}},
        {"check": "leaf-uplinks-missing", "severity": "warning", "subject": "leaf02", "message": "m",
         "details": {"uplinks": 1, "expected": 2}},
        {"check": "port-errors", "severity": "warning", "subject": "leaf01 port 2", "message": "m"},
    ], hosts)
    assert found.broken_hosts == {"gpu001": "HCA cable leaf01 port 1 down", "gpu002": "HCA gpu002 mlx5_0 down",
                                  "gpu003": "3 of 4 HCAs on the fabric"}
    assert found.degraded_leaves == {"leaf02": "1 of 2 uplinks"}


def test_health_file_must_be_an_audit_document(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"gpu001": 8}))
    with pytest.raises(InputError, match="findings"):
        load_health_file(str(bad), THREE_LEAVES)


def test_slurm_drained_nodes_are_skipped_with_slurms_reason(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    fabric = tmp_path / "f.json"
    save_fabric(fat_tree(3, 2, 1), str(fabric))
    slurm = FakeSlurm.uniform(THREE_LEAVES.host_names)
    reason = "gpupool: mlx5_0: HCA port 1 is Down"
    slurm.nodes["gpu003"] = replace(slurm.nodes["gpu003"], flags=frozenset({"IDLE", "DRAIN"}), reason=reason)
    slurm.set_flags("gpu004", "DOWN")
    slurm.set_flags("gpu005", "RESERVED")  # unusable, not broken: not reported as skipped
    assert health_from_node_states(slurm.node_states()).excluded == {
        "gpu003": f"Slurm IDLE+DRAIN: {reason}", "gpu004": "Slurm DOWN"}
    assert main(["plan", "--gpus", "8", "--fabric", str(fabric), "--json"], obj=AppContext(slurm=slurm)) == 0  # type: ignore[arg-type]
    doc = json.loads(capsys.readouterr().out)
    assert doc["skipped"] == {"gpu003": f"Slurm IDLE+DRAIN: {reason}", "gpu004": "Slurm DOWN"}
    assert not {"gpu003", "gpu004", "gpu005"} & set(doc["allocation"])


@pytest.mark.parametrize(("n_nodes", "fraction", "down", "broken", "drained", "held"), [
    (20, 0.10, [], ["n01", "n02", "n03"], ["n01", "n02"], ["n03"]),  # cap 2
    (20, 0.10, ["n09"], ["n01", "n02", "n09"], ["n01"], ["n02"]),  # n09 already down counts
    (5, 0.10, [], ["n01", "n02"], ["n01"], ["n02"]),  # 0.5 rounds down, but at least one
    (5, 0.0, [], ["n01"], [], ["n01"]),  # 0 disables draining
    (4, 1.0, [], ["n01", "n02", "n99"], ["n01", "n02"], []),  # n99 is not a Slurm node
])
def test_drain_cap(n_nodes: int, fraction: float, down: list[str], broken: list[str], drained: list[str],
                   held: list[str]) -> None:
    nodes = [f"n{i:02d}" for i in range(1, n_nodes + 1)]
    choice = choose_drains(dict.fromkeys(broken, "HCA down"), nodes, down, fraction)
    assert sorted(choice.drain) == drained and sorted(choice.held) == held
    assert all(h not in choice.drain for h in down)


def _broken_fabric_files(tmp_path: Path, broken: list[str]) -> tuple[str, str]:
    """(reference, current): 20 hosts on 5 leaves; in `current` the cables of `broken` hosts' HCAs are gone."""
    reference = fat_tree(5, 4, 1)
    current = fat_tree(5, 4, 1)
    victims = {i for i, n in enumerate(current.nodes) if n.host in broken}
    current.links = [lk for lk in current.links if lk.a not in victims and lk.b not in victims]
    ref_path, cur_path = tmp_path / "ref.json", tmp_path / "cur.json"
    save_fabric(reference, str(ref_path))
    save_fabric(current, str(cur_path))
    return str(ref_path), str(cur_path)


def test_drain_broken_drains_within_the_cap(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ref, cur = _broken_fabric_files(tmp_path, ["gpu001", "gpu002", "gpu003", "gpu004"])
    slurm = FakeSlurm.uniform([f"gpu{i:03d}" for i in range(1, 21)])
    argv = ["fabric", "audit", "--fabric", cur, "--reference", ref, "--slurm", "--drain-broken", "--json"]
    code = main(argv, obj=AppContext(slurm=slurm))  # type: ignore[arg-type]
    doc = json.loads(capsys.readouterr().out)
    assert code == 2  # the missing host cables are CRITICAL; draining does not change the status
    # 20 nodes x 0.1 = 2 at once: the first two in name order are drained, the rest held back.
    assert [h for h, _ in slurm.drained] == ["gpu001", "gpu002"]
    assert all(r.startswith("gpupool fabric audit: ") and "down" in r for _, r in slurm.drained)
    assert sorted(doc["drain"]["drained"]) == ["gpu001", "gpu002"]
    assert sorted(doc["drain"]["held_back"]) == ["gpu003", "gpu004"]
    assert doc["drain"]["max_drained"] == 2


def test_drain_broken_counts_nodes_already_down(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ref, cur = _broken_fabric_files(tmp_path, ["gpu001", "gpu002"])
    slurm = FakeSlurm.uniform([f"gpu{i:03d}" for i in range(1, 21)])
    slurm.set_flags("gpu010", "IDLE", "DRAIN")
    argv = ["fabric", "audit", "--fabric", cur, "--reference", ref, "--slurm", "--drain-broken",
            "--max-drain-fraction", "0.1"]
    assert main(argv, obj=AppContext(slurm=slurm)) == 2  # type: ignore[arg-type]
    out = capsys.readouterr().out
    assert [h for h, _ in slurm.drained] == ["gpu001"]  # cap 2 (0.1 x 20), gpu010 is one of them
    assert "drained gpu001: gpupool fabric audit:" in out and "held back" in out and "gpu002" in out


def test_drain_broken_is_opt_in_and_needs_slurm(tmp_path: Path) -> None:
    ref, cur = _broken_fabric_files(tmp_path, ["gpu001"])
    slurm = FakeSlurm.uniform([f"gpu{i:03d}" for i in range(1, 21)])
    assert main(["fabric", "audit", "--fabric", cur, "--reference", ref, "--slurm"],
                obj=AppContext(slurm=slurm)) == 2  # type: ignore[arg-type]
    assert slurm.drained == []
    assert main(["fabric", "audit", "--fabric", cur, "--reference", ref, "--drain-broken"],
                obj=AppContext(slurm=slurm)) == 3  # type: ignore[arg-type]
    assert slurm.drained == []


def test_submit_with_health_never_places_on_a_broken_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    fabric = tmp_path / "f.json"
    save_fabric(fat_tree(3, 2, 1), str(fabric))
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/bash\nsrun hostname\n")
    monkeypatch.setenv("GPUPOOL_LOCK_DIR", str(tmp_path))
    health = tmp_path / "audit.json"
    broken = [dict(HCA_DOWN, subject=f"gpu00{i} HCA-1", details={"host": f"gpu00{i}"}) for i in range(1, 6)]
    health.write_text(json.dumps(_audit_doc(*broken)))
    slurm = FakeSlurm.uniform(THREE_LEAVES.host_names)
    argv = ["submit", "--fabric", str(fabric), "--gpus", "8", "--health", str(health), "--dry-run", "--json",
            str(script)]
    assert main(argv, obj=AppContext(slurm=slurm)) == 0  # type: ignore[arg-type]
    assert json.loads(capsys.readouterr().out)["allocation"] == {"gpu006": 8}  # the one host not broken
