"""NVIDIA Selene's compute fabric (tests/fixtures/ibnetdiscover/selene-compute-hdr.out): the model's
levels, kind and host counts against numbers derived by hand from the raw capture.

How the literals were derived (shell over the raw file, not gpupool):
- `grep -c '^Switch'` = 666; the names in `# "MF0;NAME:MQM8700/U1"` with their trailing digits
  and dashes cut (`sed 's/[0-9-]*$//' | sort | uniq -c`): 200 LG, 4 MLG, 320 CSPINE, 140 CCORE, 2 MSPINE.
- port lines between switch records, by name prefix of both ends: LG--CSPINE 3987 cables,
  CSPINE--CCORE 4464, MLG--MSPINE 28, MSPINE--CCORE 28, MLG--CSPINE 4; no LG--LG, CSPINE--CSPINE,
  CCORE--CCORE or LG--CCORE cable. So the Clos is LG/MLG (1) - CSPINE/MSPINE (2) - CCORE (3).
- `MLG01-05`'s record has 14 port lines to `MSPINE4-01` and one to its aggregation node, nothing else:
  a leaf with no host (not a level-5 switch).
- `grep '^Ca' | grep -v 'Aggregation Node'` = 3675 HCAs; their first words give 469 hosts:
  458 `luna-*` with 8 HCAs each and 11 `selene-*` (cache, login, slurm, swift, ufm) with one.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gpupool.fabric.compiled import compile_fabric
from gpupool.fabric.export import summary
from gpupool.fabric.ibnetdiscover import parse_ibnetdiscover

SELENE = Path(__file__).resolve().parents[1] / "fixtures" / "ibnetdiscover" / "selene-compute-hdr.out"
PREFIX_LEVEL = {"LG": 1, "MLG": 1, "CSPINE": 2, "MSPINE": 2, "CCORE": 3}


@pytest.fixture(scope="module")
def model():  # type: ignore[no-untyped-def]
    fabric = parse_ibnetdiscover(SELENE.read_text(), str(SELENE))
    return fabric, compile_fabric(fabric)


def test_selene_levels_kind_and_counts(model) -> None:  # type: ignore[no-untyped-def]
    fabric, compiled = model
    doc = summary(fabric, compiled)
    assert doc["kind"] == "fat-tree"
    assert doc["switches"] == 666
    assert doc["hosts"] == 469
    assert doc["links"] == 3987 + 4464 + 28 + 28 + 4 + 3675 + 666  # switch cables + HCA cables + SHARP nodes
    assert doc["levels"] == {"1": 204, "2": 322, "3": 140}


def test_every_selene_switch_sits_at_the_level_of_its_name(model) -> None:  # type: ignore[no-untyped-def]
    fabric, compiled = model
    wrong = []
    for s, node in enumerate(compiled.switch_node.tolist()):
        name = fabric.nodes[node].name
        prefix = name.rstrip("0123456789-")
        if PREFIX_LEVEL[prefix] != int(compiled.switch_level[s]):
            wrong.append((name, int(compiled.switch_level[s])))
    assert wrong == []


def test_selene_service_hosts_are_the_eleven_single_hca_hosts(model) -> None:  # type: ignore[no-untyped-def]
    fabric, compiled = model
    service = sorted({n.host for n in fabric.nodes if n.role == "service"})
    # The 11 `selene-*` hosts of the raw file (first words of the Ca descriptions), each with one HCA
    # on a management leaf MLG01-01/02/04 whose other hosts are single-HCA too.
    assert service == ["selene-cache-01", "selene-cache-02", "selene-cache-03", "selene-cache-04",
                       "selene-login-01", "selene-login-02", "selene-slurm-01", "selene-slurm-02",
                       "selene-swift-01", "selene-ufm-c-01", "selene-ufm-c-02"]
    assert compiled.n_hosts == 458
    assert all(h.startswith("luna-") for h in compiled.host_names)


GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "selene.topology.conf"


def test_selene_topology_conf_matches_its_reviewed_golden_line_by_line(model) -> None:  # type: ignore[no-untyped-def]
    """The golden was reviewed against the capture; this test re-checks its claims with a raw reader,
    then holds the export to it. A missing golden fails (it is never written here)."""
    import re
    from collections import defaultdict

    from ClusterShell.NodeSet import NodeSet

    from gpupool.fabric.export import export_slurm_tree

    assert GOLDEN.exists(), f"{GOLDEN} is missing"
    golden = GOLDEN.read_text().splitlines()

    # Raw reader: switch names by id, host of each HCA, switch each HCA and switch port line reaches.
    switch_name: dict[str, str] = {}
    hca_host: dict[str, str] = {}
    cables: dict[str, set[str]] = defaultdict(set)
    current = None
    for line in SELENE.read_text().splitlines():
        if m := re.match(r'^(Switch|Ca)\s+\d+\s+"([^"]+)"\s+#\s+"([^"]*)"', line):
            current = m.group(2)
            if m.group(1) == "Switch":
                switch_name[current] = m.group(3).removeprefix("MF0;").split(":")[0]
            elif "Aggregation" not in m.group(3):
                hca_host[current] = m.group(3).split()[0]
        elif (m := re.match(r'^\[\d+\]\S*\s+"([^"]+)"\[\d+\]', line)) and current:
            cables[current].add(m.group(1))
    host_leaves: dict[str, set[str]] = defaultdict(set)
    for hca, host in hca_host.items():
        host_leaves[host] |= {switch_name[s] for s in cables[hca] if s in switch_name}
    named_cables = {(switch_name[a], switch_name[b]) for a in switch_name for b in cables[a] if b in switch_name}

    assert golden[0].startswith("# topology.conf")
    seen: dict[str, int] = defaultdict(int)
    children: dict[str, list[str]] = {}
    for line in golden[1:]:
        key, value = line.split(" ")
        name = key.removeprefix("SwitchName=")
        if value.startswith("Nodes="):
            su = re.fullmatch(r"LG(\d+)-01", name)
            assert su, line
            for host in NodeSet(value.removeprefix("Nodes=")):
                seen[host] += 1
                # All 8 rails of this DGX are on the rail leaves LG<su>-01..08 of this leaf's unit.
                assert host_leaves[host] == {f"LG{su.group(1)}-0{r}" for r in range(1, 9)}, (host, line)
        else:
            children[name] = list(NodeSet(value.removeprefix("Switches=")))
    luna = {h for h in host_leaves if h.startswith("luna-")}
    assert len(luna) == 458
    assert set(seen) == luna and set(seen.values()) == {1}  # every compute host under exactly one leaf
    all_children = {c for kids in children.values() for c in kids}
    roots = [n for n in children if n not in all_children]
    assert roots == ["CCORE1-001"]  # the core is the top, not a management leaf or spine
    for parent, kids in children.items():
        for kid in kids:
            assert (parent, kid) in named_cables or parent == "CCORE1-001", (parent, kid)
    assert export_slurm_tree(model[1]).splitlines() == golden
