"""Director chassis (issue 25): line ASICs (`MF0;NAME:MODEL/Lxx/Uy`) and fabric ASICs (the same with
an Sxx slot) of one chassis, external leaves at level 1 with or without hosts, the director on top of topology.conf.
Sites are written by hand below; expected levels are the chassis roles, not gpupool's output."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

from gpupool.cli.context import AppContext
from gpupool.cli.main import main
from gpupool.fabric.compiled import compile_fabric
from gpupool.fabric.export import export, summary
from gpupool.fabric.ibnetdiscover import parse_ibnetdiscover
from tests.support.captures import director_site


def levels(text: str) -> tuple[str, dict[str, int], str]:
    fab = parse_ibnetdiscover(text, "site.out")
    compiled = compile_fabric(fab)
    return compiled.kind, {compiled.switch_names[s]: int(compiled.switch_level[s])
                           for s in range(compiled.n_switches)}, export(fab, "slurm-tree", compiled=compiled)


def expected_levels(dirs: int, lines: int, fabric_asics: int, leaves: int) -> dict[str, int]:
    out = {f"leaf-{k:02d}": 1 for k in range(1, leaves + 1)}
    for d in range(1, dirs + 1):
        out |= {f"dir{d}/L{x:02d}/U1": 2 for x in range(1, lines + 1)}
        out |= {f"dir{d}/S{y:02d}/U1": 3 for y in range(1, fabric_asics + 1)}
    return out


def test_hostless_external_leaves_with_missing_uplinks_stay_leaves() -> None:
    # The QDR case of the issue: three IS5600, partly cabled leaves (7 and 8 have no host and reach
    # director 1 only); before, leaf-07 became a level-3 top.
    site = dict(dirs=3, lines=4, fabric_asics=2, leaves=10)
    kind, got, conf = levels(director_site(**site, hosted=6, spread=False, single_homed=(2, 7), model="IS5600"))
    assert kind == "fat-tree"
    assert got == expected_levels(**site)
    top = conf.splitlines()[-1]
    assert top.startswith("SwitchName=dir1 Switches=") and "leaf" not in top


def test_leaves_cabled_to_every_line_asic() -> None:
    # Every leaf reaches every line ASIC: the fabric ASICs are still the top, not leaves.
    site = dict(dirs=2, lines=4, fabric_asics=2, leaves=8)
    kind, got, conf = levels(director_site(**site, hosted=5, spread=True))
    assert kind == "fat-tree" and got == expected_levels(**site)
    assert conf.splitlines()[-1].startswith("SwitchName=dir1 Switches=")


def test_fifteen_hostless_leaves() -> None:
    site = dict(dirs=2, lines=4, fabric_asics=2, leaves=19)
    kind, got, _conf = levels(director_site(**site, hosted=4, spread=False))
    assert kind == "fat-tree" and got == expected_levels(**site)
    assert sum(1 for name, lv in got.items() if name.startswith("leaf-") and lv == 1) == 19


def run(args: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args, obj=AppContext())
    return code, out.getvalue(), err.getvalue()


def test_fabric_show_names_the_chassis(tmp_path: Path) -> None:
    capture, fabric = tmp_path / "site.out", tmp_path / "site.json"
    capture.write_text(director_site(dirs=2, lines=3, fabric_asics=2, leaves=6, hosted=6, spread=False))
    assert run(["fabric", "discover", "--ibnetdiscover", str(capture), "-o", str(fabric)])[0] == 0
    code, out, err = run(["fabric", "show", "--fabric", str(fabric)])
    assert code == 0, err
    assert "director chassis: dir1 (MCS8500: 3 line + 2 fabric ASICs), dir2 (MCS8500: 3 line + 2 fabric ASICs)" \
        in out
    code, out, _ = run(["--json", "fabric", "show", "--fabric", str(fabric)])
    doc = json.loads(out)
    assert doc["chassis"] == [{"name": f"dir{d}", "model": "MCS8500", "line_asics": 3, "fabric_asics": 2}
                              for d in (1, 2)]
    assert doc["levels"] == {"1": 6, "2": 6, "3": 4}


def test_summary_without_directors_has_no_chassis_key() -> None:
    from tests.support.helpers import DGX_FIXTURE

    fab = parse_ibnetdiscover(DGX_FIXTURE.read_text(), "dgx")
    assert "chassis" not in summary(fab, compile_fabric(fab))


def test_chassis_from_a_shared_system_image_guid() -> None:
    # No MF0;NAME:MODEL/Lxx/Uy descriptions: the shared sysimgguid makes the chassis; the ASICs
    # cabled only inside it are its fabric ASICs.
    site = dict(dirs=3, lines=4, fabric_asics=2, leaves=10)
    kind, got, _conf = levels(director_site(**site, hosted=6, spread=False, single_homed=(2, 7), plain=True))
    want = {f"leaf-{k:02d}": 1 for k in range(1, 11)}
    for d in (1, 2, 3):
        want |= {f"dir{d}-asic{x}": 2 for x in range(1, 5)}
        want |= {f"dir{d}-asic{y}": 3 for y in (5, 6)}
    assert kind == "fat-tree" and got == want
    fab = parse_ibnetdiscover(director_site(**site, hosted=6, spread=False, plain=True), "site.out")
    assert summary(fab, compile_fabric(fab))["chassis"] == [
        {"name": f"0x000000000d{d:04x}00", "model": "", "line_asics": 4, "fabric_asics": 2} for d in (1, 2, 3)]


def test_an_image_guid_the_whole_fabric_shares_is_no_chassis() -> None:
    # Firmware that reports one system image GUID for every switch (leaves included) of a 3-level
    # fabric: the middle switches are cabled to other inside switches, not only to the ASICs with
    # outside cables, so this is no two-stage chassis and the plain layering stands.
    plain = director_site(dirs=1, lines=4, fabric_asics=2, leaves=8, hosted=8, spread=False, plain=True)
    lines = [line for line in plain.splitlines() if not line.startswith("sysimgguid=")]
    shared = "\n".join(f"sysimgguid=0x0000000000001111\n{line}" if line.startswith("Switch") else line for line in lines)
    kind, got, _conf = levels(shared)
    assert kind == "fat-tree" and got == {**{f"leaf-{k:02d}": 1 for k in range(1, 9)},
                                          **{f"dir1-asic{x}": 2 for x in range(1, 5)}, "dir1-asic5": 3, "dir1-asic6": 3}
