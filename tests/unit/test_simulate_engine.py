"""Event-driven replay on tiny fabrics: start times and placements derived by hand in the comments."""

from __future__ import annotations

from dataclasses import replace

import pytest

from gpupool.fabric.compiled import compile_fabric
from gpupool.fabric.generate import fat_tree
from gpupool.simulate.scheduler import SimConfig, Simulator
from gpupool.simulate.speed import ClassFactors, SpeedModel
from gpupool.simulate.workload import Job

# leaf01: gpu001, gpu002; leaf02: gpu003, gpu004 (4 GPUs each in these tests: 16 GPUs)
SMALL = compile_fabric(fat_tree(2, 2, 1))
# leaf01: gpu001-gpu003; leaf02: gpu004-gpu006
WIDE = compile_fabric(fat_tree(2, 3, 1))
LEAF = {f"gpu{i:03d}": (1 if i <= 2 else 2) for i in range(1, 5)}
WIDE_LEAF = {f"gpu{i:03d}": (1 if i <= 3 else 2) for i in range(1, 7)}


def _job(job_id: str, submit: float, duration: float, nodes: int, per_node: int, limit: float | None = None,
         job_class: str = "default") -> Job:
    return Job(job_id=job_id, submit=submit, duration=duration, time_limit=limit or duration, gpus=nodes * per_node,
               nodes=nodes, job_class=job_class)


def _run(compiled, policy: str, jobs: list[Job], **config) -> tuple[Simulator, dict[str, tuple[float, list[str]]]]:
    config.setdefault("backfill", "slurm")  # the hand-worked cases hold under both models unless a test says
    sim = Simulator(compiled, policy, SimConfig(gpus_per_host=4, record_starts=True, **config), SpeedModel())
    sim.run(jobs)
    return sim, {job_id: (start, hosts) for job_id, start, hosts in sim.starts}


@pytest.mark.parametrize("policy", ["slurm-tree", "gpupool"])
def test_fifo_with_easy_backfill(policy: str) -> None:
    jobs = [
        _job("A", 0, 100, 3, 4),  # t=0: 3 of 4 hosts busy until 100
        _job("B", 1, 50, 2, 4),  # head, blocked: needs 2 hosts, 1 free; shadow = A's end 100, spare 16-8 = 8 GPUs
        _job("C", 2, 10, 1, 4, limit=20),  # fits now, ends by 22 <= 100: backfilled at 2, ends 12
        _job("D", 3, 200, 1, 1),  # t=3: no GPU free; t=12 (C ends): 1 GPU <= 8 spare -> backfilled at 12
    ]
    sim, starts = _run(SMALL, policy, jobs)
    # At 100 A ends: 3 hosts have 4 free GPUs (D holds 1 GPU on the 4th) -> B starts at 100.
    assert {k: v[0] for k, v in starts.items()} == {"A": 0, "B": 100, "C": 2, "D": 12}
    # A on 3 hosts spans both leaves (2 + 1); C and D both run on the one host A left free.
    assert {LEAF[h] for h in starts["A"][1]} == {1, 2}
    assert starts["C"][1] == starts["D"][1] and starts["C"][1][0] not in starts["A"][1]
    m = sim.metrics.to_json()
    assert m["jobs"] == 4 and m["multi_node_jobs"] == 2
    assert m["wait_s"]["mean"] == pytest.approx((0 + 99 + 0 + 9) / 4)
    # A needs 2 leaves at least (2 hosts per leaf), B fits one: neither has extra leaves -> no slowdown.
    assert m["mean_extra_leaf_switches_multi_node"] == 0
    assert m["timeouts"] == 0


def test_head_reservation_blocks_a_long_backfill_candidate() -> None:
    jobs = [
        _job("A", 0, 100, 3, 4),  # 4 GPUs free on one host until 100
        _job("B", 1, 50, 4, 4),  # head: needs all 4 hosts -> shadow 100, spare 16 - 16 = 0
        _job("C", 2, 500, 1, 2),  # fits now but would run past 100 and there is no spare: must wait for B
    ]
    _sim, starts = _run(SMALL, "gpupool", jobs)
    # B: 100..150; then C at 150.
    assert {k: v[0] for k, v in starts.items()} == {"A": 0, "B": 100, "C": 150}


