"""A director site (issue 25): discovered from its capture, exported as topology.conf whose top is the
director chassis, and loaded by a real slurmctld without a topology warning."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from ClusterShell.NodeSet import NodeSet

from tests.support.captures import director_site

pytestmark = pytest.mark.integration


def test_director_site_topology_loads_with_the_director_on_top(make_testbed, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # One director (2 line + 1 fabric ASIC), 4 external leaves, 3 with two hosts, one with none:
    # by construction (tests.support.captures.director_site) hosts nXY sit on leaf-0X.
    capture, fabric = tmp_path / "site.out", tmp_path / "site.json"
    capture.write_text(director_site(dirs=1, lines=2, fabric_asics=1, leaves=4, hosted=3, spread=True))
    subprocess.run([sys.executable, "-m", "gpupool", "fabric", "discover", "--ibnetdiscover", str(capture),
                    "-o", str(fabric)], check=True, capture_output=True, timeout=120)
    hosts = [f"n{k:02d}{h}" for k in (1, 2, 3) for h in (1, 2)]
    bed = make_testbed(len(hosts), "--fabric", str(fabric))

    conf = (bed.state_dir / "etc" / "topology.conf").read_text()
    switches = {m.group(1): m.group(2) for m in re.finditer(r"^SwitchName=(\S+)\s+(\S+=\S+)", conf, re.M)}
    assert switches.get("dir1", "").startswith("Switches="), conf  # the top is the chassis, by name
    tops = [name for name, what in switches.items() if what.startswith("Switches=")
            and not any(name in NodeSet(other.split("=", 1)[1]) for other in switches.values()
                        if other.startswith("Switches="))]
    assert tops == ["dir1"], conf

    topology = bed.run(["scontrol", "show", "topology"], check=True).stdout
    leaf_of: dict[str, str] = {}
    for line in topology.splitlines():
        if " Level=0 " in f" {line} " and "Nodes=" in line:
            name = line.split("SwitchName=")[1].split()[0]
            for host in NodeSet(line.split("Nodes=")[1].split()[0]):
                assert host not in leaf_of, topology
                leaf_of[host] = name
    assert sorted(leaf_of) == sorted(hosts)
    for host, leaf in leaf_of.items():
        assert leaf == f"leaf-{host[1:3]}", (host, leaf)

    log = (bed.state_dir / "log" / "slurmctld.log").read_text(errors="replace")
    topology_warnings = [line for line in log.splitlines()
                         if ("topology" in line.lower() or "switch" in line.lower())
                         and ("warning" in line.lower() or "error" in line.lower())]
    assert topology_warnings == []
