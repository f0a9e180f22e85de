"""`fabric diff` (issue 25): renamed hosts, moved cables, replaced switches, rate changes; exit codes.
Each expectation is written by hand or read from the capture text by a regex of the test's own."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

from gpupool.cli.context import AppContext
from gpupool.cli.main import main
from gpupool.fabric.diff import DIFF_KEYS, diff_fabrics
from gpupool.fabric.ibnetdiscover import parse_ibnetdiscover
from tests.support.captures import ibnetdiscover_text
from tests.support.helpers import DGX_FIXTURE, FIXTURES

SPLIT = (FIXTURES / "ibdiagnet" / "quantum2-split.ibdiagnet2.ibnetdiscover").read_text()
L1, SPINE = "fc6a1c0300aa0001", "fc6a1c0300cc0003"


def diff(old: str, new: str):  # type: ignore[no-untyped-def]
    return diff_fabrics(parse_ibnetdiscover(old, "old"), parse_ibnetdiscover(new, "new"))


def test_renamed_hosts_on_a_real_capture() -> None:
    old = DGX_FIXTURE.read_text()
    new = re.sub(r"\ba08-p1-dgx-04-c(\d+)\b", r"is-north-7-compute-\1", old)
    expected: dict[str, set[str]] = {}
    for guid, host in re.findall(r'^Ca\t\d+ "H-([0-9a-f]{16})"\t+# "(a08-p1-dgx-04-c\d+) mlx5_\d+"', old, re.M):
        expected.setdefault(host, set()).add(f"0x{guid}")
    assert len(expected) > 10
    result = diff(old, new)
    got = {item["old"]: (item["new"], set(item["guids"])) for item in result.hosts_renamed}
    assert got == {h: (h.replace("a08-p1-dgx-04-c", "is-north-7-compute-"), g) for h, g in expected.items()}
    assert len(result.hosts_renamed) == len(expected)
    for key in DIFF_KEYS:
        if key != "hosts_renamed":
            assert getattr(result, key) == [], key


def test_unchanged_capture_is_no_change() -> None:
    result = diff(SPLIT, SPLIT)
    assert not result.changed and all(v == [] for k, v in result.to_json().items() if k != "changed")


def test_moved_cable_names_both_ends() -> None:
    # gpu04 moves from leaf-01 port 4 (cage 2, split 2) to port 5 (cage 3, split 1).
    new = SPLIT.replace('[4](1/1/2/2)\t"H-946dae03000b0004"', '[5](1/1/3/1)\t"H-946dae03000b0004"') \
        .replace(f'"S-{L1}"[4](1/1/2/2)', f'"S-{L1}"[5](1/1/3/1)')
    assert new.count("[5](1/1/3/1)") == 2
    result = diff(SPLIT, new)
    assert result.links_changed == [{
        "change": "moved",
        "end": {"node": "gpu04/mlx5_0", "guid": "0x946dae03000b0004", "port": 1},
        "old_peer": {"node": "leaf-01", "guid": f"0x{L1}", "port": 4, "label": "1/1/2/2"},
        "new_peer": {"node": "leaf-01", "guid": f"0x{L1}", "port": 5, "label": "1/1/3/1"},
    }]
    assert result.links_added == [] and result.links_removed == [] and result.hosts_renamed == []


def test_replaced_switch_keeps_its_cables() -> None:
    new = SPLIT.replace(SPINE, "fc6a1c0300cc00ff")
    result = diff(SPLIT, new)
    assert result.switches_replaced == [{"old": {"name": "spine-01", "guid": f"0x{SPINE}"},
                                         "new": {"name": "spine-01", "guid": "0xfc6a1c0300cc00ff"}}]
    assert result.links_added == [] and result.links_removed == [] and result.links_changed == []
    assert result.levels_changed == []


def test_rate_change_and_removed_host() -> None:
    new = SPLIT.replace('"gpu01 mlx5_0" lid 101 2xNDR', '"gpu01 mlx5_0" lid 101 2xHDR') \
        .replace('"MF0;leaf-01:MQM9700/U1" lid 1 2xNDR\n', '"MF0;leaf-01:MQM9700/U1" lid 1 2xHDR\n', 1)
    # gpu08 is gone: its CA record and the leaf's line to it.
    new = re.sub(r'\[4\]\(2/2\)\t"H-946dae03000b0008".*\n', "", new)
    new = re.sub(r'vendid=0x2c9\ndevid=0x1021\nsysimgguid=0x946dae03000b0008\n(.*\n){3}', "", new)
    result = diff(SPLIT, new)
    assert result.hosts_removed == ["gpu08"] and result.hosts_added == []
    assert result.links_removed == [{
        "a": {"node": "leaf-02", "guid": "0xb8599f0300bb0002", "port": 4, "label": "2/2"},
        "b": {"node": "gpu08/mlx5_0", "guid": "0x946dae03000b0008", "port": 1}, "rate": "2xHDR"}] or \
        result.links_removed == [{
            "a": {"node": "gpu08/mlx5_0", "guid": "0x946dae03000b0008", "port": 1},
            "b": {"node": "leaf-02", "guid": "0xb8599f0300bb0002", "port": 4, "label": "2/2"}, "rate": "2xHDR"}]
    assert [(c["change"], c["old"], c["new"], c["width_changed"], c["speed_changed"]) for c in result.links_changed] \
        == [("rate", "2xNDR", "2xHDR", False, True)]


def run(args: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args, obj=AppContext())
    return code, out.getvalue(), err.getvalue()


def test_cli_exit_codes_and_json(tmp_path: Path) -> None:
    old, new, bad = tmp_path / "old.out", tmp_path / "new.out", tmp_path / "bad.out"
    old.write_text(SPLIT)
    new.write_text(SPLIT.replace('"gpu02 mlx5_0"', '"rack9-n2 mlx5_0"'))
    bad.write_text("hello\n")
    code, out, err = run(["fabric", "diff", str(old), str(old)])
    assert code == 0 and "no changes" in out, err
    code, out, err = run(["--json", "fabric", "diff", str(old), str(new)])
    doc = json.loads(out)
    assert code == 1 and set(doc) == {*DIFF_KEYS, "changed", "old", "new"}
    assert doc["hosts_renamed"] == [{"old": "gpu02", "new": "rack9-n2", "guids": ["0x946dae03000b0002"]}]
    code, out, err = run(["fabric", "diff", str(old), str(bad)])
    assert code == 4 and err.count("gpupool: error:") == 1 and str(bad) in err
    # A capture against the saved model (a fabric file discovered from the other format).
    saved = tmp_path / "fabric.json"
    lst = FIXTURES / "ibdiagnet" / "fat-tree-split.ibdiagnet2.lst"
    assert run(["fabric", "discover", "--ibnetdiscover", str(lst), "-o", str(saved)])[0] == 0
    code, out, err = run(["fabric", "diff", "--fabric", str(saved), str(new)])
    assert code == 1 and "host renamed: gpu02 -> rack9-n2" in out, (out, err)
    code, out, err = run(["fabric", "diff", str(saved), str(old)])
    assert code == 0, out
    assert run(["fabric", "diff"])[0] == 2


def test_renamed_hosts_on_selene() -> None:
    # The largest real capture: every luna-NNNN renamed, 12,852 cables unchanged.
    old = (FIXTURES / "ibnetdiscover" / "selene-compute-hdr.out").read_text()
    new = re.sub(r'"luna-(\d+) (mlx5_\d+)"', r'"sel-north-\1 \2"', old)
    names = set(re.findall(r'"(luna-\d+) mlx5_\d+"', old))
    result = diff(old, new)
    assert {(r["old"], r["new"]) for r in result.hosts_renamed} == {(h, h.replace("luna-", "sel-north-")) for h in names}
    assert len(result.hosts_renamed) == len(names) == 458
    assert not (result.links_changed or result.links_added or result.links_removed or result.hosts_added
                or result.hosts_removed or result.switches_replaced or result.levels_changed)


def test_swapped_hca_is_not_a_moved_cable() -> None:
    new = SPLIT.replace("946dae03000b0003", "946dae03000b00f3")  # gpu03's card swapped, same port
    result = diff(SPLIT, new)
    assert result.links_changed == [{
        "change": "hca-replaced",
        "end": {"node": "leaf-01", "guid": f"0x{L1}", "port": 3, "label": "1/1/2/1"},
        "old_peer": {"node": "gpu03/mlx5_0", "guid": "0x946dae03000b0003", "port": 1},
        "new_peer": {"node": "gpu03/mlx5_0", "guid": "0x946dae03000b00f3", "port": 1},
    }]
    assert result.hosts_renamed == [] and result.hosts_added == [] and result.hosts_removed == []


def test_level_change() -> None:
    # Before: leaf-a and leaf-b (two hosts each) under spine. After: leaf-b's hosts sit on a new leaf-c
    # cabled below leaf-b, so leaf-b is one level up (2), between leaf-c and the spine.
    sw = {"S-0000000000000001": "MF0;spine:MQM8700/U1", "S-000000000000000a": "MF0;leaf-a:MQM8700/U1",
          "S-000000000000000b": "MF0;leaf-b:MQM8700/U1", "S-000000000000000c": "MF0;leaf-c:MQM8700/U1"}
    hosts = {f"H-00000000000001{k:02x}": f"h{k} mlx5_0" for k in range(1, 5)}
    desc = sw | hosts
    h = list(hosts)
    up = [("S-000000000000000a", "S-0000000000000001"), ("S-000000000000000b", "S-0000000000000001")]
    old = ibnetdiscover_text(up + [("S-000000000000000a", h[0]), ("S-000000000000000a", h[1]),
                        ("S-000000000000000b", h[2]), ("S-000000000000000b", h[3])], desc)
    new = ibnetdiscover_text(up + [("S-000000000000000a", h[0]), ("S-000000000000000a", h[1]),
                        ("S-000000000000000c", "S-000000000000000b"),
                        ("S-000000000000000c", h[2]), ("S-000000000000000c", h[3])], desc)
    result = diff(old, new)
    assert result.levels_changed == [{"switch": "leaf-b", "guid": "0x000000000000000b", "old": 1, "new": 2}]
