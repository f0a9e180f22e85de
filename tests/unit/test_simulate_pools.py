"""Pool policies on a tiny fabric: start times, preemptions and per-pool GPU-hours derived by hand in the comments."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpupool.cli.main import main
from gpupool.fabric.compiled import compile_fabric
from gpupool.fabric.generate import fat_tree
from gpupool.fabric.model import save_fabric
from gpupool.simulate.pooled import PoolAdmission, PoolLayout, PoolUnit, pool_tallies
from gpupool.simulate.scheduler import SimConfig, Simulator
from gpupool.simulate.speed import SpeedModel
from gpupool.simulate.workload import Job

# 4 hosts of 4 GPUs: gpu001, gpu002 on leaf01 (pool "a", owned by account a); gpu003, gpu004 on leaf02 (pool "b").
SMALL = compile_fabric(fat_tree(2, 2, 1))
A_HOSTS = {"gpu001", "gpu002"}
B_HOSTS = {"gpu003", "gpu004"}


def _layout(b_lend_limit: int | None = None, b_min_runtime: float = 0.0) -> PoolLayout:
    index = SMALL.host_index()
    return PoolLayout(pools=(
        PoolUnit("a", tuple(index[h] for h in sorted(A_HOSTS)), owners=("a",)),
        PoolUnit("b", tuple(index[h] for h in sorted(B_HOSTS)), owners=("b",), lend_limit=b_lend_limit,
                 min_runtime=b_min_runtime),
    ))


def _job(job_id: str, account: str, submit: float, duration: float, nodes: int, limit: float | None = None) -> Job:
    return Job(job_id=job_id, submit=submit, duration=duration, time_limit=limit or duration, gpus=4 * nodes,
               nodes=nodes, account=account)


def _run(policy: str, jobs: list[Job], layout: PoolLayout | None = None, backfill: str = "easy"
         ) -> tuple[Simulator, dict]:
    sim = Simulator(SMALL, policy, SimConfig(gpus_per_host=4, record_starts=True, backfill=backfill), SpeedModel(),
                    layout=layout or _layout())
    sim.run(jobs)
    sim.metrics.pools = pool_tallies(sim)
    starts: dict[str, list[tuple[float, list[str]]]] = {}
    for job_id, start, hosts in sim.starts:
        starts.setdefault(job_id, []).append((start, hosts))
    return sim, starts


BORROW_TRACE = [
    _job("b1", "b", 0, 100, 1),  # b's own host until 100
    _job("a1", "a", 0, 100, 2),  # fills pool a until 100
    _job("a2", "a", 1, 50, 1),  # pool a is full: waits without lending, borrows b's idle host with it
]


@pytest.mark.parametrize("backfill", ["easy", "slurm"])  # both backfill models, the same answer
def test_no_lending_keeps_each_unit_on_its_own_hosts(backfill: str) -> None:
    sim, starts = _run("pools-nolend", BORROW_TRACE, backfill=backfill)
    assert {k: v[0][0] for k, v in starts.items()} == {"b1": 0, "a1": 0, "a2": 100}
    assert set(starts["a2"][0][1]) <= A_HOSTS and set(starts["b1"][0][1]) <= B_HOSTS
    pools = sim.metrics.to_json()["pools"]
    # a: a1 8 GPUs x 100 s + a2 4 GPUs x 50 s; b: b1 4 GPUs x 100 s; nothing lent or borrowed.
    assert pools["a"]["owner_gpu_hours"] == pytest.approx((800 + 200) / 3600, abs=1e-3)
    assert pools["b"]["owner_gpu_hours"] == pytest.approx(400 / 3600, abs=1e-3)
    assert pools["a"]["borrowed_gpu_hours"] == 0 and pools["b"]["lent_gpu_hours"] == 0
    assert sim.metrics.preemptions == 0


@pytest.mark.parametrize("backfill", ["easy", "slurm"])  # both backfill models, the same answer
def test_lending_runs_the_waiting_job_on_the_other_units_idle_host(backfill: str) -> None:
    sim, starts = _run("pools-lend", BORROW_TRACE, backfill=backfill)
    assert {k: v[0][0] for k, v in starts.items()} == {"b1": 0, "a1": 0, "a2": 1}
    # b1 took one of b's hosts; a2 borrows the other one (the only 4 free GPUs at t=1).
    assert set(starts["a2"][0][1]) <= B_HOSTS and starts["a2"][0][1] != starts["b1"][0][1]
    pools = sim.metrics.to_json()["pools"]
    # a2: 4 GPUs x 50 s on b's host: lent by b, borrowed by a.
    assert pools["b"]["lent_gpu_hours"] == pytest.approx(200 / 3600, abs=1e-3)
    assert pools["a"]["borrowed_gpu_hours"] == pytest.approx(200 / 3600, abs=1e-3)
    assert pools["a"]["owner_gpu_hours"] == pytest.approx(800 / 3600, abs=1e-3)
    assert sim.metrics.preemptions == 0


PREEMPT_TRACE = [
    _job("a1", "a", 0, 100, 2),  # fills pool a until 100
    _job("a2", "a", 1, 1000, 1),  # borrows one of b's hosts at 1
    _job("b1", "b", 10, 50, 2),  # b needs both its hosts: preempts a2
]


@pytest.mark.parametrize("backfill", ["easy", "slurm"])  # both backfill models, the same answer
def test_owner_preempts_the_borrower_which_restarts_from_zero(backfill: str) -> None:
    sim, starts = _run("pools-lend", PREEMPT_TRACE, backfill=backfill)
    # t=10: b1 preempts a2 (ran 9 s on 4 GPUs: 36 GPU-s lost) and runs 10..60; at 60 b's hosts are free
    # again and pool a is still full (a1 until 100), so a2 borrows again at 60 and runs its full 1000 s.
    assert [s for s, _ in starts["a2"]] == [1, 60]
    assert starts["b1"][0][0] == 10
    m = sim.metrics.to_json()
    assert m["preemptions"] == 1
    assert m["gpu_hours_lost_to_requeue"] == pytest.approx(36 / 3600, abs=1e-3)
    pools = m["pools"]
    assert pools["b"]["borrowers_preempted"] == 1 and pools["a"]["owner_jobs_requeued"] == 1
    assert pools["a"]["gpu_hours_lost_to_requeue"] == pytest.approx(36 / 3600, abs=1e-3)
    # Lent by b: 36 GPU-s of the lost run + 4000 GPU-s of the second run.
    assert pools["b"]["lent_gpu_hours"] == pytest.approx(4036 / 3600, abs=1e-3)
    # a2's JCT: submitted 1, ended 1060.
    assert m["jct_s"]["max"] == pytest.approx(1059)


@pytest.mark.parametrize("backfill", ["easy", "slurm"])  # both backfill models, the same answer
def test_min_runtime_shields_a_young_borrower(backfill: str) -> None:
    # b's borrowers run at least 20 s: a2 (started 1) may be preempted from 21, so b1 starts at 21.
    sim, starts = _run("pools-lend", PREEMPT_TRACE, _layout(b_min_runtime=20.0), backfill)
    assert starts["b1"][0][0] == 21
    assert [s for s, _ in starts["a2"]] == [1, 71]
    assert sim.metrics.to_json()["gpu_hours_lost_to_requeue"] == pytest.approx(80 / 3600, abs=1e-3)


@pytest.mark.parametrize("backfill", ["easy", "slurm"])  # both backfill models, the same answer
def test_lend_limit_caps_what_a_pool_lends(backfill: str) -> None:
    jobs = [
        _job("a1", "a", 0, 100, 2),  # fills pool a until 100
        _job("a2", "a", 1, 50, 1),  # borrows 4 of b's GPUs: b's lend limit reached
        _job("a3", "a", 2, 10, 1),  # b has 4 more idle GPUs but may not lend them: waits for a1's end
    ]
    _sim, starts = _run("pools-lend", jobs, _layout(b_lend_limit=4), backfill)
    assert {k: v[0][0] for k, v in starts.items()} == {"a1": 0, "a2": 1, "a3": 51}
    # At 51 a2 has ended: b lends again (a3 borrows at 51, before a1 frees pool a at 100).
    _sim, unlimited = _run("pools-lend", jobs, backfill=backfill)
    assert unlimited["a3"][0][0] == 2


# One pool owning all four hosts: per-unit EASY reserves for the unit's first blocked job only, Slurm-like
# backfill for every blocked job tested. Worked by hand (4 GPUs per host, limits = runtimes):
#   0: j1 (2 hosts, to 100), j2 (1 host, to 20), j3 (1 host, to 200) fill the fabric.
#   j4 (4 hosts) can start only at 200, when all are free; j5 (3 hosts, 10 s) fits at 100-200 on the hosts of j1, j2.
#   easy: at 20 j6 (1 host, 150 s: ends 170 <= j4's 200) takes j2's host; j5 then waits for it: 170. j4 at 200.
#   slurm: j5 reserves [100, 110) on three hosts, so j6 may not take j2's host at 20 (it would run over 100);
#   j5 starts at 100; after it j6 would run into j4's reservation at 200, so it starts after j4: 210.
ALL_A = PoolLayout(pools=(PoolUnit("a", tuple(range(4)), owners=("a",)),))
RESERVE_TRACE = [
    _job("j1", "a", 0, 100, 2), _job("j2", "a", 0, 20, 1), _job("j3", "a", 0, 200, 1),
    _job("j4", "a", 1, 10, 4), _job("j5", "a", 2, 10, 3), _job("j6", "a", 3, 150, 1),
]


@pytest.mark.parametrize(("backfill", "expected"), [
    ("easy", {"j1": 0, "j2": 0, "j3": 0, "j4": 200, "j5": 170, "j6": 20}),
    ("slurm", {"j1": 0, "j2": 0, "j3": 0, "j4": 200, "j5": 100, "j6": 210}),
])
@pytest.mark.parametrize("policy", ["pools-nolend", "pools-lend"])
def test_backfill_slurm_applies_to_pool_policies(backfill: str, expected: dict[str, float], policy: str) -> None:
    sim, starts = _run(policy, RESERVE_TRACE, ALL_A, backfill)
    assert {k: v[0][0] for k, v in starts.items()} == expected
    assert sim.metrics.preemptions == 0 and sim.metrics.jobs == 6


def test_an_account_without_a_pool_is_counted_not_dropped_silently() -> None:
    sim, starts = _run("pools-nolend", [_job("x1", "x", 0, 10, 1), _job("a1", "a", 0, 10, 1)])
    assert set(starts) == {"a1"} and sim.counts.no_pool == 1
    # With lending, an account owning nothing borrows through the scavenger partition.
    sim, starts = _run("pools-lend", [_job("x1", "x", 0, 10, 1)])
    assert set(starts) == {"x1"} and sim.counts.no_pool == 0


def test_one_units_blocked_head_does_not_hold_back_the_other_unit() -> None:
    jobs = [
        _job("a1", "a", 0, 100, 1),
        _job("a2", "a", 1, 10, 2),  # head of a: needs both of a's hosts, waits for a1 (shadow 100)
        _job("b1", "b", 2, 500, 2),  # b's hosts are not reserved for a2: starts now although it ends after 100
    ]
    _sim, starts = _run("pools-nolend", jobs)
    assert {k: v[0][0] for k, v in starts.items()} == {"a1": 0, "a2": 100, "b1": 2}


POOLS_YAML = """\
pools:
  pa:
    nodes: gpu[001-002]
    owners: [a]
  pb:
    nodes: leaf:leaf02
    owners: [b]
