"""ibnetdiscover parser: table-driven cases, the real DGX fixture, and bad input."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpupool.errors import InputError
from gpupool.fabric.ibnetdiscover import host_from_description, parse_ibnetdiscover
from gpupool.fabric.model import ROLE_AGGREGATION, ROLE_EXCLUDED, ROLE_HCA, ROLE_UNNAMED
from tests.support.helpers import DGX_FIXTURE, TRUNCATED_FIXTURE

SMALL = '''\
vendid=0x2c9
devid=0xd2f2
sysimgguid=0x1000000000000001
switchguid=0x1000000000000001(1000000000000001)
Switch\t8 "S-1000000000000001"\t\t# "MF0;LEAF-01:MQM9701/U1" enhanced port 0 lid 5 lmc 0
[1]\t"H-2000000000000001"[1](2000000000000001) \t\t# "node01 mlx5_0" lid 10 4xNDR
[2]\t"H-2000000000000002"[1](2000000000000002) \t\t# "node02 mlx5_0" lid 11 4xHDR
[3]\t"H-2000000000000003"[1](2000000000000003) \t\t# "MT4129 ConnectX7   Mellanox Technologies" lid 12 4xNDR
[8]\t"H-2000000000000004"[1](2000000000000004) \t\t# "Mellanox Technologies Aggregation Node" lid 13 4xNDR

vendid=0x2c9
caguid=0x2000000000000001
Ca\t1 "H-2000000000000001"\t\t# "node01 mlx5_0"
[1](2000000000000001) \t"S-1000000000000001"[1]\t\t# lid 10 lmc 0 "MF0;LEAF-01:MQM9701/U1" lid 5 4xNDR

Ca\t1 "H-2000000000000002"\t\t# "node02 mlx5_0"
[1](2000000000000002) \t"S-1000000000000001"[2]\t\t# lid 11 lmc 0 "MF0;LEAF-01:MQM9701/U1" lid 5 4xHDR

Ca\t1 "H-2000000000000003"\t\t# "MT4129 ConnectX7   Mellanox Technologies"
[1](2000000000000003) \t"S-1000000000000001"[3]\t\t# lid 12 lmc 0 "MF0;LEAF-01:MQM9701/U1" lid 5 4xNDR

Ca\t1 "H-2000000000000004"\t\t# "Mellanox Technologies Aggregation Node"
[1](2000000000000004) \t"S-1000000000000001"[8]\t\t# lid 13 lmc 0 "MF0;LEAF-01:MQM9701/U1" lid 5 4xNDR
'''


def test_small_fabric_roles_names_and_rates() -> None:
    fab = parse_ibnetdiscover(SMALL, "small.out")
    roles = {n.id: n.role for n in fab.nodes}
    assert roles["H-2000000000000001"] == ROLE_HCA
    assert roles["H-2000000000000003"] == ROLE_UNNAMED
    assert roles["H-2000000000000004"] == ROLE_AGGREGATION
    assert list(fab.hosts()) == ["node01", "node02"]
    switch = next(n for n in fab.nodes if n.type == "switch")
    assert switch.name == "LEAF-01" and switch.lid == 5 and switch.guid == "0x1000000000000001"
    rates = sorted((fab.nodes[lk.b].desc.split()[0], lk.width, lk.speed) for lk in fab.links)
    assert ("node02", "4x", "HDR") in rates and ("node01", "4x", "NDR") in rates
    assert len(fab.links) == 4 and not fab.warnings


@pytest.mark.parametrize(
    ("desc", "host"),
    [
        ("gpu001 mlx5_0", "gpu001"),
        ("a08-p1-dgx-04-c01 HCA-6", "a08-p1-dgx-04-c01"),
        ("MT4129 ConnectX7   Mellanox Technologies", None),
        ("localhost HCA-1", None),
        ("Mellanox Technologies Aggregation Node", None),
        ("", None),
        ("   ", None),
    ],
)
def test_host_from_description(desc: str, host: str | None) -> None:
    assert host_from_description(desc) == host


def test_hosts_filter_marks_others_excluded() -> None:
    fab = parse_ibnetdiscover(SMALL, "small.out", hosts=["node02"])
    assert list(fab.hosts()) == ["node02"]
    assert next(n for n in fab.nodes if n.host == "node01").role == ROLE_EXCLUDED


def test_hosts_filter_unknown_host_is_input_error() -> None:
    with pytest.raises(InputError, match="nothere"):
        parse_ibnetdiscover(SMALL, "small.out", hosts=["node01", "nothere"])


def test_node_name_map_overrides_description() -> None:
    fab = parse_ibnetdiscover(SMALL, "small.out", node_name_map={"0x2000000000000003": "node03 mlx5_0"})
    assert list(fab.hosts()) == ["node01", "node02", "node03"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no Switch or Ca records"),
        ("hello world\n", "small.out:1: unrecognised line"),
        ('Switch\t8 "S-1"\t# "x"\n[9]\t"H-2"[1]\t# "y"\n', "small.out:2: port 9 above the radix"),
        ('Switch\t8 "S-1"\t# "x"\n[1]\t"H-2"[1]\n', "unknown node H-2"),
        ('Switch\t8 "S-1"\t# "x"\n[1]\t"S-1"[2]\n[1]\t"S-1"[3]\n', "small.out:3: port 1 of S-1 listed twice"),
        ('Ca\t1 "H-1"\t# "n1 mlx5_0"\n', "small.out:1: Ca H-1 has no connected ports"),
        ('Switch\t8 "S-1"\t# "x"\n[1]\t"S-2"[1]\n\nSwitch\t8 "S-1"\t# "x"\n[1]\t"S-2"[2]\n', "small.out:4: duplicate node S-1"),
        ("\x00\x01binary", "binary data"),
    ],
)
def test_bad_input_names_file_and_line(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message.replace("[", r"\[")):
        parse_ibnetdiscover(text, "small.out")


def test_conflicting_ends_are_an_error() -> None:
    text = (
        'Switch\t8 "S-1"\t# "a"\n[1]\t"S-2"[1]\n\n'
        'Switch\t8 "S-2"\t# "b"\n[1]\t"S-3"[1]\n\n'
        'Switch\t8 "S-3"\t# "c"\n[1]\t"S-2"[1]\n'
    )
    with pytest.raises(InputError, match="says it is cabled to"):
        parse_ibnetdiscover(text, "x.out")


def test_one_sided_link_is_a_warning() -> None:
    text = 'Switch\t8 "S-1"\t# "a"\n[1]\t"S-2"[1]\n\nSwitch\t8 "S-2"\t# "b"\n[2]\t"S-3"[1]\n\nSwitch\t8 "S-3"\t# "c"\n[1]\t"S-2"[2]\n'
    fab = parse_ibnetdiscover(text, "x.out")
    assert len(fab.links) == 2
    assert any(w.startswith("link-one-sided: S-1[1]") for w in fab.warnings)


def test_dgx_fixture_parses() -> None:
    fab = parse_ibnetdiscover(DGX_FIXTURE.read_text(), str(DGX_FIXTURE))
    switches = [n for n in fab.nodes if n.type == "switch"]
    assert len(switches) == 40
    roles: dict[str, int] = {}
    for n in fab.nodes:
        roles[n.role] = roles.get(n.role, 0) + 1
    assert roles[ROLE_AGGREGATION] == 40  # one SHARP aggregation node per switch
    # 69 "MT4129 ConnectX7" HCAs and 3 "localhost" ones name no host
    assert roles[ROLE_UNNAMED] == 72
    hosts = fab.hosts()
    dgx = [h for h in hosts if "-dgx-" in h]
    assert len(dgx) == 119  # distinct "*-dgx-*" first words among Ca headers (grep | sort -u)
    assert max(len(hosts[h]) for h in dgx) == 4  # rails seen in this partial capture
    assert all(lk.speed == "NDR" and lk.width == "4x" for lk in fab.links)


def test_truncated_fixture_is_input_error() -> None:
    with pytest.raises(InputError, match="no connected ports"):
        parse_ibnetdiscover(TRUNCATED_FIXTURE.read_text(), str(TRUNCATED_FIXTURE))


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=400))
def test_parser_never_crashes_on_garbage(text: str) -> None:
    with contextlib.suppress(InputError):
        parse_ibnetdiscover(text, "fuzz.out")


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(SMALL.splitlines()), max_size=40))
def test_parser_never_crashes_on_shuffled_lines(lines: list[str]) -> None:
    with contextlib.suppress(InputError):
        parse_ibnetdiscover("\n".join(lines), "fuzz.out")


VARIANTS = Path(__file__).resolve().parent.parent / "fixtures" / "ibnetdiscover"


@pytest.mark.parametrize("variant", ["grouped", "show", "ports-list"])
def test_output_variants_give_the_default_topology(variant: str) -> None:
    from gpupool.fabric.export import export

    default = parse_ibnetdiscover((VARIANTS / "ibsim-fat-tree-2x2x2.default.out").read_text(), "default")
    other = parse_ibnetdiscover((VARIANTS / f"ibsim-fat-tree-2x2x2.{variant}.out").read_text(), variant)
    assert sorted(other.hosts()) == sorted(default.hosts()) == ["gpu001", "gpu002", "gpu003", "gpu004"]
    assert len(other.links) == len(default.links) == 8
    assert export(other, "slurm-tree") == export(default, "slurm-tree")


def test_node_list_variant_is_a_clear_error() -> None:
    with pytest.raises(InputError, match="node list .* has no cables"):
        parse_ibnetdiscover((VARIANTS / "ibsim-fat-tree-2x2x2.node-list.out").read_text(), "nodes.out")


def test_ports_list_line_errors_name_the_line() -> None:
    text = "SW     2  1 0x0002c90300000002 4x QDR - SW     3  4 0x0002c90300000003 ( 'a' - 'b' )\nSW garbage\n"
    with pytest.raises(InputError, match="x.out:2: malformed ports-list line"):
        parse_ibnetdiscover(text, "x.out")
