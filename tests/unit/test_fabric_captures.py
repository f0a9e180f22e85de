"""Capture readers beyond plain ibnetdiscover (issue 25): ibdiagnet's port labels, ibdiagnet2.lst,
ibdiagnet2.db_csv, iblinkinfo, and format detection. Expectations are worked out by hand from the
fixtures (tests/fixtures/ibdiagnet/README.md describes each one)."""

from __future__ import annotations

from collections import Counter

import pytest

from gpupool.errors import InputError
from gpupool.fabric.captures import parse_capture
from gpupool.fabric.compiled import compile_fabric
from gpupool.fabric.discover import discover
from gpupool.fabric.ibdiagnet import db_csv_table_rows
from gpupool.fabric.ibnetdiscover import parse_ibnetdiscover
from gpupool.fabric.model import Fabric
from tests.support.helpers import FIXTURES

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
    ('[' + "9" * 5000 + ']\t"H-946dae03000b0001"[1]', "port of 5000 digits is out of range"),
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


# -- the same fabric in every format ---------------------------------------------------------------

FORMATS = [
    (SPLIT, "ibnetdiscover"),
    (IBDIAG / "fat-tree-split.ibdiagnet2.lst", "ibdiagnet2.lst"),
    (IBDIAG / "fat-tree-split.ibdiagnet2.db_csv", "ibdiagnet2.db_csv"),
    (IBDIAG / "fat-tree-split.iblinkinfo", "iblinkinfo"),
    (IBDIAG / "fat-tree-split.iblinkinfo-l", "iblinkinfo"),
]


@pytest.mark.parametrize("path, fmt", FORMATS, ids=[f for _, f in FORMATS])
def test_every_format_reads_the_same_fabric(path, fmt: str) -> None:  # type: ignore[no-untyped-def]
    fab = parse_capture(path.read_text(), str(path))
    assert fab.meta["format"] == fmt
    assert fab.host_names() == [f"gpu{k:02d}" for k in range(1, 9)]
    assert hosts_per_switch(fab) == {LEAF1: ["gpu01", "gpu02", "gpu03", "gpu04"],
                                     LEAF2: ["gpu05", "gpu06", "gpu07", "gpu08"]}
    assert cables(fab) == {tuple(sorted([a, b])) + (r,) for a, b, r in SPLIT_CABLES}
    names = sorted(fab.nodes[s].name for s in fab.switch_indices())
    assert names == ["leaf-01", "leaf-02", "spine-01"]
    assert not [w for w in fab.warnings if "one-sided" in w]


def test_lst_numbers_are_hex() -> None:
    # PN:41 is port 65 and Ports:81 is 129 ports: read as decimal they would be wrong ports.
    fab = parse_capture((IBDIAG / "fat-tree-split.ibdiagnet2.lst").read_text(), "x.lst")
    leaf1 = fab.nodes[fab.index_by_id()[LEAF1]]
    assert leaf1.ports == 129 and leaf1.lid == 1
    assert fab.nodes[fab.index_by_id()["H-946dae03000b0005"]].lid == 0x69


def test_db_csv_keeps_other_tables() -> None:
    text = (IBDIAG / "fat-tree-split.ibdiagnet2.db_csv").read_text()
    fab = parse_capture(text, "x.db_csv")
    assert fab.meta["db_csv_tables"] == ["CABLE_INFO", "LINKS", "NODES", "PM_INFO", "PORTS"]
    rows = db_csv_table_rows(text, "CABLE_INFO")
    assert rows == [{"NodeGuid": "0xfc6a1c0300aa0001", "PortGuid": "0xfc6a1c0300aa0001", "PortNum": "65",
                     "Vendor": "Mellanox", "PN": "MFP7E10-N003", "SN": "MT2301FT00001", "LengthCopperOrActive": "3"}]


LST = (IBDIAG / "fat-tree-split.ibdiagnet2.lst").read_text()
CSV = (IBDIAG / "fat-tree-split.ibdiagnet2.db_csv").read_text()
LINKINFO = (IBDIAG / "fat-tree-split.iblinkinfo").read_text()
FIRST_LST = LST.splitlines()[0]


