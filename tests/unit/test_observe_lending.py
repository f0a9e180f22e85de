"""Lending accounting from recorded `sacct --parsable2` text; every figure below is worked out by hand."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from pathlib import Path

import pytest

from gpupool.cli.context import AppContext
from gpupool.cli.main import main
from gpupool.errors import EnvError, UsageError
from gpupool.observe.lending import PoolInfo, account_lending, parse_sacct, parse_when, sacct_argv
from tests.support.lending_slurm import (  # the sacct/sshare data worked below
    HEADER,
    SACCT,
    FakeSlurm,
)

SINCE = datetime(2026, 11, 28)
UNTIL = datetime(2026, 11, 29)
POOLS = [PoolInfo("vision", {f"gpu00{i}": 4 for i in range(1, 5)}, frozenset({"vision"})),
         PoolInfo("llm", {f"gpu00{i}": 4 for i in range(5, 9)}, frozenset({"llm"}))]


def _report():  # type: ignore[no-untyped-def]
    return account_lending(parse_sacct(SACCT), POOLS, SINCE, UNTIL, UNTIL,
                           {"vision": (0.3, 0.5), "llm": (0.7, 0.75)})


def test_pool_figures_by_hand() -> None:
    pools = {p.name: p for p in _report().pools}
    vision, llm = pools["vision"], pools["llm"]
    assert vision.available_gpu_hours == 16 * 24 and llm.available_gpu_hours == 16 * 24
    # vision nodes: 100 clipped to 00:00-02:30 x 8 = 20; 101's preempted run 2 h x 16 = 32 (llm, lent);
    # 102 2 h x 16 = 32; 105 1 h x 2 (running until the window's end) = 2; 106 1 h x 4 = 4.
    assert vision.used_gpu_hours == pytest.approx(90)
    assert vision.owner_gpu_hours == pytest.approx(58)
    assert vision.lent_gpu_hours == pytest.approx(32)
    assert vision.borrowed_gpu_hours == pytest.approx(6)  # 103 on llm's gpu005: 1.5 h x 4
    assert vision.jobs_preempted == 1 and vision.lost_gpu_hours == pytest.approx(32)
    # Owner waits, eligible -> start, for runs starting in the window: 102 600 s, 105 1800 s, 106 18000 s.
    assert vision.owner_jobs_started == 3
    assert vision.owner_wait_seconds_mean == pytest.approx(6800) and vision.owner_wait_seconds_max == 18000
    # llm nodes: 101's second run 07:00-24:00 x 8 = 136; 103 = 6 (vision, lent); 107 1 h x 4 = 4 (requeued: lost).
    assert llm.used_gpu_hours == pytest.approx(146) and llm.owner_gpu_hours == pytest.approx(140)
    assert llm.lent_gpu_hours == pytest.approx(6) and llm.borrowed_gpu_hours == pytest.approx(32)
    assert llm.jobs_preempted == 0 and llm.lost_gpu_hours == pytest.approx(4)
    assert llm.owner_jobs_started == 2 and llm.owner_wait_seconds_mean == 3600


def test_account_usage_against_shares() -> None:
    accounts = {a.name: a for a in _report().accounts}
    # vision 20+32+6+2+4 = 64; llm 32+136+4 + 4 on gpu009 (no pool) = 176; total 240.
    assert accounts["vision"].gpu_hours == pytest.approx(64) and accounts["llm"].gpu_hours == pytest.approx(176)
    assert accounts["vision"].usage_share == pytest.approx(64 / 240)
    assert (accounts["vision"].norm_shares, accounts["vision"].fairshare) == (0.3, 0.5)


def test_sacct_parsing_is_strict() -> None:
    runs = parse_sacct(SACCT)
    assert len(runs) == 10 and runs[2].end is None and runs[5].nodes == () and runs[6].gpus == 2
    assert runs[4].state == "CANCELLED"
    with pytest.raises(EnvError, match="unexpected columns"):
        parse_sacct("JobID|State\n1|RUNNING\n")
    with pytest.raises(EnvError, match="line 2 has 12 fields"):
        parse_sacct(HEADER + "\n100|100|COMPLETED|vision|alice|vision|normal|x|x|x|x|gpu001\n")
    with pytest.raises(EnvError, match="SLURM_TIME_FORMAT"):
        parse_sacct(HEADER + "\n1|1|COMPLETED|a|u|p|q|11/28-10:00|x|x|x|gpu001|gres/gpu=1\n")
    with pytest.raises(EnvError, match="sacct output line 2: .*gpu\\[001-"):
        parse_sacct(HEADER + "\n1|1|RUNNING|a|u|p|q|Unknown|Unknown|Unknown|Unknown|gpu[001-|gres/gpu=1\n")
    argv = sacct_argv(SINCE, UNTIL)
    assert argv[:5] == ["sacct", "--allusers", "--allocations", "--duplicates", "--parsable2"]
    assert "2026-11-28T00:00:00" in argv and argv[-1] == HEADER.replace("|", ",")


def test_times_and_window() -> None:
    now = datetime(2026, 11, 29, 12, 30, 15)
    assert parse_when("now-2days", now, "--since") == datetime(2026, 11, 27, 12, 30, 15)
    assert parse_when("now-3h", now, "--since") == datetime(2026, 11, 29, 9, 30, 15)
    assert parse_when("2026-11-28T06:00", now, "--since") == datetime(2026, 11, 28, 6)
    with pytest.raises(UsageError):
        parse_when("yesterday", now, "--since")
    with pytest.raises(UsageError):
        account_lending([], POOLS, UNTIL, SINCE, UNTIL)


POOLS_YAML = """\
pools:
  vision: {nodes: "gpu[001-004]", owners: [vision]}
  llm: {nodes: "gpu[005-008]", owners: [llm]}
