"""The tree DP against exhaustive search, and the cost definitions against docs/contract.md."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpupool.errors import InfeasibleError
from gpupool.fabric.compiled import CompiledFabric, compile_fabric
from gpupool.fabric.generate import fat_tree
from gpupool.fabric.ibnetdiscover import parse_ibnetdiscover
from gpupool.fabric.model import Fabric, Link, Node
from gpupool.placement.cost import cost_of
from gpupool.placement.engine import place
from gpupool.placement.model import FreeState, Request
from tests.support.helpers import DGX_FIXTURE
from tests.support.oracles import HostGraph, brute_force, graph_of, read_capture

DGX = str(DGX_FIXTURE)

_GENERATED = {
    "two-level": fat_tree(4, 3, 2),
    "three-level": fat_tree(2, 2, 2, pods=3, cores=2),
    "rails": fat_tree(3, 3, 2, rails=2),
}
FABRICS = {name: compile_fabric(fab) for name, fab in _GENERATED.items()}
# The same fabrics as the independent oracle sees them (its own graph and BFS, no `compiled`).
ORACLES = {name: graph_of(fab) for name, fab in _GENERATED.items()}


def _by_name(compiled: CompiledFabric, free: np.ndarray) -> dict[str, int]:
    return {h: int(g) for h, g in zip(compiled.host_names, free.tolist(), strict=True)}


def _direct_cost(oracle: HostGraph, allocation: dict[str, int]) -> tuple[int, int, int]:
    """pair_hops_sum, max_hops and leaf switches straight from the definitions, host pair by host pair."""
    total = 0
    worst = 0
    for (a, ga), (b, gb) in itertools.combinations(allocation.items(), 2):
        d = oracle.distance(a, b)
        assert d is not None, (a, b)
        total += ga * gb * d
        worst = max(worst, d)
    return total, worst, oracle.leaf_count(allocation)


def _request(data: st.DataObject, total: int, hosts: int) -> Request:
    per_node = data.draw(st.sampled_from([None, None, 1, 2]))
    max_hops = data.draw(st.sampled_from([None, None, None, 0, 2, 4]))
    if per_node is None:
        return Request(gpus=data.draw(st.integers(1, max(1, total))), max_hops=max_hops)
    return Request(nodes=data.draw(st.integers(1, max(1, hosts))), gpus_per_node=per_node, max_hops=max_hops)


@pytest.mark.parametrize("name", sorted(FABRICS))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_tree_dp_equals_brute_force(name: str, data: st.DataObject) -> None:
    compiled = FABRICS[name]
    assert compiled.ultrametric
    free = np.asarray(data.draw(st.lists(st.integers(0, 2), min_size=compiled.n_hosts, max_size=compiled.n_hosts)))
    state = FreeState.from_arrays(free)
    request = _request(data, int(free.sum()), int((free > 0).sum()))
    best = brute_force(ORACLES[name], _by_name(compiled, free), request)
    if best is None:
        with pytest.raises(InfeasibleError):
            place(compiled, state, request)
        return
    placement = place(compiled, state, request)
    assert placement.optimal
    assert (placement.cost.pair_hops_sum, placement.cost.leaf_switches) == best
    assert sum(placement.allocation.values()) == request.total_gpus
    index = compiled.host_index()
    for host, gpus in placement.allocation.items():
        assert 1 <= gpus <= free[index[host]]
        if request.gpus_per_node:
            assert gpus == request.gpus_per_node
    if request.max_hops is not None:
        assert placement.cost.max_hops <= request.max_hops


def test_cost_of_matches_definitions_on_every_fabric_kind() -> None:
    rng = np.random.default_rng(7)
    with open(DGX, encoding="utf-8") as handle:
        dgx = compile_fabric(parse_ibnetdiscover(handle.read(), DGX))
    pairs = [(FABRICS[name], ORACLES[name]) for name in sorted(FABRICS)] + [(dgx, read_capture(DGX))]
    for compiled, oracle in pairs:
        for _ in range(20):
            k = int(rng.integers(1, min(12, compiled.n_hosts) + 1))
            hosts = rng.choice(compiled.n_hosts, size=k, replace=False)
            allocation = {compiled.host_names[h]: int(rng.integers(1, 9)) for h in hosts}
            cost = cost_of(compiled, allocation)
            pair_sum, worst, leaves = _direct_cost(oracle, allocation)
            assert cost.pair_hops_sum == pair_sum
            assert cost.max_hops == worst
            assert cost.leaf_switches == leaves
            gpus = list(allocation.values())
            pairs = (sum(gpus) ** 2 - sum(g * g for g in gpus)) // 2
            assert cost.mean_hops == pytest.approx(pair_sum / pairs if pairs else 0.0)


def test_cost_of_single_host_is_zero() -> None:
    compiled = FABRICS["two-level"]
    cost = cost_of(compiled, {"gpu001": 8})
    assert (cost.pair_hops_sum, cost.mean_hops, cost.max_hops, cost.leaf_switches) == (0, 0.0, 0, 1)


def test_dgx_fixture_is_placed_exactly() -> None:
    with open(DGX, encoding="utf-8") as handle:
        compiled = compile_fabric(parse_ibnetdiscover(handle.read(), DGX))
    assert compiled.ultrametric
    rng = np.random.default_rng(11)
    for _ in range(10):
        free = np.zeros(compiled.n_hosts, dtype=np.int64)
        chosen = rng.choice(compiled.n_hosts, size=7, replace=False)
        free[chosen] = rng.integers(1, 4, size=7)
        request = Request(gpus=int(rng.integers(2, free.sum() + 1)))
        state = FreeState.from_arrays(free)
        placement = place(compiled, state, request)
        assert placement.algorithm == "tree-dp"
        best = brute_force(read_capture(DGX), _by_name(compiled, free), request)
        assert (placement.cost.pair_hops_sum, placement.cost.leaf_switches) == best


def _leaf_state(compiled: CompiledFabric, free: dict[str, int]) -> FreeState:
    return FreeState.from_dict(compiled, free)


def test_best_fit_inside_a_leaf_keeps_the_big_host_free() -> None:
    compiled = FABRICS["two-level"]  # gpu001-003 on leaf 1
    placement = place(compiled, _leaf_state(compiled, {"gpu001": 8, "gpu002": 4}), Request(gpus=4))
    assert placement.allocation == {"gpu002": 4}
    placement = place(compiled, _leaf_state(compiled, {"gpu001": 8, "gpu002": 5, "gpu003": 4}),
                      Request(nodes=1, gpus_per_node=4))
    assert placement.allocation == {"gpu003": 4}


def test_best_fit_prefers_the_tighter_leaf_group() -> None:
    compiled = FABRICS["two-level"]  # leaf 1: gpu001-003, leaf 2: gpu004-006
    state = _leaf_state(compiled, {"gpu001": 8, "gpu002": 8, "gpu004": 8})
    assert place(compiled, state, Request(gpus=8)).allocation == {"gpu004": 8}


def test_fullest_hosts_first_and_remainder_on_the_tightest_host() -> None:
    compiled = FABRICS["two-level"]
    state = _leaf_state(compiled, {"gpu001": 4, "gpu002": 4, "gpu003": 2})
    placement = place(compiled, state, Request(gpus=6))
    assert placement.allocation in ({"gpu001": 4, "gpu003": 2}, {"gpu002": 4, "gpu003": 2})
    assert placement.cost.pair_hops_sum == 4 * 2 * 2


def test_one_leaf_beats_spreading_over_two() -> None:
    compiled = FABRICS["two-level"]
    state = _leaf_state(compiled, {"gpu001": 2, "gpu004": 2, "gpu005": 2})
    placement = place(compiled, state, Request(gpus=4))
    assert placement.allocation == {"gpu004": 2, "gpu005": 2}
    assert placement.cost.max_hops == 2


def _mixed_rails_fabric() -> Fabric:
    """A hand-made fabric whose logical leaves differ in switch count: hosts r1-r3 have two HCAs,
    one on rail switch railA and one on railB (one logical leaf of 2 switches); hosts s1-s3 have one
    HCA each on switch single (a logical leaf of 1 switch); all three switches under one spine."""
    nodes = [Node(id="S-spine", type="switch", ports=8, desc="spine", name="spine"),
             Node(id="S-railA", type="switch", ports=8, desc="railA", name="railA"),
             Node(id="S-railB", type="switch", ports=8, desc="railB", name="railB"),
             Node(id="S-single", type="switch", ports=8, desc="single", name="single")]
    links = [Link(0, 1, 1, 8), Link(0, 2, 2, 8), Link(0, 3, 3, 8)]
    for k in range(1, 4):
        for rail, switch in ((0, 1), (1, 2)):
            nodes.append(Node(id=f"H-r{k}-{rail}", type="ca", ports=1, desc=f"r{k} mlx5_{rail}", role="hca",
                              host=f"r{k}", name=f"r{k}/mlx5_{rail}", rail=rail))
            links.append(Link(len(nodes) - 1, 1, switch, k))
        nodes.append(Node(id=f"H-s{k}", type="ca", ports=1, desc=f"s{k} mlx5_0", role="hca", host=f"s{k}",
                          name=f"s{k}/mlx5_0"))
        links.append(Link(len(nodes) - 1, 1, 3, k))
    return Fabric(nodes=nodes, links=links)


MIXED = _mixed_rails_fabric()
MIXED_COMPILED = compile_fabric(MIXED)


def test_leaf_switch_count_breaks_a_pair_cost_tie_on_mixed_rails() -> None:
    # By hand: r1 + r2 share railA (and railB): 2 hops, 4 x 4 x 2 = 32, but 2 leaf switches;
    # s1 + s2 share switch single: 2 hops, 32, 1 leaf switch. Both groups have the same free GPUs
    # (best fit cannot tell them apart): the contract's tie-break (fewest leaf switches) says s1 + s2.
    free = {h: 4 for h in ("r1", "r2", "r3", "s1", "s2", "s3")}
    placement = place(MIXED_COMPILED, FreeState.from_dict(MIXED_COMPILED, free), Request(nodes=2, gpus_per_node=4))
    assert placement.cost.pair_hops_sum == 32
    assert placement.cost.leaf_switches == 1
    assert set(placement.allocation) <= {"s1", "s2", "s3"} and len(placement.allocation) == 2
    # Three hosts of one group cost the same on either side (3 pairs x 16 x 2 = 96): single again.
    placement = place(MIXED_COMPILED, FreeState.from_dict(MIXED_COMPILED, free), Request(gpus=12))
    assert placement.cost.pair_hops_sum == 3 * 16 * 2
    assert set(placement.allocation) == {"s1", "s2", "s3"}


@pytest.mark.parametrize("max_hops", [None, 0])
def test_one_host_jobs_prefer_the_host_on_fewer_leaf_switches(max_hops: int | None) -> None:
    # By hand: r3 (2 HCAs: railA + railB) and s3 (1 HCA: single) both hold the 1 GPU asked for:
    # pair_hops_sum 0 either way, leaf_switches 2 vs 1: s3. With --max-hops 0 the engine takes its
    # one-host path (found by the brute-force test below: it used to pick the tightest host only).
    free = {"r3": 1, "s3": 1}
    placement = place(MIXED_COMPILED, FreeState.from_dict(MIXED_COMPILED, free), Request(gpus=1, max_hops=max_hops))
    assert placement.allocation == {"s3": 1} and placement.cost.leaf_switches == 1


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_tree_dp_equals_brute_force_on_mixed_rails(data: st.DataObject) -> None:
    compiled = MIXED_COMPILED
    free = np.asarray(data.draw(st.lists(st.integers(0, 3), min_size=compiled.n_hosts, max_size=compiled.n_hosts)))
    request = _request(data, int(free.sum()), int((free > 0).sum()))
    best = brute_force(graph_of(MIXED), _by_name(compiled, free), request)
    if best is None:
        with pytest.raises(InfeasibleError):
            place(compiled, FreeState.from_arrays(free), request)
        return
    placement = place(compiled, FreeState.from_arrays(free), request)
    assert (placement.cost.pair_hops_sum, placement.cost.leaf_switches) == best
