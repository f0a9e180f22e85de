"""Capture readers beyond plain ibnetdiscover (issue 25): ibdiagnet's port labels, ibdiagnet2.lst,
ibdiagnet2.db_csv, iblinkinfo, and format detection. Expectations are worked out by hand from the
fixtures (tests/fixtures/ibdiagnet/README.md describes each one)."""

from __future__ import annotations

from collections import Counter

import pytest

from gpupool.errors import InputError
from gpupool.fabric.compiled import compile_fabric
from gpupool.fabric.ibnetdiscover import parse_ibnetdiscover
from gpupool.fabric.model import Fabric
from tests.helpers import FIXTURES

IBDIAG = FIXTURES / "ibdiagnet"
SPLIT = IBDIAG / "quantum2-split.ibdiagnet2.ibnetdiscover"
LEAF1, LEAF2, SPINE = "S-fc6a1c0300aa0001", "S-b8599f0300bb0002", "S-fc6a1c0300cc0003"


def hosts_per_switch(fab: Fabric) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for link in fab.links:
        for s, h in ((link.a, link.b), (link.b, link.a)):
            if fab.nodes[s].type == "switch" and fab.nodes[h].host:
                out.setdefault(fab.nodes[s].id, []).append(fab.nodes[h].host)
    return {k: sorted(v) for k, v in out.items()}


def cables(fab: Fabric) -> set[tuple[tuple[str, int], tuple[str, int], str]]:
    return {tuple(sorted([(fab.nodes[lk.a].id, lk.a_port), (fab.nodes[lk.b].id, lk.b_port)]))
            + (f"{lk.width}{lk.speed}",) for lk in fab.links}  # type: ignore[misc]


# Hand-worked from the fixture: leaf-01 (Quantum-2) has gpu01-04 on split ports 1-4 (two HCAs per
# cage, 2xNDR) and two 4xNDR uplinks; leaf-02 (Quantum, split mode) has gpu05-08 at 2xHDR and two
# 4xHDR uplinks; the spine has the four uplinks.
SPLIT_CABLES = {
    *(((LEAF1, k), (f"H-946dae03000b{k:04x}", 1), "2xNDR") for k in range(1, 5)),
    *(((LEAF2, k), (f"H-946dae03000b{k + 4:04x}", 1), "2xHDR") for k in range(1, 5)),
    ((LEAF1, 65), (SPINE, 1), "4xNDR"), ((LEAF1, 67), (SPINE, 2), "4xNDR"),
    ((LEAF2, 79), (SPINE, 3), "4xHDR"), ((LEAF2, 80), (SPINE, 4), "4xHDR"),
}


def test_quantum2_split_port_labels() -> None:
    fab = parse_ibnetdiscover(SPLIT.read_text(), str(SPLIT))
    assert len(fab.switch_indices()) == 3
    assert fab.host_names() == [f"gpu{k:02d}" for k in range(1, 9)]
    assert hosts_per_switch(fab) == {LEAF1: ["gpu01", "gpu02", "gpu03", "gpu04"],
                                     LEAF2: ["gpu05", "gpu06", "gpu07", "gpu08"]}
    assert cables(fab) == {tuple(sorted([a, b])) + (r,) for a, b, r in SPLIT_CABLES}
    assert Counter(f"{lk.width}{lk.speed}" for lk in fab.links) == \
        {"2xNDR": 4, "2xHDR": 4, "4xNDR": 2, "4xHDR": 2}
    # Two HCAs behind one cage are two ports, each with its own label.
    labels = fab.meta["port_labels"]
    assert labels[f"{LEAF1}:1"] == "1/1/1/1" and labels[f"{LEAF1}:2"] == "1/1/1/2"
    assert labels[f"{LEAF2}:3"] == "2/1" and labels[f"{SPINE}:4"] == "1/2/2"
    assert f"{LEAF2}:79" not in labels  # no label written for that port
    compiled = compile_fabric(fab)
    assert compiled.kind == "fat-tree"
    levels = {compiled.switch_names[s]: int(compiled.switch_level[s]) for s in range(compiled.n_switches)}
    assert levels == {"leaf-01": 1, "leaf-02": 1, "spine-01": 2}


@pytest.mark.parametrize("line, message", [
    ('[1](1/1/1/1/1)\t"H-946dae03000b0001"[1]', "malformed port label"),
    ('[1](1/x/1)\t"H-946dae03000b0001"[1]', "malformed port label"),
    ('[1](1//1)\t"H-946dae03000b0001"[1]', "malformed port label"),
    ('[1](1/1/1/1)\t"H-946dae03000b0001"[1](zz)', "malformed port line"),
    ('[' + "9" * 5000 + ']\t"H-946dae03000b0001"[1]', "malformed port line"),
])
def test_bad_port_labels_are_one_line_errors(line: str, message: str) -> None:
    text = SPLIT.read_text().replace('[1](1/1/1/1)\t"H-946dae03000b0001"[1](946dae03000b0001) ', line, 1)
    with pytest.raises(InputError, match=message) as info:
        parse_ibnetdiscover(text, "cap.out")
    assert "cap.out:" in info.value.message and "\n" not in info.value.message


def test_port_labels_with_crlf() -> None:
    text = SPLIT.read_text().replace("\n", "\r\n")
    fab = parse_ibnetdiscover(text, "crlf.out")
    assert cables(fab) == {tuple(sorted([a, b])) + (r,) for a, b, r in SPLIT_CABLES}
