"""The session fixture `testbed`: a running local Slurm + ibsim testbed (scripts/testbed).

If $GPUPOOL_TESTBED_DIR names a testbed whose `status` is OK, the tests use it and leave it running.
Otherwise the fixture brings one up in a temporary state directory on a free port base and tears it
down at the end of the session. A testbed that cannot come up FAILS the tests (never skips them).

Environment knobs: GPUPOOL_TESTBED_NODES (default 64), GPUPOOL_TESTBED_PYTEST_PORT_BASE (first
port base to try, default 26800).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from testbed import chroot as testbed_chroot
from testbed import config as testbed_config
from testbed import daemons as testbed_daemons
from testbed import prefix as testbed_prefix
from testbed.errors import TestbedError

REPO = Path(__file__).resolve().parents[2]
TESTBED_SCRIPT = REPO / "scripts" / "testbed"
# The Slurm release every testbed of this session runs (`scripts/test --slurm`, CI runs all three).
SLURM_RELEASE = os.environ.get("GPUPOOL_TESTBED_SLURM") or testbed_config.HOST_SLURM
PORT_BASE_STEP = 400  # room for 3 service ports + up to ~300 slurmds per testbed
# Where each module's testbeds start looking for a free base, above $GPUPOOL_TESTBED_PYTEST_PORT_BASE:
# apart, so two `up`s never race for one base (scripts/test --parallel gives each release 6000).
PORT_OFFSETS = {"session": 0, "observe": 800, "reclaim": 1600, "node": 2000, "hostile": 2400,
                "pools": 2800, "lending": 3200, "extra": 4000, "testbed-cli": 5400}
T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float, interval: float = 0.5,
               message: str = "condition") -> T:
    """Poll predicate until it returns something truthy; fail the test after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {message} (last value {value!r})")
        time.sleep(interval)


