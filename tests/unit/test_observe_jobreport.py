"""`gpupool jobs --report JOBID`: leaves spanned, the optimum on the state rebuilt at its start, the hint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpupool.cli.context import AppContext
from gpupool.cli.main import main
from gpupool.fabric.generate import fat_tree
from gpupool.fabric.model import save_fabric

HEADER = "JobIDRaw|JobID|State|Account|User|Partition|QOS|Submit|Eligible|Start|End|NodeList|AllocTRES"
T = "2026-11-28T"
# leaf k of the fabric holds gpu(4k-3)..gpu(4k), 8 GPUs each.
RUNS = {
    "400": f"400|400|COMPLETED|a|u|gpu|normal|{T}08:00:00|{T}08:00:00|{T}09:00:00|{T}12:00:00|gpu[001-003]|gres/gpu=24",
    "401": f"401|401|COMPLETED|a|u|gpu|normal|{T}08:00:00|{T}08:00:00|{T}09:00:00|{T}09:30:00|gpu[006-008]|gres/gpu=24",
    "402": f"402|402|RUNNING|a|u|gpu|normal|{T}08:00:00|{T}08:00:00|{T}08:00:00|Unknown|gpu[009-012]|gres/gpu=32",
    "403": f"403|403|COMPLETED|a|u|gpu|normal|{T}10:00:00|{T}10:00:00|{T}10:30:00|{T}11:00:00|gpu[013-014]|gres/gpu=16",
    # the job under study: 2 nodes x 8 GPUs on gpu004 (leaf 1) and gpu005 (leaf 2)
    "500": f"500|500|COMPLETED|b|v|gpu|normal|{T}09:55:00|{T}09:55:00|{T}10:00:00|{T}11:00:00|gpu[004-005]|gres/gpu=16",
    "501": f"501|501|COMPLETED|b|v|gpu|normal|{T}09:55:00|{T}09:55:00|{T}10:00:00|{T}11:00:00|gpu[015-016]|gres/gpu=16",
    "502": f"502|502|CANCELLED by 0|b|v|gpu|normal|{T}09:55:00|{T}09:55:00|Unknown|{T}09:56:00|None assigned|",
}


class FakeSlurm:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, argv: list[str]) -> str:
        self.calls.append(argv)
        if argv[0] == "sacct" and "--jobs" in argv:
            return HEADER + "\n" + RUNS[argv[argv.index("--jobs") + 1]] + "\n"
        if argv[0] == "sacct":
            return HEADER + "\n" + "\n".join(v for k, v in RUNS.items() if k != "502") + "\n"
        if argv[:4] == ["scontrol", "-o", "-d", "show"]:
            return "".join(f"NodeName=gpu{i:03d} Gres=gpu:8 GresUsed=gpu:0 State=IDLE\n" for i in range(1, 17))
        raise AssertionError(argv)


@pytest.fixture()
def fabric(tmp_path: Path) -> str:
    path = tmp_path / "tree.json"
    save_fabric(fat_tree(4, 4, 2), str(path))
    return str(path)


def _report(fabric: str, job: str, capsys: pytest.CaptureFixture[str]) -> dict:
    fake = FakeSlurm()
    assert main(["jobs", "--report", job, "--fabric", fabric, "--json"],
                obj=AppContext(slurm_runner=fake)) == 0
    assert [c[0] for c in fake.calls].count("sacct") == 2
    window = next(c for c in fake.calls if c[0] == "sacct" and "--starttime" in c)
    assert window[window.index("--starttime") + 1] == f"{T}10:00:00"
    return json.loads(capsys.readouterr().out)


def test_split_job_against_the_optimum_at_its_start(fabric: str, capsys: pytest.CaptureFixture[str]) -> None:
    doc = _report(fabric, "500", capsys)
    assert doc["allocation"] == {"gpu004": 8, "gpu005": 8} and doc["leaves"] == 2
    # Two hosts on different leaves: 8 x 8 GPU pairs x 4 hops.
    assert doc["cost"]["pair_hops_sum"] == 256
    # At 10:00 leaf 1 had only gpu004 free (400 holds gpu001-003), leaf 2 was all free (401 ended 09:30),
    # leaf 3 was busy (402); on leaf 4, 501 started at the same instant on gpu015-016 and 403 only at 10:30.
    optimum = doc["optimum"]
    assert optimum["leaves"] == 1 and optimum["cost"]["pair_hops_sum"] == 128
    assert set(optimum["allocation"]) <= {"gpu005", "gpu006", "gpu007", "gpu008", "gpu013", "gpu014"}
    assert doc["difference"] == {"pair_hops_sum": 128, "mean_hops": 2.0, "leaves": 1, "pair_hops_ratio": 2.0}
    assert any("--switches=1" in h for h in doc["hints"])
    assert any("gpupool submit --nodes 2 --gpus-per-node 8" in h for h in doc["hints"])


def test_job_already_optimal(fabric: str, capsys: pytest.CaptureFixture[str]) -> None:
    doc = _report(fabric, "501", capsys)
    assert doc["leaves"] == 1 and doc["difference"]["pair_hops_sum"] == 0
    assert doc["hints"] == ["placement was as good as the state at its start allowed"]


def test_human_output_and_errors(fabric: str, capsys: pytest.CaptureFixture[str]) -> None:
    ctx = AppContext(slurm_runner=FakeSlurm())
    assert main(["jobs", "--report", "500", "--fabric", fabric], obj=ctx) == 0
    out = capsys.readouterr().out
    assert "spanned 2 leaves" in out and "+1 leaves" in out and "hint:" in out
    assert main(["jobs", "--report", "502", "--fabric", fabric], obj=AppContext(slurm_runner=FakeSlurm())) == 4
    assert "sacct knows no run" in capsys.readouterr().err
    assert main(["jobs", "--report", "5;rm", "--fabric", fabric]) == 4
