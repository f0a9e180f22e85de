"""The real DGX SuperPOD capture, restricted to its DGX hosts, loaded by a real slurmctld."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from ClusterShell.NodeSet import NodeSet

from gpupool.fabric.ibnetdiscover import parse_ibnetdiscover
from gpupool.hostlist import fold
from tests.support.helpers import DGX_FIXTURE

pytestmark = pytest.mark.integration


def test_dgx_topology_loads_without_warnings_and_one_leaf_per_host(make_testbed, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    dgx_hosts = [h for h in parse_ibnetdiscover(DGX_FIXTURE.read_text(), "dgx").hosts() if "-dgx-" in h]
    fabric = tmp_path / "dgx.json"
    subprocess.run([sys.executable, "-m", "gpupool", "fabric", "discover", "--ibnetdiscover", str(DGX_FIXTURE),
                    "--hosts", fold(dgx_hosts), "-o", str(fabric)], check=True, capture_output=True, timeout=120)
    bed = make_testbed(len(dgx_hosts), "--fabric", str(fabric))
    sinfo = bed.run(["sinfo", "-h", "-N", "-o", "%N %G"], check=True).stdout.split("\n")
    assert sorted({line.split()[0] for line in sinfo if line.strip()}) == sorted(dgx_hosts)

    topology = bed.run(["scontrol", "show", "topology"], check=True).stdout
    under_leaf: dict[str, int] = {}
    for line in topology.splitlines():
        if " Level=0 " in f" {line} " and "Nodes=" in line:
            nodes_expr = line.split("Nodes=")[1].split()[0]
            for host in NodeSet(nodes_expr):
                under_leaf[host] = under_leaf.get(host, 0) + 1
    assert sorted(under_leaf) == sorted(dgx_hosts)
    assert set(under_leaf.values()) == {1}  # every DGX host under exactly one leaf switch

    log = (bed.state_dir / "log" / "slurmctld.log").read_text(errors="replace")
    topology_warnings = [line for line in log.splitlines()
                         if ("topology" in line.lower() or "switch" in line.lower())
                         and ("warning" in line.lower() or "error" in line.lower())]
    assert topology_warnings == []
    assert "Multiple leaf switches" not in log
