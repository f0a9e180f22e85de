"""Fragmentation figures on free states where every figure is worked out by hand (K = 8 GPUs per node)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gpupool.cli.main import main
from gpupool.errors import UsageError
from gpupool.fabric.compiled import compile_fabric
from gpupool.fabric.generate import fat_tree
from gpupool.fabric.model import save_fabric
from gpupool.observe.fragmentation import measure, parse_shapes
from gpupool.placement.model import FreeState

# 2 pods x 2 leaves x 4 hosts: pod1-leaf01 gpu001-004, pod1-leaf02 gpu005-008,
# pod2-leaf01 gpu009-012, pod2-leaf02 gpu013-016.
FREE = {"gpu001": 8, "gpu002": 8, "gpu003": 8, "gpu004": 3,  # 3 whole-free hosts
        "gpu005": 8, "gpu006": 2,  # 1 whole-free host
        "gpu009": 8, "gpu010": 8,  # 2 whole-free hosts
        "gpu013": 1}  # none
SHAPES = "1,2,3,4,8,16,32,48,64"


@pytest.fixture(scope="module")
def compiled():  # type: ignore[no-untyped-def]
    return compile_fabric(fat_tree(2, 4, 2, pods=2, cores=2))


def _state(compiled, free: dict[str, int]) -> FreeState:  # type: ignore[no-untyped-def]
    return FreeState.from_dict(compiled, free)


def test_largest_job_per_scope(compiled) -> None:  # type: ignore[no-untyped-def]
    figures = measure(compiled, _state(compiled, FREE), parse_shapes(SHAPES, 8), 8)
    assert figures.free_gpus == 54
    # Best leaf has 3 whole-free hosts (24 GPUs): 16 fits, 32 does not. Pod 1 has 4: 32 fits.
    # The whole fabric has 6 whole-free hosts (48 GPUs): 48 fits, 64 does not.
    assert figures.largest == {"leaf": 16, "pod": 32, "anywhere": 48}
    assert figures.largest_whole_node_gpus == {"leaf": 24, "pod": 32, "anywhere": 48}
    fits = {f.shape.gpus: f.fits for f in figures.shapes}
    assert fits[32] == {"leaf": False, "pod": True, "anywhere": True}
    assert fits[64] == {"leaf": False, "pod": False, "anywhere": False}
    assert fits[4] == {"leaf": True, "pod": True, "anywhere": True}


def test_jobs_within_leaf_and_stranded_per_shape(compiled) -> None:  # type: ignore[no-untyped-def]
    figures = measure(compiled, _state(compiled, FREE), parse_shapes(SHAPES, 8), 8)
    jobs = {f.shape.gpus: f.jobs_within_leaf for f in figures.shapes}
    # 8 GPUs: 3+1+2+0 whole-free hosts; 16 GPUs (2 hosts): 1+0+1+0; 3 GPUs: 6 hosts x 2 + gpu004's one.
    assert jobs == {1: 54, 2: 26, 3: 13, 4: 12, 8: 6, 16: 2, 32: 0, 48: 0, 64: 0}
    stranded = {f.shape.gpus: f.stranded_gpus for f in figures.shapes}
    # 2: gpu013's 1; 3: + gpu006's 2; 4: + gpu004's 3; 8: the same 6 on partly free hosts;
    # 16: + gpu005's 8 (the only whole-free host of its leaf); 32 and up: every free GPU.
    assert stranded == {1: 0, 2: 1, 3: 3, 4: 6, 8: 6, 16: 14, 32: 54, 48: 54, 64: 54}
    # A 1-GPU job can use any free GPU, so nothing is stranded for every shape.
    assert figures.stranded_gpus == 0


def test_stranded_is_the_intersection_over_shapes(compiled) -> None:  # type: ignore[no-untyped-def]
    state = _state(compiled, FREE)
    # gpu005 is stranded for 16 but a 2-GPU job can use it; only gpu013's single GPU is stranded for both.
    assert measure(compiled, state, parse_shapes("2,16", 8), 8).stranded_gpus == 1
    assert measure(compiled, state, parse_shapes("16,32", 8), 8).stranded_gpus == 14


def test_unusable_hosts_and_per_leaf_heat(compiled) -> None:  # type: ignore[no-untyped-def]
    state = _state(compiled, FREE)
    usable = state.usable.copy()
    usable[compiled.host_index()["gpu001"]] = False  # drained: its 8 GPUs are not free
    state = FreeState(free_gpus=state.free_gpus, usable=usable)
    figures = measure(compiled, state, parse_shapes("8,16,24", 8), 8)
    assert figures.free_gpus == 46
    assert figures.largest == {"leaf": 16, "pod": 24, "anywhere": 24}
    leaves = {leaf.name: (leaf.pod, leaf.hosts, leaf.free_gpus, leaf.whole_free_hosts, leaf.capacity_gpus)
              for leaf in figures.leaves}
    assert leaves == {"pod1-leaf01": ("pod1-spine01", 4, 19, 2, 32), "pod1-leaf02": ("pod1-spine01", 4, 10, 1, 32),
                      "pod2-leaf01": ("pod2-spine01", 4, 16, 2, 32), "pod2-leaf02": ("pod2-spine01", 4, 1, 0, 32)}


def test_capacity_comes_from_configured_gpus_when_known(compiled) -> None:  # type: ignore[no-untyped-def]
    state = _state(compiled, {"gpu001": 4})
    state.total_gpus = np.full(compiled.n_hosts, 4, dtype=np.int32)
    figures = measure(compiled, state, parse_shapes("4,8", 4), 4)
    assert figures.leaves[0].capacity_gpus == 16
    assert figures.largest == {"leaf": 4, "pod": 4, "anywhere": 4}


def test_two_level_tree_pod_is_the_whole_fabric() -> None:
    compiled = compile_fabric(fat_tree(3, 2, 2))  # leaf k: gpu(2k-1), gpu(2k)
    state = FreeState.from_dict(compiled, {"gpu001": 8, "gpu003": 8, "gpu005": 8, "gpu006": 8})
    figures = measure(compiled, state, parse_shapes("8,16,24,32", 8), 8)
    assert figures.largest == {"leaf": 16, "pod": 32, "anywhere": 32}


def test_bad_shapes_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="neither below nor a multiple"):
        parse_shapes("12", 8)
    with pytest.raises(UsageError, match="not a positive number"):
        parse_shapes("8,x", 8)
    assert [s.gpus for s in parse_shapes(None, 8)] == [1, 2, 3, 4, 8, 16, 32, 64, 128, 256]


def test_status_cli_json_and_heat_map(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fabric = tmp_path / "f.json"
    save_fabric(fat_tree(2, 4, 2, pods=2, cores=2), str(fabric))
    free = tmp_path / "free.json"
    free.write_text(json.dumps(FREE))
    assert main(["status", "--fabric", str(fabric), "--free", str(free), "--shapes", SHAPES, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["largest"] == {"leaf": 16, "pod": 32, "anywhere": 48}
    assert doc["stranded_gpus"] == 0 and doc["free_gpus"] == 54
    assert [leaf["free_gpus"] for leaf in doc["leaves"]] == [27, 10, 16, 1]
    assert main(["status", "--fabric", str(fabric), "--free", str(free), "--shapes", SHAPES]) == 0
    out = capsys.readouterr().out
    assert "27/32" in out and " 1/32" in out and "pod2-spine01" in out
    assert main(["status", "--fabric", str(fabric), "--free", str(free), "--shapes", "12"]) == 2


def test_dragonfly_pod_is_the_group_and_rails_make_one_leaf() -> None:
    from gpupool.fabric.generate import dragonfly

    # 3 groups x 2 routers x 2 hosts: router k holds gpu(2k-1), gpu(2k); group g holds routers 2g-1, 2g.
    compiled = compile_fabric(dragonfly(3, 2, 2, 1))
    state = FreeState.from_dict(compiled, {"gpu001": 8, "gpu003": 8, "gpu004": 8, "gpu009": 8, "gpu010": 8,
                                           "gpu011": 8})
    figures = measure(compiled, state, parse_shapes("8,16,24,32,48", 8), 8)
    # Best router: 2 whole-free hosts (gpu003-004 or gpu009-010); best groups: 3 (gpu001,003,004 and gpu009-011).
    assert figures.largest == {"leaf": 16, "pod": 24, "anywhere": 48}
    assert {leaf.pod for leaf in figures.leaves} == {"group0", "group1", "group2"}
    # Rail-optimised: each host is cabled to one leaf per rail; the rails of a leaf position are one leaf.
    railed = compile_fabric(fat_tree(2, 2, 2, rails=2))
    figures = measure(railed, FreeState.from_dict(railed, {"gpu001": 8, "gpu002": 8, "gpu003": 4}),
                      parse_shapes("4,16", 8), 8)
    assert [(leaf.name, leaf.free_gpus) for leaf in figures.leaves] == [("leaf01-rail0", 16), ("leaf02-rail0", 4)]
    assert figures.largest["leaf"] == 16


def test_whole_node_size_comes_from_configured_gpus(compiled) -> None:  # type: ignore[no-untyped-def]
    from gpupool.observe.fragmentation import gpus_per_node_of

    state = _state(compiled, {"gpu001": 4})
    assert gpus_per_node_of(state, None) == 8  # a --free file says nothing about configured GPUs
    state.total_gpus = np.asarray([4] * 10 + [8] * 6, dtype=np.int32)
    assert gpus_per_node_of(state, None) == 4
    assert gpus_per_node_of(state, 8) == 8
    with pytest.raises(UsageError):
        gpus_per_node_of(state, 0)