def run_testbed(args: Sequence[str], timeout: float = 600,
                env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base_env = {k: v for k, v in os.environ.items()
                if k not in ("GPUPOOL_TESTBED_DIR", "GPUPOOL_TESTBED_PORT_BASE")}
    return subprocess.run([sys.executable, str(TESTBED_SCRIPT), *args], capture_output=True, text=True,
                          timeout=timeout, env={**base_env, **(env or {})}, cwd=REPO)


@dataclass
class Testbed:
    """A running testbed and helpers to use it from tests."""

    __test__ = False  # not a test class despite the name

    state_dir: Path
    env: dict[str, str]
    fabric_path: Path
    nodes: list[str]
    gpus_per_node: int
    port_base: int
    started_here: bool = False
    settings: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_status(cls, status: dict[str, Any], started_here: bool) -> Testbed:
        env = dict(status["env"])
        return cls(state_dir=Path(status["state_dir"]), env=env,
                   fabric_path=Path(env["GPUPOOL_FABRIC"]), nodes=list(status["nodes"]),
                   gpus_per_node=int(status["settings"]["gpus_per_node"]),
                   port_base=int(status["port_base"]), started_here=started_here,
                   settings=dict(status["settings"]))

    @property
    def work_dir(self) -> Path:
        # ibsim-run (umad2sim) clients create ./sys-<pid> in their working directory.
        return self.state_dir / "ibsim" / "work"

    def full_env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
        env.update(self.env)
        env.update(extra or {})
        return env

    def run(self, cmd: Sequence[str], *, timeout: float = 60, check: bool = False,
            env: dict[str, str] | None = None, cwd: Path | None = None,
            **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """Run cmd with the testbed's environment (Slurm, gpupool, ibsim-run) and a timeout."""
        proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout,
                              env=self.full_env(env), cwd=cwd or self.work_dir, **kwargs)
        if check and proc.returncode != 0:
            pytest.fail(f"`{' '.join(cmd)}` exited {proc.returncode}:\n{proc.stderr}{proc.stdout}")
        return proc

    def testbed(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """Run scripts/testbed on this testbed's state directory."""
        return run_testbed([*args, "--state-dir", str(self.state_dir)], timeout=timeout)

    def ibsim_console(self, command: str) -> str:
        """Send one ibsim console command (e.g. 'Unlink "H-..."[1]'); return ibsim's reply."""
        proc = self.testbed("console", command, timeout=30)
        if proc.returncode != 0:
            pytest.fail(f"ibsim console {command!r} failed: {proc.stderr}")
        return proc.stdout

    def run_sm(self) -> None:
        """Run OpenSM once more (after Unlink/ReLink) so LIDs and routes match the new fabric."""
        proc = self.testbed("sm", timeout=180)
        if proc.returncode != 0:
            pytest.fail(f"opensm sweep failed: {proc.stderr}")

    def job_ids(self) -> list[str]:
        proc = self.run(["squeue", "-h", "-o", "%i"], check=True)
        return proc.stdout.split()

    def cancel_all(self, timeout: float = 60) -> None:
        """scancel every job and wait until squeue shows none."""
        ids = self.job_ids()
        if ids:
            self.run(["scancel", *ids])
        wait_until(lambda: not self.job_ids(), timeout, message="squeue to be empty")

    def node_states(self) -> dict[str, tuple[str, str]]:
        """sinfo per node: name -> (state, gres)."""
        proc = self.run(["sinfo", "-h", "-N", "-o", "%N|%T|%G"], check=True)
        states = {}
        for line in proc.stdout.splitlines():
            name, state, gres = line.split("|", 2)
            states[name] = (state, gres)
        return states

    def wait_all_idle(self, timeout: float = 60) -> None:
        wait_until(lambda: all(s == "idle" for s, _ in self.node_states().values()), timeout,
                   message="all nodes idle")


def first_port_base(owner: str) -> int:
    """The first port base `owner` (a key of PORT_OFFSETS) tries in this session."""
    return int(os.environ.get("GPUPOOL_TESTBED_PYTEST_PORT_BASE", "26800")) + PORT_OFFSETS[owner]


def pick_port_base(first: int, node_count: int) -> int:
    """First port base from `first` (step PORT_BASE_STEP) whose ports and ibsim socket are free."""
    for base in range(first, 60000, PORT_BASE_STEP):
        settings = testbed_config.Settings(state_dir=Path("/nonexistent"), port_base=base,
                                           node_count=node_count)
        if testbed_daemons.abstract_socket_in_use(settings.ibsim_sockname):
            continue
        if not testbed_daemons.ports_taken(settings):
            return base
    pytest.fail(f"no free port base at or above {first}")


def status_of(state_dir: Path) -> dict[str, Any] | None:
    proc = run_testbed(["status", "--json", "--state-dir", str(state_dir)], timeout=60)
    if proc.returncode != 0:
        return None
    return json.loads(proc.stdout)


def ensure_release_built() -> None:
    """Build (or find cached) the chroot of a non-host release once, before any `up`: a release
    that cannot be built fails the tests loudly, and `up` never retries a build."""
    if SLURM_RELEASE not in testbed_config.SLURM_RELEASES:
        pytest.fail(f"GPUPOOL_TESTBED_SLURM={SLURM_RELEASE}: not one of "
                    f"{', '.join(testbed_config.SLURM_RELEASES)}")
    if SLURM_RELEASE == testbed_config.HOST_SLURM:
        return
    try:
        if testbed_prefix.is_prefix_release(SLURM_RELEASE):  # 25.11: built from source
            testbed_prefix.build(SLURM_RELEASE)
            return
        testbed_chroot.build(testbed_chroot.chroot_for(SLURM_RELEASE))
    except TestbedError as exc:
        pytest.fail(f"cannot build the Slurm {SLURM_RELEASE} chroot: {exc.message}\n{exc.detail}")


def bring_up(state_dir: Path, node_count: int, first_base: int,
             extra_args: Sequence[str] = ()) -> dict[str, Any]:
    """`scripts/testbed up` on a free port base (retrying if another session grabs it first)."""
    ensure_release_built()
    last = None
    for attempt in range(3):
        base = pick_port_base(first_base + attempt * PORT_BASE_STEP, node_count)
        last = run_testbed(["up", "--state-dir", str(state_dir), "--port-base", str(base),
                            "--nodes", str(node_count), "--slurm", SLURM_RELEASE, *extra_args])
        if last.returncode == 0:
            status = status_of(state_dir)
            if status is None:
                break
            return status
        if last.returncode != 3:  # 3: port taken meanwhile, try the next base
            break
    run_testbed(["down", "--state-dir", str(state_dir)], timeout=120)
    assert last is not None
    pytest.fail(f"scripts/testbed up --slurm {SLURM_RELEASE} failed (exit {last.returncode}):\n{last.stderr[-4000:]}")


@pytest.fixture(scope="session")
def testbed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Testbed]:
    existing = os.environ.get("GPUPOOL_TESTBED_DIR")
    if existing:
        status = status_of(Path(existing))
        if status is not None:
            yield Testbed.from_status(status, started_here=False)
            return
    state_dir = tmp_path_factory.mktemp("testbed")
    node_count = int(os.environ.get("GPUPOOL_TESTBED_NODES", "64"))
    first_base = first_port_base("session")
    bed = Testbed.from_status(bring_up(state_dir, node_count, first_base), started_here=True)
    try:
        yield bed
    finally:
        proc = run_testbed(["down", "--state-dir", str(state_dir)], timeout=180)
        if proc.returncode != 0:
            print(f"testbed down failed: {proc.stderr}")


@pytest.fixture
def make_testbed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Testbed]]:
    """Factory for extra, throw-away testbeds (own state dir and port base), downed after the test."""
    started: list[Path] = []
    first_base = first_port_base("extra")

    def make(node_count: int = 4, *extra_args: str) -> Testbed:
        state_dir = tmp_path_factory.mktemp("extra-testbed")
        started.append(state_dir)
        return Testbed.from_status(bring_up(state_dir, node_count, first_base, extra_args),
                                   started_here=True)

    yield make
    for state_dir in started:
        run_testbed(["down", "--state-dir", str(state_dir)], timeout=180)
