"""`gpupool simulate` in-process: exit codes, notes, JSON, and the HTML report in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from gpupool.cli.main import main
from gpupool.fabric.generate import fat_tree
from gpupool.fabric.model import save_fabric
from gpupool.simulate.workload import SACCT_FIELDS

# An export without Account (made before pool policies asked for it) still reads.
HEADER = "|".join(f for f in SACCT_FIELDS if f != "Account")


@pytest.fixture()
def fabric(tmp_path: Path) -> str:
    path = tmp_path / "tree.json"
    save_fabric(fat_tree(4, 2, 2), str(path))  # 4 leaves x 2 hosts
    return str(path)


def _sacct(tmp_path: Path, rows: list[str]) -> str:
    path = tmp_path / "sacct.txt"
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    return str(path)


def _row(job_id: int, minute: int, elapsed: int, nodes: int, gpus: int, partition: str = "gpu") -> str:
    return (f"{job_id}|{partition}|2026-11-01T10:{minute:02d}:00|2026-11-01T10:{minute:02d}:00|{elapsed}|60|{nodes}|"
            f"gres/gpu={gpus},node={nodes}||COMPLETED")


def test_malformed_trace_exits_4_naming_file_and_line(fabric: str, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    path = _sacct(tmp_path, [_row(1, 0, 60, 1, 4), "2|gpu|broken"])
    assert main(["simulate", "--fabric", fabric, "--workload", path]) == 4
    err = capsys.readouterr().err
    assert re.fullmatch(r"gpupool: error: .*sacct\.txt:3: 3 fields where the header has 10 .*\n", err)


def test_single_node_trace_says_so_and_counts_what_it_skipped(fabric: str, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    path = _sacct(tmp_path, [_row(1, 0, 60, 1, 4), _row(2, 1, 60, 1, 8), _row(3, 2, 60, 9, 72),
                             _row(4, 3, 60, 1, 1, partition="cpu")])
    assert main(["simulate", "--fabric", fabric, "--workload", path, "--policies", "slurm-tree,gpupool",
                 "--partition", "gpu", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [p["policy"] for p in doc["policies"]] == ["slurm-tree", "gpupool"]
    assert doc["trace"]["too_large_for_fabric"] == 1  # 9 hosts > 8
    assert doc["trace"]["unknown_partition"] == 1
    assert all(p["jobs"] == 2 and p["multi_node_jobs"] == 0 for p in doc["policies"])
    assert any("no multi-node job" in n for n in doc["notes"])
    assert any("larger than the fabric" in n for n in doc["notes"])


def test_usage_errors_exit_2(fabric: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--fabric", fabric, "--workload", "synthetic", "--policies", "magic"]) == 2
    assert main(["simulate", "--fabric", fabric, "--workload", "synthetic:jobz=1"]) == 2
    assert main(["simulate", "--fabric", fabric, "--workload", "synthetic", "--switches", "x@y"]) == 2
    assert capsys.readouterr().err.count("gpupool: error:") == 3


def test_human_table_lists_every_policy(fabric: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--fabric", fabric, "--workload", "synthetic:jobs=60,seed=3"]) == 0
    out = capsys.readouterr().out
    for name in ("slurm-tree", "gpupool", "gpupool-wait", "wait p95 (h)", "GPU utilisation"):
        assert name in out


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(_chromium() is None, reason="needs Debian's chromium for a headless render")
def test_report_renders_in_headless_chromium(fabric: str, tmp_path: Path) -> None:
    report = tmp_path / "out.html"
    assert main(["simulate", "--fabric", fabric, "--workload", "synthetic:jobs=200,seed=4,multi=0.3",
                 "--report", str(report)]) == 0
    base = [_chromium() or "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*base, "--dump-dom", report.as_uri()], capture_output=True, text=True, timeout=120,
                         check=True).stdout
    # The DOM Chromium built: three figures, each holding an SVG with drawn paths, and the summary table.
    for key in ("wait-cdf", "jct-cdf", "utilisation"):
        figure = re.search(rf'<figure id="plot-{key}">(.*?)</figure>', dom, re.S)
        assert figure, f"plot {key} missing from the rendered page"
        assert "<svg" in figure.group(1) and figure.group(1).count("<path") > 5
    assert dom.count("<tr>") >= 10 and "gpupool-wait" in dom
    shot = tmp_path / "shot.png"
    subprocess.run([*base, f"--screenshot={shot}", "--window-size=1200,2400", report.as_uri()],
                   capture_output=True, timeout=120, check=True)
    assert shot.stat().st_size > 10_000


def test_swf_workload_with_nccl_calibration(fabric: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    swf = tmp_path / "trace.swf"
    # 64 processors at 1/4 GPU each = 16 GPUs = 2 whole hosts; 4 processors = 1 GPU.
    swf.write_text("; MaxProcs: 64\n1 0 0 600 64 -1 -1 64 1200 -1 1 1 1 -1 1 1 -1 -1\n"
                   "2 10 0 60 4 -1 -1 4 120 -1 1 1 1 -1 1 1 -1 -1\n")
    nccl = tmp_path / "nccl.txt"
    nccl.write_text("1 100\n3 50\n")  # comm 0.4: 0.4 x (100/50 - 1) = 0.4 over 2 extra leaves -> 0.2 per leaf
    assert main(["simulate", "--fabric", fabric, "--workload", str(swf), "--gpus-per-processor", "1/4",
                 "--nccl", str(nccl), "--comm-fraction", "0.4", "--policies", "gpupool", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["workload"]["format"] == "swf"
    # The calibrated class keeps the communication fraction it was calibrated with (for --contention on).
    assert doc["speed_model"]["classes"]["default"] == {"per_extra_leaf": 0.2, "per_extra_group": 0.0,
                                                        "comm_fraction": 0.4}
    (policy,) = doc["policies"]
    assert policy["jobs"] == 2 and policy["multi_node_jobs"] == 1
    # Both jobs start on arrival on an empty fabric; the 2-host job fits one leaf (2 hosts per leaf).
    assert policy["wait_s"]["max"] == 0 and policy["mean_extra_leaf_switches_multi_node"] == 0


def test_backfill_model_changes_who_waits(fabric: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # 8 hosts x 8 GPUs; every limit is 60 min. Job 1 holds 6 hosts until 3600 s. Jobs 2 and 3 (4 hosts
    # each, 60 s runs) are blocked. Job 4 (1 host, 3600 s) fits one of the 2 free hosts at 180 s.
    path = _sacct(tmp_path, [_row(1, 0, 3600, 6, 48), _row(2, 1, 60, 4, 32), _row(3, 2, 60, 4, 32),
                             _row(4, 3, 3600, 1, 8)])
    waits = {}
    for backfill in ("easy", "slurm"):
        assert main(["simulate", "--fabric", fabric, "--workload", path, "--policies", "slurm-tree",
                     "--backfill", backfill, "--json"]) == 0
        doc = json.loads(capsys.readouterr().out)
        assert doc["config"]["backfill"] == backfill
        waits[backfill] = doc["policies"][0]["wait_s"]["mean"]
    # easy: only job 2 reserves (shadow 3600, 64 - 32 GPUs spare then), so job 4 starts at 180 and holds
    # a host until 3780; at 3600 job 2 starts, job 3 finds 3 hosts and starts when job 2 ends, at 3660.
    # Waits 0, 3540, 3660 - 120, 0.
    assert waits["easy"] == pytest.approx((0 + 3540 + 3540 + 0) / 4)
    # slurm: job 2 and job 3 both reserve 4 hosts over [3600, 7200), so job 4's [180, 3780) collides;
    # at 3600 jobs 2 and 3 start, at 3660 they end and job 4 starts. Waits 0, 3540, 3480, 3480.
    assert waits["slurm"] == pytest.approx((0 + 3540 + 3480 + 3480) / 4)
    assert main(["simulate", "--fabric", fabric, "--workload", path, "--backfill", "fifo"]) == 2
