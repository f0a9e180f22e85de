"""Round trip on the real tools: gpupool fabric -> ibsim net file -> ibsim + OpenSM -> live discovery."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gpupool.fabric.export import export
from gpupool.fabric.generate import dragonfly, fat_tree
from gpupool.fabric.model import Fabric, load_fabric, save_fabric
from tests.integration.private_ibsim import private_ibsim

pytestmark = pytest.mark.integration


def _link_set(fab: Fabric) -> set[tuple[str, int, str, int, str, str]]:
    out = set()
    for lk in fab.links:
        a = (fab.nodes[lk.a].id, lk.a_port)
        b = (fab.nodes[lk.b].id, lk.b_port)
        (x, xp), (y, yp) = sorted([a, b])
        out.add((x, xp, y, yp, lk.width, lk.speed))
    return out


@pytest.mark.parametrize(
    "fab",
    [
        pytest.param(fat_tree(4, 4, 2, rails=2), id="fat-tree-2rails"),
        pytest.param(fat_tree(2, 3, 2, pods=2, cores=2), id="fat-tree-3level"),
        pytest.param(dragonfly(4, 3, 2, 1), id="dragonfly"),
    ],
)
def test_live_discovery_gives_back_the_same_topology(fab: Fabric, tmp_path: Path) -> None:
    design = tmp_path / "design.json"
    save_fabric(fab, str(design))
    with private_ibsim(fab, tmp_path) as env:
        out = tmp_path / "discovered.json"
        proc = subprocess.run([sys.executable, "-m", "gpupool", "fabric", "discover", "--live", "-o", str(out), "--json"],
                              env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        summary = json.loads(proc.stdout)
    found = load_fabric(str(out))
    original = load_fabric(str(design))
    assert summary["hosts"] == len(original.hosts())
    assert found.hosts().keys() == original.hosts().keys()
    assert _link_set(found) == _link_set(original)
    assert export(found, "slurm-tree") == export(original, "slurm-tree")


def test_degraded_link_in_net_file_is_discovered(tmp_path: Path) -> None:
    fab = fat_tree(2, 2, 2)
    fab.links[0].width = "1x"
    with private_ibsim(fab, tmp_path) as env:
        out = tmp_path / "d.json"
        subprocess.run([sys.executable, "-m", "gpupool", "fabric", "discover", "--live", "-o", str(out)], env=env,
                       check=True, capture_output=True, timeout=120)
    found = load_fabric(str(out))
    assert sorted(lk.width for lk in found.links).count("1x") == 1
