"""Every real capture, read twice: by gpupool and by the independent reader in tests/support/oracles.py.

Host sets, each host's number of switches, leaf switch counts and hop distances for a seeded
sample of host pairs must agree with docs/contract.md's definitions as the oracle computes them.
"""

from __future__ import annotations

import random
from functools import lru_cache

import pytest

from gpupool.fabric.compiled import UNREACHABLE, CompiledFabric, compile_fabric
from gpupool.fabric.export import summary
from gpupool.fabric.ibnetdiscover import parse_ibnetdiscover
from tests.support.helpers import FIXTURES
from tests.support.oracles import HostGraph, read_capture

CAPTURES = ["dgx-superpod-ndr.out", "selene-compute-hdr.out", "ufm-lab-small-hdr-fdr.out"]


@lru_cache(maxsize=4)
def _both(name: str) -> tuple[HostGraph, CompiledFabric, dict[str, object]]:
    path = FIXTURES / "ibnetdiscover" / name
    fabric = parse_ibnetdiscover(path.read_text(), str(path))
    compiled = compile_fabric(fabric)
    return read_capture(str(path)), compiled, summary(fabric, compiled)


def test_the_oracle_reads_the_documented_sizes() -> None:
    # Figures stated in tests/fixtures/ibnetdiscover/README.md, independent of both readers.
    selene = read_capture(str(FIXTURES / "ibnetdiscover" / "selene-compute-hdr.out"))
    assert len(selene.hosts) == 469
    rails = sorted(len(s) for s in selene.host_switches.values())
    assert rails.count(8) == 458 and rails.count(1) == 11
    assert len(selene.leaf_switches()) == 204  # 200 rail leaves LG*, 4 management leaves MLG* (one hostless)
    assert {len(selene.host_switches[h]) for h in selene.service_hosts()} == {1} and len(selene.service_hosts()) == 11
    assert len(selene.switch_links) == 666
    lab = read_capture(str(FIXTURES / "ibnetdiscover" / "ufm-lab-small-hdr-fdr.out"))
    assert len(lab.switch_links) == 2
    assert sorted(len(s) for s in lab.host_switches.values()).count(2) >= 1  # the 4-HCA host on both switches


@pytest.mark.parametrize("name", CAPTURES)
def test_hosts_and_their_switches(name: str) -> None:
    oracle, compiled, doc = _both(name)
    # `fabric show` counts every host; placement and topology.conf see the compute hosts only.
    compute = oracle.compute()
    assert doc["hosts"] == len(oracle.hosts)
    assert doc["host_classes"] == {"compute": len(compute.hosts), "service": len(oracle.service_hosts())}
    assert sorted(compiled.host_names) == compute.hosts
    for i, host in enumerate(compiled.host_names):
        assert compiled.leaves_of(i).size == len(oracle.host_switches[host]), host


@pytest.mark.parametrize("name", CAPTURES)
def test_leaf_switch_counts(name: str) -> None:
    oracle, compiled, doc = _both(name)
    assert doc["leaf_switches"] == len(oracle.leaf_switches()) == doc["levels"]["1"]  # type: ignore[index]
    compute = oracle.compute()
    rng = random.Random(f"leaves-{name}")
    index = compiled.host_index()
    for _ in range(60):
        hosts = rng.sample(compute.hosts, rng.randint(1, min(16, len(compute.hosts))))
        assert compiled.leaf_switch_count([index[h] for h in hosts]) == compute.leaf_count(hosts), hosts


@pytest.mark.parametrize("name", CAPTURES)
def test_hop_distances_for_sampled_host_pairs(name: str) -> None:
    oracle, compiled, _doc = _both(name)
    compute = oracle.compute()
    index = compiled.host_index()
    rng = random.Random(f"pairs-{name}")
    hosts = compute.hosts
    if len(hosts) ** 2 <= 400:
        pairs = [(a, b) for a in hosts for b in hosts]
    else:  # 20 sources x 20 targets each: 400 pairs, 20 BFS runs
        pairs = [(a, b) for a in rng.sample(hosts, 20) for b in rng.sample(hosts, 20)]
    distances = set()
    for a, b in pairs:
        expected = compute.distance(a, b)
        distances.add(expected)
        assert compiled.host_distance(index[a], index[b]) == (UNREACHABLE if expected is None else expected), (a, b)
    assert len(distances) >= 2  # the sample spans more than one distance


