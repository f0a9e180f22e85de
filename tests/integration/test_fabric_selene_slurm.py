"""NVIDIA Selene's compute fabric, discovered as is (service hosts set apart by structure), exported
as topology.conf and loaded by a real slurmctld: no topology warning, every DGX under one leaf."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from ClusterShell.NodeSet import NodeSet

pytestmark = pytest.mark.integration

SELENE = Path(__file__).resolve().parents[1] / "fixtures" / "ibnetdiscover" / "selene-compute-hdr.out"


def test_selene_topology_loads_without_warnings_and_one_leaf_per_host(make_testbed, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fabric = tmp_path / "selene.json"
    subprocess.run([sys.executable, "-m", "gpupool", "fabric", "discover", "--ibnetdiscover", str(SELENE),
                    "-o", str(fabric)], check=True, capture_output=True, timeout=300)
    # The 458 DGX (`luna-*`, 8 HCAs each in the raw capture); the 11 single-HCA `selene-*` service hosts
    # stay out of Slurm's topology.
    dgx = sorted(NodeSet("luna-[0001-0560]") & NodeSet.fromlist(
        line.split('"')[3].split()[0] for line in SELENE.read_text().splitlines()
        if line.startswith("Ca") and '"luna-' in line))
    assert len(dgx) == 458
    bed = make_testbed(len(dgx), "--fabric", str(fabric))
    sinfo = bed.run(["sinfo", "-h", "-N", "-o", "%N"], check=True).stdout.split()
    assert sorted(set(sinfo)) == dgx

    topology = bed.run(["scontrol", "show", "topology"], check=True).stdout
    under_leaf: dict[str, int] = {}
    for line in topology.splitlines():
        if " Level=0 " in f" {line} " and "Nodes=" in line:
            for host in NodeSet(line.split("Nodes=")[1].split()[0]):
                under_leaf[host] = under_leaf.get(host, 0) + 1
    assert sorted(under_leaf) == dgx
    assert set(under_leaf.values()) == {1}
    top = [line for line in topology.splitlines() if " Level=2 " in f" {line} "]
    assert len(top) == 1 and "SwitchName=CCORE1-001" in top[0]

    log = (bed.state_dir / "log" / "slurmctld.log").read_text(errors="replace")
    topology_warnings = [line for line in log.splitlines()
                         if ("topology" in line.lower() or "switch" in line.lower())
                         and ("warning" in line.lower() or "error" in line.lower())]
    assert topology_warnings == []
    assert "Multiple leaf switches" not in log
