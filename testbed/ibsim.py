"""ibsim, the InfiniBand simulator that stands in for the fabric, and OpenSM run once against it."""

from __future__ import annotations

import os
import stat
import subprocess

from testbed.config import Layout, Settings, ibsim_limits
from testbed.daemons import (
    abstract_socket_in_use,
    daemon_env,
    daemon_failed,
    read_pid,
    stop_pids,
    wait_daemon,
    wait_for,
    write_pid,
)
from testbed.errors import EXIT_DOWN, EXIT_ENV, TestbedError


def start_ibsim(settings: Settings) -> None:
    lay = Layout(settings.state_dir)
    lay.ibsim_dir.mkdir(parents=True, exist_ok=True)
    lay.ibsim_work.mkdir(parents=True, exist_ok=True)
    if abstract_socket_in_use(settings.ibsim_sockname):
        raise TestbedError(f"ibsim socket @{settings.ibsim_sockname}:ctl is in use (another testbed "
                           "with this port base?)", EXIT_ENV)
    if lay.ibsim_fifo.exists() and not stat.S_ISFIFO(lay.ibsim_fifo.stat().st_mode):
        lay.ibsim_fifo.unlink()
    if not lay.ibsim_fifo.exists():
        os.mkfifo(lay.ibsim_fifo, 0o600)
    # O_RDWR: ibsim itself holds a writer, so its console never sees EOF (EOF makes it spin).
    fifo_fd = os.open(lay.ibsim_fifo, os.O_RDWR)
    log = lay.log_file("ibsim")
    log.write_bytes(b"")
    try:
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                ["stdbuf", "-o0", "-e0", "ibsim", "-s", *ibsim_limits(lay.ibsim_net.read_text()),
                 str(lay.ibsim_net)], stdin=fifo_fd,
                stdout=out, stderr=subprocess.STDOUT, cwd=lay.ibsim_dir,
                env=daemon_env(settings), start_new_session=True, close_fds=True)
    finally:
        os.close(fifo_fd)
    write_pid(lay, "ibsim", proc.pid)
    wait_daemon("ibsim", proc, lambda: "Network simulator ready" in log.read_text(errors="replace"),
                30, f"load {lay.ibsim_net}", log)


def ibsim_client_env(settings: Settings) -> dict[str, str]:
    lay = Layout(settings.state_dir)
    return daemon_env(settings, {"OSM_CACHE_DIR": str(lay.opensm_dir),
                                 "OSM_TMP_DIR": str(lay.opensm_dir)})


def run_opensm_once(settings: Settings) -> None:
    """Assign LIDs and routes once, like a real SM, so ibnetdiscover/perfquery see a configured subnet."""
    lay = Layout(settings.state_dir)
    lay.opensm_dir.mkdir(parents=True, exist_ok=True)
    argv = ["ibsim-run", "opensm", "--once", "-f", str(lay.opensm_dir / "opensm.log"),
            "--dump_files_dir", str(lay.opensm_dir)]
    with open(lay.log / "opensm.out", "ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=lay.ibsim_work,
                                env=ibsim_client_env(settings), start_new_session=True)
        write_pid(lay, "opensm", proc.pid)
        try:
            code = proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            stop_pids([proc.pid], 5)
            raise daemon_failed("opensm", "did not finish one sweep within 120s",
                                lay.opensm_dir / "opensm.log") from None
    lay.pid_file("opensm").unlink(missing_ok=True)
    if code != 0:
        raise daemon_failed("opensm", f"exited with {code}", lay.log / "opensm.out",
                            lay.opensm_dir / "opensm.log")


def ibsim_console(lay: Layout, command: str, timeout: float = 10) -> str:
    """Send one console command to the running ibsim and return what it printed."""
    if not read_pid(lay, "ibsim"):
        raise TestbedError(f"ibsim is not running in {lay.root}", EXIT_DOWN)
    log = lay.log_file("ibsim")
    offset = log.stat().st_size
    fd = os.open(lay.ibsim_fifo, os.O_WRONLY | os.O_NONBLOCK)
    try:
        os.write(fd, (command.strip() + "\n").encode())
    finally:
        os.close(fd)

    def output() -> str:
        with open(log, "rb") as handle:
            handle.seek(offset)
            return handle.read().decode(errors="replace")

    # ibsim prints "sim> " after finishing each command.
    wait_for(lambda: output().rstrip().endswith("sim>"), timeout, 0.05)
    text = output()
    return text.rstrip().removesuffix("sim>").rstrip() + "\n" if text.strip() else ""