def _wait_trace() -> list[Job]:
    # On WIDE (2 leaves x 3 hosts): X takes 2 hosts of one leaf (same leaf: 2 hops, not 4); Y 2 hosts:
    # the other leaf is the only one with 2 free hosts; Z (2 hosts) then has one free host per leaf.
    return [
        _job("X", 0, 1000, 2, 4, limit=5000),
        _job("Y", 0, 50, 2, 4, limit=5000),
        _job("Z", 0, 1000, 2, 4, limit=5000),
    ]


def test_gpupool_hops_takes_two_leaves_now_and_pays_the_speed_factor() -> None:
    sim, starts = _run(WIDE, "gpupool-hops", _wait_trace())
    assert {WIDE_LEAF[h] for h in starts["X"][1]} != {WIDE_LEAF[h] for h in starts["Y"][1]}
    assert starts["Z"][0] == 0 and {WIDE_LEAF[h] for h in starts["Z"][1]} == {1, 2}
    m = sim.metrics.to_json()
    # Z: 1 extra leaf x 0.02 (default class) -> runs 1020 s.
    assert m["mean_extra_leaf_switches_multi_node"] == pytest.approx(1 / 3, abs=1e-4)  # rounded to 4 places
    assert sim.metrics.jct.max == pytest.approx(1020, rel=1e-9)


def test_gpupool_wait_holds_for_one_leaf_like_switches() -> None:
    sim, starts = _run(WIDE, "gpupool-wait", _wait_trace(), wait_time=300, wait_leaves=0)
    # Z is held at 0 (2 leaves > its minimum 1); at 50 Y ends and frees 2 hosts of one leaf: Z starts there.
    assert starts["Z"][0] == 50
    assert len({WIDE_LEAF[h] for h in starts["Z"][1]}) == 1
    m = sim.metrics.to_json()
    assert m["held_for_placement"] == 1 and m["mean_extra_leaf_switches_multi_node"] == 0
    # Idle while Z waited: 0..50 with 2 hosts x 4 GPUs free = 400 GPU-seconds.
    assert sim.metrics.idle_waiting_gpu_seconds == pytest.approx(400)


@pytest.mark.parametrize(("policy", "z_start"), [
    # Z's limit is 5000 s: the default wait is 25% of it, 1250 s, so Z holds until Y ends at 50.
    ("gpupool", 50.0), ("slurm-tuned", 50.0),
    # Without the hold both take the two leaves at once.
    ("gpupool-hops", 0.0), ("slurm-tree", 0.0)])
def test_the_default_policies_hold_a_spread_job_for_a_share_of_its_limit(policy: str, z_start: float) -> None:
    sim, starts = _run(WIDE, policy, _wait_trace())
    assert starts["Z"][0] == z_start
    assert len({WIDE_LEAF[h] for h in starts["Z"][1]}) == (1 if z_start else 2)
    assert sim.metrics.held == (1 if z_start else 0)


def test_the_default_hold_ends_at_a_share_of_the_limit() -> None:
    # Z's limit 160 s: 25% is 40 s, before Y ends at 50: Z wakes at 40 and takes the two leaves.
    trace = [_job("X", 0, 1000, 2, 4, limit=5000), _job("Y", 0, 50, 2, 4, limit=5000),
             _job("Z", 0, 100, 2, 4, limit=160)]
    sim, starts = _run(WIDE, "gpupool", trace)
    assert starts["Z"][0] == 40.0 and len({WIDE_LEAF[h] for h in starts["Z"][1]}) == 2
    assert sim.metrics.held == 1


def test_gpupool_wait_takes_a_share_of_the_limit_from_switches() -> None:
    # --switches 0@1%: 1% of 5000 s = 50 s, the very time Y ends: at 50, Y's end comes first (ends before
    # passes), so Z finds one leaf. 0.9% = 45 s: Z gives up at 45 and takes two leaves.
    sim, starts = _run(WIDE, "gpupool-wait", _wait_trace(), wait_time=0, wait_share=0.01, wait_leaves=0)
    assert starts["Z"][0] == 50.0 and len({WIDE_LEAF[h] for h in starts["Z"][1]}) == 1
    sim, starts = _run(WIDE, "gpupool-wait", _wait_trace(), wait_time=0, wait_share=0.009, wait_leaves=0)
    assert starts["Z"][0] == pytest.approx(45.0) and len({WIDE_LEAF[h] for h in starts["Z"][1]}) == 2


