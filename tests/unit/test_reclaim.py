"""Reclaim that preempts the least (issue 18 item 2): expected choices worked out by hand on
fat_tree(3, 2, 1): gpu001-002 on leaf01, gpu003-004 on leaf02, gpu005-006 on leaf03, one spine,
8 GPUs per host. Two whole hosts on one leaf cost pair_hops_sum 8*8 pairs x 2 hops = 128; across
leaves 4 hops per pair (256), so the minimum always keeps both hosts on one leaf."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest

from gpupool.errors import InfeasibleError
from gpupool.fabric.compiled import compile_fabric
from gpupool.fabric.generate import fat_tree
from gpupool.placement.engine import place
from gpupool.placement.model import FreeState, Placement, Request
from gpupool.placement.reclaim import Borrower, freed_state, plan_reclaim
from tests.support import oracles

FABRIC = compile_fabric(fat_tree(3, 2, 1))
INDEX = FABRIC.host_index()
TWO_NODES = Request(gpus_per_node=8, nodes=2)
HOUR = 3600


def STILL() -> float:  # noqa: N802 - a clock, named like the constant it is
    return 0.0


def _run(free: dict[str, int], borrowers: list[Borrower], request: Request = TWO_NODES,
         eligible: list[str] | None = None, **kw: int) -> tuple[dict[str, int], list[str], object]:
    state = FreeState.from_dict(FABRIC, free)
    mask = np.zeros(FABRIC.n_hosts, dtype=np.bool_)
    for host in eligible if eligible is not None else FABRIC.host_names:
        mask[INDEX[host]] = True

    def place_fn(s: FreeState) -> Placement:
        return place(FABRIC, s, request)

    # A clock that stands still unless a test brings its own: the search is bounded by max_subsets
    # alone, so a slow machine (or Numba compiling the first placement) cannot cut it short.
    kw.setdefault("clock", STILL)  # type: ignore[arg-type]
    out = plan_reclaim(state, INDEX, mask, borrowers, place_fn, **kw)
    return out.placement.allocation, [b.job_id for b in out.preempted], out


def _b(job: str, hosts: list[str], seconds: int, gpus: int = 8, protected: bool = False) -> Borrower:
    return Borrower(job_id=job, allocation=dict.fromkeys(hosts, gpus), run_seconds=seconds, protected=protected)


def test_cheapest_leaf_in_gpu_hours_is_preempted() -> None:
    # leaf01: A 16 GPUs x 1 h = 16 GPU-h; leaf02: B + C 8 + 8 = 16 GPU-h; leaf03: D 16 GPUs x 0.5 h = 8 GPU-h.
    borrowers = [_b("A", ["gpu001", "gpu002"], HOUR), _b("B", ["gpu003"], HOUR), _b("C", ["gpu004"], HOUR),
                 _b("D", ["gpu005", "gpu006"], HOUR // 2)]
    alloc, preempted, out = _run({}, borrowers)
    assert alloc == {"gpu005": 8, "gpu006": 8}
    assert preempted == ["D"]
    assert out.gpu_hours == pytest.approx(8.0)  # type: ignore[attr-defined]
    assert out.exhaustive  # type: ignore[attr-defined]
    assert out.placement.cost.pair_hops_sum == 128  # type: ignore[attr-defined]


def test_equal_gpu_hours_prefer_fewer_jobs() -> None:
    # leaf01: A 16 GPU-h (1 job); leaf02: B + C 16 GPU-h (2 jobs); leaf03: D + E 6 + 12 = 18 GPU-h.
    borrowers = [_b("A", ["gpu001", "gpu002"], HOUR), _b("B", ["gpu003"], HOUR), _b("C", ["gpu004"], HOUR),
                 _b("D", ["gpu005"], 3 * HOUR // 4), _b("E", ["gpu006"], 3 * HOUR // 2)]
    alloc, preempted, _ = _run({}, borrowers)
    assert alloc == {"gpu001": 8, "gpu002": 8}
    assert preempted == ["A"]


def test_free_gpus_reduce_what_must_be_preempted() -> None:
    # gpu003 is free: leaf02 needs only C (8 GPU-h); leaf03 needs D (16 GPUs x 0.25 h = 4 GPU-h).
    borrowers = [_b("A", ["gpu001", "gpu002"], HOUR), _b("C", ["gpu004"], HOUR),
                 _b("D", ["gpu005", "gpu006"], HOUR // 4)]
    assert _run({"gpu003": 8}, borrowers)[1] == ["D"]
    # D older (16 GPU-h): C alone is now the least.
    borrowers[2] = _b("D", ["gpu005", "gpu006"], HOUR)
    alloc, preempted, _ = _run({"gpu003": 8}, borrowers)
    assert alloc == {"gpu003": 8, "gpu004": 8}
    assert preempted == ["C"]


def test_nothing_is_preempted_when_free_gpus_reach_the_same_cost() -> None:
    borrowers = [_b("A", ["gpu001", "gpu002"], 60), _b("B", ["gpu003", "gpu004"], 60)]
    alloc, preempted, out = _run({"gpu005": 8, "gpu006": 8}, borrowers)
    assert alloc == {"gpu005": 8, "gpu006": 8}
    assert preempted == []
    assert not out.borrowed_free  # type: ignore[attr-defined]


def test_a_tighter_placement_is_worth_a_preemption() -> None:
    # Free: gpu001 and gpu003 (two leaves, 4 hops). Preempting B on gpu002 gives one leaf (2 hops).
    borrowers = [_b("B", ["gpu002"], 10 * HOUR), _b("C", ["gpu004"], 20 * HOUR)]
    alloc, preempted, _ = _run({"gpu001": 8, "gpu003": 8}, borrowers)
    assert alloc == {"gpu001": 8, "gpu002": 8}
    assert preempted == ["B"]


def test_multi_node_borrower_counts_once_and_frees_all_its_nodes() -> None:
    # A spans gpu002 + gpu003 (16 GPUs x 0.5 h = 8 GPU-h, counted once). gpu001 free.
    # leaf01: A (8 GPU-h); leaf02: A + B (8 + 8); leaf03: C + D (8 + 8).
    borrowers = [_b("A", ["gpu002", "gpu003"], HOUR // 2), _b("B", ["gpu004"], HOUR),
                 _b("C", ["gpu005"], HOUR), _b("D", ["gpu006"], HOUR)]
    alloc, preempted, out = _run({"gpu001": 8}, borrowers)
    assert alloc == {"gpu001": 8, "gpu002": 8}
    assert preempted == ["A"]
    assert out.gpu_hours == pytest.approx(8.0)  # type: ignore[attr-defined]
    # Preempting A frees gpu003 too: with gpu004 free, leaf02 needs only A as well (same 8 GPU-h), and
    # a 3-host request then fits gpu001-003 ... but across leaves; the two-host minimum stays on one leaf.
    alloc, preempted, _ = _run({"gpu001": 8, "gpu004": 8}, borrowers[:1] + borrowers[2:])
    assert preempted == ["A"] and len(alloc) == 2


def test_protected_borrower_is_never_chosen_when_another_placement_exists() -> None:
    # D (leaf03) is the cheapest but still inside its min_runtime: A (leaf01) is preempted instead.
    borrowers = [_b("A", ["gpu001", "gpu002"], 5 * HOUR), _b("B", ["gpu003"], 9 * HOUR),
                 _b("C", ["gpu004"], 9 * HOUR), _b("D", ["gpu005", "gpu006"], 60, protected=True)]
    alloc, preempted, _ = _run({}, borrowers)
    assert alloc == {"gpu001": 8, "gpu002": 8}
    assert preempted == ["A"]


def test_protected_borrower_is_used_only_when_nothing_else_fits() -> None:
    # Only leaf03 is in the partition (eligible), and D there is protected.
    borrowers = [_b("A", ["gpu001", "gpu002"], HOUR), _b("D", ["gpu005", "gpu006"], 60, protected=True)]
    alloc, preempted, out = _run({}, borrowers, eligible=["gpu005", "gpu006"])
    assert alloc == {"gpu005": 8, "gpu006": 8}
    assert preempted == ["D"]
    assert out.to_json()["protected"] == 1  # type: ignore[attr-defined]
    assert any("min_runtime" in n for n in out.notes)  # type: ignore[attr-defined]


def test_protected_borrower_is_avoided_even_at_a_higher_cost() -> None:
    # gpu001 and gpu003 free (4 hops apart); preempting protected B on gpu002 would give 2 hops.
    # Slurm would not preempt B yet, so the plan keeps to the free hosts.
    borrowers = [_b("B", ["gpu002"], 60, protected=True)]
    alloc, preempted, _ = _run({"gpu001": 8, "gpu003": 8}, borrowers)
    assert alloc == {"gpu001": 8, "gpu003": 8}
    assert preempted == []


def test_infeasible_even_with_every_borrower_preempted() -> None:
    with pytest.raises(InfeasibleError, match="^nothing fits even with every borrowed job preempted$"):
        _run({}, [_b("A", ["gpu001"], HOUR)], eligible=["gpu001"])


def test_search_budget_falls_back_to_dropping_the_heaviest() -> None:
    borrowers = [_b("A", ["gpu001", "gpu002"], HOUR), _b("B", ["gpu003"], HOUR), _b("C", ["gpu004"], HOUR),
                 _b("D", ["gpu005", "gpu006"], HOUR // 2)]
    alloc, preempted, out = _run({}, borrowers, max_subsets=1)
    assert not out.exhaustive  # type: ignore[attr-defined]
    assert out.placement.cost.pair_hops_sum == 128  # type: ignore[attr-defined]
    # Greedy, heaviest first (GPU-seconds, then job id descending): A (57600) goes; D, C, B tie at
    # 28800: D goes (B + C still give leaf02), C and B must stay. Not the least (D alone), hence
    # exhaustive False; still a placement of minimal cost.
    assert preempted == ["B", "C"] and alloc == {"gpu003": 8, "gpu004": 8}


def test_fewer_gpu_hours_beat_fewer_jobs() -> None:
    # By hand: leaf01: A 2 x 8 GPUs x 1000 s = 16,000 GPU-s (1 job, 1000 s run);
    # leaf02: B 8 GPUs x 900 s + C 8 GPUs x 900 s = 14,400 GPU-s (2 jobs, 1,800 s of run time);
    # leaf03: E 2 x 8 GPUs x 2000 s = 32,000 GPU-s. Every leaf gives cost 128: the least GPU-seconds
    # is leaf02 although it preempts two jobs (and more run seconds) where leaf01 preempts one.
    borrowers = [_b("A", ["gpu001", "gpu002"], 1000), _b("B", ["gpu003"], 900), _b("C", ["gpu004"], 900),
                 _b("E", ["gpu005", "gpu006"], 2000)]
    alloc, preempted, out = _run({}, borrowers)
    assert sorted(preempted) == ["B", "C"] and alloc == {"gpu003": 8, "gpu004": 8}
    assert out.gpu_hours == pytest.approx(14400 / 3600)  # type: ignore[attr-defined]


def test_gpu_seconds_weigh_gpus_not_only_run_time() -> None:
    # By hand: leaf01: A 2 x 8 GPUs x 600 s = 9,600 GPU-s; leaf02: B 1 GPU x 900 s on gpu003 and
    # C 1 GPU x 900 s on gpu004 (7 GPUs free on each) = 1,800 GPU-s; leaf03: D 2 x 8 x 3000 s.
    # Run seconds alone would say A (600 < 1,800); GPU-seconds say B + C.
    borrowers = [_b("A", ["gpu001", "gpu002"], 600), _b("B", ["gpu003"], 900, gpus=1),
                 _b("C", ["gpu004"], 900, gpus=1), _b("D", ["gpu005", "gpu006"], 3000)]
    alloc, preempted, _ = _run({"gpu003": 7, "gpu004": 7}, borrowers)
    assert sorted(preempted) == ["B", "C"] and alloc == {"gpu003": 8, "gpu004": 8}


def test_gpu_hours_are_whole_job_gpus_times_run_time() -> None:
    b = Borrower(job_id="7", allocation={"gpu001": 4, "gpu003": 2}, run_seconds=5400)
    assert b.gpus == 6 and b.gpu_hours == pytest.approx(9.0)
    assert b.to_json()["gpu_hours"] == 9.0


def test_time_budget_bounds_the_search_and_keeps_a_minimal_cost_plan() -> None:
    borrowers = [_b("A", ["gpu001", "gpu002"], HOUR), _b("B", ["gpu003"], HOUR), _b("C", ["gpu004"], HOUR),
                 _b("D", ["gpu005", "gpu006"], HOUR // 2)]
    ticks = iter(range(1000))
    # A clock that jumps 10 s per reading: the exact search stops at once, the greedy too.
    alloc, preempted, out = _run({}, borrowers, time_budget_s=5, clock=lambda: 10.0 * next(ticks))  # type: ignore[arg-type]
    assert not out.exhaustive  # type: ignore[attr-defined]
    assert out.placement.cost.pair_hops_sum == 128  # type: ignore[attr-defined]
    # Nothing was dropped: every borrower on the chosen leaf is preempted (here leaf01's A).
    assert len(alloc) == 2 and preempted


def _expected_least(records: list[tuple[str, dict[str, int], int]], request: Request) -> tuple[int, int]:
    """(GPU-seconds, jobs) of the least preemption among placements of minimal pair_hops_sum, by
    brute force over every borrower subset with the independent oracle (tests/support/oracles.py), from the
    raw job records (job id, host -> GPUs, run seconds): GPU-seconds are the job's GPUs on all its
    hosts times its run time, computed here (never Borrower.gpu_seconds). The documented rule is
    applied here by hand: once anything is preempted, a host still holding an unpreempted borrower
    is not used."""
    graph = oracles.graph_of(fat_tree(3, 2, 1))
    held: dict[str, int] = {}
    for _, allocation, _ in records:
        for h, g in allocation.items():
            held[h] = held.get(h, 0) + g

    def free_with(subset: tuple[int, ...]) -> dict[str, int]:
        if not subset:
            return {h: 4 - held.get(h, 0) for h in FABRIC.host_names if 4 - held.get(h, 0) > 0}
        out = {}
        for h in FABRIC.host_names:
            others = [i for i, (_, allocation, _) in enumerate(records) if h in allocation and i not in subset]
            if not others:
                out[h] = 4 - held.get(h, 0) + sum(records[i][1].get(h, 0) for i in subset)
        return {h: g for h, g in out.items() if g > 0}

    def gpu_seconds(i: int) -> int:
        _, allocation, seconds = records[i]
        return sum(allocation.values()) * seconds

    subsets = [s for k in range(len(records) + 1) for s in itertools.combinations(range(len(records)), k)]
    costs = {s: oracles.brute_force(graph, free_with(s), request) for s in subsets}
    target = min(c[0] for c in costs.values() if c is not None)
    return min((sum(gpu_seconds(i) for i in s), len(s)) for s, c in costs.items()
               if c is not None and c[0] == target)


@pytest.mark.parametrize("seed", range(24))
def test_least_preemption_matches_brute_force_over_every_subset(seed: int) -> None:
    rng = random.Random(seed)
    room = dict.fromkeys(FABRIC.host_names, 4)
    records: list[tuple[str, dict[str, int], int]] = []  # raw job records: id, host -> GPUs, run seconds
    while sum(room.values()) > rng.randint(0, 6):
        hosts = [h for h in room if room[h]]
        if len(hosts) >= 2 and rng.random() < 0.3:
            two = rng.sample(hosts, 2)
            per = rng.randint(1, min(room[h] for h in two))
            chosen = dict.fromkeys(two, per)
        else:
            host = rng.choice(hosts)
            chosen = {host: rng.randint(1, room[host])}
        for h, g in chosen.items():
            room[h] -= g
        records.append((f"j{len(records)}", chosen, rng.randint(1, 600)))
    borrowers = [Borrower(job_id=job, allocation=dict(allocation), run_seconds=seconds)
                 for job, allocation, seconds in records]
    nodes, per = rng.choice([(1, 4), (2, 4), (1, 2), (2, 2), (3, 3)])
    request = Request(gpus_per_node=per, nodes=nodes)
    free = {h: g for h, g in room.items() if g}
    state = FreeState.from_dict(FABRIC, free)
    state.total_gpus = np.full(FABRIC.n_hosts, 4, dtype=np.int32)
    out = plan_reclaim(state, INDEX, np.ones(FABRIC.n_hosts, dtype=np.bool_), borrowers,
                       lambda s: place(FABRIC, s, request), need_gpus=request.total_gpus, clock=STILL)
    assert out.exhaustive
    by_id = {job: sum(allocation.values()) * seconds for job, allocation, seconds in records}
    got = (sum(by_id[b.job_id] for b in out.preempted), len(out.preempted))
    assert got == _expected_least(records, request), (records, request, out.placement.allocation)


def test_fewest_protected_borrowers_come_before_gpu_hours() -> None:
    # By hand: every leaf is held by protected borrowers only (min_runtime not yet run).
    # leaf01: P1 + P2, 8 GPUs x 100 s each = 1,600 GPU-s but 2 protected jobs;
    # leaf02: P3 on both hosts, 16 GPUs x 1000 s = 16,000 GPU-s, 1 protected job;
    # leaf03: P4 + P5, 8 GPUs x 5000 s each, 2 protected. Fewest protected first: P3, although it
    # has run the most GPU-seconds.
    borrowers = [_b("P1", ["gpu001"], 100, protected=True), _b("P2", ["gpu002"], 100, protected=True),
                 _b("P3", ["gpu003", "gpu004"], 1000, protected=True),
                 _b("P4", ["gpu005"], 5000, protected=True), _b("P5", ["gpu006"], 5000, protected=True)]
    alloc, preempted, _ = _run({}, borrowers)
    assert preempted == ["P3"] and alloc == {"gpu003": 8, "gpu004": 8}


# -- issue 29: the helpers and the search's bookkeeping, each value worked out by hand ---------------

def _state(free: list[int], usable: list[bool], total: list[int] | None = None) -> FreeState:
    return FreeState(free_gpus=np.array(free, dtype=np.int32), usable=np.array(usable, dtype=np.bool_),
                     total_gpus=None if total is None else np.array(total, dtype=np.int32))


ELIGIBLE_BUT_6 = np.array([True, True, True, True, True, False])


def test_freed_state_adds_chosen_gpus_caps_at_total_and_leaves_out_hosts_of_unchosen_borrowers() -> None:
    # Hosts gpu001..gpu006; gpu006 is not eligible. By hand, for chosen A, B, F, G:
    #   gpu001: 4 free + A's 6 = 10, capped at its 8 GPUs -> 8, usable.
    #   gpu002: 0 + B's 4 + H's 1 = 5 (H's first host is unknown: skipped, not the end of H), usable
    #           (eligible although not usable now).
    #   gpu003: 1 + B's 4 = 5, but C (not chosen) still holds it -> left out.
    #   gpu004: 5 free > its 2 configured (a stale count): the cap is max(total, free) = 5; E holds 0
    #           GPUs there, which blocks nothing -> usable.
    #   gpu005: 0 -> not usable.  gpu006: not eligible: D (unchosen) does not block it, G's 2 are not
    #           added -> 3 free, usable as it was.  F's unknown host is ignored.
    free = _state([4, 0, 1, 5, 0, 3], [True, False, False, True, False, True], [8, 8, 8, 2, 8, 8])
    pool = [_b("A", ["gpu001"], 1, gpus=6), Borrower("B", {"gpu002": 4, "gpu003": 4}, 1), _b("C", ["gpu003"], 1, 4),
            _b("D", ["gpu006"], 1), _b("E", ["gpu004"], 1, gpus=0), _b("F", ["nohost"], 1, 3),
            _b("G", ["gpu006"], 1, gpus=2), Borrower("H", {"nohost": 1, "gpu002": 1}, 1)]
    chosen = [pool[0], pool[1], pool[5], pool[6], pool[7]]
    out = freed_state(free, INDEX, ELIGIBLE_BUT_6, pool, chosen)
    assert out.free_gpus.tolist() == [8, 5, 5, 5, 0, 3] and out.free_gpus.dtype == np.int32
    assert out.usable.tolist() == [True, True, False, True, False, True]
    assert out.total_gpus is free.total_gpus
    # Nothing chosen: nothing added, nothing blocked (gpu003's 1 free GPU becomes usable: eligible).
    none = freed_state(free, INDEX, ELIGIBLE_BUT_6, pool, [])
    assert none.free_gpus.tolist() == [4, 0, 1, 5, 0, 3]
    assert none.usable.tolist() == [True, False, True, True, False, True]
    # No configured counts: no cap (gpu001 10).
    uncapped = freed_state(_state([4, 0, 1, 5, 0, 3], [True, False, False, True, False, True]), INDEX,
                           ELIGIBLE_BUT_6, pool, chosen)
    assert uncapped.free_gpus.tolist() == [10, 5, 5, 5, 0, 3]
    # Counts of another length (a different fabric's) are not used as a cap either.
    other = _state([4, 0, 1, 5, 0, 3], [True, False, False, True, False, True], [8, 2, 8])
    assert freed_state(other, INDEX, ELIGIBLE_BUT_6, pool, chosen).free_gpus.tolist() == [10, 5, 5, 5, 0, 3]


def test_needed_lists_the_chosen_borrowers_on_the_placement_hosts_unless_free_gpus_suffice() -> None:
    from types import SimpleNamespace

    from gpupool.placement.reclaim import _needed

    # gpu001 8 free, gpu002 4 free, gpu003 8 free but not usable.
    free = _state([8, 4, 8, 0, 0, 0], [True, True, False, False, False, False])
    chosen = [_b("Z", ["gpu002"], 1, 4), Borrower("Y", {"gpu001": 0, "gpu005": 8}, 1),
              Borrower("X", {"gpu001": 2, "gpu006": 1}, 1), _b("W", ["gpu004"], 1)]

    def needed(allocation: dict[str, int]) -> list[str]:
        return [b.job_id for b in _needed(SimpleNamespace(allocation=allocation), free, INDEX, chosen)]  # type: ignore[arg-type]

    assert needed({"gpu001": 8}) == []  # fits in free GPUs alone: nothing preempted
    assert needed({"gpu002": 4}) == []  # exactly the free GPUs still fit
    # gpu002 needs 8 > 4 free: X (2 GPUs on gpu001) and Z (gpu002), by job id; Y holds 0 on gpu001.
    assert needed({"gpu001": 8, "gpu002": 8}) == ["X", "Z"]
    assert needed({"gpu003": 8}) == []  # not usable now, but no chosen borrower is there
    assert needed({"gpu003": 8, "gpu004": 8}) == ["W"]
    assert needed({"nohost": 1}) == []


def test_subset_filter_skips_subsets_that_clear_nothing_or_cannot_hold_the_job() -> None:
    from gpupool.placement.reclaim import _subset_filter

    # Items: 0 A on gpu001 (8); 1 B on gpu002 (4) + gpu003 (4); 2 C on gpu002 (4); 3 D on gpu006 (not
    # eligible); 4 E holding 0 GPUs on gpu004. Free: gpu003 2 (eligible, not usable), gpu004 1 (eligible,
    # not usable), gpu005 2 (usable), gpu006 3 (neither usable nor eligible: never counted).
    free = _state([0, 0, 2, 1, 2, 3], [False, False, False, False, True, False])
    items = [_b("A", ["gpu001"], 1), Borrower("B", {"gpu002": 4, "gpu003": 4}, 1), _b("C", ["gpu002"], 1, 4),
             _b("D", ["gpu006"], 1), _b("E", ["gpu004"], 1, gpus=0)]

    def worth(subset: tuple[int, ...], need: int) -> bool:
        return _subset_filter(free, INDEX, ELIGIBLE_BUT_6, items, need)(subset)

    # By hand: hosts without a borrower add gpu004's 1 and gpu005's 2 (gpu006 is out) to any subset.
    assert worth((0,), 11) and not worth((0,), 12)  # A clears gpu001: 3 + 0 + 8
    assert worth((1,), 9) and not worth((1,), 10)  # B clears gpu003 only (C still on gpu002): 3 + 2 + 4
    assert worth((1, 2), 17) and not worth((1, 2), 18)  # both clear gpu002 and gpu003: 3 + (0 + 8) + (2 + 4)
    assert not worth((2,), 0)  # C clears no host (B stays on gpu002): a lighter subset plans the same
    assert not worth((0, 2), 0)
    assert not worth((3,), 0)  # D is on no eligible host
    assert not worth((4,), 0)  # E holds no GPU: it clears nothing


def test_to_json_by_hand() -> None:
    from gpupool.placement.reclaim import Reclaim

    a = Borrower("7", {"gpu001": 4, "gpu003": 2}, run_seconds=5400, protected=True, partition="scav",
                 account="llm")
    b = Borrower("8", {"gpu002": 1}, run_seconds=1)  # 1/3600 GPU-hours = 0.000277..., 6 decimals
    assert a.to_json() == {"job_id": "7", "gpus": 6, "run_seconds": 5400, "gpu_hours": 9.0, "protected": True,
                           "partition": "scav", "account": "llm", "allocation": {"gpu001": 4, "gpu003": 2}}
    assert b.to_json() == {"job_id": "8", "gpus": 1, "run_seconds": 1, "gpu_hours": 0.000278, "protected": False,
                           "partition": "", "account": "", "allocation": {"gpu002": 1}}
    placement = place(FABRIC, FreeState.from_dict(FABRIC, {"gpu001": 8}), Request(gpus_per_node=8, nodes=1))
    out = Reclaim(placement, [a, b], candidates=5, subsets_tried=3, exhaustive=False)
    assert out.borrowed_free and out.notes == []
    assert out.gpu_hours == pytest.approx(9 + 1 / 3600)
    assert out.to_json() == {"jobs": [a.to_json(), b.to_json()], "count": 2, "gpu_hours": 9.000278,
                             "protected": 1, "candidates": 5, "subsets_tried": 3, "exhaustive": False}


def test_candidates_count_only_borrowers_holding_gpus_on_eligible_hosts() -> None:
    # By hand: A (leaf01) and D (leaf03) count; X holds 0 GPUs, Y is on an unknown host, Z only on
    # gpu006, which is not eligible: 2 candidates. Free gpu003 + gpu004 (leaf02) need nothing preempted.
    borrowers = [_b("A", ["gpu001", "gpu002"], HOUR), _b("D", ["gpu005"], HOUR), _b("X", ["gpu005"], HOUR, gpus=0),
                 _b("Y", ["elsewhere"], HOUR), _b("Z", ["gpu006"], HOUR)]
    eligible = ["gpu001", "gpu002", "gpu003", "gpu004", "gpu005"]
    alloc, preempted, out = _run({"gpu003": 8, "gpu004": 8}, borrowers, eligible=eligible)
    assert alloc == {"gpu003": 8, "gpu004": 8} and preempted == []
    assert out.candidates == 2 and out.subsets_tried == 1 and out.exhaustive  # type: ignore[attr-defined]
    assert out.borrowed_free is False  # type: ignore[attr-defined]
    assert out.notes == []  # type: ignore[attr-defined]


def test_protected_fallback_note_and_the_unprotected_still_preempted() -> None:
    # Only leaf03 is eligible: D (protected) on gpu005 and E (not) on gpu006. E alone frees one host,
    # too few for two: the plan needs D too, and says why.
    borrowers = [_b("D", ["gpu005"], 60, protected=True), _b("E", ["gpu006"], HOUR)]
    alloc, preempted, out = _run({}, borrowers, eligible=["gpu005", "gpu006"])
    assert alloc == {"gpu005": 8, "gpu006": 8} and preempted == ["D", "E"]
    assert out.notes == ["no placement exists without preempting a borrower still inside its min_runtime"]  # type: ignore[attr-defined]
    assert out.to_json()["protected"] == 1 and out.exhaustive  # type: ignore[attr-defined]


FOUR_LEAVES = [_b("A", ["gpu001", "gpu002"], HOUR), _b("B", ["gpu003"], HOUR), _b("C", ["gpu004"], HOUR),
               _b("D", ["gpu005", "gpu006"], HOUR // 2)]


def test_max_subsets_counts_the_empty_subset_and_the_greedy_tries() -> None:
    # max_subsets=1: the one placement with nothing preempted spends it; the greedy pass then tries
    # dropping A, D, C, B (heaviest first; ties by job id descending): 4 more placements, 5 in all.
    _alloc, preempted, out = _run({}, FOUR_LEAVES, max_subsets=1)
    assert out.subsets_tried == 5 and preempted == ["B", "C"] and out.candidates == 4  # type: ignore[attr-defined]
    assert out.exhaustive is False  # type: ignore[attr-defined]
    assert out.notes == ["searched 1 borrower subsets within the budget; the rest by dropping the heaviest "  # type: ignore[attr-defined]
                         "borrowers first"]
    # max_subsets=2: one subset more, B alone (the lightest, by job id), which cannot hold two hosts.
    _alloc, _preempted, out = _run({}, FOUR_LEAVES, max_subsets=2)
    assert out.subsets_tried == 6 and not out.exhaustive  # type: ignore[attr-defined]
    assert out.notes[0].startswith("searched 2 borrower subsets")  # type: ignore[attr-defined]


def test_a_zero_time_budget_keeps_the_all_preempted_plan() -> None:
    # A clock that never moves and no time at all: neither the exact search nor the greedy pass runs
    # (each stops when clock >= deadline): the plan preempts every borrower on the hosts it uses.
    alloc, preempted, out = _run({}, FOUR_LEAVES, time_budget_s=0)
    on_hosts = sorted(b.job_id for b in FOUR_LEAVES if set(b.allocation) & set(alloc))
    assert preempted == on_hosts and len(alloc) == 2
    assert out.subsets_tried == 1 and not out.exhaustive  # type: ignore[attr-defined]
    assert out.notes[0].startswith("searched 1 borrower subsets")  # type: ignore[attr-defined]


def test_each_borrower_subset_is_planned_once_in_weight_order() -> None:
    # D (8 GPUs x 60 s = 480 GPU-s) holds 4 GPUs on each of gpu005/gpu006, protected P the other 4:
    # freeing D can never give a whole host. B, C: 8 x 3600 each on leaf02; A: leaf01 and 8 GPUs on a
    # host outside the fabric (they count: 24 x 2400 = 57600), plus a 0-GPU entry on gpu006 (which
    # clears nothing). Host-closed subsets by weight
    # (GPU-s, then jobs): {} 0, {D} 480, {B} 28800, {C} 28800, {B,D} 29280, {C,D} 29280, {A} 57600 (1 job)
    # before {B,C} 57600 (2 jobs). {D} comes from gpu005, gpu006 and both: planned once. So A, after 7.
    borrowers = [Borrower("A", {"gpu001": 8, "gpu002": 8, "elsewhere": 8, "gpu006": 0}, 2400),
                 _b("B", ["gpu003"], HOUR), _b("C", ["gpu004"], HOUR), _b("D", ["gpu005", "gpu006"], 60, gpus=4),
                 _b("P", ["gpu005", "gpu006"], 60, gpus=4, protected=True)]
    alloc, preempted, out = _run({}, borrowers)
    assert alloc == {"gpu001": 8, "gpu002": 8} and preempted == ["A"]
    assert out.subsets_tried == 7 and out.candidates == 5 and out.exhaustive  # type: ignore[attr-defined]
