"""The `contention` objective: fewest pair hops, then the least bandwidth added over capacity on loaded uplinks.

Hand-worked cases on small fat-trees of QDR 4x cables (40 Gb/s each): every host injects 40 Gb/s, a leaf's
uplink bundle is its cables to the spines. A brute force over every host set of a tiny 2-level and 3-level
fabric checks that the DP finds the lexicographic optimum (pair hops, then added overload) with an
independent oracle (distances and cuts counted here, not by gpupool).
"""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest

from gpupool.fabric.compiled import compile_fabric
from gpupool.fabric.generate import fat_tree
from gpupool.placement.congestion import bundle_loads, cut_demands, host_chains, overload_of
from gpupool.placement.engine import place
from gpupool.placement.model import FreeState, Request
from gpupool.placement.objective import Objective, PlacementGoal
from gpupool.simulate.contention import LinkContention

HOPS = PlacementGoal(objective=Objective.HOPS)
CONTENTION = PlacementGoal(objective=Objective.CONTENTION)
GBPS = 40.0  # QDR 4x: 4 lanes x 10 Gb/s


def _state(free: list[int], load: np.ndarray | None = None) -> FreeState:
    gpus = np.asarray(free, dtype=np.int32)
    return FreeState(free_gpus=gpus, usable=gpus > 0, total_gpus=np.full(gpus.size, 8, np.int32), uplink_load=load)


def _leaf_node(compiled, host: int) -> int:  # type: ignore[no-untyped-def]
    return int(compiled.host_tree_leaf[host])


def test_two_jobs_one_loaded_uplink_the_new_job_avoids_it() -> None:
    # 4 leaves x 4 hosts under one spine: each leaf has one 40 Gb/s uplink for 4 x 40 Gb/s of hosts (4:1).
    compiled = compile_fabric(fat_tree(4, 4, 1))
    leaf = [_leaf_node(compiled, h) for h in range(16)]
    assert [compiled.tree_uplink_gbps[leaf[4 * k]] for k in range(4)] == [GBPS] * 4
    # A running job on gpu001 (leaf 1) and gpu005 (leaf 2): it sends min(40, 40) = 40 Gb/s over both uplinks,
    # which are then full.
    load = bundle_loads(compiled, [([0, 4], [8, 8])], 8)
    assert load[leaf[0]] == GBPS and load[leaf[4]] == GBPS and load[leaf[8]] == 0 and load[leaf[12]] == 0
    free = [0, 8, 8, 8, 0, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8]
    request = Request(nodes=5, gpus_per_node=8)
    # Fewest pair hops: 4 hosts in one whole leaf (3 or 4) and one host elsewhere; best fit takes the fifth
    # from a leaf with 3 free hosts (1 or 2), whose full uplink it then loads by 40 Gb/s more: 40 Gb/s over.
    hops = place(compiled, _state(free, load), request, HOPS)
    hops_hosts = sorted(compiled.host_index()[h] for h in hops.allocation)
    assert any(h < 8 for h in hops_hosts)
    assert overload_of(compiled, load, 8, hops_hosts, [8] * 5) == pytest.approx(GBPS)
    # Contention: the same pair hops with the fifth host in the other empty leaf: a 4 + 1 split sends 40 Gb/s
    # over two idle 40 Gb/s uplinks, nothing over capacity.
    mine = place(compiled, _state(free, load), request, CONTENTION)
    mine_hosts = sorted(compiled.host_index()[h] for h in mine.allocation)
    assert all(h >= 8 for h in mine_hosts) and len(mine_hosts) == 5
    assert mine.cost.pair_hops_sum == hops.cost.pair_hops_sum
    assert mine.extra["uplink_overload_gbps"] == pytest.approx(0.0)


