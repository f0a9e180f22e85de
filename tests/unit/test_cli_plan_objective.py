"""`gpupool plan --objective hops|pack`: the why line, the `objective` JSON block, option errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpupool.cli.main import main
from gpupool.fabric.generate import fat_tree
from gpupool.fabric.model import save_fabric

# Two leaves of 4 hosts: leaf01 = gpu001-004, leaf02 = gpu005-008. leaf01 has three whole hosts and a
# busy one; leaf02 three whole hosts and gpu005 with 7 free (the case of test_placement_objective).
FREE = {"gpu001": 8, "gpu002": 8, "gpu003": 8, "gpu005": 7, "gpu006": 8, "gpu007": 8, "gpu008": 8}


@pytest.fixture()
def files(tmp_path: Path) -> tuple[str, str]:
    fabric = tmp_path / "tiny.json"
    save_fabric(fat_tree(2, 4, 1), str(fabric))
    free = tmp_path / "free.json"
    free.write_text(json.dumps(FREE))
    return str(fabric), str(free)


def _plan(files: tuple[str, str], *extra: str) -> list[str]:
    fabric, free = files
    return ["plan", "--gpus", "1", "--free", free, "--fabric", fabric, "--topology", "tree", *extra]


def test_pack_json_says_why_and_keeps_hosts_whole(files: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_plan(files, "--objective", "pack", "--size-mix", "1:0.5,8:0.5", "--json")) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["allocation"] == {"gpu005": 1}
    objective = doc["objective"]
    assert objective["name"] == "pack"
    assert objective["hop_slack"] == "0"
    assert objective["size_mix"]["sizes"] == {"1": 0.5, "8": 0.5}
    # After the job: no leaf is entirely free (gpu004 is busy, gpu005 now 6 free); the six 8-free hosts stay.
    assert objective["whole_free_leaves_after"] == 0
    assert objective["whole_free_hosts_after"] == 6
    # The fewest-hops placement breaks a whole host of leaf01 (5 whole hosts left), at the same pair hops.
    assert objective["extra_pair_hops"] == 0
    assert "6 whole free hosts" in objective["why"] and "5 hosts" in objective["why"]
    # Score after, in GPUs: 8-GPU jobs (share 1/2) cannot use gpu005's 6 free GPUs: 3.0.
    assert objective["fragmentation_after"] == pytest.approx(3.0)


def test_hops_is_the_default_and_prints_its_why_line(files: tuple[str, str],
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_plan(files)) == 0
    out = capsys.readouterr().out
    why = [line for line in out.splitlines() if line.startswith("why: ")]
    assert len(why) == 1 and why[0].startswith("why: hops: fewest pair hops")
    assert main(_plan(files, "--json")) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["objective"]["name"] == "hops"
    assert "hop_slack" not in doc["objective"]


@pytest.mark.parametrize("extra", [
    ("--objective", "fastest"),
    ("--hop-slack", "3"),  # slack with the hops objective
    ("--objective", "pack", "--size-mix", "1:x"),
    ("--objective", "pack", "--hop-slack", "-2"),
    ("--objective", "pack", "--size-mix", "1:1", "--size-history", "h.txt"),
])
def test_bad_objective_options_exit_2(files: tuple[str, str], extra: tuple[str, ...],
                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_plan(files, *extra)) == 2
    assert "error" in capsys.readouterr().err.lower()


def test_size_history_learns_the_mix(files: tuple[str, str], tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    history = Path(__file__).parent.parent / "fixtures" / "simulate" / "sacct-P-22.05.txt"
    assert main(_plan(files, "--objective", "pack", "--size-history", str(history), "--json")) == 0
    mix = json.loads(capsys.readouterr().out)["objective"]["size_mix"]
    assert mix["source"].startswith("history ")
    # The capture's five jobs (docs/simulate.md): 2x8, 1x1, 1x8, 3x8, 1x2 GPUs -> 16, 1, 8, 24, 2, one each.
    assert mix["sizes"] == {"1": 0.2, "2": 0.2, "8": 0.2, "16": 0.2, "24": 0.2}


def test_submit_plans_with_the_chosen_objective(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    import shlex

    from gpupool.cli.context import AppContext
    from gpupool.slurm.fake import FakeSlurm

    fabric = tmp_path / "tiny.json"
    save_fabric(fat_tree(2, 4, 1), str(fabric))
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/bash\nsrun hostname\n")
    monkeypatch.setenv("GPUPOOL_LOCK_DIR", str(tmp_path))
    slurm = FakeSlurm.uniform([f"gpu{i:03d}" for i in range(1, 9)])
    slurm.use("gpu004", 8)  # the state of FREE: gpu004 busy, gpu005 with 7 free
    slurm.use("gpu005", 1)
    chosen = {}
    for objective in ("pack", "hops"):
        extra = ("--size-mix", "1:0.5,8:0.5") if objective == "pack" else ()
        assert main(["submit", "--fabric", str(fabric), "--gpus", "1", "--objective", objective, *extra,
                     "--dry-run", str(script)], obj=AppContext(slurm=slurm)) == 0
        argv = shlex.split(capsys.readouterr().out.strip())
        chosen[objective] = next(a.split("=", 1)[1] for a in argv if a.startswith("--nodelist="))
    assert chosen["pack"] == "gpu005"
    assert chosen["hops"] in ("gpu001", "gpu002", "gpu003")


class _SlurmWithRunningJob:
    """4 leaves x 4 hosts under one spine (4:1); a running job holds gpu001 and gpu005 (one host per leaf),
    so the uplinks of leaves 1 and 2 each carry 40 Gb/s, their whole capacity."""

    def __init__(self) -> None:
        from gpupool.slurm.models import JobInfo, NodeState

        busy = {"gpu001", "gpu005"}
        self.nodes = [NodeState(name=f"gpu{i:03d}", flags=frozenset({"ALLOCATED" if f"gpu{i:03d}" in busy else "IDLE"}),
                                gpus_total=8, gpus_used=8 if f"gpu{i:03d}" in busy else 0, partitions=("gpu",))
                      for i in range(1, 17)]
        self.running = [JobInfo(job_id="7", state="RUNNING", nodes=("gpu001", "gpu005"),
                                allocation={"gpu001": 8, "gpu005": 8})]

    def node_states(self) -> list[object]:
        return list(self.nodes)

    def jobs(self) -> list[object]:
        return list(self.running)

    def config(self) -> dict[str, str]:
        return {"TopologyPlugin": "topology/tree"}

    def partitions(self) -> dict[str, dict[str, str]]:
        return {"gpu": {"PartitionName": "gpu", "Default": "YES"}}


def test_contention_reads_running_jobs_from_slurm_and_says_why(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    from gpupool.cli.context import AppContext

    fabric = tmp_path / "oversubscribed.json"
    save_fabric(fat_tree(4, 4, 1), str(fabric))
    argv = ["plan", "--nodes", "5", "--gpus-per-node", "8", "--fabric", str(fabric), "--topology", "tree"]
    assert main([*argv, "--objective", "contention", "--json"],
                obj=AppContext(slurm=_SlurmWithRunningJob())) == 0  # type: ignore[arg-type]
    doc = json.loads(capsys.readouterr().out)
    # 4 hosts of one empty leaf and 1 of the other (gpu009-016): no loaded uplink crossed. The fewest-hops
    # placement takes its fifth host from leaf 1 or 2 (best fit: 3 free hosts), whose full uplink then
    # carries 40 Gb/s more: 40 Gb/s over capacity.
    assert len(doc["allocation"]) == 5 and all(int(h[3:]) >= 9 for h in doc["allocation"])
    objective = doc["objective"]
    assert objective["name"] == "contention"
    assert objective["loaded_uplink_bundles"] == 2
    assert objective["uplink_overload_gbps"] == 0.0
    assert objective["uplink_overload_gbps_fewest_hops"] == 40.0
    assert objective["why"] == ("contention: adds 0 Gb/s over capacity on uplinks running jobs load "
                                "(fewest-hops placement: 40 Gb/s), at the fewest pair hops")
    # The default (hops) on the same state: the fifth host in leaf 1 or 2.
    assert main([*argv, "--json"], obj=AppContext(slurm=_SlurmWithRunningJob())) == 0  # type: ignore[arg-type]
    assert any(int(h[3:]) <= 8 for h in json.loads(capsys.readouterr().out)["allocation"])


def test_contention_with_a_free_file_knows_no_running_jobs(files: tuple[str, str],
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_plan(files, "--objective", "contention")) == 0
    why = [line for line in capsys.readouterr().out.splitlines() if line.startswith("why: ")]
    assert len(why) == 1 and why[0].startswith("why: contention: no running jobs known")
    assert main(_plan(files, "--objective", "contention", "--hop-slack", "2")) == 2