# A hand-written capture: sw1 and sw2 cabled twice (one edge), sw2 to itself (loopback);
# "a" has an HCA on each switch (one vertex, two switches); "b" on sw1, "c" on sw2; an aggregation
# node and a factory-default HCA hang off sw2 and are not hosts.
HAND_CAPTURE = """\
Switch	8 "S-1"		# "MF0;sw1:MQM8700/U1" enhanced port 0 lid 1 lmc 0
[1]	"S-2"[1]		# "MF0;sw2:MQM8700/U1" lid 2 4xHDR
[2]	"S-2"[2]		# "MF0;sw2:MQM8700/U1" lid 2 4xHDR
[3]	"H-a0"[1](a0) 		# "a mlx5_0" lid 3 4xHDR
[4]	"H-b0"[1](b0) 		# "b HCA-1" lid 4 4xHDR

Switch	8 "S-2"		# "MF0;sw2:MQM8700/U1" enhanced port 0 lid 2 lmc 0
[1]	"S-1"[1]		# "MF0;sw1:MQM8700/U1" lid 1 4xHDR
[2]	"S-1"[2]		# "MF0;sw1:MQM8700/U1" lid 1 4xHDR
[3]	"H-a1"[1](a1) 		# "a mlx5_1" lid 5 4xHDR
[4]	"H-c0"[1](c0) 		# "c mlx5_0" lid 6 4xHDR
[5]	"H-ac"[1](ac) 		# "Mellanox Technologies Aggregation Node" lid 7 4xHDR
[6]	"H-dd"[1](dd) 		# "MT4129 ConnectX7   Mellanox Technologies" lid 8 4xHDR
[7]	"S-2"[8]		# "MF0;sw2:MQM8700/U1" lid 2 4xHDR
[8]	"S-2"[7]		# "MF0;sw2:MQM8700/U1" lid 2 4xHDR

Ca	2 "H-a0"		# "a mlx5_0"
[1](a0) 	"S-1"[3]		# lid 3 lmc 0 "MF0;sw1:MQM8700/U1" lid 1 4xHDR

Ca	1 "H-a1"		# "a mlx5_1"
[1](a1) 	"S-2"[3]		# lid 5 lmc 0 "MF0;sw2:MQM8700/U1" lid 2 4xHDR

Ca	1 "H-b0"		# "b HCA-1"
[1](b0) 	"S-1"[4]		# lid 4 lmc 0 "MF0;sw1:MQM8700/U1" lid 1 4xHDR

Ca	1 "H-c0"		# "c mlx5_0"
[1](c0) 	"S-2"[4]		# lid 6 lmc 0 "MF0;sw2:MQM8700/U1" lid 2 4xHDR

Ca	1 "H-dd"		# "MT4129 ConnectX7   Mellanox Technologies"
[1](dd) 	"S-2"[6]		# lid 8 lmc 0 "MF0;sw2:MQM8700/U1" lid 2 4xHDR

Ca	1 "H-ac"		# "Mellanox Technologies Aggregation Node"
[1](ac) 	"S-2"[5]		# lid 7 lmc 0 "MF0;sw2:MQM8700/U1" lid 2 4xHDR
"""


def test_the_oracle_on_a_hand_written_capture() -> None:
    from tests.support.oracles import read_ibnetdiscover

    graph = read_ibnetdiscover(HAND_CAPTURE)
    assert graph.hosts == ["a", "b", "c"]
    assert graph.host_switches == {"a": {"S-1", "S-2"}, "b": {"S-1"}, "c": {"S-2"}}
    assert graph.leaf_switches() == {"S-1", "S-2"}
    assert [[graph.distance(x, y) for y in "abc"] for x in "abc"] == [[0, 2, 2], [2, 0, 3], [2, 3, 0]]
    assert graph.leaf_count(["b", "c"]) == 2 and graph.leaf_count(["b"]) == 1
    # Two host-bearing switches cabled together, neither above the other: no service host.
    assert graph.service_hosts() == set() and graph.compute().hosts == ["a", "b", "c"]


def test_the_oracle_on_the_ibsim_capture_of_a_known_fabric() -> None:
    # fat_tree(2, 2, 2) (README.md here): gpu001-002 on leaf01, gpu003-004 on leaf02, two spines.
    for variant in ("default", "grouped", "show"):
        graph = read_capture(str(FIXTURES / "ibnetdiscover" / f"ibsim-fat-tree-2x2x2.{variant}.out"))
        assert graph.hosts == ["gpu001", "gpu002", "gpu003", "gpu004"]
        assert [[graph.distance(a, b) for b in graph.hosts] for a in graph.hosts] == [
            [0, 2, 4, 4], [2, 0, 4, 4], [4, 4, 0, 2], [4, 4, 2, 0]]


def test_gpupool_agrees_on_the_hand_written_capture() -> None:
    compiled = compile_fabric(parse_ibnetdiscover(HAND_CAPTURE, "hand"))
    assert compiled.host_names == ["a", "b", "c"]
    assert [[compiled.host_distance(x, y) for y in range(3)] for x in range(3)] == [[0, 2, 2], [2, 0, 3], [2, 3, 0]]
    assert compiled.leaf_switch_count([1, 2]) == 2