def test_gpupool_wait_gives_up_after_t() -> None:
    sim, starts = _run(WIDE, "gpupool-wait", _wait_trace(), wait_time=20, wait_leaves=0)
    # Y ends at 50, after the 20 s budget: at the wake-up (t=20) Z takes the two leaves it can get.
    assert starts["Z"][0] == 20
    assert len({WIDE_LEAF[h] for h in starts["Z"][1]}) == 2
    assert sim.metrics.held == 1


def test_speed_factor_past_the_limit_is_a_timeout() -> None:
    speed = SpeedModel(classes={"default": ClassFactors(per_extra_leaf=0.5, per_extra_group=0.0)})
    sim = Simulator(WIDE, "gpupool-hops", SimConfig(gpus_per_host=4), speed)
    trace = _wait_trace()
    trace[2] = _job("Z", 0, 1000, 2, 4, limit=1200)  # 1000 x 1.5 = 1500 > 1200: killed at the limit
    sim.run(trace)
    assert sim.metrics.timeouts == 1
    assert sim.metrics.jct.max == pytest.approx(1200)


def test_too_large_and_unknown_partitions_are_counted() -> None:
    jobs = [
        replace(_job("big", 0, 10, 5, 4), partition="gpu"),  # 5 hosts > 4
        replace(_job("fat", 0, 10, 1, 8), partition="gpu"),  # 8 GPUs on one host > 4
        Job(job_id="p", submit=0, duration=10, time_limit=10, gpus=1, nodes=1, partition="other"),
        Job(job_id="ok", submit=0, duration=10, time_limit=10, gpus=1, nodes=1, partition="gpu"),
    ]
    sim = Simulator(SMALL, "gpupool", SimConfig(gpus_per_host=4, partitions=frozenset({"gpu"})), SpeedModel())
    sim.run(jobs)
    assert sim.counts.too_large == 2 and sim.counts.unknown_partition == 1
    assert sim.metrics.jobs == 1


def test_out_of_order_submits_inside_the_window_are_sorted() -> None:
    jobs = [_job("late", 10, 5, 1, 4), _job("early", 0, 5, 1, 4)]
    _sim, starts = _run(SMALL, "gpupool", jobs)
    assert starts["early"][0] == 0 and starts["late"][0] == 10


def test_single_host_cost_fast_path_matches_the_definition() -> None:
    from gpupool.placement.cost import cost_of

    rails = compile_fabric(fat_tree(2, 2, 1, rails=2))  # every host has one HCA on each of 2 rail leaves
    # One host: all GPU pairs are 0 hops apart; its leaf switches are its 2 rail leaves.
    assert cost_of(rails, {"gpu001": 4}).to_json() == {"pair_hops_sum": 0, "mean_hops": 0.0, "max_hops": 0,
                                                       "leaf_switches": 2, "groups": 0}
    assert cost_of(SMALL, {"gpu003": 1}).leaf_switches == 1


def test_slurm_block_keeps_each_job_inside_one_base_block() -> None:
    """topology/block: a job of at most one base block's nodes lives in one base block (one leaf here),
    waiting if need be; slurm-tree spreads some of the same jobs over leaves."""
    from gpupool.simulate.synthetic import parse_spec, synthetic_jobs

    compiled = compile_fabric(fat_tree(4, 4, 2))  # 4 leaves x 4 hosts: base blocks of 4 hosts
    index = compiled.host_index()
    leaf = compiled.host_tree_leaf.tolist()
    spec = parse_spec("synthetic:jobs=300,seed=4,load=1.1,multi=0.4,multi_nodes=2:50/3:30/4:20")
    spread: dict[str, int] = {}
    for policy in ("slurm-block", "slurm-tree"):
        sim = Simulator(compiled, policy, SimConfig(gpus_per_host=8, record_starts=True), SpeedModel())
        sim.run(synthetic_jobs(spec, total_gpus=128, gpus_per_host=8))
        assert len(sim.starts) == 300
        spread[policy] = sum(len({leaf[index[h]] for h in hosts}) > 1 for _j, _s, hosts in sim.starts)
    assert spread["slurm-block"] == 0
    assert spread["slurm-tree"] > 0


def _second_blocked_trace(d_limit: float) -> list[Job]:
    return [
        _job("A", 0, 100, 3, 4),  # t=0: 3 of 4 hosts busy until 100, one host (4 GPUs) free
        _job("B", 1, 50, 2, 4),  # head, blocked: 2 whole hosts from 100 (A's end), until 150
        _job("C", 2, 50, 2, 4),  # blocked too: at 100 the 2 hosts B does not take -> 100..150
        _job("D", 3, 200, 1, 4, limit=d_limit),  # fits the free host now
    ]