accounts:
  a: {shares: 1}
  b: {shares: 1}
"""


def _sacct(tmp_path: Path) -> str:
    header = "JobIDRaw|Partition|Account|Submit|Start|ElapsedRaw|TimelimitRaw|NNodes|AllocTRES|ReqTRES|State"
    rows = [
        "1|pa|a|2026-11-30T00:00:00|2026-11-30T00:00:00|100|2|2|gres/gpu=8,node=2||COMPLETED",
        "2|pa|a|2026-11-30T00:00:01|2026-11-30T00:01:40|50|1|1|gres/gpu=4,node=1||COMPLETED",
    ]
    path = tmp_path / "sacct.txt"
    path.write_text("\n".join([header, *rows]) + "\n")
    return str(path)


def _fabric(tmp_path: Path) -> str:
    path = tmp_path / "fabric.json"
    save_fabric(fat_tree(2, 2, 1), str(path))  # the SMALL fabric: leaf01 gpu001-002, leaf02 gpu003-004
    return str(path)


def test_cli_reads_accounts_from_sacct_and_pools_from_the_pools_file(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    pools = tmp_path / "pools.yaml"
    pools.write_text(POOLS_YAML)
    base = ["simulate", "--fabric", _fabric(tmp_path), "--workload", _sacct(tmp_path), "--gpus-per-host", "4",
            "--pools", str(pools)]
    assert main([*base, "--policies", "pools-nolend,pools-lend", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    nolend, lend = doc["policies"]
    # Job 2 (account a, 4 GPUs for 50 s) waits 99 s for job 1 (100 s) without lending, borrows pb with it.
    assert nolend["wait_s"]["max"] == pytest.approx(99, abs=1)
    assert lend["wait_s"]["max"] == pytest.approx(0, abs=1)
    assert lend["pools"]["pb"]["lent_gpu_hours"] == pytest.approx(200 / 3600, abs=1e-3)
    assert lend["pools"]["pa"]["borrowed_gpu_hours"] == pytest.approx(200 / 3600, abs=1e-3)
    assert doc["pools"]["pools"]["pb"]["hosts"] == 2
    assert main([*base, "--policies", "pools-lend"]) == 0
    assert "pool pb: GPU-h lent" in capsys.readouterr().out


def test_cli_pool_policy_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["simulate", "--fabric", _fabric(tmp_path), "--workload", _sacct(tmp_path), "--gpus-per-host", "4"]
    assert main([*base, "--policies", "pools-lend"]) == 2  # no --pools
    pools = tmp_path / "pools.yaml"
    pools.write_text(POOLS_YAML)
    assert main([*base, "--policies", "gpupool", "--pools", str(pools)]) == 2  # --pools without a pool policy
    pools.write_text(POOLS_YAML.replace("gpu[001-002]", "gpu[001-002,009]"))
    assert main([*base, "--policies", "pools-lend", "--pools", str(pools)]) == 4
    err = capsys.readouterr().err
    assert "pools.yaml:3" in err and "not in the fabric: gpu009" in err and err.count("gpupool: error:") == 3


def test_synthetic_accounts_follow_their_weights_and_leave_other_draws_alone() -> None:
    from gpupool.simulate.synthetic import parse_spec, synthetic_jobs

    plain = list(synthetic_jobs(parse_spec("synthetic:jobs=2000,seed=5"), total_gpus=64, gpus_per_host=8))
    named = list(synthetic_jobs(parse_spec("synthetic:jobs=2000,seed=5,accounts=a:1/b:3"), total_gpus=64,
                                gpus_per_host=8))
    assert [(j.submit, j.gpus, j.duration) for j in plain] == [(j.submit, j.gpus, j.duration) for j in named]
    share_b = sum(j.account == "b" for j in named) / len(named)
    assert abs(share_b - 0.75) < 0.04  # binomial sd at n=2000 is about 0.01
    assert {j.account for j in plain} == {""}


@pytest.mark.parametrize("backfill", ["easy", "slurm"])
def test_busy_random_trace_keeps_gpu_books_balanced(backfill: str) -> None:
    """Many preemptions on a 16-host fabric: every job completes once, and all GPUs are free at the end,
    under per-unit EASY and under the Slurm-like plan alike."""
    from gpupool.simulate.synthetic import parse_spec, synthetic_jobs

    wide = compile_fabric(fat_tree(4, 4, 2))
    index = wide.host_index()
    names = wide.host_names
    layout = PoolLayout(pools=(
        PoolUnit("a", tuple(index[h] for h in names[:8]), owners=("a",)),
        PoolUnit("b", tuple(index[h] for h in names[8:12]), owners=("b",), min_runtime=600.0),
        PoolUnit("c", tuple(index[h] for h in names[12:]), owners=("c",), lend=False),
    ))
    spec = parse_spec("synthetic:jobs=600,seed=2,load=1.2,multi=0.3,multi_nodes=2:60/4:40,accounts=a:2/b:1/c:1/x:1")
    for policy in ("pools-nolend", "pools-lend"):
        sim = Simulator(wide, policy, SimConfig(gpus_per_host=8, backfill=backfill), SpeedModel(), layout=layout)
        jobs = list(synthetic_jobs(spec, total_gpus=128, gpus_per_host=8))
        metrics = sim.run(jobs)
        # account x owns nothing and there is no open pool: it runs only by borrowing.
        x_jobs = sum(j.account == "x" for j in jobs)
        assert metrics.jobs + sim.counts.no_pool + sim.counts.too_large == len(jobs)
        assert sim.counts.no_pool == (x_jobs if policy == "pools-nolend" else 0)
        pools_state = sim.admission
        assert isinstance(pools_state, PoolAdmission)
        assert int(sim.free.sum()) == 128 and not sim.running and not any(pools_state.borrowers_on)
        assert pools_state.lent_now == [0, 0, 0]
        pools = pool_tallies(sim)
        assert pools["c"]["lent_gpu_hours"] == 0  # c does not lend
        lent = sum(p["lent_gpu_hours"] for p in pools.values())
        if policy == "pools-nolend":
            assert lent == 0 and metrics.preemptions == 0
        else:
            assert lent > 0 and metrics.preemptions > 0
            # Borrowed GPU-hours of a, b and c come from a's and b's lending, or x's (booked nowhere).
            assert sum(p["borrowed_gpu_hours"] for p in pools.values()) <= lent + 1e-9


def test_a_job_larger_than_its_pools_is_counted_and_does_not_block_the_pool() -> None:
    jobs = [
        _job("a1", "a", 0, 10, 3),  # 3 hosts: pool a has 2 and a may not borrow without lending
        _job("a2", "a", 1, 10, 2),  # would otherwise wait behind a1's reservation forever
    ]
    sim, starts = _run("pools-nolend", jobs)
    assert set(starts) == {"a2"} and starts["a2"][0][0] == 1
    assert sim.counts.too_large_for_pools == 1
    # With lending, a1 fits the scavenger partition (all 4 hosts lend): it runs as a borrower.
    sim, starts = _run("pools-lend", jobs)
    assert set(starts) == {"a1", "a2"} and sim.counts.too_large_for_pools == 0


def test_borrow_limit_caps_what_an_account_borrows() -> None:
    jobs = [
        _job("a1", "a", 0, 100, 2),  # fills pool a until 100
        _job("a2", "a", 1, 50, 1),  # borrows 4 GPUs: a's borrow limit of 4 reached
        _job("a3", "a", 2, 10, 1),  # b has 4 idle GPUs, but a may not borrow more: waits for a2 to end at 51
    ]
    layout = _layout()
    limited = PoolLayout(pools=layout.pools, borrow_limits={"a": 4})
    _sim, starts = _run("pools-lend", jobs, limited)
    assert {k: v[0][0] for k, v in starts.items()} == {"a1": 0, "a2": 1, "a3": 51}


def test_pools_file_lending_terms_reach_the_simulation(tmp_path: Path) -> None:
    from gpupool.app.simulate import load_pool_layout

    pools = tmp_path / "pools.yaml"
    pools.write_text(POOLS_YAML.replace("    owners: [b]\n", "    owners: [b]\n    lend_limit: 25%\n"
                                                           "    min_runtime: \"0:30\"\n")
                     .replace("  a: {shares: 1}", "  a: {shares: 1, borrow_limit: 2}"))
    layout = load_pool_layout(str(pools), SMALL, 4)
    pb = {u.name: u for u in layout.pools}["pb"]
    # pb: 2 hosts x 4 GPUs = 8 GPUs, 25% of which may be lent: 2 GPUs; min_runtime 0:30 = 30 s.
    assert (pb.lend_limit, pb.min_runtime) == (2, 30.0)
    assert layout.borrow_limits == {"a": 2}  # at most what pb may lend (pool apply's check, issue 27)
    assert {SMALL.host_names[h] for h in pb.hosts} == B_HOSTS