accounts:
  vision: {shares: 30}
  llm: {shares: 70}
"""


def test_pool_report_cli_json_csv_and_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "pools.yaml"
    spec.write_text(POOLS_YAML)
    fake = FakeSlurm()
    ctx = AppContext(slurm_runner=fake)
    args = ["pool", "report", str(spec), "--since", "2026-11-28", "--until", "2026-11-29"]
    assert main([*args, "--json"], obj=ctx) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [c[0] for c in fake.calls].count("sacct") == 1
    pools = {p["name"]: p for p in doc["pools"]}
    assert pools["vision"]["lent_gpu_hours"] == 32 and pools["llm"]["borrowed_gpu_hours"] == 32
    assert doc["hours"] == 24 and doc["runs"] == 10
    accounts = {a["name"]: a for a in doc["accounts"]}
    assert accounts["llm"]["norm_shares"] == 0.7 and accounts["llm"]["fairshare"] == 0.75
    assert main([*args, "--csv"], obj=AppContext(slurm_runner=FakeSlurm())) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["record"], r["name"]) for r in rows][:2] == [("pool", "vision"), ("pool", "llm")]
    assert float(next(r for r in rows if r["name"] == "llm" and r["record"] == "account")["gpu_hours"]) == 176
    assert main(args, obj=AppContext(slurm_runner=FakeSlurm())) == 0
    out = capsys.readouterr().out
    assert "vision" in out and "32.00" in out and "6800 s / 18000 s (3 jobs)" in out
    assert main(["pool", "report", "--since", "2026-11-29", "--until", "2026-11-28"]) == 2


def test_series_split_the_window_and_add_up_to_the_totals() -> None:
    from gpupool.observe.lending import lending_series

    series = lending_series(parse_sacct(SACCT), POOLS, SINCE, UNTIL, UNTIL, buckets=24)
    assert len(series.edges) == 25 and series.edges[4] == datetime(2026, 11, 28, 4)
    # Hourly buckets on vision: 100 (8 GPUs) until 02:30, 106 (4 GPUs) 01:00-02:00, llm's borrower 04:00-06:00.
    assert series.owner["vision"][:3] == [8, 12, 4]
    assert series.lent["vision"][3:7] == [0, 16, 16, 0]
    totals = {p.name: p for p in _report().pools}
    for name in ("vision", "llm"):
        assert sum(series.owner[name]) == pytest.approx(totals[name].owner_gpu_hours)
        assert sum(series.lent[name]) == pytest.approx(totals[name].lent_gpu_hours)
