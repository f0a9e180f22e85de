"""A private ibsim (own socket name) on gpupool's net file for one fabric, swept once by OpenSM."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpupool.fabric.export import export
from gpupool.fabric.model import Fabric


@contextlib.contextmanager
def private_ibsim(fab: Fabric, workdir: Path, sm_args: tuple[str, ...] = ()) -> Iterator[dict[str, str]]:
    """Yield the environment under which gpupool and the IB tools talk to this simulated fabric."""
    for tool in ("ibsim", "ibsim-run", "opensm", "ibnetdiscover"):
        if not any(os.access(os.path.join(d, tool), os.X_OK) for d in ("/usr/bin", "/usr/sbin")):
            pytest.fail(f"{tool} is not installed (scripts/bootstrap installs ibsim-utils, opensm, infiniband-diags)")
    net = workdir / "net"
    net.write_text(export(fab, "ibsim"))
    env = {**os.environ, "IBSIM_SOCKNAME": f"gpsim{os.getpid()}x{workdir.name[-8:]}",
           "OSM_CACHE_DIR": str(workdir), "OSM_TMP_DIR": str(workdir), "GPUPOOL_IBDIAG_WRAPPER": "ibsim-run",
           "PATH": f"{Path(sys.executable).parent}:/usr/sbin:/usr/bin:{os.environ.get('PATH', '')}"}
    env.pop("LD_PRELOAD", None)
    env.pop("GPUPOOL_CONFIG", None)
    log = workdir / "ibsim.log"
    with open(log, "wb") as out:
        # ibsim reads console commands from stdin: a pipe we hold keeps it from seeing EOF.
        sim = subprocess.Popen(["stdbuf", "-o0", "ibsim", "-s", str(net)], stdin=subprocess.PIPE, stdout=out,
                               stderr=subprocess.STDOUT, env=env, cwd=workdir, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while "Network simulator ready" not in log.read_text(errors="replace"):
            if sim.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"ibsim did not start: {log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.1)
        subprocess.run(["ibsim-run", "opensm", "--once", "-f", str(workdir / "opensm.log"), *sm_args], env=env,
                       cwd=workdir, check=True, timeout=120, capture_output=True)
        yield env
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(sim.pid, signal.SIGTERM)
        try:
            sim.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(sim.pid, signal.SIGKILL)
            sim.wait()