def test_one_job_alone_is_placed_as_hops() -> None:
    # No running job: nothing loaded, so the objective is exactly `hops` (on 2- and 3-level trees).
    rng = random.Random(5)
    for design in (fat_tree(4, 4, 1), fat_tree(2, 4, 1, pods=2, cores=1), fat_tree(4, 4, 2, uplinks=2)):
        compiled = compile_fabric(design)
        for _ in range(40):
            free = [rng.choice([0, 2, 5, 8, 8, 8]) for _ in range(compiled.n_hosts)]
            if sum(free) == 0:
                continue
            request = rng.choice([Request(gpus=rng.randint(1, max(sum(free), 1))),
                                  Request(nodes=rng.randint(1, 6), gpus_per_node=8)])
            for load in (None, np.zeros(compiled.tree_parent.size)):
                try:
                    expected = place(compiled, _state(free), request, HOPS).allocation
                except Exception as exc:  # noqa: BLE001 - infeasible either way
                    with pytest.raises(type(exc)):
                        place(compiled, _state(free, load), request, CONTENTION)
                    continue
                assert place(compiled, _state(free, load), request, CONTENTION).allocation == expected


def test_one_leaf_job_is_unaffected_by_loads() -> None:
    # Leaf 1 (gpu001-004) has a loaded uplink and the fewest free GPUs that fit a 2-host job: best fit puts
    # the job there under both objectives, since a job inside one leaf crosses no uplink at all.
    compiled = compile_fabric(fat_tree(4, 4, 1))
    load = np.zeros(compiled.tree_parent.size)
    load[_leaf_node(compiled, 0)] = 200.0  # five times its capacity
    free = [8, 8, 0, 0, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8]
    request = Request(nodes=2, gpus_per_node=8)
    mine = place(compiled, _state(free, load), request, CONTENTION)
    assert set(mine.allocation) == {"gpu001", "gpu002"}
    assert mine.allocation == place(compiled, _state(free, load), request, HOPS).allocation
    assert mine.extra["uplink_overload_gbps"] == 0.0


def _oracle(hosts: tuple[int, ...], leaf_of: list[int], pod_of: list[int], three_level: bool,
            cap: dict[tuple[str, int], float], load: dict[tuple[str, int], float]) -> tuple[int, float]:
    """(pair hops over host pairs, Gb/s added over capacity) of whole-host jobs, counted from scratch."""
    hops = 0
    for a, b in itertools.combinations(hosts, 2):
        if leaf_of[a] == leaf_of[b]:
            hops += 2
        elif not three_level or pod_of[a] == pod_of[b]:
            hops += 4
        else:
            hops += 6
    total = GBPS * len(hosts)
    added = 0.0
    groups = [("leaf", leaf_of)] + ([("pod", pod_of)] if three_level else [])
    for kind, of in groups:
        for g in set(of):
            inside = GBPS * sum(1 for h in hosts if of[h] == g)
            d = min(inside, total - inside)
            if d <= 0:
                continue
            c, ell = cap[(kind, g)], load[(kind, g)]
            added += max(0.0, ell + d - c) - max(0.0, ell - c)
    return hops, added


