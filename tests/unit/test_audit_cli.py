"""`gpupool fabric audit` in-process: live mode through a fake tool runner, config, errors, output."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from gpupool.audit.live_fabric import route_length
from gpupool.cli.context import AppContext
from gpupool.cli.main import main
from gpupool.errors import EnvError
from gpupool.fabric.generate import fat_tree
from gpupool.fabric.model import save_fabric

# Real `ibnetdiscover` output of ibsim running gpupool's fat_tree(2, 2, 1) (timestamp header dropped).
TINY = """\
vendid=0x0
devid=0x0
sysimgguid=0x2c90300000003
switchguid=0x2c90300000003(2c90300000003)
Switch	8 "S-0002c90300000003"		# "leaf02" enhanced port 0 lid 4 lmc 0
[1]	"H-0002c90400000030"[1](2c90400000031) 		# "gpu003 mlx5_0" lid 10 4xQDR
[2]	"H-0002c90400000040"[1](2c90400000041) 		# "gpu004 mlx5_0" lid 11 4xQDR
[3]	"S-0002c90300000001"[2]		# "spine01" lid 1 4xQDR

vendid=0x0
devid=0x0
sysimgguid=0x2c90300000002
switchguid=0x2c90300000002(2c90300000002)
Switch	8 "S-0002c90300000002"		# "leaf01" enhanced port 0 lid 3 lmc 0
[1]	"H-0002c90400000010"[1](2c90400000011) 		# "gpu001 mlx5_0" lid 8 4xQDR
[2]	"H-0002c90400000020"[1](2c90400000021) 		# "gpu002 mlx5_0" lid 9 4xQDR
[3]	"S-0002c90300000001"[1]		# "spine01" lid 1 4xQDR

vendid=0x0
devid=0x0
sysimgguid=0x2c90300000001
switchguid=0x2c90300000001(2c90300000001)
Switch	8 "S-0002c90300000001"		# "spine01" enhanced port 0 lid 1 lmc 0
[1]	"S-0002c90300000002"[3]		# "leaf01" lid 3 4xQDR
[2]	"S-0002c90300000003"[3]		# "leaf02" lid 4 4xQDR

vendid=0x0
devid=0x0
sysimgguid=0x2c90400000040
caguid=0x2c90400000040
Ca	1 "H-0002c90400000040"		# "gpu004 mlx5_0"
[1](2c90400000041) 	"S-0002c90300000003"[2]		# lid 11 lmc 0 "leaf02" lid 4 4xQDR

vendid=0x0
devid=0x0
sysimgguid=0x2c90400000030
caguid=0x2c90400000030
Ca	1 "H-0002c90400000030"		# "gpu003 mlx5_0"
[1](2c90400000031) 	"S-0002c90300000003"[1]		# lid 10 lmc 0 "leaf02" lid 4 4xQDR

vendid=0x0
devid=0x0
sysimgguid=0x2c90400000020
caguid=0x2c90400000020
Ca	1 "H-0002c90400000020"		# "gpu002 mlx5_0"
[1](2c90400000021) 	"S-0002c90300000002"[2]		# lid 9 lmc 0 "leaf01" lid 3 4xQDR

