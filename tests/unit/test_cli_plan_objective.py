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
