"""`gpupool node check` reading HCA ports through `ibstat` on an ibsim-simulated fabric.

Runs its own ibsim (unique IBSIM_SOCKNAME, so it never meets another testbed's) and OpenSM.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakenvml.fakenvml_build import node_config

pytestmark = pytest.mark.integration

UMAD2SIM = "/usr/lib/x86_64-linux-gnu/umad2sim/libumad2sim.so"
NET = """\
Switch	8 "leaf1"
[1]	"gpu001-hca"[1]
[2]	"gpu002-hca"[1]

Hca	1 "gpu001-hca"
[1]	"leaf1"[1]

Hca	1 "gpu002-hca"
[1]	"leaf1"[2]
"""


class Sim:
    def __init__(self, directory: Path, process: subprocess.Popen[str], sockname: str) -> None:
        self.directory = directory
        self.process = process
        self.sockname = sockname

    def env(self, sim_host: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM", "GPUPOOL_"))}
        env.update({"IBSIM_SOCKNAME": self.sockname, "SIM_HOST": sim_host, "LD_PRELOAD": UMAD2SIM,
                    "OSM_CACHE_DIR": str(self.directory), "NO_COLOR": "1"})
        return env

    def console(self, command: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        time.sleep(0.3)

    def run_sm(self) -> None:
        subprocess.run(["opensm", "--once", "-F", "/dev/null", "-f", str(self.directory / "opensm.log")],
                       env=self.env("gpu001-hca"), capture_output=True, timeout=60, check=True)


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    for tool in ("ibsim", "opensm", "ibstat"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            pytest.fail(f"{tool} not installed (scripts/bootstrap installs it)")
    if not Path(UMAD2SIM).exists():
        pytest.fail("umad2sim not installed (scripts/bootstrap installs ibsim-utils)")
    directory = tmp_path_factory.mktemp("ibsim")
    (directory / "net").write_text(NET)
    sockname = f"gpupool-node-test-{os.getpid()}"
    env = {**os.environ, "IBSIM_SOCKNAME": sockname}
    env.pop("LD_PRELOAD", None)
    with open(directory / "ibsim.log", "w") as log:
        process = subprocess.Popen(["ibsim", "-s", str(directory / "net")], stdin=subprocess.PIPE,
                                   stdout=log, stderr=subprocess.STDOUT, env=env, text=True,
                                   cwd=directory, start_new_session=True)
    try:
        deadline = time.monotonic() + 15
        while "sim>" not in (directory / "ibsim.log").read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail("ibsim did not start: " + (directory / "ibsim.log").read_text()[-500:])
            time.sleep(0.1)
        simulator = Sim(directory, process, sockname)
        simulator.run_sm()
        yield simulator
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def node_check(sim: Sim, sim_host: str, tmp_path: Path, config: str = "") -> tuple[int, dict]:
    no_gpus = tmp_path / "sysroot"  # a host without GPUs, whatever this machine has
    (no_gpus / "sys/bus/pci/devices").mkdir(parents=True, exist_ok=True)
    (tmp_path / "config.toml").write_text(node_config(tmp_path, f'[node]\nsysfs_root = "{no_gpus}"\n' + config))
    env = sim.env(sim_host)
    env["GPUPOOL_CONFIG"] = str(tmp_path / "config.toml")
    done = subprocess.run([sys.executable, "-m", "gpupool", "node", "check", "--json",
                           "--hca-source", "ibstat"], env=env, capture_output=True, text=True, timeout=60)
    assert done.stdout, done.stderr
    return done.returncode, json.loads(done.stdout)


def ibstat_state(sim: Sim, sim_host: str) -> str:
    done = subprocess.run(["ibsim-run", "ibstat"], env=sim.env(sim_host), capture_output=True,
                          text=True, timeout=30, check=True)
    return next(line.split(":", 1)[1].strip() for line in done.stdout.splitlines()
                if line.strip().startswith("State:"))


def test_active_port_after_opensm_is_ok(sim: Sim, tmp_path: Path) -> None:
    assert ibstat_state(sim, "gpu002-hca") == "Active"
    code, report = node_check(sim, "gpu002-hca", tmp_path, "expected_hca_ports = 1\nexpected_hca_rate = 10\n")
    assert (code, report["status"], report["hca_ports"]) == (0, "OK", 1)


def test_unlinked_port_is_critical_and_named(sim: Sim, tmp_path: Path) -> None:
    sim.console('Unlink "gpu002-hca"')
    try:
        assert ibstat_state(sim, "gpu002-hca") == "Down"
        code, report = node_check(sim, "gpu002-hca", tmp_path)
        assert (code, report["status"]) == (2, "CRITICAL")
        checks = {(f["check"], f["subject"]) for f in report["findings"]}
        assert ("hca-port-state", "ibsim0/1") in checks
        # The other host's HCA is untouched.
        code, report = node_check(sim, "gpu001-hca", tmp_path)
        assert (code, report["status"]) == (0, "OK")
    finally:
        sim.console('ReLink "gpu002-hca"')
        sim.run_sm()
    assert ibstat_state(sim, "gpu002-hca") == "Active"


def test_rate_below_expectation_is_a_warning(sim: Sim, tmp_path: Path) -> None:
    code, report = node_check(sim, "gpu001-hca", tmp_path, "expected_hca_rate = 400\n")
    assert (code, report["status"]) == (1, "WARNING")
    assert [(f["check"], f["subject"]) for f in report["findings"]] == [("hca-rate", "ibsim0/1")]