@pytest.mark.parametrize("three_level", [False, True])
def test_brute_force_on_tiny_fabrics(three_level: bool) -> None:
    if three_level:
        # 2 pods x 2 leaves x 2 hosts; one spine per pod, one core: every leaf and every pod has one 40 Gb/s uplink.
        design = fat_tree(2, 2, 1, pods=2, cores=1)
        leaf_of = [h // 2 for h in range(8)]
        pod_of = [h // 4 for h in range(8)]
    else:
        design = fat_tree(3, 3, 1)  # 3 leaves x 3 hosts, one 40 Gb/s uplink each (3:1)
        leaf_of = [h // 3 for h in range(9)]
        pod_of = [0] * 9
    compiled = compile_fabric(design)
    n = compiled.n_hosts
    parent = compiled.tree_parent
    node_of: dict[tuple[str, int], int] = {}
    for h in range(n):
        t = int(compiled.host_tree_leaf[h])
        node_of[("leaf", leaf_of[h])] = t
        if three_level:
            node_of[("pod", pod_of[h])] = int(parent[t])
    assert all(compiled.tree_uplink_gbps[t] == GBPS for t in node_of.values())  # the capacities assumed above
    cap = {key: GBPS for key in node_of}
    rng = random.Random(11)
    checked = 0
    for _ in range(60):
        free = [rng.choice([0, 8, 8, 8]) for _ in range(n)]
        usable = [h for h in range(n) if free[h] == 8]
        load_by = {key: float(rng.choice([0, 0, 20, 40, 60])) for key in node_of}
        load = np.zeros(parent.size)
        for key, t in node_of.items():
            load[t] = load_by[key]
        for k in range(2, len(usable) + 1):
            best = min(_oracle(c, leaf_of, pod_of, three_level, cap, load_by) for c in itertools.combinations(usable, k))
            got = place(compiled, _state(free, load), Request(nodes=k, gpus_per_node=8), CONTENTION)
            hosts = tuple(sorted(compiled.host_index()[h] for h in got.allocation))
            assert _oracle(hosts, leaf_of, pod_of, three_level, cap, load_by) == pytest.approx(best)
            checked += 1
    assert checked > 100


def test_simulator_and_plan_share_the_demand_rule() -> None:
    # One 4 + 1 job on 2 leaves: 40 Gb/s on each leaf's bundle (min(160, 40)); a 2 + 2 job: 80 on each.
    compiled = compile_fabric(fat_tree(4, 4, 1))
    chains = host_chains(compiled)
    links, demands = cut_demands(chains, [5.0] * 16, [0, 1, 2, 3, 4], [8] * 5)
    assert sorted(demands) == [GBPS, GBPS]
    tracker = LinkContention(compiled, 8, track_only=True)
    assert tracker.start(1, 0.0, 100.0, 0.5, 1000.0, [0, 1, 2, 3, 4], [8] * 5) is None  # never slowed
    assert tracker.start(2, 0.0, 100.0, 0.5, 1000.0, [8, 9, 12, 13], [8] * 4) is None
    expected = bundle_loads(compiled, [([0, 1, 2, 3, 4], [8] * 5), ([8, 9, 12, 13], [8] * 4)], 8)
    assert tracker.load_array().tolist() == expected.tolist()
    by_leaf = {k: expected[_leaf_node(compiled, 4 * k)] for k in range(4)}
    assert by_leaf == {0: GBPS, 1: GBPS, 2: 80.0, 3: 80.0}
    tracker.stop(1, 10.0)
    tracker.stop(2, 10.0)
    assert not tracker.load_array().any()


@pytest.mark.parametrize("model", ["isolated", "contention"])
def test_simulated_policy_keeps_the_second_job_off_the_first_ones_uplink(model: str) -> None:
    from gpupool.simulate.scheduler import SimConfig, Simulator
    from gpupool.simulate.speed import SpeedModel
    from gpupool.simulate.workload import Job

    # 4 leaves x 4 hosts, 4:1. Job A (5 hosts) starts first on the empty fabric: one whole leaf and one
    # host of another, whose uplink then carries A's 40 Gb/s cut (its whole capacity). Job B (5 hosts)
    # comes next: `hops` takes B's fifth host from the leaf with 3 free (best fit), whose uplink is A's
    # loaded one; `contention` takes it from the other empty leaf. The same under the isolated model,
    # where the loads are tracked for the placement only.
    compiled = compile_fabric(fat_tree(4, 4, 1))
    jobs = [Job("A", 0.0, 1000.0, 2000.0, 40, nodes=5), Job("B", 1.0, 1000.0, 2000.0, 40, nodes=5)]
    leaf_of = {f"gpu{i + 1:03d}": i // 4 for i in range(16)}
    chosen = {}
    for policy in ("gpupool-hops", "gpupool-contention"):
        sim = Simulator(compiled, policy, SimConfig(gpus_per_host=8, record_starts=True), SpeedModel(model=model))
        sim.run(iter(jobs))
        starts = {job_id: hosts for job_id, _t, hosts in sim.starts}
        chosen[policy] = starts
        a_leaves = sorted(leaf_of[h] for h in starts["A"])
        assert len(set(a_leaves)) == 2  # 4 + 1
    a_small = min(set(leaf_of[h] for h in chosen["gpupool-hops"]["A"]),
                  key=lambda k: sum(1 for h in chosen["gpupool-hops"]["A"] if leaf_of[h] == k))
    assert a_small in {leaf_of[h] for h in chosen["gpupool-hops"]["B"]}
    a_leaves = {leaf_of[h] for h in chosen["gpupool-contention"]["A"]}
    assert not a_leaves & {leaf_of[h] for h in chosen["gpupool-contention"]["B"]}
