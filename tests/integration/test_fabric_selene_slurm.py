"""NVIDIA Selene's compute fabric, discovered from the real capture, exported as topology.conf and
loaded by a real slurmctld: no topology warning, every DGX under one leaf, the core on top.

By default the DGX of one scalable unit under each of the 4 compute-spine groups (76 hosts: every
level of Selene's tree, LG leaves - CSPINE groups - CCORE core) keep the testbed small; with
GPUPOOL_TEST_SELENE_FULL=1 all 458 DGX are used (458 slurmd: a machine to itself, as their port
range is wide enough to meet other sessions' ephemeral ports)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from ClusterShell.NodeSet import NodeSet

pytestmark = pytest.mark.integration

SELENE = Path(__file__).resolve().parents[1] / "fixtures" / "ibnetdiscover" / "selene-compute-hdr.out"


def _dgx_by_unit() -> dict[str, list[str]]:
    """Raw reader: DGX host -> the LG<unit>-NN leaves its HCAs are cabled to, grouped by unit."""
    switch_name: dict[str, str] = {}
    current = None
    host_of: dict[str, str] = {}
    hca_switches: dict[str, set[str]] = {}
    for line in SELENE.read_text().splitlines():
        if m := re.match(r'^(Switch|Ca)\s+\d+\s+"([^"]+)"\s+#\s+"([^"]*)"', line):
            current = m.group(2)
            if m.group(1) == "Switch":
                switch_name[current] = m.group(3).removeprefix("MF0;").split(":")[0]
            elif m.group(3).startswith("luna-"):
                host_of[current] = m.group(3).split()[0]
        elif (m := re.match(r'^\[\d+\]\S*\s+"([^"]+)"\[\d+\]', line)) and current in host_of:
            hca_switches.setdefault(current, set()).add(m.group(1))
    units: dict[str, set[str]] = {}
    for hca, host in host_of.items():
        for sw in hca_switches.get(hca, ()):
            units.setdefault(switch_name[sw].split("-")[0], set()).add(host)
    return {u: sorted(h) for u, h in units.items()}


def test_selene_topology_loads_without_warnings_and_one_leaf_per_host(make_testbed, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    units = _dgx_by_unit()
    assert sum(len(h) for h in units.values()) == 458
    chosen = units if os.environ.get("GPUPOOL_TEST_SELENE_FULL") == "1" else {
        u: units[u] for u in ("LG01", "LG08", "LG15", "LG22")}  # first unit of CSPINE1..4's groups
    dgx = sorted(h for hosts in chosen.values() for h in hosts)
    fabric = tmp_path / "selene.json"
    subprocess.run([sys.executable, "-m", "gpupool", "fabric", "discover", "--ibnetdiscover", str(SELENE),
                    "--hosts", str(NodeSet.fromlist(dgx)), "-o", str(fabric)],
                   check=True, capture_output=True, timeout=300)
    bed = make_testbed(len(dgx), "--fabric", str(fabric))
    sinfo = bed.run(["sinfo", "-h", "-N", "-o", "%N"], check=True).stdout.split()
    assert sorted(set(sinfo)) == dgx

    topology = bed.run(["scontrol", "show", "topology"], check=True).stdout
    under_leaf: dict[str, str] = {}
    for line in topology.splitlines():
        if " Level=0 " in f" {line} " and "Nodes=" in line:
            leaf = line.split("SwitchName=")[1].split()[0]
            for host in NodeSet(line.split("Nodes=")[1].split()[0]):
                assert host not in under_leaf  # every DGX under exactly one leaf
                under_leaf[host] = leaf
    assert sorted(under_leaf) == dgx
    for unit, hosts in chosen.items():
        assert {under_leaf[h] for h in hosts} == {f"{unit}-01"}  # the leaf of its own unit
    top = [line for line in topology.splitlines() if " Level=2 " in f" {line} "]
    assert len(top) == 1 and "SwitchName=CCORE1-001" in top[0]

    log = (bed.state_dir / "log" / "slurmctld.log").read_text(errors="replace")
    topology_warnings = [line for line in log.splitlines()
                         if ("topology" in line.lower() or "switch" in line.lower())
                         and ("warning" in line.lower() or "error" in line.lower())]
    assert topology_warnings == []
    assert "Multiple leaf switches" not in log