vendid=0x0
devid=0x0
sysimgguid=0x2c90400000010
caguid=0x2c90400000010
Ca	1 "H-0002c90400000010"		# "gpu001 mlx5_0"
[1](2c90400000011) 	"S-0002c90300000002"[1]		# lid 8 lmc 0 "leaf01" lid 3 4xQDR
"""

PERFQUERY = """\
# Port counters: Lid {lid} port {port} (CapMask: 0x1300)
PortSelect:......................{port}
SymbolErrorCounter:..............{sym}
LinkDownedCounter:...............0
PortRcvErrors:...................0
"""


def _route(cables: int) -> str:
    hops = "\n".join(f"[1] -> switch port {{0x0002c90300000002}}[{i}] lid 3-3 \"leaf01\"" for i in range(cables))
    return f"From ca {{0x0002c90400000010}} portnum 1 lid 8-8 \"gpu001 mlx5_0\"\n{hops}\nTo ca {{0x1}} portnum 1\n"


class FakeTools:
    """Answers like ibsim would; one port has symbol errors, one route detours."""

    def __init__(self, *, fail: set[str] = frozenset(), detour: tuple[str, str] = ("8", "10")) -> None:  # type: ignore[assignment]
        self.fail = fail
        self.detour = detour
        self.calls: list[tuple[str, tuple[str, ...]]] = []

    def __call__(self, name: str, args: list[str], timeout: float) -> str:
        self.calls.append((name, tuple(args)))
        assert timeout > 0
        if name in self.fail:
            raise EnvError(f"{name} did not finish within {timeout:g} s")
        if name == "ibnetdiscover":
            return TINY
        if name == "perfquery":
            lid, port = args
            sym = 77 if (lid, port) == ("3", "3") else 0  # leaf01 port 3: the uplink to spine01
            return PERFQUERY.format(lid=lid, port=port, sym=sym)
        if name == "ibqueryerrors":
            return 'Errors for 0x2c90300000002 "leaf01"\n   GUID 0x2c90300000002 port 3: [SymbolErrorCounter == 77]\n'
        if name == "ibtracert":
            if tuple(sorted(args)) == tuple(sorted(self.detour)):
                return _route(6)
            same_leaf = {int(a) for a in args} <= {8, 9} or {int(a) for a in args} <= {10, 11}
            return _route(2 if same_leaf else 4)
        raise AssertionError(name)


@pytest.fixture(autouse=True)
def _perfquery_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "perfquery.toml"
    config.write_text('[audit]\ncounters_tool = "perfquery"\n')
    monkeypatch.setenv("GPUPOOL_CONFIG", str(config))


def _run(args: list[str], tools: FakeTools, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict, str]:  # type: ignore[type-arg]
    code = main(["fabric", "audit", *args, "--json"], AppContext(ibdiag=tools))
    out = capsys.readouterr()
    return code, json.loads(out.out), out.err


def test_tiny_text_gives_ca_lids_and_routes_count_cables() -> None:
    from gpupool.fabric.ibnetdiscover import parse_ibnetdiscover

    assert {n.id: n.lid for n in parse_ibnetdiscover(TINY, "tiny").nodes if n.type == "ca"} == {"H-0002c90400000040": 11, "H-0002c90400000030": 10, "H-0002c90400000020": 9,
                             "H-0002c90400000010": 8}
    assert route_length(_route(4)) == 4


def test_live_reports_counters_and_detour(capsys: pytest.CaptureFixture[str]) -> None:
    tools = FakeTools()
    code, doc, _err = _run(["--live"], tools, capsys)
    got = {(f["check"], f["subject"]) for f in doc["findings"]}
    assert got == {("port-errors", "leaf01 port 3"), ("route-longer", "gpu001/mlx5_0 -> gpu003/mlx5_0")}
    assert code == 1 and doc["status"] == "WARNING"
    # Every cabled port with a LID was read once: 4 host links x 2 ends + 2 uplinks x 2 ends.
    assert sum(1 for name, _a in tools.calls if name == "perfquery") == 12
    assert doc["totals"]["routes_checked"] == 6  # all 6 pairs of the 4 single-HCA hosts
    detour = next(f for f in doc["findings"] if f["check"] == "route-longer")
    assert detour["details"] == {"route": 6, "shortest": 4}


def test_live_route_samples_zero_skips_ibtracert(capsys: pytest.CaptureFixture[str]) -> None:
    tools = FakeTools()
    _run(["--live", "--route-samples", "0"], tools, capsys)
    assert not any(name == "ibtracert" for name, _a in tools.calls)


def test_failing_counter_tool_is_unknown_not_ok(capsys: pytest.CaptureFixture[str]) -> None:
    code, doc, _err = _run(["--live", "--route-samples", "0"], FakeTools(fail={"perfquery"}), capsys)
    assert (code, doc["status"], doc["findings"]) == (3, "UNKNOWN", [])
    assert doc["unchecked"][0].startswith("error counters: 12 queries failed")


def test_failing_discovery_is_unknown_with_one_error_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, doc, err = _run(["--live"], FakeTools(fail={"ibnetdiscover"}), capsys)
    assert code == 3 and doc["status"] == "UNKNOWN"
    assert err == "gpupool: error: ibnetdiscover did not finish within 120 s\n"


def test_two_sources_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, doc, err = _run(["--live", "--fabric", "x.json"], FakeTools(), capsys)
    assert code == 3 and "at most one of --fabric, --ibnetdiscover and --live" in err


def test_default_fabric_config_thresholds_and_counters_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    fab = fat_tree(2, 4, 1)
    fab.nodes[0].lid = 1
    path = tmp_path / "fabric.json"
    save_fabric(fab, str(path))
    counters = tmp_path / "pq.txt"
    counters.write_text(PERFQUERY.format(lid=1, port=1, sym=30))
    monkeypatch.setenv("GPUPOOL_FABRIC", str(path))
    config = tmp_path / "config.toml"
    config.write_text("[audit]\nmax_oversubscription = 8.0\n[audit.thresholds]\nSymbolErrorCounter = 50\n")
    monkeypatch.setenv("GPUPOOL_CONFIG", str(config))
    code, doc, _err = _run(["--counters", str(counters)], FakeTools(), capsys)
    assert (code, doc["findings"]) == (0, [])  # 30 is below the configured 50
    config.write_text("[audit.thresholds]\nSymbolErrorCounter = 20\n")
    code, doc, _err = _run(["--counters", str(counters)], FakeTools(), capsys)
    assert code == 1 and [f["subject"] for f in doc["findings"]] == ["spine01 port 1"]
    config.write_text("[audit]\nmax_oversubscription = -1\n")
    code, doc, err = _run([], FakeTools(), capsys)
    assert code == 3 and "max_oversubscription" in err


def test_human_report_groups_by_severity_without_ansi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    design = fat_tree(2, 2, 2)
    fab = fat_tree(2, 2, 2)
    hca = next(i for i, n in enumerate(fab.nodes) if n.name == "gpu001/mlx5_0")
    fab.links = [lk for lk in fab.links if hca not in (lk.a, lk.b)]
    fab.nodes[hca].guid, fab.nodes[hca].name, fab.nodes[hca].host, fab.nodes[hca].role = "0x1", "x", None, "unnamed"
    fab.links[-1].width = "1x"
    for name, obj in (("f.json", fab), ("d.json", design)):
        save_fabric(obj, str(tmp_path / name))
    monkeypatch.setenv("NO_COLOR", "1")
    code = main(["fabric", "audit", "--fabric", str(tmp_path / "f.json"), "--reference", str(tmp_path / "d.json")])
    out = capsys.readouterr().out
    assert code == 2
    assert "\x1b[" not in out
    assert out.index("CRITICAL (") < out.index("WARNING (")
    assert re.search(r"hca-missing .*gpu001/mlx5_0", out)
    assert out.rstrip().splitlines()[-1].startswith("fabric audit: CRITICAL (")


def test_live_with_ibqueryerrors_reads_the_fabric_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "iqe.toml"
    config.write_text('[audit]\ncounters_tool = "ibqueryerrors"\nroute_samples = 0\n')
    monkeypatch.setenv("GPUPOOL_CONFIG", str(config))
    tools = FakeTools()
    code, doc, _err = _run(["--live"], tools, capsys)
    assert [name for name, _a in tools.calls] == ["ibnetdiscover", "ibqueryerrors"]
    assert [(f["check"], f["subject"]) for f in doc["findings"]] == [("port-errors", "leaf01 port 3")]


def test_one_sided_cable_in_saved_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # leaf02 no longer lists its port 1, while gpu003's HCA still says it is cabled there.
    text = TINY.replace('[1]\t"H-0002c90400000030"[1](2c90400000031) \t\t# "gpu003 mlx5_0" lid 10 4xQDR\n', "")
    assert text != TINY
    path = tmp_path / "one-sided.out"
    path.write_text(text)
    code = main(["fabric", "audit", "--ibnetdiscover", str(path), "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert [(f["check"], f["subject"]) for f in doc["findings"]] == [("link-one-sided", "gpu003/mlx5_0 port 1")]
    assert "leaf02 port 1" in doc["findings"][0]["message"] and code == 1
