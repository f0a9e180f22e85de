"""From node states to free GPUs per host for a request."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpupool.errors import InputError
from gpupool.slurm import parse
from gpupool.slurm.freestate import (
    capacity_gpus,
    check_partition,
    format_alloc_field,
    free_gpus_for_request,
    node_verdict,
    parse_alloc_field,
    subtract_pending_plans,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "slurm"


@pytest.fixture(params=["23.11", "24.05"])
def states(request: pytest.FixtureRequest) -> list:
    return parse.nodes_from_json(json.loads((FIXTURES / f"scontrol-show-nodes-{request.param}.json").read_text()))


def test_free_gpus_skip_unusable_nodes(states: list) -> None:
    free = free_gpus_for_request(states, "gpu")
    # gpu003 full, gpu004 drained, gpu005 down, gpu006 reserved, gpu007 has no free CPU.
    assert free == {"gpu001": 8, "gpu002": 5}
    assert free_gpus_for_request(states, "debug") == {"gpu002": 5}
    assert free_gpus_for_request(states) == {"gpu001": 8, "gpu002": 5}


def test_cpu_memory_feature_type_limits(states: list) -> None:
    # gpu002: 52 free CPUs, 416000 MiB free memory.
    assert free_gpus_for_request(states, "gpu", cpus_per_gpu=16) == {"gpu001": 4, "gpu002": 3}
    assert free_gpus_for_request(states, "gpu", mem_per_gpu_mb=100000) == {"gpu001": 5, "gpu002": 4}
    assert free_gpus_for_request(states, "gpu", features=["ib"]) == {"gpu001": 8, "gpu002": 5}
    assert free_gpus_for_request(states, "gpu", features=["nvlink"]) == {}
    assert free_gpus_for_request(states, "gpu", gpu_type="a100") == {}
    assert free_gpus_for_request(states, "gpu", exclude=["gpu001"]) == {"gpu002": 5}


def test_verdicts_say_why(states: list) -> None:
    by_name = {n.name: n for n in states}
    assert "DRAIN" in node_verdict(by_name["gpu004"]).why and "bad hca" in node_verdict(by_name["gpu004"]).why
    assert node_verdict(by_name["gpu007"]).why == "no free CPU"
    assert node_verdict(by_name["gpu002"], partition="other").why == "not in partition other"
    assert node_verdict(by_name["gpu002"], cpus_per_gpu=16).why == "CPUs limit it to 3 GPUs"


def test_capacity_and_partition_checks(states: list) -> None:
    assert capacity_gpus(states, "gpu", usable_only=False) == {f"gpu00{i}": 8 for i in range(1, 8)}
    assert capacity_gpus(states, "gpu") == {"gpu001": 8, "gpu002": 8, "gpu003": 8, "gpu007": 8}
    check_partition(states, "gpu")
    with pytest.raises(InputError, match="unknown partition 'nosuch' \\(Slurm has: cpu, debug, gpu\\)"):
        check_partition(states, "nosuch")


def test_pending_gpupool_plans_are_reserved() -> None:
    jobs = parse.jobs_from_json(json.loads((FIXTURES / "squeue-23.11.json").read_text()))
    free = {"gpu001": 8, "gpu002": 5, "gpu004": 2}
    # Job 103 is pending, pinned by gpupool to gpu001:4 + gpu004:4.
    assert subtract_pending_plans(free, jobs) == {"gpu001": 4, "gpu002": 5}


def test_alloc_field_round_trip() -> None:
    alloc = {"gpu001": 8, "gpu010": 3}
    assert format_alloc_field(alloc) == "gpu001:8+gpu010:3"
    assert parse_alloc_field(format_alloc_field(alloc)) == alloc
    assert parse_alloc_field("") == {}
