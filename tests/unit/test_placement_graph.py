"""Seed-and-grow on dragonfly / general graphs: bounded by brute force, never worse than Slurm's dragonfly mode."""

from __future__ import annotations

import numpy as np
import pytest

from gpupool.errors import InfeasibleError
from gpupool.fabric.compiled import compile_fabric
from gpupool.fabric.generate import dragonfly
from gpupool.fabric.model import Fabric, Link, Node
from gpupool.placement.cost import cost_of
from gpupool.placement.engine import place
from gpupool.placement.model import FreeState, Request
from gpupool.placement.slurm_reference import slurm_dragonfly_reference
from tests.support.oracles import brute_force, graph_of

DRAGONFLY_FABRIC = dragonfly(3, 2, 2, 1)
DRAGONFLY = compile_fabric(DRAGONFLY_FABRIC)


def _ring_fabric(switches: int, hosts_per_switch: int) -> Fabric:
    """Leaf switches cabled in a ring: neither a tree nor a dragonfly (kind "graph")."""
    nodes = [Node(id=f"S-{i}", type="switch", ports=36, name=f"ring{i}") for i in range(switches)]
    links = [Link(i, 1, (i + 1) % switches, 2) for i in range(switches)]
    for s in range(switches):
        for k in range(hosts_per_switch):
            name = f"node{s * hosts_per_switch + k + 1:02d}"
            nodes.append(Node(id=f"H-{name}", type="ca", ports=1, role="hca", host=name, name=f"{name} mlx5_0"))
            links.append(Link(s, 10 + k, len(nodes) - 1, 1))
    return Fabric(nodes=nodes, links=links)


RING_FABRIC = _ring_fabric(6, 2)
RING = compile_fabric(RING_FABRIC)


@pytest.mark.parametrize(("compiled", "fabric"), [(DRAGONFLY, DRAGONFLY_FABRIC), (RING, RING_FABRIC)],
                         ids=["dragonfly", "ring"])
def test_heuristic_between_lower_bound_and_brute_force(compiled, fabric: Fabric) -> None:
    assert not compiled.ultrametric
    oracle = graph_of(fabric)
    rng = np.random.default_rng(5)
    exact = 0
    trials = 0
    for _ in range(60):
        free = rng.integers(0, 3, size=compiled.n_hosts)
        state = FreeState.from_arrays(free)
        if rng.random() < 0.3:
            request = Request(nodes=int(rng.integers(1, max(2, (free > 0).sum()))), gpus_per_node=1)
        else:
            request = Request(gpus=int(rng.integers(2, max(3, free.sum()))))
        best = brute_force(oracle, dict(zip(compiled.host_names, free.tolist(), strict=True)), request)
        if best is None:
            with pytest.raises(InfeasibleError):
                place(compiled, state, request)
            continue
        placement = place(compiled, state, request)
        trials += 1
        assert placement.lower_bound is not None
        assert placement.lower_bound <= best[0] <= placement.cost.pair_hops_sum
        assert sum(placement.allocation.values()) == request.total_gpus
        exact += placement.cost.pair_hops_sum == best[0]
    assert trials >= 30
    assert exact / trials >= 0.9, f"only {exact}/{trials} optimal"


def test_never_worse_than_slurm_dragonfly_mode() -> None:
    compiled = compile_fabric(dragonfly(5, 3, 3, 2))
    assert compiled.kind == "dragonfly"
    rng = np.random.default_rng(8)
    better = 0
    for _ in range(80):
        free = rng.integers(0, 9, size=compiled.n_hosts) * (rng.random(compiled.n_hosts) < 0.7)
        state = FreeState.from_arrays(free)
        request = Request(gpus=int(rng.integers(2, 40)))
        reference = slurm_dragonfly_reference(compiled, state, request)
        assert reference is not None
        ours = place(compiled, state, request).cost.pair_hops_sum
        theirs = cost_of(compiled, reference).pair_hops_sum
        assert ours <= theirs
        better += ours < theirs
    assert better > 40


def test_max_hops_is_respected_on_graphs() -> None:
    free = np.full(RING.n_hosts, 2)
    state = FreeState.from_arrays(free)
    placement = place(RING, state, Request(gpus=8, max_hops=3))
    assert placement.cost.max_hops <= 3
    with pytest.raises(InfeasibleError, match="largest feasible request is 8 GPUs"):
        place(RING, state, Request(gpus=10, max_hops=3))


def test_groups_counted_on_dragonfly() -> None:
    names = DRAGONFLY.host_names
    assert cost_of(DRAGONFLY, {names[0]: 1, names[1]: 1}).groups == 1
    assert cost_of(DRAGONFLY, {names[0]: 1, names[-1]: 1}).groups == 2
