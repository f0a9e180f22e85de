"""Hostile fabric text (issue 19, item 3): node descriptions and node-name-map entries are set by
whoever is root on any host of the fabric; none of them may inject anything into the files gpupool
writes. Each exported file is checked line by line against what it must be."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from gpupool.errors import InputError
from gpupool.fabric.export import export
from gpupool.fabric.ibnetdiscover import parse_ibnetdiscover, read_node_name_map
from gpupool.fabric.model import fabric_from_dict, fabric_to_dict

LEAF = "00000000000000ff"


def _capture(hca_descs: list[str], switch_desc: str = "MF0;leaf1:MQM8700/U1") -> str:
    out = [f'vendid=0x2c9\ndevid=0xcf08\nswitchguid=0x{LEAF}({LEAF})\n'
           f'Switch\t40 "S-{LEAF}"\t\t# "{switch_desc}" enhanced port 0 lid 1 lmc 0']
    for k, _desc in enumerate(hca_descs, 1):
        out.append(f'[{k}]\t"H-{k:016x}"[1]({k:016x}) \t\t# "x" lid 2 4xHDR')
    out.append("")
    for k, desc in enumerate(hca_descs, 1):
        out.append(f'vendid=0x2c9\ndevid=0x101b\ncaguid=0x{k:016x}\nCa\t1 "H-{k:016x}"\t\t# "{desc}"\n'
                   f'[1]({k:016x}) \t"S-{LEAF}"[{k}]\t\t# lid 2 lmc 0 "x" lid 1 4xHDR\n')
    return "\n".join(out) + "\n"


HOSTILE = ["gpu001,gpu999 mlx5_0", "gpu[1-3] mlx5_0", "evil=1 mlx5_0", "g#x mlx5_0"]


def test_hostile_hca_descriptions_leave_the_hca_unnamed_with_a_warning_naming_the_line() -> None:
    fab = parse_ibnetdiscover(_capture(["gpu001 mlx5_0", *HOSTILE]), "h.out")
    assert fab.host_names() == ["gpu001"]
    warned = [w for w in fab.warnings if w.startswith("host-name-invalid:")]
    assert len(warned) == 4
    for bad in ("gpu001,gpu999", "gpu[1-3]", "evil=1", "g#x"):
        assert sum(repr(bad) in w for w in warned) == 1
    assert all("h.out:" in w for w in warned)


def test_hostile_hca_descriptions_never_reach_topology_conf() -> None:
    fab = parse_ibnetdiscover(_capture(["gpu001 mlx5_0", *HOSTILE]), "h.out")
    lines = export(fab, "slurm-tree").splitlines()
    assert lines[1:] == ["SwitchName=leaf1 Nodes=gpu001"]
    block = export(fab, "slurm-block").splitlines()
    # Line 2 is the comment explaining BlockSizes (one base block of 1 node here).
    assert block[1] == "# BlockSizes=1: nodes per block Slurm may give one job: 1 = one base block (a BlockName line)"
    assert block[2:] == ["BlockName=leaf1 Nodes=gpu001", "BlockSizes=1"]


@pytest.mark.parametrize("switch_desc", ["MF0;bad\tNodes=gpu999:MQM8700/U1", "MF0;a=b#c:MQM8700/U1",
                                         'MF0;q"uote\\:MQM8700/U1'])
def test_hostile_switch_descriptions_are_sanitised_in_every_export(switch_desc: str) -> None:
    fab = parse_ibnetdiscover(_capture(["gpu001 mlx5_0", "gpu002 mlx5_0"], switch_desc), "h.out")
    name = next(n.name for n in fab.nodes if n.type == "switch")
    assert all(c.isalnum() or c in "._/-" for c in name)
    tree = export(fab, "slurm-tree").splitlines()
    assert len(tree) == 2 and tree[0].startswith("#")
    key, nodes = tree[1].split(" ")
    assert key == f"SwitchName={name}" and nodes == "Nodes=gpu[001-002]"
    doc = yaml.safe_load(export(fab, "slurm-yaml"))
    assert doc[0]["tree"]["switches"] == [{"switch": name, "nodes": "gpu[001-002]"}]
    dot = export(fab, "dot").splitlines()
    assert dot[0] == "graph fabric {" and dot[-1] == "}"
    assert all(line.startswith("  ") for line in dot[1:-1])
    ibsim = export(fab, "ibsim", clamp_speed=True)
    again = parse_ibnetdiscover(ibsim, "again.out")
    assert again.host_names() == ["gpu001", "gpu002"]


def test_a_fabric_file_with_hostile_names_is_refused_by_slurm_exports_and_escaped_elsewhere(tmp_path: Path) -> None:
    fab = parse_ibnetdiscover(_capture(["gpu001 mlx5_0", "gpu002 mlx5_0"]), "h.out")
    doc = fabric_to_dict(fab)
    # A host name that is not one is refused where the file is read (issue 19's boundary validation).
    phantom = json.loads(json.dumps(doc))
    for node in phantom["nodes"]:
        if node.get("host") == "gpu002":
            node["host"] = "gpu002,gpu999"
    with pytest.raises(InputError, match="not a valid host name"):
        fabric_from_dict(phantom)
    for node in doc["nodes"]:
        if node["type"] == "switch":
            node["name"] = 'sw"1\n#x'
            node["desc"] = 'sw"1\nSwitch 3 "S-evil"'
    hostile = fabric_from_dict(json.loads(json.dumps(doc)))
    tree = export(hostile, "slurm-tree").splitlines()
    assert all(line.startswith(("#", "SwitchName=")) for line in tree)
    assert not any("#" in line or '"' in line for line in tree if line.startswith("SwitchName="))
    assert sum(line.startswith("SwitchName=") for line in tree) == 1
    dot = export(hostile, "dot").splitlines()
    assert dot[0] == "graph fabric {" and dot[-1] == "}" and all(line.startswith("  ") for line in dot[1:-1])
    assert any('"sw\\"1 #x"' in line for line in dot)
    ibsim = export(hostile, "ibsim", clamp_speed=True).splitlines()
    assert not any(line.startswith('Switch 3 "S-evil"') for line in ibsim)
    assert sum(line.startswith("Switch") for line in ibsim) == 1


def test_a_node_name_map_giving_an_illegal_host_name_is_exit_4_naming_its_line(tmp_path: Path) -> None:
    path = tmp_path / "map"
    path.write_text('# map\n0x00000000000000ff "leaf1"\n0x0000000000000002 "gpu[1-3] mlx5_0"\n')
    with pytest.raises(InputError, match=r"map:3: 'gpu\[1-3\]' is not a legal host name"):
        parse_ibnetdiscover(_capture(["gpu001 mlx5_0", "gpu002 mlx5_0"]), "h.out", node_name_map=read_node_name_map(str(path)))


def test_a_node_name_map_entry_with_control_characters_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "map"
    path.write_bytes(b'0x0000000000000002 "gpu002\tNodes=x"\n')
    with pytest.raises(InputError, match="map:1: the name has control characters"):
        read_node_name_map(str(path))
