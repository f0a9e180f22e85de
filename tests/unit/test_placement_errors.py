"""Bad input: exit codes and messages of the placement library."""

from __future__ import annotations

import numpy as np
import pytest

from gpupool.cli.errors import exit_code_for
from gpupool.errors import (
    EXIT_INFEASIBLE,
    EXIT_INPUT,
    EXIT_USAGE,
    InfeasibleError,
    InputError,
    UsageError,
)
from gpupool.fabric.compiled import compile_fabric
from gpupool.fabric.generate import fat_tree
from gpupool.placement.engine import place
from gpupool.placement.model import FreeState, Request

TREE = compile_fabric(fat_tree(2, 2, 1))  # gpu001-002 on leaf 1, gpu003-004 on leaf 2


def test_unknown_host_is_an_input_error_unless_ignored() -> None:
    with pytest.raises(InputError, match="nosuchhost") as info:
        FreeState.from_dict(TREE, {"gpu001": 4, "nosuchhost": 8})
    assert exit_code_for(info.value) == EXIT_INPUT
    state = FreeState.from_dict(TREE, {"gpu001": 4, "nosuchhost": 8}, ignore_unknown=True)
    assert state.free_gpus.tolist() == [4, 0, 0, 0]


@pytest.mark.parametrize("value", [-1, 1.5, "8", None])
def test_bad_free_values_are_input_errors(value: object) -> None:
    with pytest.raises(InputError, match="gpu001"):
        FreeState.from_dict(TREE, {"gpu001": value})


def test_infeasible_names_the_largest_feasible_request() -> None:
    state = FreeState.from_dict(TREE, {"gpu001": 3, "gpu003": 2})
    with pytest.raises(InfeasibleError, match="largest feasible request is 5 GPUs") as info:
        place(TREE, state, Request(gpus=6))
    assert exit_code_for(info.value) == EXIT_INFEASIBLE
    with pytest.raises(InfeasibleError, match="largest feasible request is 3 GPUs"):
        place(TREE, state, Request(gpus=4, max_hops=2))
    with pytest.raises(InfeasibleError, match=r"largest feasible request is 1 nodes x 3 GPUs"):
        place(TREE, state, Request(nodes=2, gpus_per_node=3))


@pytest.mark.parametrize("request_", [Request(gpus=0), Request(gpus=-3), Request(gpus=4, gpus_per_node=0),
                                      Request(gpus=5, gpus_per_node=2), Request(gpus=5, nodes=2),
                                      Request(gpus=8, nodes=2, gpus_per_node=3), Request()])
def test_bad_requests_are_usage_errors(request_: Request) -> None:
    with pytest.raises(UsageError) as info:
        place(TREE, FreeState.from_arrays([8, 8, 8, 8]), request_)
    assert exit_code_for(info.value) == EXIT_USAGE


def test_gpus_per_node_above_every_host() -> None:
    state = FreeState.from_arrays([8, 8, 8, 8])
    state.total_gpus = np.full(4, 8, dtype=np.int32)
    with pytest.raises(UsageError, match="more than any host has"):
        place(TREE, state, Request(nodes=1, gpus_per_node=9))
    with pytest.raises(InfeasibleError, match="no available host has 9 free GPUs"):
        place(TREE, FreeState.from_arrays([8, 8, 8, 8]), Request(nodes=1, gpus_per_node=9))


def test_exclude_and_unusable_hosts_are_never_used() -> None:
    state = FreeState.from_arrays([8, 8, 8, 8], usable=[True, False, True, True])
    placement = place(TREE, state, Request(gpus=16, exclude=("gpu003",)))
    assert placement.allocation == {"gpu001": 8, "gpu004": 8}


def test_nodes_times_gpus_per_node_shape() -> None:
    placement = place(TREE, FreeState.from_arrays([8, 4, 8, 2]), Request(nodes=2, gpus_per_node=4))
    assert placement.allocation == {"gpu001": 4, "gpu002": 4}
    assert Request(gpus=12, nodes=3).shape() == (3, 4, True)