@pytest.mark.parametrize("policy", ["slurm-tree", "gpupool"])
def test_easy_backfill_delays_the_second_blocked_job(policy: str) -> None:
    # EASY: only B reserves (shadow 100, spare at 100: 16 - 8 = 8 GPUs). D (4 GPUs, ends 203 > 100)
    # fits the spare, so it starts at 3 and holds a host until 203. At 100 B takes 2 of the 3 free hosts;
    # C needs 2 and finds 1: it waits for B's end at 150.
    _sim, starts = _run(SMALL, policy, _second_blocked_trace(200), backfill="easy")
    assert {k: v[0] for k, v in starts.items()} == {"A": 0, "B": 100, "C": 150, "D": 3}


@pytest.mark.parametrize("policy", ["slurm-tree", "gpupool"])
def test_slurm_backfill_reserves_for_every_blocked_job(policy: str) -> None:
    # Slurm-like: B reserves 2 hosts over [100, 150), C the other 2 over [100, 150), so every host is
    # booked then; D's [3, 203) collides, and its earliest window is at 150. At 100 B and C start
    # together; D at 150.
    _sim, starts = _run(SMALL, policy, _second_blocked_trace(200))
    assert {k: v[0] for k, v in starts.items()} == {"A": 0, "B": 100, "C": 100, "D": 150}


def test_slurm_backfill_starts_a_job_that_ends_before_every_reservation() -> None:
    # D with a 90 s limit: [3, 93) ends before the reservations at 100 -> backfilled at 3 in both modes
    # (it runs 200 s capped at its limit: ends at 93).
    for backfill in ("slurm", "easy"):
        _sim, starts = _run(SMALL, "gpupool", _second_blocked_trace(90), backfill=backfill)
        assert {k: v[0] for k, v in starts.items()} == {"A": 0, "B": 100, "C": 100, "D": 3}, backfill


def test_slurm_backfill_uses_hosts_no_reservation_pins() -> None:
    jobs = [
        _job("A", 0, 100, 2, 4),  # 2 hosts busy until 100, 2 hosts free
        _job("B", 1, 50, 3, 4),  # blocked: 3 hosts from 100 -> one host stays unreserved over [100, 150)
        _job("C", 2, 500, 1, 2),  # 2 GPUs for 500 s: fits now, and a host no reservation pins takes it
    ]
    # At 100 every host has 4 GPUs: best fit pins the 3 lowest-indexed (equally good) hosts, A's gpu001
    # and gpu002 and gpu003; gpu004 is unpinned, so C may run past 100 there.
    _sim, starts = _run(SMALL, "gpupool", jobs, reserve_by_policy=False)
    assert sorted(starts["A"][1]) == ["gpu001", "gpu002"]
    assert {k: v[0] for k, v in starts.items()} == {"A": 0, "B": 100, "C": 2}
    assert starts["C"][1] == ["gpu004"]


def test_slurm_backfill_tests_at_most_backfill_depth_jobs_behind_the_first_blocked_one() -> None:
    # With a depth of 1 only C is tested behind B: D (which would fit [3, 93) before every reservation)
    # is never tested while A runs. At 100 B and C start and no host is left: D waits until 150.
    _sim, starts = _run(SMALL, "gpupool", _second_blocked_trace(90), backfill_depth=1)
    assert {k: v[0] for k, v in starts.items()} == {"A": 0, "B": 100, "C": 100, "D": 150}
    _sim, starts = _run(SMALL, "gpupool", _second_blocked_trace(90), backfill_depth=2)
    assert starts["D"][0] == 3


def test_unknown_backfill_is_a_usage_error() -> None:
    from gpupool.errors import UsageError

    with pytest.raises(UsageError):
        _run(SMALL, "gpupool", [], backfill="conservative")


