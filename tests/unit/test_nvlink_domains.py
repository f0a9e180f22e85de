"""Multi-node NVLink domains: fabric file, generator, block export and placement (fewest domains
first, then IB hops), with expectations worked out by hand or by an independent brute force."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from gpupool.errors import InputError, UsageError
from gpupool.fabric.blocks import fabric_blocks
from gpupool.fabric.compiled import compile_fabric, load_compiled
from gpupool.fabric.export import export_slurm_block, summary
from gpupool.fabric.generate import add_generated_domains, fat_tree
from gpupool.fabric.model import fabric_from_dict, fabric_to_dict, load_fabric, save_fabric
from gpupool.fabric.nvlink import NvlinkDomain
from gpupool.placement.block import place_block
from gpupool.placement.engine import place
from gpupool.placement.model import FreeState, Request


def _nvl72() -> tuple[object, object]:
    """4 NVL72-like domains (18 hosts each) under 2 IB leaves of 36 hosts."""
    fab = fat_tree(2, 36, 2)
    add_generated_domains(fab, 18)
    return fab, compile_fabric(fab)


def _free_arrays(compiled, gpus: dict[str, int]) -> FreeState:  # type: ignore[no-untyped-def]
    values = np.asarray([gpus.get(h, 0) for h in compiled.host_names], dtype=np.int64)
    return FreeState(free_gpus=values, usable=values > 0, total_gpus=np.full(values.size, 4, dtype=np.int64))


def test_generated_domains_are_consecutive_hosts_under_one_leaf() -> None:
    fab, compiled = _nvl72()
    names = [d.name for d in fab.nvlink_domains]
    assert names == ["nvl01", "nvl02", "nvl03", "nvl04"]
    assert fab.nvlink_domains[0].hosts == tuple(f"gpu{i:03d}" for i in range(1, 19))
    assert fab.nvlink_domains[3].hosts == tuple(f"gpu{i:03d}" for i in range(55, 73))
    assert compiled.host_domain.tolist() == [0] * 18 + [1] * 18 + [2] * 18 + [3] * 18
    doc = summary(fab, compiled)
    assert doc["nvlink_domains"] == {"domains": 4, "hosts_per_domain": [18], "hosts_outside": 0}


def test_a_domain_may_not_straddle_leaves() -> None:
    fab = fat_tree(2, 36, 2)
    with pytest.raises(UsageError, match="does not divide the 36 hosts"):
        add_generated_domains(fab, 24)


def test_fabric_file_round_trip_and_the_cache(tmp_path: Path) -> None:
    fab, compiled = _nvl72()
    path = tmp_path / "nvl.json"
    save_fabric(fab, str(path))
    again = load_fabric(str(path))
    assert again.nvlink_domains == fab.nvlink_domains
    for _ in range(2):  # once built, once from the cache beside the file
        loaded = load_compiled(str(path))
        assert loaded.domain_names == ["nvl01", "nvl02", "nvl03", "nvl04"]
        assert loaded.host_domain.tolist() == compiled.host_domain.tolist()
    # A fabric without domains writes no key at all (existing files stay byte-identical).
    assert "nvlink_domains" not in fabric_to_dict(fat_tree(2, 2, 1))


@pytest.mark.parametrize(("entry", "message"), [
    ([{"name": "a", "hosts": ["gpu001"]}, {"name": "b", "hosts": ["gpu001"]}], "already in NVLink domain a"),
    ([{"name": "a", "hosts": ["gpu999"]}], "gpu999 is not in the fabric"),
    ([{"name": "a b", "hosts": ["gpu001"]}], "name must be"),
    ([{"name": "a", "hosts": []}], "non-empty list"),
    ([{"name": "a", "hosts": ["gpu001"]}, {"name": "a", "hosts": ["gpu002"]}], "two NVLink domains are named a"),
    ({"name": "a"}, "must be a list"),
    ([{"name": "a", "hosts": ["gpu001"], "clique_id": -1}], "clique_id"),
])
def test_bad_domain_entries_are_input_errors(entry: object, message: str) -> None:
    doc = fabric_to_dict(fat_tree(1, 2, 1))
    doc["nvlink_domains"] = entry
    with pytest.raises(InputError, match=message):
        fabric_from_dict(json.loads(json.dumps(doc)), "f.json")


def test_block_export_has_one_base_block_per_domain() -> None:
    _fab, compiled = _nvl72()
    # Lines 1-2: the header and the comment explaining BlockSizes.
    assert export_slurm_block(compiled).splitlines()[2:] == [
        "BlockName=nvl01 Nodes=gpu[001-018]",
        "BlockName=nvl02 Nodes=gpu[019-036]",
        "BlockName=nvl03 Nodes=gpu[037-054]",
        "BlockName=nvl04 Nodes=gpu[055-072]",
        # 36 = the two domains of one leaf, 72 = the cluster.
        "BlockSizes=18,36,72",
    ]


def test_block_sizes_skip_a_level_that_would_straddle_leaves() -> None:
    # 3 domains of 2 hosts under each of 2 leaves: a 2-domain block (4 hosts) would join nvl03 and
    # nvl04 across the leaves while a leaf holds 3 domains, so no 4; 8 (4 domains) cannot fit one leaf.
    fab = fat_tree(2, 6, 1)
    add_generated_domains(fab, 2)
    layout = fabric_blocks(compile_fabric(fab))
    assert [len(h) for _n, h in layout.blocks] == [2] * 6
    assert layout.sizes == [2, 8]


def test_idle_nvl72_cluster_places_72_gpus_in_exactly_one_domain() -> None:
    _fab, compiled = _nvl72()
    free = _free_arrays(compiled, {h: 4 for h in compiled.host_names})
    result = place(compiled, free, Request(gpus=72))
    assert result.algorithm == "tree-dp-nvlink"
    assert sorted(result.allocation) == [f"gpu{i:03d}" for i in range(1, 19)]
    assert set(result.allocation.values()) == {4}
    # 18 hosts x 4 GPUs under one leaf: (72^2 - 18 x 16) / 2 pairs, each 2 IB hops.
    assert result.cost.pair_hops_sum == 72 * 72 - 18 * 16


def _small() -> tuple[object, object]:
    """2 leaves x 6 hosts, domains of 2 hosts: d1 gpu[001-002] .. d6 gpu[011-012]."""
    fab = fat_tree(2, 6, 1)
    add_generated_domains(fab, 2)
    return fab, compile_fabric(fab)


def test_fewest_domains_beat_fewer_ib_hops() -> None:
    # Free: leaf01 gpu001, gpu002 (d1), gpu003 (d2), gpu005 (d3); leaf02 gpu007, gpu008 (d4); 4 each.
    # 16 GPUs: all of leaf01 spans 3 domains for (256 - 4 x 16) = 192 hops; d1 + d4 spans 2 domains for
    # 2 x 16 x 2 (inside each domain) + 8 x 8 x 4 (across the spine) = 64 + 256 = 320 hops. Only d1 + d4
    # hold 16 GPUs in 2 domains, so that is the plan; without domains it is the 192-hop one.
    fab, compiled = _small()
    gpus = {"gpu001": 4, "gpu002": 4, "gpu003": 4, "gpu005": 4, "gpu007": 4, "gpu008": 4}
    result = place(compiled, _free_arrays(compiled, gpus), Request(gpus=16))
    assert result.allocation == {"gpu001": 4, "gpu002": 4, "gpu007": 4, "gpu008": 4}
    assert result.cost.pair_hops_sum == 320
    fab.nvlink_domains = []
    plain = compile_fabric(fab)
    without = place(plain, _free_arrays(plain, gpus), Request(gpus=16))
    assert without.allocation == {"gpu001": 4, "gpu002": 4, "gpu003": 4, "gpu005": 4}
    assert without.cost.pair_hops_sum == 192


def test_a_small_job_goes_to_the_fullest_domain() -> None:
    # d1 has one host free, d2..d6 are idle: 4 GPUs fit everywhere at 0 hops; best fit leaves d1 empty.
    _fab, compiled = _small()
    gpus = {h: 4 for h in compiled.host_names}
    gpus["gpu001"] = 0
    result = place(compiled, _free_arrays(compiled, gpus), Request(gpus=4))
    assert result.allocation == {"gpu002": 4}


def _brute(host_names: list[str], distance: object, domain: dict[str, int], choices: dict[str, list[int]],
           need: int) -> tuple[int, int] | None:
    """Smallest (domains, pair hops) over every way to take `need` GPUs, from the definitions
    (distances from the independent oracle's own BFS)."""
    best: tuple[int, int] | None = None
    for take in itertools.product(*[choices[h] for h in host_names]):
        if sum(take) != need:
            continue
        used = [(h, g) for h, g in zip(host_names, take, strict=True) if g]
        hops = sum(ga * gb * distance(a, b) for (a, ga), (b, gb) in itertools.combinations(used, 2))  # type: ignore[operator]
        key = (len({domain[h] for h, _g in used}), hops)
        best = key if best is None or key < best else best
    return best


_SMALL_FABRICS = {
    "two-level": lambda: fat_tree(2, 4, 1),
    "three-level": lambda: fat_tree(2, 2, 1, pods=2, cores=1),
    "rails": lambda: fat_tree(2, 4, 2, rails=2),
}


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("kind", sorted(_SMALL_FABRICS))
def test_the_plan_matches_a_brute_force_on_small_fabrics(kind: str, seed: int) -> None:
    from tests.support.oracles import graph_of

    rng = np.random.default_rng(seed)
    fab = _SMALL_FABRICS[kind]()
    add_generated_domains(fab, 2)
    compiled = compile_fabric(fab)
    oracle = graph_of(fab)
    names = compiled.host_names
    domain = {h: i // 2 for i, h in enumerate(names)}  # consecutive pairs, as generated
    assert [list(d.hosts) for d in fab.nvlink_domains] == [names[i:i + 2] for i in range(0, len(names), 2)]
    free = {h: int(rng.integers(0, 3)) for h in names}
    total = sum(free.values())
    if total == 0:
        return
    if seed % 2:  # whole hosts: 2 GPUs on each of `nodes` hosts
        whole = [h for h in names if free[h] == 2]
        if not whole:
            return
        nodes = int(rng.integers(1, len(whole) + 1))
        need, request = 2 * nodes, Request(nodes=nodes, gpus_per_node=2)
        choices = {h: [0, 2] if free[h] == 2 else [0] for h in names}
    else:
        need = int(rng.integers(1, total + 1))
        request = Request(gpus=need)
        choices = {h: list(range(free[h] + 1)) for h in names}
    result = place(compiled, _free_arrays(compiled, free), request)
    assert result.algorithm == "tree-dp-nvlink"
    used = {domain[h] for h in result.allocation}
    assert sum(result.allocation.values()) == need
    assert all(g <= free[h] for h, g in result.allocation.items())
    assert (len(used), result.cost.pair_hops_sum) == _brute(names, oracle.distance, domain, choices, need)


def test_segments_under_block_stay_in_domains() -> None:
    _fab, compiled = _nvl72()
    layout = fabric_blocks(compiled)
    gpus = {h: 4 for h in compiled.host_names}
    for h in ("gpu001", "gpu020", "gpu040"):  # one busy host in each of nvl01..nvl03
        gpus[h] = 0
    result = place_block(compiled, _free_arrays(compiled, gpus), Request(nodes=18, gpus_per_node=4, segment=18),
                         layout)
    assert sorted(result.allocation) == [f"gpu{i:03d}" for i in range(55, 73)]  # nvl04, the only whole domain


def test_a_domain_across_leaves_still_gets_a_job_that_fits_it() -> None:
    # 2 leaves x 4 hosts; domain x = gpu[003-006] straddles both leaves, y = gpu[001-002], z = gpu[007-008].
    # 16 GPUs (4 hosts of 4) fit only in x: IB-only would take a whole leaf (gpu[001-004], 96 hops); with
    # domains the plan is x, whose pairs are 2 hops within a leaf and 4 across: 2 x 16 x 2 + 4 x 16 x 4 = 320.
    fab = fat_tree(2, 4, 1)
    fab.nvlink_domains = [NvlinkDomain("y", ("gpu001", "gpu002")), NvlinkDomain("x", ("gpu003", "gpu004", "gpu005",
                                                                                     "gpu006")),
                          NvlinkDomain("z", ("gpu007", "gpu008"))]
    compiled = compile_fabric(fab)
    result = place(compiled, _free_arrays(compiled, {h: 4 for h in compiled.host_names}), Request(gpus=16))
    assert result.algorithm == "nvlink-one-domain+tree-dp" and result.optimal
    assert sorted(result.allocation) == ["gpu003", "gpu004", "gpu005", "gpu006"]
    assert result.cost.pair_hops_sum == 320
    # 24 GPUs fit no single domain: the IB-only plan.
    assert place(compiled, _free_arrays(compiled, {h: 4 for h in compiled.host_names}),
                 Request(gpus=24)).algorithm == "tree-dp"


def test_dragonfly_domains_keep_a_job_in_one_domain() -> None:
    # 2 groups x 2 routers x 4 hosts, domains of 2 hosts (nvl01 = gpu[001-002] ... nvl08 = gpu[015-016]).
    # gpu001 has 2 GPUs free, every other host 4: 8 GPUs fit one domain (two whole hosts); the tightest
    # such domain is any full one (8 free), the first in order is nvl02 = gpu[003-004] (nvl01 holds 6).
    from gpupool.fabric.generate import dragonfly

    fab = dragonfly(2, 2, 4, 1)
    add_generated_domains(fab, 2)
    compiled = compile_fabric(fab)
    assert not compiled.ultrametric
    gpus = {h: 4 for h in compiled.host_names}
    gpus["gpu001"] = 2
    result = place(compiled, _free_arrays(compiled, gpus), Request(gpus=8))
    assert result.algorithm.startswith("nvlink-one-domain+")
    assert result.allocation == {"gpu003": 4, "gpu004": 4}


def test_jobs_and_plan_documents_count_domains() -> None:
    from gpupool.app.jobs import job_row
    from gpupool.app.plan import plan_document
    from gpupool.slurm.models import JobInfo

    _fab, compiled = _nvl72()
    # A running job on gpu018 (nvl01) and gpu019 (nvl02): 2 domains, 4 x 4 x 2 hops (one leaf).
    job = JobInfo(job_id="7", state="RUNNING", nodes=("gpu018", "gpu019"), allocation={"gpu018": 4, "gpu019": 4})
    cost = job_row(compiled, job)["cost"]
    assert (cost["nvlink_domains"], cost["pair_hops_sum"]) == (2, 32)
    idle = _free_arrays(compiled, {h: 4 for h in compiled.host_names})
    placement = place(compiled, idle, Request(gpus=8))
    doc = plan_document(placement, None, Request(gpus=8), 1.0, compiled=compiled)
    assert doc["cost"]["nvlink_domains"] == 1 and len(doc["nvlink_domain_names"]) == 1
    # Without domains the documents keep their old keys only.
    plain = compile_fabric(fat_tree(2, 36, 2))
    assert "nvlink_domains" not in job_row(plain, job)["cost"]
    assert "nvlink_domain_names" not in plan_document(placement, None, Request(gpus=8), 1.0, compiled=plain)


def test_generate_cli_takes_the_domain_size(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from gpupool.cli.main import main

    out = tmp_path / "nvl.json"
    assert main(["fabric", "generate", "fat-tree", "--leaves", "2", "--hosts-per-leaf", "36", "--spines", "2",
                 "--nvlink-domain-hosts", "18", "-o", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["nvlink_domains"] == {"domains": 4, "hosts_per_domain": [18],
                                                                     "hosts_outside": 0}
    assert [len(d.hosts) for d in load_fabric(str(out)).nvlink_domains] == [18] * 4
    bad = tmp_path / "bad.json"
    assert main(["fabric", "generate", "fat-tree", "--leaves", "2", "--hosts-per-leaf", "36", "--spines", "2",
                 "--nvlink-domain-hosts", "0", "-o", str(bad)]) == 2
    assert "--nvlink-domain-hosts must be at least 1" in capsys.readouterr().err and not bad.exists()