@pytest.mark.parametrize("text, message", [
    (LST.replace("LID:0065", "LID:-1", 1), r"x:1: LID: '-1' is not a hex number"),
    (LST.replace("LID:0065", "LID:", 1), r"x:1: LID: '' is not a hex number"),
    (LST.replace("NodeGUID:946dae03000b0001", "NodeGUID:946dae03000g0001", 1), r"x:1: NodeGUID: .* is not a hex"),
    (LST.replace("PN:01 } { CA", "PN:" + "9" * 5000 + " } { CA", 1), r"x:1: PN: .* is not a hex number"),
    (LST.replace("PN:01 } { CA", "PN:82 } { CA", 1), r"x:1: PN:82 is not a port of a node with Ports:81"),
    (LST.replace("SPD=100", "SPD=400", 1), r"x:1: link speed SPD=400"),
    (LST.replace("PHY=2x", "PHY=3x", 1), r"x:1: link width PHY=3x"),
    (FIRST_LST + "\n" + FIRST_LST + "\n", r"x:2: port 1 of S-fc6a1c0300aa0001 listed twice"),
    (FIRST_LST[:120] + "\n", r"x:1: malformed ibdiagnet2.lst line"),
    (LST.replace("\n", "\r\n")[:-400], r"x:11: malformed ibdiagnet2.lst line"),
])
def test_lst_hostile(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message) as info:
        parse_capture(text, "x")
    assert "\n" not in info.value.message


@pytest.mark.parametrize("text, message", [
    (CSV.replace("END_LINKS\n", ""), r"x:\d+: 'START_CABLE_INFO' inside table LINKS"),
    (CSV[:CSV.index("END_LINKS")], r"x: table LINKS has no END_LINKS \(truncated file\?\)"),
    (CSV.replace("0x946dae03000b0001,1,101,", "0x946dae03000b0001,1,-101,", 1), r"x:\d+: LID '-101' is not a number"),
    (CSV.replace("0x946dae03000b0001,1,101,", "0x946dae03000b0001,1,", 1), r"x:\d+: 8 cells, but table PORTS has 9"),
    (CSV.replace(",0x946dae03000b0001,1\n", ",0xZZ6dae03000b0001,1\n", 1), r"x:\d+: NodeGuid2 .* is not a GUID"),
    (CSV.replace("0x946dae03000b0001,0x946dae03000b0001,0x946dae03000b0001,4129",
                 "0x946dae03000b0001,946dae03000b0001xx,0x946dae03000b0001,4129", 1), r"x:\d+: NodeGUID .* is not a GUID"),
    (CSV.replace('"gpu01 mlx5_0",1,1', '"gpu01 mlx5_0",' + "1" * 2000 + ",1", 1), r"x:\d+: NumPorts .* is not a number"),
    (CSV.replace('"gpu01 mlx5_0",1,1', '"gpu01 mlx5_0",' + "1" * 5000 + ",1", 1), r"x:\d+: a cell is longer"),
    (CSV.replace('"gpu01 mlx5_0",1,1', '"gpu01 mlx5_0",1,7', 1), r"x:\d+: NodeType '7' is not 1"),
    (CSV.replace("START_LINKS", "START_LINKZ").replace("END_LINKS", "END_LINKZ"), r"x: this ibdiagnet2.db_csv has no LINKS table, so no cables: give ibdiagnet2.lst"),
    (CSV.replace("0xfc6a1c0300aa0001,65,0xfc", "0xfc6a1c0300aa0001,130,0xfc", 1), r"x:\d+: port 130 is not a port"),
])
def test_db_csv_hostile(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message) as info:
        parse_capture(text, "x")
    assert "\n" not in info.value.message


@pytest.mark.parametrize("text, message", [
    (LINKINFO.replace("      1   65[  ]", "    999   65[  ]", 1), r"x:\d+: .* is cabled to LID 999, which no node"),
    (LINKINFO.replace("Gbps Active", "Gbps Actve", 1).replace("106.25", "1o6.25", 1), r"x:2: cannot read"),
    (LINKINFO.replace("          3    1[  ]", "          3    " + "1" * 5000 + "[  ]", 1), r"x:2: malformed iblinkinfo"),
    (LINKINFO.replace("0x946dae03000b0001 ", "", 1), r"x:\d+: a CA port line without its port GUID"),
    ('0x0002c902004818e8 "Infiniscale-IV Mellanox Technologies"      2    1[  ] ==( 4X 2.5 Gbps Active/  LinkUp)==>'
     '       4    1[  ] "node-1 HCA-1" ( )\n', r"x:1: malformed `iblinkinfo -l` line"),
])
def test_iblinkinfo_hostile(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message) as info:
        parse_capture(text, "x")
    assert "\n" not in info.value.message


