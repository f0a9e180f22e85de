"""Round trip on the real tools: gpupool fabric -> ibsim net file -> ibsim + OpenSM -> live discovery."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpupool.fabric.export import export
from gpupool.fabric.generate import dragonfly, fat_tree
from gpupool.fabric.model import Fabric, load_fabric, save_fabric

pytestmark = pytest.mark.integration


@contextlib.contextmanager
def simulated_fabric(fab: Fabric, workdir: Path) -> Iterator[dict[str, str]]:
    """Start ibsim on gpupool's net file with its own socket name, sweep once with OpenSM."""
    for tool in ("ibsim", "ibsim-run", "opensm", "ibnetdiscover"):
        if not any(os.access(os.path.join(d, tool), os.X_OK) for d in ("/usr/bin", "/usr/sbin")):
            pytest.fail(f"{tool} is not installed (scripts/bootstrap installs ibsim-utils, opensm, infiniband-diags)")
    net = workdir / "net"
    net.write_text(export(fab, "ibsim"))
    env = {**os.environ, "IBSIM_SOCKNAME": f"gprt{os.getpid()}x{workdir.name[-6:]}", "OSM_CACHE_DIR": str(workdir),
           "OSM_TMP_DIR": str(workdir), "GPUPOOL_IBDIAG_WRAPPER": "ibsim-run",
           "PATH": f"{Path(sys.executable).parent}:/usr/sbin:/usr/bin:{os.environ.get('PATH', '')}"}
    log = workdir / "ibsim.log"
    # ibsim reads console commands from stdin; a pipe we hold open keeps it from seeing EOF.
    with open(log, "wb") as out:
        sim = subprocess.Popen(["stdbuf", "-o0", "ibsim", "-s", str(net)], stdin=subprocess.PIPE, stdout=out,
                               stderr=subprocess.STDOUT, env=env, cwd=workdir, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while "Network simulator ready" not in log.read_text(errors="replace"):
            if sim.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"ibsim did not start: {log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.1)
        subprocess.run(["ibsim-run", "opensm", "--once", "-f", str(workdir / "opensm.log")], env=env, cwd=workdir,
                       check=True, timeout=120, capture_output=True)
        yield env
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(sim.pid, signal.SIGTERM)
        try:
            sim.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(sim.pid, signal.SIGKILL)
            sim.wait()


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
    with simulated_fabric(fab, tmp_path) as env:
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
    with simulated_fabric(fab, tmp_path) as env:
        out = tmp_path / "d.json"
        subprocess.run([sys.executable, "-m", "gpupool", "fabric", "discover", "--live", "-o", str(out)], env=env,
                       check=True, capture_output=True, timeout=120)
    found = load_fabric(str(out))
    assert sorted(lk.width for lk in found.links).count("1x") == 1
