"""Workload readers on hand-written lines (good and malformed), the synthetic generator, calibration."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest

from gpupool.errors import InputError, UsageError
from gpupool.simulate.policy_metrics import LogHistogram
from gpupool.simulate.speed import NcclPoint, calibrate_from_nccl, read_nccl_points
from gpupool.simulate.synthetic import SyntheticSpec, parse_spec, synthetic_jobs
from gpupool.simulate.workload import (
    SACCT_FIELDS,
    WorkloadStats,
    detect_format,
    gpus_from_tres,
    read_workload,
)

# An export without Account (made before pool policies asked for it) still reads.
HEADER = "|".join(f for f in SACCT_FIELDS if f != "Account")


def _write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_sacct_parsable_lines(tmp_path: Path) -> None:
    path = _write(tmp_path, "sacct.txt", "\n".join([
        HEADER,
        # 2 nodes x 4 GPUs, 1 h elapsed, 2 h limit
        "101|gpu|2026-11-01T10:00:00|2026-11-01T10:05:00|3600|120|2|billing=16,cpu=16,gres/gpu=8,node=2|"
        "cpu=16,gres/gpu=8,node=2|COMPLETED",
        # typed GPUs only (gres/gpu:a100=3), one node
        "102|gpu|2026-11-01T10:01:00|2026-11-01T10:01:30|60|UNLIMITED|1|cpu=2,gres/gpu:a100=3,node=1||FAILED",
        # CPU-only: counted, not replayed
        "103|cpu|2026-11-01T10:02:00|2026-11-01T10:02:00|10|5|1|cpu=1,node=1||COMPLETED",
        # cancelled before it started
        "104|gpu|2026-11-01T10:03:00|None|0|5|0||gres/gpu=1|CANCELLED by 0",
        # 3 GPUs over 2 nodes: not an even split -> any shape
        "105|gpu|2026-11-01T10:04:00|2026-11-01T10:04:00|30|1|2|gres/gpu=3,node=2||TIMEOUT",
        "",
    ]))
    assert detect_format(path) == "sacct"
    stats = WorkloadStats()
    jobs = list(read_workload(path, "auto", stats))
    assert [j.job_id for j in jobs] == ["101", "102", "105"]
    a, b, c = jobs
    assert (a.gpus, a.nodes, a.gpus_per_node, a.duration, a.time_limit, a.partition) == (8, 2, 4, 3600, 7200, "gpu")
    assert b.submit - a.submit == 60 and (b.gpus, b.nodes, b.time_limit) == (3, 1, 60)
    assert (c.gpus, c.nodes) == (3, 0)
    assert stats.skipped == {"no GPUs": 1, "never started": 1}
    assert stats.examples["no GPUs"].endswith("sacct.txt:4")


def test_sacct_malformed_line_names_file_and_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "bad.txt", f"{HEADER}\n"
                  "1|gpu|2026-11-01T10:00:00|2026-11-01T10:00:00|60|5|1|gres/gpu=1||COMPLETED\n"
                  "2|gpu|2026-11-01T10:00:00|2026-11-01T10:00:00|sixty|5|1|gres/gpu=1||COMPLETED\n")
    with pytest.raises(InputError, match=r"bad\.txt:3: ElapsedRaw 'sixty'"):
        list(read_workload(path))
    short = _write(tmp_path, "short.txt", f"{HEADER}\n1|gpu|2026\n")
    with pytest.raises(InputError, match=r"short\.txt:2: 3 fields where the header has 10"):
        list(read_workload(short, "sacct"))
    no_header = _write(tmp_path, "nohead.txt", "1|gpu|x\n")
    with pytest.raises(InputError, match=r"nohead\.txt:1: sacct header lacks"):
        list(read_workload(no_header, "sacct"))
    bad_time = _write(tmp_path, "time.txt", f"{HEADER}\n1|gpu|yesterday|x|60|5|1|gres/gpu=1||COMPLETED\n")
    with pytest.raises(InputError, match=r"time\.txt:2: time 'yesterday'"):
        list(read_workload(bad_time, "sacct"))


def test_gpus_from_tres() -> None:
    assert gpus_from_tres("cpu=4,gres/gpu=2,gres/gpu:a100=2") == 2
    assert gpus_from_tres("gres/gpu:a100=2,gres/gpu:h100=1") == 3
    assert gpus_from_tres("cpu=4,mem=1G") is None


def test_sacct_json(tmp_path: Path) -> None:
    doc = {"meta": {}, "errors": [], "jobs": [
        # 22.05 form: plain numbers, state.current a string, limit in minutes
        {"job_id": 7, "partition": "gpu", "allocation_nodes": 2, "state": {"current": "COMPLETED"},
         "time": {"submission": 1000, "start": 1010, "end": 1610, "elapsed": 600, "limit": 30},
         "tres": {"allocated": [{"type": "cpu", "name": None, "count": 8},
                                {"type": "gres", "name": "gpu", "count": 16}], "requested": []}},
        # 23.11+ form: {"set", "infinite", "number"} and state lists
        {"job_id": 8, "partition": "gpu", "allocation_nodes": 1, "state": {"current": ["FAILED"]},
         "time": {"submission": 1100, "start": 1100, "elapsed": 5,
                  "limit": {"set": True, "infinite": False, "number": 1}},
         "tres": {"allocated": [{"type": "gres", "name": "gpu:h100", "count": 2}]}},
        {"job_id": 9, "state": {"current": ["CANCELLED"]}, "time": {"submission": 1200, "start": 0, "elapsed": 0},
         "tres": {"requested": [{"type": "gres", "name": "gpu", "count": 1}]}},
    ]}
    path = _write(tmp_path, "sacct.json", json.dumps(doc, indent=1))
    stats = WorkloadStats()
    jobs = list(read_workload(path, "auto", stats))
    assert [(j.job_id, j.submit, j.duration, j.time_limit, j.gpus, j.nodes) for j in jobs] == [
        ("7", 1000, 600, 1800, 16, 2), ("8", 1100, 5, 60, 2, 1)]
    assert stats.skipped == {"never started": 1}
    broken = _write(tmp_path, "broken.json", '{"jobs": [\n{"job_id": 1,\n}]}')
    with pytest.raises(InputError, match=r"broken\.json:3: not valid JSON"):
        list(read_workload(broken, "sacct-json"))
    no_time = _write(tmp_path, "notime.json", '{"jobs": [{"job_id": 1}]}')
    with pytest.raises(InputError, match=r"notime\.json: jobs\[0\]: no \"time\" object"):
        list(read_workload(no_time))


SWF = """; Version: 2.2
; MaxProcs: 64
    1      0   10   3600   32  -1 -1   32  7200 -1 1 3 1 -1 1 1 -1 -1
    2     60    0    100    4  -1 -1    4   600 -1 1 3 1 -1 1 2 -1 -1
    3    120   -1     -1   -1  -1 -1    8    -1 -1 5 3 1 -1 1 1 -1 -1 ; cancelled before it ran
    4    180    0     50   -1  -1 -1   12    -1 -1 1 3 1 -1 1 1 -1 -1