@pytest.mark.parametrize(("whole", "c_start"), [(True, 100), (False, 2)])
def test_slurm_backfill_reservation_books_whole_hosts_or_only_its_gpus(whole: bool, c_start: float) -> None:
    jobs = [
        _job("A", 0, 100, 4, 3),  # every host: 3 of 4 GPUs busy until 100, 1 free
        _job("B", 1, 50, 4, 2),  # blocked: 2 GPUs on each of the 4 hosts, reserved over [100, 150)
        _job("C", 2, 200, 1, 1),  # 1 GPU for 200 s: fits now (1 free per host), [2, 202) overlaps B's window
    ]
    # Whole hosts (Slurm 22.05's node_space books nodes): every host is booked over [100, 150), so C
    # cannot start at 2; at 100 B starts on 2 GPUs per host and C takes one of the 2 left at once.
    # GPUs only: over [100, 150) each host keeps 4 - 2 = 2 GPUs unbooked, so C starts at 2 and B still
    # finds 2 GPUs on every host at 100 (C's host: 4 - 1 = 3).
    _sim, starts = _run(SMALL, "gpupool", jobs, reserve_whole_hosts=whole)
    assert {k: v[0] for k, v in starts.items()} == {"A": 0, "B": 100, "C": c_start}


@pytest.mark.parametrize(("window", "expected"), [(86400.0, {"A": 0, "B": 200002, "C": 2}),
                                                  (float("inf"), {"A": 0, "B": 100, "C": 150})])
def test_slurm_backfill_reserves_only_within_the_backfill_window(window: float, expected: dict[str, float]) -> None:
    jobs = [
        _job("A", 0, 100, 3, 4, limit=172800),  # 3 hosts; by its 2-day limit they are busy until 172800
        _job("B", 1, 50, 4, 4),  # blocked: all 4 hosts, earliest (by A's limit) at 172800
        _job("C", 2, 200000, 1, 4),  # fits the free host now, runs past 172800
    ]
    # 1-day window (Slurm's bf_window default): B's start at 172800 is beyond it, so B reserves nothing and
    # C starts at 2. A ends at 100, but C holds a host until 200002: B waits for it.
    # No window: B reserves all hosts from 172800, C's [2, 200002) collides, so C waits; A ends at 100,
    # B starts then (all 4 hosts free) and C when B ends at 150.
    _sim, starts = _run(SMALL, "gpupool", jobs, backfill_window=window)
    assert {k: v[0] for k, v in starts.items()} == expected



@pytest.mark.parametrize("backfill", ["easy", "slurm"])
@pytest.mark.parametrize(("limit", "c_start"), [(98, 2), (99, 150)])
def test_backfill_job_ending_exactly_at_the_head_reservation_may_start(backfill: str, limit: float,
                                                                        c_start: float) -> None:
    # By hand on SMALL (4 hosts x 4 GPUs): A holds 3 hosts over [0, 100); B (head, 4 hosts) is
    # blocked, its reservation (shadow time) is 100 with 0 spare GPUs. C (1 host, submitted at 2):
    # with a 98 s limit it ends by 2 + 98 = 100 = the shadow time. EASY/Slurm backfill starts a
    # job that ends by the reservation (the reserved nodes are needed only from 100, and a job that
    # ends at 100 has released them): C starts at 2. With 99 s it would end at 101, delaying B:
    # C waits for B ([100, 150)) and starts at 150.
    jobs = [_job("A", 0, 100, 3, 4), _job("B", 1, 50, 4, 4), _job("C", 2, limit, 1, 4, limit=limit)]
    _sim, starts = _run(SMALL, "slurm-tree", jobs, backfill=backfill)
    assert {k: v[0] for k, v in starts.items()} == {"A": 0, "B": 100, "C": c_start}


@pytest.mark.parametrize(("limit", "c_start"), [(55, 5), (56, 110)])
def test_easy_backfill_one_gpu_job_ending_at_the_shadow_time(limit: float, c_start: float) -> None:
    # By hand on SMALL, EASY: A takes 3 GPUs on each of the 4 hosts over [0, 60), one GPU per host
    # stays free. B (head, 4 hosts x 4) is blocked until 60 (shadow time 60, spare GPUs at 60: 0).
    # C (1 GPU, submitted at 5) fits a free GPU now; with a 55 s limit it ends at 60 = shadow: it
    # starts at 5. With 56 s it would hold a GPU B needs at 60: it waits for B, [60, 110).
    jobs = [_job("A", 0, 60, 4, 3), _job("B", 1, 50, 4, 4), _job("C", 5, limit, 1, 1, limit=limit)]
    _sim, starts = _run(SMALL, "gpupool", jobs, backfill="easy")
    assert {k: v[0] for k, v in starts.items()} == {"A": 0, "B": 60, "C": c_start}
