"""`simulate --seeds`: t quantiles, intervals, paired differences, verdicts, trace replicates, CLI.

Expected values are computed here by hand (or by scipy, a test-only dependency), never read back
from gpupool's own output.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import pytest
from scipy import stats as scipy_stats

from gpupool.cli.main import main
from gpupool.fabric.generate import fat_tree
from gpupool.fabric.model import save_fabric
from gpupool.simulate.replicate import DAY, MIN_BLOCKS, block_bootstrap, block_seconds
from gpupool.simulate.report import HEADLINE, row_better
from gpupool.simulate.stats import mean_interval, paired_difference, summarise, t_quantile, verdict
from gpupool.simulate.workload import SACCT_FIELDS, Job

HEADER = "|".join(SACCT_FIELDS)


@pytest.fixture()
def fabric(tmp_path: Path) -> str:
    path = tmp_path / "tree.json"
    save_fabric(fat_tree(4, 2, 2), str(path))  # 4 leaves x 2 hosts x 8 GPUs = 64 GPUs
    return str(path)


# ------------------------------------------------------------------------------------------ t quantile
@pytest.mark.parametrize("df", [1, 2, 3, 4, 5, 9, 19, 29, 60, 120, 1000, 0.5, 2.5])
def test_t_quantile_matches_scipy(df: float) -> None:
    for p in (0.5, 0.6, 0.9, 0.95, 0.975, 0.99, 0.995, 0.9995, 0.025, 0.001):
        expected = float(scipy_stats.t.ppf(p, df))
        assert t_quantile(p, df) == pytest.approx(expected, rel=1e-8, abs=1e-10)


def test_t_quantile_printed_table_values() -> None:
    # Two-sided 95% critical values as printed in any t table.
    for df, printed in ((1, 12.706), (2, 4.303), (4, 2.776), (9, 2.262), (19, 2.093), (100, 1.984)):
        assert t_quantile(0.975, df) == pytest.approx(printed, abs=5e-4)
    with pytest.raises(ValueError):
        t_quantile(1.0, 3)
    with pytest.raises(ValueError):
        t_quantile(0.9, 0)


# ------------------------------------------------------------------------------------------ intervals
def test_mean_interval_by_hand() -> None:
    # 1..5: mean 3, sd sqrt(2.5), se sqrt(0.5); t(0.975, 4) = 2.776 from the table.
    interval = mean_interval([1.0, 2.0, 3.0, 4.0, 5.0])
    half = 2.776445 * math.sqrt(0.5)
    assert interval.n == 5 and interval.mean == 3.0
    assert interval.low == pytest.approx(3.0 - half, abs=1e-5)
    assert interval.high == pytest.approx(3.0 + half, abs=1e-5)
    one = mean_interval([7.0])
    assert one.mean == 7.0 and one.low is None and one.high is None and one.half_width is None


def test_paired_difference_significant_and_not() -> None:
    baseline = [10.0, 10.0, 10.0]
    # Differences 2, 3, 4: mean 3, sd 1, half-width t(0.975, 2) / sqrt(3) = 4.303 / 1.732 = 2.484 -> [0.516, 5.484].
    win = paired_difference([12.0, 13.0, 14.0], baseline)
    assert win.absolute.mean == pytest.approx(3.0)
    assert win.absolute.low == pytest.approx(3.0 - 4.302653 / math.sqrt(3), abs=1e-5)
    assert win.relative_percent is not None and win.relative_percent.mean == pytest.approx(30.0)
    assert win.significant is True and win.direction == 1
    # Differences 1, 2, 3: [-0.484, 4.484] contains 0.
    unclear = paired_difference([11.0, 12.0, 13.0], baseline)
    assert unclear.absolute.low == pytest.approx(2.0 - 4.302653 / math.sqrt(3), abs=1e-5)
    assert unclear.significant is False
    # The same shift in every seed: sd 0, the interval is the point, and it is not 0.
    constant = paired_difference([9.0, 9.0, 9.0], baseline)
    assert constant.absolute.low == constant.absolute.high == -1.0 and constant.significant is True
    # -1 in every seed, baselines 10, 20, 30 (mean 20): relative -1 / 20 = -5%; delta method
    # z = (d - r b) / 20 = (-0.5, 0, 0.5) / 20, sd 0.025, half-width 4.303 x 0.025 / sqrt(3) = 6.21%:
    # the relative interval [-11.2%, 1.2%] contains 0, so the difference is not called significant.
    mixed = paired_difference([9.0, 19.0, 29.0], [10.0, 20.0, 30.0])
    assert mixed.absolute.low == mixed.absolute.high == -1.0
    assert mixed.relative_percent is not None and mixed.relative_percent.mean == pytest.approx(-5.0)
    assert mixed.relative_percent.high == pytest.approx(-5.0 + 100 * 4.302653 * 0.025 / math.sqrt(3), abs=1e-4)
    assert mixed.significant is False
    # A baseline whose mean is 0: no relative change; the absolute interval decides
    # (differences 1, 2, 1.5: mean 1.5, sd 0.5, half-width 4.303 x 0.5 / sqrt(3) = 1.24 -> [0.26, 2.74]).
    zero = paired_difference([1.0, 2.0, 1.5], [0.0, 0.0, 0.0])
    assert zero.relative_percent is None and zero.significant is True
    # Seeds where either side has no value (e.g. no multi-node job) are left out of the pairs.
    missing = paired_difference([1.0, None, 3.0], [1.0, 2.0, None])
    assert missing.differences == (0.0,) and missing.significant is None


# ------------------------------------------------------------------------------------------ verdicts
def _three_seed_tables() -> list[list[tuple[str, list[float]]]]:
    """Per seed the table rows (slurm-tree, gpupool) for three headline metrics."""
    # -1, -0.99, -1.32 h (mean -1.103, sd 0.188, half-width 0.466); relative -1.10333 / 11 = -10.03%: a win.
    waits = ((10.0, 9.0), (11.0, 10.01), (12.0, 10.68))
    p95 = ((10.0, 11.0), (11.0, 12.1), (12.0, 13.2))  # +1, +1.1, +1.2 h, +10% of every baseline: a loss, 10.0% +- 0.0%
    jct = ((10.0, 11.0), (20.0, 19.0), (30.0, 30.0))  # +1, -1, 0: not significant
    return [[("wait mean (h)", list(waits[k])), ("wait p95 (h)", list(p95[k])), ("JCT mean (h)", list(jct[k]))]
            for k in range(3)]


def test_verdict_names_win_loss_and_not_significant() -> None:
    tables = _three_seed_tables()
    metrics = summarise(["slurm-tree", "gpupool"], "slurm-tree", tables,
                        {label: row_better(label) for label, _ in tables[0]})
    wait = next(m for m in metrics if m["key"] == "wait_mean_h")
    assert wait["policies"]["gpupool"]["values"] == [9.0, 10.01, 10.68]
    assert wait["differences"]["gpupool"]["assessment"] == "better"
    rel = wait["differences"]["gpupool"]["relative_percent"]
    # Ratio of means and its delta-method half-width, from the numbers above.
    d, b = [-1.0, -0.99, -1.32], [10.0, 11.0, 12.0]
    r = statistics.fmean(d) / statistics.fmean(b)
    half = 100 * 4.302653 * statistics.stdev([(di - r * bi) / 11.0 for di, bi in zip(d, b, strict=True)]) / math.sqrt(3)
    assert rel["mean"] == pytest.approx(100 * r, abs=1e-5) and rel["ci95_high"] == pytest.approx(100 * r + half, abs=1e-4)
    sentence = verdict("gpupool", "slurm-tree", metrics, HEADLINE, 3)
    assert sentence == (f"gpupool, against slurm-tree (95% CI, 3 seeds), lowers mean wait by {-100 * r:.1f}% ± "
                        f"{half:.1f}% (better); raises p95 wait by 10.0% ± 0.0% (worse); not significantly different: "
                        "mean JCT.")


def test_verdict_with_nothing_significant_and_with_one_seed() -> None:
    tables = [[("wait mean (h)", [10.0, 11.0])], [("wait mean (h)", [10.0, 9.0])]]
    metrics = summarise(["slurm-tree", "gpupool"], "slurm-tree", tables, {"wait mean (h)": "lower"})
    assert verdict("gpupool", "slurm-tree", metrics, HEADLINE, 2) == (
        "gpupool, against slurm-tree (95% CI, 2 seeds), is not significantly different on any headline metric "
        "(mean wait).")
    single = summarise(["slurm-tree", "gpupool"], "slurm-tree", tables[:1], {"wait mean (h)": "lower"})
    sentence = verdict("gpupool", "slurm-tree", single, HEADLINE, 1)
    assert "one seed: no confidence interval" in sentence and "raises mean wait by 10.0%" in sentence


def test_higher_is_better_metrics_win_when_they_rise() -> None:
    label = "GPU utilisation (submit period)"
    tables = [[(label, [0.5, 0.55])], [(label, [0.6, 0.66])], [(label, [0.4, 0.44])]]
    metrics = summarise(["slurm-tree", "gpupool"], "slurm-tree", tables, {label: row_better(label)})
    assert metrics[0]["differences"]["gpupool"]["assessment"] == "better"
    assert "raises GPU utilisation by 10.0% ± 0.0% (better)" in verdict("gpupool", "slurm-tree", metrics, HEADLINE, 3)


# ------------------------------------------------------------------------------------------ trace replicates
def _trace(days: float, per_day: int = 6) -> list[Job]:
    jobs = []
    count = int(days * per_day)
    for k in range(count):
        submit = 1_000_000.0 + k * DAY / per_day + 37.0  # an epoch-like origin, so blocks do not start at 0
        jobs.append(Job(job_id=str(100 + k), submit=submit, duration=60.0 + k, time_limit=600.0 + k, gpus=1 + k % 8,
                        nodes=1, partition=f"p{k % 3}", job_class="default", account=f"a{k % 2}"))
    return jobs


def test_bootstrap_replicates_are_trace_jobs_shifted_by_whole_days() -> None:
    trace = _trace(10)
    block = block_seconds(trace)
    assert block == DAY  # 10 days >= MIN_BLOCKS days
    origin = trace[0].submit
    by_id = {j.job_id: j for j in trace}
    replicate = block_bootstrap(trace, seed=3, block=block)
    assert replicate
    slots_seen = set()
    for job in replicate:
        original_id, _, slot = job.job_id.partition("#")
        source = by_id[original_id]
        # Everything but the submit time and id is the trace job's.
        assert (job.duration, job.time_limit, job.gpus, job.nodes, job.partition, job.account) == \
            (source.duration, source.time_limit, source.gpus, source.nodes, source.partition, source.account)
        shift_days = (job.submit - source.submit) / DAY
        assert shift_days == pytest.approx(round(shift_days))  # whole days: the time of day is kept
        # It lies in its slot's day.
        assert origin + int(slot) * DAY <= job.submit < origin + (int(slot) + 1) * DAY
        slots_seen.add(int(slot))
    assert slots_seen <= set(range(10))
    assert [j.submit for j in replicate] == sorted(j.submit for j in replicate)
    assert len({j.job_id for j in replicate}) == len(replicate)
    # Deterministic per seed, different across seeds.
    assert block_bootstrap(trace, seed=3, block=block) == replicate
    assert block_bootstrap(trace, seed=4, block=block) != replicate


def test_short_trace_is_cut_into_min_blocks() -> None:
    trace = _trace(2)  # 12 jobs over 2 days
    span = trace[-1].submit - trace[0].submit
    block = block_seconds(trace)
    assert block == pytest.approx(span / MIN_BLOCKS, rel=1e-6)
    replicate = block_bootstrap(trace, seed=1, block=block)
    slots = {int(j.job_id.partition("#")[2]) for j in replicate}
    assert max(slots) <= MIN_BLOCKS - 1


# ------------------------------------------------------------------------------------------ CLI
def _run_json(args: list[str], capsys: pytest.CaptureFixture[str]) -> dict:
    assert main([*args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_seeds_3_gives_three_values_per_policy(fabric: str, capsys: pytest.CaptureFixture[str]) -> None:
    spec = "synthetic:jobs=80,multi=0.3,load=1.2"
    doc = _run_json(["simulate", "--fabric", fabric, "--workload", spec, "--policies", "slurm-tree,gpupool",
                     "--seeds", "3", "--seed", "5"], capsys)
    st = doc["statistics"]
    assert st["replicates"] == 3 and st["seeds"] == [5, 6, 7] and st["baseline"] == "slurm-tree"
    wait = next(m for m in st["metrics"] if m["label"] == "wait mean (h)")
    # Each replicate is the generator at that seed: the single runs, independently.
    for name in ("slurm-tree", "gpupool"):
        singles = []
        for seed in (5, 6, 7):
            one = _run_json(["simulate", "--fabric", fabric, "--workload", f"{spec},seed={seed}",
                             "--policies", "slurm-tree,gpupool"], capsys)
            singles.append(next(p for p in one["policies"] if p["policy"] == name)["wait_s"]["mean"] / 3600)
        entry = wait["policies"][name]
        assert entry["values"] == pytest.approx(singles, abs=1e-6)
        half = scipy_stats.t.ppf(0.975, 2) * statistics.stdev(singles) / math.sqrt(3)
        assert entry["mean"] == pytest.approx(statistics.fmean(singles), abs=1e-6)
        assert entry["ci95_low"] == pytest.approx(statistics.fmean(singles) - half, abs=1e-5)
    diff = wait["differences"]["gpupool"]
    expected = [g - s for g, s in zip(wait["policies"]["gpupool"]["values"], wait["policies"]["slurm-tree"]["values"],
                                      strict=True)]
    assert diff["values"] == pytest.approx(expected, abs=1e-5)
    assert set(st["verdicts"]) == {"gpupool"} and st["verdicts"]["gpupool"].startswith("gpupool, against slurm-tree")
    a = doc["assumptions"]
    assert a["seeds"] == [5, 6, 7] and a["backfill"] == {"model": "easy", "depth": 500}
    assert a["speed_model"] == doc["speed_model"] and a["gpupool_version"] and a["date_utc"].endswith("Z")
    assert "fat-tree" in a["fabric"]["summary"] and a["workload"]["source"] == spec


def test_seeds_usage_errors_exit_2(fabric: str, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["simulate", "--fabric", fabric, "--workload", "synthetic:jobs=10"]
    assert main([*base, "--seeds", "0"]) == 2
    assert main([*base, "--seeds", "-3"]) == 2
    assert main([*base, "--baseline", "slurm-block", "--policies", "slurm-tree,gpupool"]) == 2
    assert main(["simulate", "--fabric", fabric, "--workload", "synthetic:jobs=10,seed=4", "--seed", "5"]) == 2
    assert capsys.readouterr().err.count("gpupool: error:") == 4


def _sacct_days(tmp_path: Path, days: int) -> str:
    rows = []
    job = 1
    for day in range(days):
        for hour in (2, 9, 14, 20):
            nodes = 1 + (job % 3)
            rows.append(f"{job}|gpu|acct|2026-11-{1 + day:02d}T{hour:02d}:00:00|2026-11-{1 + day:02d}T{hour:02d}:00:00|"
                        f"{3600 * (1 + job % 5)}|600|{nodes}|gres/gpu={8 * nodes},node={nodes}||COMPLETED")
            job += 1
    path = tmp_path / "sacct.txt"
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    return str(path)


def test_trace_seeds_are_bootstrap_replicates_and_one_seed_is_the_trace(fabric: str, tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    path = _sacct_days(tmp_path, 8)  # 32 jobs over 8 days
    one = _run_json(["simulate", "--fabric", fabric, "--workload", path, "--policies", "slurm-tree,gpupool"], capsys)
    assert one["statistics"]["replicates"] == 1 and one["assumptions"]["seeds"] == []
    assert "trace itself" in one["assumptions"]["replicate_method"]
    assert all(p["jobs"] == 32 for p in one["policies"])
    doc = _run_json(["simulate", "--fabric", fabric, "--workload", path, "--policies", "slurm-tree,gpupool",
                     "--seeds", "3", "--json"], capsys)
    assert doc["assumptions"]["bootstrap_block_s"] == DAY and "bootstrap" in doc["assumptions"]["replicate_method"]
    jobs = next(m for m in doc["statistics"]["metrics"] if m["label"] == "jobs")
    for name in ("slurm-tree", "gpupool"):
        assert len(jobs["policies"][name]["values"]) == 3
        # 8 day blocks of 4 jobs each, drawn with replacement: every replicate has 32 jobs.
        assert jobs["policies"][name]["values"] == [32, 32, 32]
    again = _run_json(["simulate", "--fabric", fabric, "--workload", path, "--policies", "slurm-tree,gpupool",
                       "--seeds", "3", "--json"], capsys)
    assert again["statistics"]["metrics"] == doc["statistics"]["metrics"]  # deterministic per seed


def test_utilisation_over_the_submit_period_by_hand(fabric: str, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    # 64 GPUs. Job 1 at 0 s: 8 GPUs for 600 s; job 2 at 300 s: 8 GPUs for 3600 s.
    rows = ["1|gpu|a|2026-11-01T10:00:00|2026-11-01T10:00:00|600|60|1|gres/gpu=8,node=1||COMPLETED",
            "2|gpu|a|2026-11-01T10:05:00|2026-11-01T10:05:00|3600|60|1|gres/gpu=8,node=1||COMPLETED"]
    path = tmp_path / "two.txt"
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    doc = _run_json(["simulate", "--fabric", fabric, "--workload", str(path), "--policies", "gpupool"], capsys)
    (policy,) = doc["policies"]
    # Submit period [0, 300]: only job 1 runs, 8 of 64 GPUs.
    assert policy["gpu_utilisation_submit_period"] == pytest.approx(8 * 300 / (64 * 300))
    # Old figure, to the last end (3900 s): (8 x 600 + 8 x 3600) / (64 x 3900).
    assert policy["gpu_utilisation"] == pytest.approx((8 * 600 + 8 * 3600) / (64 * 3900), abs=1e-6)


def test_table_marks_not_significant_and_prints_verdict_and_assumptions(fabric: str,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--fabric", fabric, "--workload", "synthetic:jobs=60,multi=0.3", "--seeds", "2",
                 "--policies", "slurm-tree,gpupool"]) == 0
    out = capsys.readouterr().out
    assert "gpupool vs slurm-tree" in out and "±" in out
    assert "verdict: gpupool, against slurm-tree (95% CI, 2 seeds)" in out
    for name in ("speed model", "backfill: easy, depth 500", "seeds 1, 2", "gpupool: "):
        assert f"assumption: {name}" in out or name in out


def test_html_report_has_intervals_verdicts_and_assumptions(fabric: str, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "out.html"
    assert main(["simulate", "--fabric", fabric, "--workload", "synthetic:jobs=60,multi=0.3", "--seeds", "2",
                 "--policies", "slurm-tree,gpupool", "--baseline", "gpupool", "--report", str(report)]) == 0
    capsys.readouterr()
    page = report.read_text()
    assert '<ul id="verdicts"><li class="verdict">slurm-tree, against gpupool (95% CI, 2 seeds)' in page
    assert "<th>slurm-tree vs gpupool</th>" in page and " ± " in page
    for name in ("speed model", "backfill", "replicates", "gpupool"):
        assert f"<dt>{name}</dt>" in page
    assert "seeds 1, 2" in page


def test_summary_table_marks_not_significant_cells() -> None:
    from gpupool.simulate.report import summary_table

    tables = _three_seed_tables()
    metrics = summarise(["slurm-tree", "gpupool"], "slurm-tree", tables,
                        {label: row_better(label) for label, _ in tables[0]})
    doc = {"policies": [{"policy": "slurm-tree"}, {"policy": "gpupool"}],
           "statistics": {"baseline": "slurm-tree", "metrics": metrics}}
    header, values, rows = summary_table(doc)
    assert header == ["metric", "slurm-tree", "gpupool", "gpupool vs slurm-tree"] and values == 2
    cells = {label: row for label, row in rows}
    # p95 wait: +10% in every seed, significant, not faint; baseline 10, 11, 12: mean 11, sd 1, +- 4.303/sqrt(3).
    assert cells["wait p95 (h)"][0] == (f"11.000 ± {4.302653 / math.sqrt(3):.3f}", False)
    assert cells["wait p95 (h)"][2] == ("+10.0% ± 0.0%", False)
    text, faint = cells["JCT mean (h)"][2]  # +1, -1, 0: not significant
    assert text.endswith(" n.s.") and faint


def test_assumption_lines_state_the_speed_model_as_it_states_itself() -> None:
    from gpupool.simulate.report import assumption_lines

    doc = {"assumptions": {
        "speed_model": {"model": "contention", "classes": {"default": {"per_extra_leaf": 0.02, "comm_fraction": 0.2}},
                        "partitions": {"llm": "comm-heavy"}, "contention": {"sharing": "max-min fair"}},
        "backfill": {"model": "slurm", "depth": 50}, "replicates": 3, "seeds": [4, 5, 6],
        "replicate_method": "independent seeds", "baseline": "slurm-tree", "confidence": 0.95,
        "relative_difference": "ratio of means", "fabric": {"summary": "f.json: fat-tree"},
        "workload": {"source": "synthetic", "format": "synthetic"}, "gpupool_version": "9.9", "date_utc": "D"}}
    lines = dict(assumption_lines(doc))
    assert lines["speed model"] == ('contention model; classes default: per_extra_leaf=0.02, comm_fraction=0.2; '
                                    'partitions {"llm": "comm-heavy"}; contention={"sharing": "max-min fair"}')
    assert lines["backfill"] == "slurm, depth 50"
    assert lines["replicates"] == "3 (independent seeds); seeds 4, 5, 6"
    assert lines["gpupool"] == "9.9, run D"