@pytest.mark.parametrize("text, message", [
    ('Switch\t: 0x0002c902004818e8 ports 36 "MF0;leaf:MQM8700/U1" base port 0 lid 3 lmc 0\n', "a switch list"),
    ('Ca\t: 0x0002c9030002fb04 ports 1 "node01 mlx5_0"\n', "a CA list"),
    ("CA 'mlx5_0'\n\tCA type: MT4129\n", "`ibstat` output"),
    ('{"version": 1, "nodes": []}\n', "a JSON document"),
    ("SwitchName=s1 Nodes=gpu[1-4]\n", "a Slurm topology.conf"),
    ("", "empty file"),
    ("hello world\nsecond line\n", r"x:1: not a fabric capture \(first line 'hello world'\)"),
    ("\n\nGUID,port,lid\n0x1,1,2\n", r"x:3: CSV without ibdiagnet's START_/END_ tables"),
    ("\n\n", "empty file"),
])
def test_not_a_topology(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_capture(text, "x")


# -- several subnets, one model -------------------------------------------------------------------

def plane2(hosts: list[int]) -> str:
    """A second subnet written by hand: one switch, each listed host's mlx5_1 on port k."""
    sw = "S-aaaa000000000001"
    lines = [f'Switch\t36 "{sw}"\t\t# "MF0;plane2-leaf:MQM8700/U1" enhanced port 0 lid 1 lmc 0']
    lines += [f'[{k}]\t"H-bbbb0000000000{k:02x}"[1]\t\t# "gpu{k:02d} mlx5_1" lid {10 + k} 4xHDR' for k in hosts]
    for k in hosts:
        lines += ["", f'Ca\t1 "H-bbbb0000000000{k:02x}"\t\t# "gpu{k:02d} mlx5_1"',
                  f'[1]\t"{sw}"[{k}]\t\t# lid {10 + k} lmc 0 "MF0;plane2-leaf:MQM8700/U1" lid 1 4xHDR']
    return "\n".join(lines) + "\n"


def test_two_subnets_join_hosts_by_name(tmp_path) -> None:  # type: ignore[no-untyped-def]
    p2 = tmp_path / "plane2.out"
    p2.write_text(plane2(list(range(1, 7))))  # gpu07, gpu08 have no HCA on the second subnet
    fab = discover(capture_files=[str(SPLIT), str(p2)])
    hosts = fab.hosts()
    assert list(hosts) == [f"gpu{k:02d}" for k in range(1, 9)]
    for k in range(1, 7):
        assert sorted(fab.nodes[i].name for i in hosts[f"gpu{k:02d}"]) == [f"gpu{k:02d}/mlx5_0", f"gpu{k:02d}/mlx5_1"]
        assert sorted(fab.nodes[i].rail for i in hosts[f"gpu{k:02d}"]) == [0, 1]
    assert [fab.nodes[i].rail for i in hosts["gpu07"]] == [0]
    assert len(fab.links) == 12 + 6
    partial = [w for w in fab.warnings if w.startswith("host-partial-subnets:")]
    assert len(partial) == 1 and "gpu[07-08]" in partial[0] and "plane2.out" in partial[0]
    compiled = compile_fabric(fab)
    assert compiled.n_hosts == 8 and compiled.n_switches == 4


def test_same_subnet_twice_is_refused() -> None:
    with pytest.raises(InputError, match="is also in"):
        discover(capture_files=[str(SPLIT), str(SPLIT)])


def _audit_findings(paths: list[str]) -> list[dict]:  # type: ignore[type-arg]
    import contextlib
    import io
    import json

    from gpupool.cli.context import AppContext
    from gpupool.cli.main import main

    args = ["--json", "fabric", "audit"]
    for path in paths:
        args += ["--ibnetdiscover", path]
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        main(args, obj=AppContext())
    return json.loads(out.getvalue())["findings"]


def test_split_ports_run_half_the_lanes_by_design(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # Beside the second subnet's 4x HDR host links, the 2x split-port links are not degraded...
    p2 = tmp_path / "plane2.out"
    p2.write_text(plane2(list(range(1, 9))))
    findings = _audit_findings([str(SPLIT), str(p2)])
    assert not [f for f in findings if f["check"] == "link-degraded"], findings
    # ...but a split port at 1x is.
    slow = tmp_path / "slow.out"
    slow.write_text(SPLIT.read_text().replace('"gpu01 mlx5_0" lid 101 2xNDR', '"gpu01 mlx5_0" lid 101 1xNDR')
                    .replace('"MF0;leaf-01:MQM9700/U1" lid 1 2xNDR\n', '"MF0;leaf-01:MQM9700/U1" lid 1 1xNDR\n', 1))
    degraded = [f for f in _audit_findings([str(slow), str(p2)]) if f["check"] == "link-degraded"]
    assert len(degraded) == 1 and "gpu01/mlx5_0" in degraded[0]["message"], degraded


def test_db_csv_counters_feed_the_audit() -> None:
    # PM_INFO (hand-written): leaf-01 port 65 has 250 symbol errors (threshold 10, x10 = critical);
    # the spine's 3 and leaf-01's one link-downed stay under their thresholds.
    findings = _audit_findings([str(IBDIAG / "fat-tree-split.ibdiagnet2.db_csv")])
    assert [(f["check"], f["severity"], f["subject"], f["details"]["counters"]) for f in findings] == \
        [("port-errors", "critical", "leaf-01 port 65", {"SymbolErrorCounter": 250})]


def test_db_csv_bad_counter_is_one_line() -> None:
    from gpupool.audit.counters import parse_counters

    with pytest.raises(InputError, match=r"x: PM_INFO row 2: symbol_error_counter '-4' is not a counter value"):
        parse_counters(CSV.replace("67,0,0,0,0,0,5,6", "67,-4,0,0,0,0,5,6"), "x")


def test_two_subnets_with_a_host_filter(tmp_path) -> None:  # type: ignore[no-untyped-def]
    p2 = tmp_path / "plane2.out"
    p2.write_text(plane2([1, 2, 3]))
    fab = discover(capture_files=[str(SPLIT), str(p2)], hosts=["gpu01", "gpu07"])
    assert fab.host_names() == ["gpu01", "gpu07"]
    assert sorted(fab.nodes[i].name for i in fab.hosts()["gpu01"]) == ["gpu01/mlx5_0", "gpu01/mlx5_1"]
    with pytest.raises(InputError, match="hosts not in the fabric: gpu99"):
        discover(capture_files=[str(SPLIT), str(p2)], hosts=["gpu01", "gpu99"])


def test_new_warnings_are_known_checks(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from gpupool.audit.checks import CHECK_IDS

    p2 = tmp_path / "plane2.out"
    p2.write_text(plane2([1, 2]))
    lst = tmp_path / "init.lst"
    lst.write_text(LST.replace("LOG=ACT", "LOG=INI", 1))
    findings = _audit_findings([str(lst), str(p2)])
    checks = {f["check"] for f in findings}
    assert {"host-partial-subnets", "link-not-active"} <= checks <= CHECK_IDS
    inactive = [f for f in findings if f["check"] == "link-not-active"]
    assert len(inactive) == 1 and "init.lst:1" in inactive[0]["message"] and "is INI" in inactive[0]["message"]


def test_iblinkinfo_layouts_seen_in_real_output() -> None:
    # Layout details of real iblinkinfo output (infiniband-diags 1.6 to 2.x): `Active/ LinkUp` with one
    # space, a four-space CA indent, `(FDR10)` after the rate, and a QDR lane rate of 10.0.
    text = ('CA: n1 HCA-1:\n'
            '    0x0002c903000d81f9      4    1[  ] ==( 4X          10.0 Gbps Active/ LinkUp)==>       2    3[  ] '
            '"MF0;sw:IS5030/U1" ( )\n'
            'CA: n2 mlx4_0:\n'
            '      0x0002c903004d14a5    223    1[  ] ==( 4X  10.0 Gbps (FDR10) Active/  LinkUp)==>     2    4[  ] '
            '"MF0;sw:IS5030/U1" (Could be 14.0625 Gbps)\n'
            'Switch: 0x0002c9020046c588 MF0;sw:IS5030/U1:\n'
            '           2    3[  ] ==( 4X          10.0 Gbps Active/  LinkUp)==>       4    1[  ] "n1 HCA-1" ( )\n'
            '           2    4[  ] ==( 4X  10.0 Gbps (FDR10) Active/  LinkUp)==>     223    1[  ] "n2 mlx4_0" ( )\n'
            '           2    5[  ] ==(                Down/ Polling)==>             [  ] "" ( )\n')
    fab = parse_capture(text, "real-layout")
    assert fab.meta["format"] == "iblinkinfo" and fab.host_names() == ["n1", "n2"]
    assert cables(fab) == {(("H-0002c903000d81f9", 1), ("S-0002c9020046c588", 3), "4xQDR"),
                           (("H-0002c903004d14a5", 1), ("S-0002c9020046c588", 4), "4xFDR10")}
    assert fab.nodes[fab.index_by_id()["S-0002c9020046c588"]].ports == 5


def test_lst_line_without_descriptions() -> None:
    # Older ibdiagnet writes no `{description}`; Ports:24 is 36 ports and PN:14 is port 20 (hex).
    line = ("{ CA Ports:02 SystemGUID:0002c90300aa0003 NodeGUID:0002c90300aa0000 PortGUID:0002c90300aa0001 "
            "VenID:000002c9 DevID:1003 Rev:00000000  LID:0005 PN:01 } { SW Ports:24 SystemGUID:0002c90300bb0000 "
            "NodeGUID:0002c90300bb0000 PortGUID:0002c90300bb0000 VenID:000002c9 DevID:c738 Rev:000000a1  LID:0002 "
            "PN:14 } PHY=4x LOG=ACT SPD=10\n")
    fab = parse_capture(line, "old.lst")
    assert cables(fab) == {(("H-0002c90300aa0000", 1), ("S-0002c90300bb0000", 20), "4xQDR")}
    switch = fab.nodes[fab.index_by_id()["S-0002c90300bb0000"]]
    assert switch.ports == 36 and switch.lid == 2 and switch.devid == "0xc738"
    assert fab.nodes[fab.index_by_id()["H-0002c90300aa0000"]].lid == 5 and fab.host_names() == []


def test_lst_with_unknown_radix_and_rate() -> None:
    # Tools that write .lst from other sources give Ports:00 and SPD=?: the radix is the highest port
    # seen, the rate unknown (the model's default), and the cable is still read.
    end = "{{ {k} Ports:00 SystemGUID:{g} NodeGUID:{g} PortGUID:{g} VenID:0 DevID:0 Rev:0 {{{d}}} LID:0 PN:{p} }}"
    line = (end.format(k="SW", g="00000000000000a1", d="MF0;leaf-1:MQM9700/U1", p="1c") + " "
            + end.format(k="CA", g="00000000000000c1", d="n1 mlx5_0", p="1") + " PHY=4x LOG=ACT SPD=?\n")
    fab = parse_capture(line, "ufm.lst")
    assert fab.host_names() == ["n1"]
    assert fab.nodes[fab.index_by_id()["S-00000000000000a1"]].ports == 28
    assert len(fab.links) == 1 and {fab.links[0].a_port, fab.links[0].b_port} == {28, 1}


def test_iblinkinfo_line_mode_switches_only() -> None:
    # `iblinkinfo -l --switches-only`: the CAs list no line of their own; their ends come from the
    # switches' lines, so every cable is still two-sided.
    text = (IBDIAG / "fat-tree-split.iblinkinfo-l").read_text()
    switches_only = "\n".join(line for line in text.splitlines() if "mlx5_0\"      1" not in line
                              and not line.startswith("0x946dae")) + "\n"
    assert switches_only.count("\n") < text.count("\n")
    fab = parse_capture(switches_only, "sw-only")
    assert cables(fab) == {tuple(sorted([a, b])) + (r,) for a, b, r in SPLIT_CABLES}
    assert not [w for w in fab.warnings if "one-sided" in w]
    assert fab.host_names() == [f"gpu{k:02d}" for k in range(1, 9)]