"""


def test_swf_with_gpus_per_processor(tmp_path: Path) -> None:
    path = _write(tmp_path, "trace.swf", SWF)
    assert detect_format(path) == "swf"
    stats = WorkloadStats()
    jobs = list(read_workload(path, "auto", stats, gpus_per_processor=Fraction(1, 4), gpus_per_host=4))
    # 32 procs / 4 = 8 GPUs = 2 whole hosts; 4 procs -> 1 GPU on one host; 12 requested procs -> 3 GPUs.
    assert [(j.job_id, j.submit, j.duration, j.time_limit, j.gpus, j.nodes, j.partition) for j in jobs] == [
        ("1", 0, 3600, 7200, 8, 2, "1"), ("2", 60, 100, 600, 1, 1, "2"), ("4", 180, 50, 50, 3, 1, "1")]
    assert stats.skipped == {"never started": 1}


def test_swf_malformed(tmp_path: Path) -> None:
    path = _write(tmp_path, "bad.swf", "; header\n1 0 0 10 4 -1 -1 4 -1 -1 1 1 1 -1 1 1 -1\n")
    with pytest.raises(InputError, match=r"bad\.swf:2: 17 fields, SWF has 18"):
        list(read_workload(path, "swf"))
    path = _write(tmp_path, "nan.swf", "1 0 0 ten 4 -1 -1 4 -1 -1 1 1 1 -1 1 1 -1 -1\n")
    with pytest.raises(InputError, match=r"nan\.swf:1: field 4 'ten' is not a number"):
        list(read_workload(path, "swf"))


def test_missing_workload_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="workload file not found"):
        list(read_workload(str(tmp_path / "nope.txt"), "sacct"))


def test_synthetic_is_deterministic_and_follows_its_settings() -> None:
    spec = parse_spec("synthetic:jobs=4000,seed=5,multi=0.25,load=0.5")
    a = list(synthetic_jobs(spec, total_gpus=512, gpus_per_host=8))
    b = list(synthetic_jobs(spec, total_gpus=512, gpus_per_host=8))
    assert a == b and len(a) == 4000
    assert all(x.submit <= y.submit for x, y in zip(a, a[1:], strict=False))
    multi = [j for j in a if j.nodes > 1]
    assert 0.22 < len(multi) / len(a) < 0.28  # binomial(4000, 0.25): 5 sigma is about 0.034
    assert all(j.gpus == j.nodes * 8 for j in multi)
    assert {j.gpus for j in a if j.nodes == 1} <= {1, 2, 4, 8}
    assert all(j.time_limit >= j.duration for j in a)
    with pytest.raises(UsageError, match="unknown setting"):
        parse_spec("synthetic:jobz=5")
    with pytest.raises(UsageError, match="not a valid int"):
        parse_spec("synthetic:jobs=many")


def test_synthetic_daily_cycle_peaks_at_the_peak_hour() -> None:
    spec = SyntheticSpec(jobs=20000, amplitude=0.8, peak_hour=14.0)
    hours = [int(j.submit // 3600) % 24 for j in synthetic_jobs(spec, total_gpus=4096, gpus_per_host=8)]
    # rate ratio between 14:00 and 02:00 is (1 + 0.8) / (1 - 0.8) = 9
    assert hours.count(14) > 4 * hours.count(2)


def test_nccl_calibration_by_hand(tmp_path: Path) -> None:
    path = _write(tmp_path, "nccl.txt", "# leaves groups busbw\n1 1 200\n2 1 160\n4 1 100\n4 2 80\n")
    points = read_nccl_points(path)
    assert points == [NcclPoint(1, 1, 200), NcclPoint(2, 1, 160), NcclPoint(4, 1, 100), NcclPoint(4, 2, 80)]
    factors = calibrate_from_nccl(points, comm_fraction=0.5)
    # slowdown - 1 = 0.5 x (200/bw - 1): 0.125 at 1 extra leaf, 0.5 at 3 -> slope (0.125 + 1.5) / (1 + 9)
    assert factors.per_extra_leaf == pytest.approx(0.1625)
    # 4 leaves in 2 groups: 0.5 x (200/80 - 1) = 0.75, minus 3 x 0.1625 = 0.2625 for one extra group
    assert factors.per_extra_group == pytest.approx(0.2625)
    bad = _write(tmp_path, "bad.txt", "1 1 200\n2 x 100\n")
    with pytest.raises(InputError, match=r"bad\.txt:2:"):
        read_nccl_points(bad)


def test_histogram_quantiles_are_within_bin_precision() -> None:
    h = LogHistogram()
    values = [0.0] * 10 + [float(v) for v in range(1, 1001)]
    for v in values:
        h.add(v)
    exact = sorted(values)
    for q in (0.5, 0.95):
        assert h.quantile(q) == pytest.approx(exact[int(q * len(exact)) - 1], rel=0.012)
    assert h.mean == pytest.approx(sum(values) / len(values))
    assert h.quantile(0.005) == 0.0


# Real 22.05 exports of five jobs submitted as -N n --gres=gpu:k with (n, k) below (fixtures README).
SUBMITTED = [(2, 8), (1, 1), (1, 8), (3, 8), (1, 2)]


@pytest.mark.parametrize("name", ["sacct-P-22.05.txt", "sacct-json-22.05.json", "sacct-json-just-ended-22.05.json"])
def test_real_sacct_exports(name: str) -> None:
    from tests.support.helpers import FIXTURES

    stats = WorkloadStats()
    jobs = list(read_workload(str(FIXTURES / "simulate" / name), "auto", stats))
    assert [(j.nodes, j.gpus_per_node) for j in jobs] == SUBMITTED
    assert all(j.duration == 1 for j in jobs)
    assert {j.partition for j in jobs} == ({""} if "just-ended" in name else {"gpu"})  # 22.05 left it empty
    # -t 5: five minutes, except where 22.05 wrote limit 0 (then the elapsed time stands in)
    assert {j.time_limit for j in jobs} == ({1.0} if "just-ended" in name else {300.0})
    assert stats.skipped == {}
