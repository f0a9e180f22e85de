"""Error counters: perfquery / ibqueryerrors text, thresholds from config, mapping to switch ports."""

from __future__ import annotations

import pytest

from gpupool.audit.counters import (
    DEFAULT_THRESHOLDS,
    CounterConfig,
    PortCounters,
    check_counters,
    parse_counters,
    parse_ibqueryerrors,
    parse_perfquery,
)
from gpupool.audit.topology import Topo
from gpupool.errors import InputError
from gpupool.fabric.generate import fat_tree

# `perfquery 4 5` against ibsim after `PerformanceSet "S-..."[5] PortCounters.SymbolErrorCounter=50`.
PERFQUERY = """\
# Port counters: Lid 4 port 5 (CapMask: 0x1300)
PortSelect:......................5
CounterSelect:...................0x0000
SymbolErrorCounter:..............50
LinkErrorRecoveryCounter:........0
LinkDownedCounter:...............0
PortRcvErrors:...................0
PortRcvRemotePhysicalErrors:.....0
PortRcvSwitchRelayErrors:........0
PortXmitDiscards:................0
PortXmitConstraintErrors:........0
PortRcvConstraintErrors:.........0
CounterSelect2:..................0x00
LocalLinkIntegrityErrors:........0
ExcessiveBufferOverrunErrors:....0
QP1Dropped:......................0
VL15Dropped:.....................0
PortXmitData:....................17784
PortRcvData:.....................17856
PortXmitPkts:....................247
PortRcvPkts:.....................248
PortXmitWait:....................0
"""

# ibqueryerrors' print format (infiniband-diags ibqueryerrors.c): switch header with the node GUID,
# CA header with the name only, one line per port with the counters over its own thresholds.
IBQUERYERRORS = """\
Errors for 0x2c90300000003 "leaf02"
   GUID 0x2c90300000003 port 2: [SymbolErrorCounter == 5] [PortRcvErrors == 300]
Errors for "gpu006 mlx5_0"
   GUID 0x2c90400000061 port 1: [LinkDownedCounter == 12] [PortXmitWait == 99999 (97.655k)]

## Summary: 22 nodes checked, 2 bad nodes found
##          48 ports checked, 2 ports have errors beyond threshold
## Thresholds:
## Suppressed:
"""


def test_parse_perfquery_keeps_counters_and_skips_selects() -> None:
    (sample,) = parse_perfquery(PERFQUERY + "\n" + PERFQUERY.replace("port 5", "port 6"))[:1]
    assert (sample.lid, sample.port) == (4, 5)
    assert sample.values["SymbolErrorCounter"] == 50
    assert "PortSelect" not in sample.values and "CounterSelect2" not in sample.values
    assert len(parse_perfquery(PERFQUERY * 2)) == 2


def test_parse_ibqueryerrors_switch_and_ca_records() -> None:
    sw, ca = parse_ibqueryerrors(IBQUERYERRORS)
    assert (sw.guid, sw.name, sw.port, sw.values) == ("0x2c90300000003", "leaf02", 2,
                                                       {"SymbolErrorCounter": 5, "PortRcvErrors": 300})
    assert (ca.guid, ca.name, ca.port) == ("0x2c90400000061", "gpu006 mlx5_0", 1)
    assert ca.values["PortXmitWait"] == 99999


def test_parse_counters_detects_the_format_and_rejects_other_text() -> None:
    assert parse_counters(IBQUERYERRORS, "x")[0].name == "leaf02"
    assert parse_counters(PERFQUERY, "x")[0].lid == 4
    with pytest.raises(InputError, match="bogus.txt"):
        parse_counters("hello world\n", "bogus.txt")


def test_counters_over_threshold_name_the_port_and_the_cable() -> None:
    fab = fat_tree(2, 4, 1)  # generated GUIDs: switches 0x...0300000001.., CAs 0x...04000000N0
    leaf02 = next(i for i, n in enumerate(fab.nodes) if n.name == "leaf02")
    fab.nodes[leaf02].guid = "0x0002c90300000003"
    fab.nodes[leaf02].lid = 4
    topo = Topo.of(fab)
    samples = parse_perfquery(PERFQUERY.replace("port 5", "port 2")) + parse_ibqueryerrors(IBQUERYERRORS)
    found = check_counters(topo, samples)
    by_subject = {f.subject: f for f in found}
    # perfquery: lid 4 = leaf02, port 2; SymbolErrorCounter 50 > 10 but < 10 x 10: warning.
    assert by_subject["leaf02 port 2"].severity == "critical"  # ibqueryerrors' PortRcvErrors 300 >= 10 x 10
    assert set(by_subject) == {"leaf02 port 2", "gpu006/mlx5_0 port 1"} and len(found) == 2  # merged per port
    assert by_subject["leaf02 port 2"].details["counters"] == {"SymbolErrorCounter": 50, "PortRcvErrors": 300}
    ca = by_subject["gpu006/mlx5_0 port 1"]
    # LinkDownedCounter 12 > 10; PortXmitWait is congestion, not an error: no default threshold.
    assert ca.details["counters"] == {"LinkDownedCounter": 12} and ca.severity == "warning"
    assert "cable to leaf02 port" in ca.message
    only_perfquery = check_counters(topo, parse_perfquery(PERFQUERY.replace("port 5", "port 2")))
    assert [(f.subject, f.severity) for f in only_perfquery] == [("leaf02 port 2", "warning")]


def test_thresholds_from_config_override_and_disable() -> None:
    cfg = CounterConfig.from_section({"thresholds": {"SymbolErrorCounter": 100, "LinkDownedCounter": 0,
                                                     "PortXmitWait": 1000}, "critical_factor": 2})
    assert cfg.thresholds["SymbolErrorCounter"] == 100
    assert "LinkDownedCounter" not in cfg.thresholds
    assert cfg.thresholds["PortXmitWait"] == 1000
    assert cfg.thresholds["PortRcvErrors"] == DEFAULT_THRESHOLDS["PortRcvErrors"]
    fab = fat_tree(1, 2, 1)
    topo = Topo.of(fab)
    sample = PortCounters(port=1, values={"SymbolErrorCounter": 150, "LinkDownedCounter": 99}, lid=None,
                          guid=fab.nodes[0].guid)
    (finding,) = check_counters(topo, [sample], cfg)
    assert finding.details["counters"] == {"SymbolErrorCounter": 150}
    assert finding.severity == "warning"  # 1.5 x threshold, critical from 2 x
    with pytest.raises(InputError, match="thresholds"):
        CounterConfig.from_section({"thresholds": {"SymbolErrorCounter": "many"}})
    with pytest.raises(InputError, match="critical_factor"):
        CounterConfig.from_section({"critical_factor": 0.5})


def test_counters_of_unknown_ports_still_reported() -> None:
    topo = Topo.of(fat_tree(1, 2, 1))
    (finding,) = check_counters(topo, [PortCounters(port=3, values={"PortRcvErrors": 11}, lid=999)])
    assert finding.subject == "lid 999 port 3"
