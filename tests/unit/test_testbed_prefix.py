"""The testbed's source-built release (25.11, testbed/prefix.py): config and argv, no daemons, no build."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from testbed import config, prefix
from testbed.errors import TestbedError


def test_25_11_nodes_have_no_shared_node_hostname(tmp_path: Path) -> None:
    # 25.11.7 marks many slurmd with one NodeHostname=localhost as duplicates (vendor/README.md).
    for release, shared in (("22.05", True), ("24.11", True), ("25.11", False), ("26.05", True)):
        text = config.render_slurm_conf(config.Settings(state_dir=tmp_path, slurm=release, node_count=3),
                                        ["gpu001", "gpu002", "gpu003"])
        node_line = next(line for line in text.splitlines() if line.startswith("NodeName="))
        assert ("NodeHostname=localhost" in node_line) is shared, release
        assert "NodeAddr=127.0.0.1" in node_line


def test_25_11_slurmctld_contacts_every_node_itself(tmp_path: Path) -> None:
    for release, fanout in (("22.05", True), ("25.11", False), ("26.05", True)):
        text = config.render_slurm_conf(config.Settings(state_dir=tmp_path, slurm=release), ["gpu001"])
        assert ("TreeWidth=65533" not in text) is fanout, release


def test_only_the_slurm_daemons_come_from_the_prefix_each_in_its_own_mount_namespace() -> None:
    root = Path("/opt/slurm-x")
    for daemon, args in (("slurmctld", ["-D", "-i"]), ("slurmd", ["-D", "-N", "n1"]), ("slurmdbd", ["-D"])):
        argv = prefix.daemon_argv(root, [daemon, *args])
        assert Path(argv[0]).name == "unshare" and argv[1:4] == ["--mount", "--propagation", "private"]
        assert argv[4:] == [f"/opt/slurm-x/sbin/{daemon}", *args]
    assert prefix.daemon_argv(root, ["munged", "--foreground"]) == ["munged", "--foreground"]
    assert prefix.daemon_argv(root, ["mariadbd", "--no-defaults"]) == ["mariadbd", "--no-defaults"]


def test_clients_are_linked_from_the_prefix_and_mariadb_stays_the_hosts(tmp_path: Path) -> None:
    root, bin_dir = tmp_path / "prefix", tmp_path / "state" / "bin"
    (root / "bin").mkdir(parents=True)
    for name in ("sbatch", "squeue"):
        (root / "bin" / name).write_text("#!/bin/sh\n")
    bin_dir.mkdir(parents=True)
    (bin_dir / "sbatch").write_text("stale wrapper")  # an earlier release's wrapper is replaced
    prefix.link_clients(root, bin_dir, ["sbatch", "squeue", "mariadb"])
    assert sorted(p.name for p in bin_dir.iterdir()) == ["sbatch", "squeue"]
    assert os.readlink(bin_dir / "sbatch") == str(root / "bin" / "sbatch")


def test_25_11_is_a_release_and_the_others_are_not_source_built() -> None:
    assert "25.11" in config.SLURM_RELEASES
    assert prefix.is_prefix_release("25.11")
    assert not any(prefix.is_prefix_release(r) for r in ("22.05", "24.11", "26.05"))
    with pytest.raises(TestbedError):
        prefix.prefix_of("24.11")


@pytest.mark.skipif(os.geteuid() != 0, reason="unshare --mount needs root")
def test_a_recorded_namespace_no_daemon_holds_counts_only_slurm_side_processes(tmp_path: Path) -> None:
    # Someone else's process in a mount namespace whose number we recorded (reused after our daemon
    # in it died): not ours, so `down` never signals it.
    from testbed import daemons

    stranger = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sleep", "30"],
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        ns = ""
        while time.monotonic() < deadline:
            ns = os.readlink(f"/proc/{stranger.pid}/ns/mnt")
            if ns != os.readlink("/proc/self/ns/mnt") and Path(f"/proc/{stranger.pid}/exe").resolve().name == "sleep":
                break
            time.sleep(0.05)
        (tmp_path / "run").mkdir()
        daemons.namespaces_file(tmp_path).write_text(ns + "\n")
        assert stranger.pid not in daemons.marked_processes(tmp_path)
        # Held by a marked process, the same namespace is ours again (a live slurmd's job steps).
        holder = subprocess.Popen(["nsenter", f"--mount=/proc/{stranger.pid}/ns/mnt", "sleep", "30"],
                                  env={**os.environ, config.MARK_VAR: str(tmp_path)}, start_new_session=True)
        try:
            deadline = time.monotonic() + 10
            while stranger.pid not in daemons.marked_processes(tmp_path) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert {stranger.pid, holder.pid} <= daemons.marked_processes(tmp_path)
        finally:
            holder.kill()
            holder.wait(5)
    finally:
        stranger.kill()
        stranger.wait(5)


@pytest.mark.skipif(os.geteuid() != 0, reason="unshare --mount and chroot need root")
@pytest.mark.parametrize("marker", ["another testbed", "a client wrapper", "none"])
def test_a_chrooted_process_in_a_recorded_namespace_is_ours_unless_another_testbed_marks_it(
        tmp_path: Path, marker: str) -> None:
    # Parallel testbeds of chroot releases: a namespace number we recorded may be reused by another
    # testbed's munged (inside its chroot). Only unmarked chrooted processes (detached job steps) are ours.
    from testbed import daemons

    root = tmp_path / "root"
    root.mkdir()
    env = {k: v for k, v in os.environ.items() if k != config.MARK_VAR}
    if marker == "another testbed":
        env[config.MARK_VAR] = str(tmp_path / "other-state")
    elif marker == "a client wrapper":  # e.g. a parallel run's scontrol (seen: killed by another's down)
        env[config.CLIENT_VAR] = str(tmp_path / "other-state")
    script = f'mount --bind / "{root}" && exec chroot "{root}" sleep 30'
    chrooted = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                                env=env, start_new_session=True)
    proc_dir = Path("/proc", str(chrooted.pid))
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if os.readlink(proc_dir / "root") == str(root):
                    break
            except OSError:
                pass
            time.sleep(0.05)
        (tmp_path / "run").mkdir()
        daemons.namespaces_file(tmp_path).write_text(os.readlink(proc_dir / "ns" / "mnt") + "\n")
        found = daemons.marked_processes(tmp_path)
        assert (chrooted.pid in found) == (marker == "none")
    finally:
        chrooted.kill()
        chrooted.wait(5)
