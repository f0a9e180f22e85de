"""The testbed package's pure parts (no daemons): ports, hostlists, sizing and the generated configs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from testbed import config, daemons
from testbed.errors import EXIT_DOWN, EXIT_ENV, TestbedError


def settings(tmp: Path, **kw: object) -> config.Settings:
    return config.Settings(state_dir=tmp, **kw)


def test_ports_derive_from_the_base_and_never_overlap_between_bases(tmp_path: Path) -> None:
    a = config.all_ports(settings(tmp_path, port_base=16800, node_count=128))
    b = config.all_ports(settings(tmp_path, port_base=17200, node_count=128))
    assert len(set(a.values())) == 128 + 3
    assert min(a.values()) == 16800 and max(a.values()) == 16800 + 100 + 127
    assert not set(a.values()) & set(b.values())


def test_node_runs_split_where_hostlist_ranges_break() -> None:
    names = ["gpu001", "gpu002", "gpu003", "gpu005", "gpu0006", "login", "gpu006"]
    runs = config.node_runs(names)
    assert runs == [["gpu001", "gpu002", "gpu003"], ["gpu005"], ["gpu0006"], ["login"], ["gpu006"]]
    assert [config.hostlist_of_run(r) for r in runs] == ["gpu[001-003]", "gpu005", "gpu0006", "login", "gpu006"]


@given(st.lists(st.sampled_from(["gpu", "n", "rack1-node"]).flatmap(
    lambda prefix: st.integers(0, 300).map(lambda i: f"{prefix}{i:03d}")), unique=True, max_size=40))
def test_hostlist_of_runs_expands_back_to_the_names(names: list[str]) -> None:
    expr = ",".join(config.hostlist_of_run(r) for r in config.node_runs(names))
    assert config.expand_hostlist(expr) == names


def test_expand_hostlist_handles_lists_and_nested_ranges() -> None:
    assert config.expand_hostlist("gpu[001-002,010],login1") == ["gpu001", "gpu002", "gpu010", "login1"]
    assert config.expand_hostlist("r[1-2]n[08-09]") == ["r1n08", "r1n09", "r2n08", "r2n09"]


def test_hosts_from_topology_conf_reads_nodes_of_every_switch() -> None:
    text = ("# comment Nodes=ignored\nSwitchName=leaf01 Nodes=gpu[001-002]\n"
            "SwitchName=leaf02 Nodes=gpu003,gpu004\nSwitchName=spine Switches=leaf[01-02]\n")
    assert config.hosts_from_topology_conf(text) == ["gpu001", "gpu002", "gpu003", "gpu004"]


@pytest.mark.parametrize("count", [64, 128, 96, 8, 12, 7])
def test_fat_tree_sizing_generates_exactly_the_requested_hosts(count: int) -> None:
    args = config.fat_tree_args(count)
    opts = dict(zip(args[1::2], (int(v) for v in args[2::2]), strict=True))
    assert opts["--leaves"] * opts["--hosts-per-leaf"] * opts.get("--pods", 1) == count
    if count == 64:
        assert opts == {"--leaves": 8, "--hosts-per-leaf": 8, "--spines": 4}


@pytest.mark.parametrize("count", [64, 128, 32, 6, 5])
def test_dragonfly_sizing_connects_every_group(count: int) -> None:
    args = config.dragonfly_args(count)
    opts = dict(zip(args[1::2], (int(v) for v in args[2::2]), strict=True))
    assert opts["--groups"] * opts["--routers-per-group"] * opts["--hosts-per-router"] == count
    assert opts["--routers-per-group"] * opts["--global-links-per-router"] >= opts["--groups"] - 1


def test_slurm_conf_gives_each_node_its_own_port_and_our_munge_socket(tmp_path: Path) -> None:
    s = settings(tmp_path, port_base=20000, gpus_per_node=4)
    conf = config.render_slurm_conf(s, ["gpu001", "gpu002", "gpu003", "spare7"])
    lines = conf.splitlines()
    assert ("NodeName=gpu[001-003] NodeAddr=127.0.0.1 NodeHostname=localhost Port=20100-20102 "
            "CPUs=16 RealMemory=64000 Gres=gpu:4 State=UNKNOWN") in lines
    assert any(line.startswith("NodeName=spare7 ") and " Port=20103 " in line for line in lines)
    assert f"AuthInfo=socket={tmp_path}/munge/munged.sock" in lines
    assert f"AccountingStoragePass={tmp_path}/munge/munged.sock" in lines
    assert "SlurmctldPort=20000" in lines and "AccountingStoragePort=20001" in lines
    assert "TopologyPlugin=topology/tree" in lines
    assert not any(line.startswith(("Prolog=", "Epilog=", "JobSubmitPlugins=")) for line in lines)


def test_slurm_conf_hooks_appear_only_when_asked(tmp_path: Path) -> None:
    s = settings(tmp_path, prolog="/p", epilog="/e", task_prolog="/t", job_submit_lua="/x.lua")
    lines = config.render_slurm_conf(s, ["gpu001"]).splitlines()
    assert {"Prolog=/p", "Epilog=/e", "TaskProlog=/t", "JobSubmitPlugins=lua"} <= set(lines)


def test_gres_and_slurmdbd_conf(tmp_path: Path) -> None:
    s = settings(tmp_path, port_base=20000, gpus_per_node=8)
    gres = config.render_gres_conf(s, ["gpu001", "gpu002"]).splitlines()
    assert f"NodeName=gpu[001-002] Name=gpu File={tmp_path}/dev/gpu[0-7]" in gres
    one = config.render_gres_conf(settings(tmp_path, gpus_per_node=1), ["a1"]).splitlines()
    assert f"NodeName=a1 Name=gpu File={tmp_path}/dev/gpu0" in one
    dbd = config.render_slurmdbd_conf(s, "s3cret").splitlines()
    assert {"DbdPort=20001", "StoragePort=20002", "StoragePass=s3cret", "StorageHost=127.0.0.1"} <= set(dbd)


def test_env_exports_put_the_venv_first_once(tmp_path: Path) -> None:
    s = settings(tmp_path, port_base=20000)
    venv = str(config.VENV_BIN)
    env = config.env_exports(s, f"/usr/local/bin:{venv}:/bin")
    parts = env["PATH"].split(":")
    assert parts[0] == venv and parts.count(venv) == 1
    assert env["SLURM_CONF"] == f"{tmp_path}/etc/slurm.conf"
    assert env["GPUPOOL_FABRIC"] == f"{tmp_path}/fabric.json"
    assert env["IBSIM_SOCKNAME"] != config.env_exports(settings(tmp_path, port_base=20400), "")["IBSIM_SOCKNAME"]


def test_settings_round_trip_through_json(tmp_path: Path) -> None:
    s = settings(tmp_path, port_base=21000, node_count=16, topology="dragonfly", prolog="/p")
    assert config.Settings.from_json(s.to_json()) == s


def test_marked_processes_find_descendants_and_stop_pids_ends_them(tmp_path: Path) -> None:
    env = {**os.environ, config.MARK_VAR: str(tmp_path)}
    # A marked shell whose child sleep does not carry the marker (like a job under slurmstepd).
    parent = subprocess.Popen(["bash", "-c", "env -u GPUPOOL_TESTBED_MARK sleep 60 & wait"], env=env,
                              start_new_session=True)
    try:
        found = {}
        deadline = time.monotonic() + 10
        while len(found) < 2 and time.monotonic() < deadline:
            found = daemons.marked_processes(tmp_path)
            time.sleep(0.05)
        assert parent.pid in found and len(found) == 2
        assert daemons.marked_processes(tmp_path / "other") == set()
        daemons.stop_pids(found, 5)
        parent.wait(timeout=5)
        assert daemons.marked_processes(tmp_path) == set()
    finally:
        if parent.poll() is None:
            parent.kill()


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    script = Path(__file__).resolve().parents[2] / "scripts" / "testbed"
    proc = subprocess.run([sys.executable, str(script), "up", "--state-dir", str(tmp_path), "--nodes", "0"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "testbed: error: --nodes and --gpus-per-node must be at least 1"


def test_a_daemon_that_dies_fails_fast_with_its_fatal_line_and_log_tail(tmp_path: Path) -> None:
    log = tmp_path / "daemon.log"
    lines = "".join(f"line {i}\n" for i in range(30))
    proc = subprocess.Popen(["bash", "-c", f"printf '{lines}' > {log}; echo 'fatal: Switch configuration "
                             f"is not a tree' >> {log}; sleep 0.3; exit 1"])
    started = time.monotonic()
    with pytest.raises(TestbedError) as info:
        daemons.wait_daemon("slurmctld", proc, lambda: False, 30, "listen", log)
    assert time.monotonic() - started < 5
    assert info.value.message == ("slurmctld exited with status 1 "
                                  "(fatal: Switch configuration is not a tree)")
    assert info.value.exit_code == EXIT_DOWN
    tail = info.value.detail.splitlines()
    assert tail[0] == f"--- last lines of {log} ---"
    assert tail[1:] == [f"line {i}" for i in range(16, 30)] + ["fatal: Switch configuration is not a tree"]


def test_a_daemon_that_loses_its_port_to_another_process_is_exit_3(tmp_path: Path) -> None:
    # A real bind() onto a port held since the check: callers retry exit 3 on another base.
    log = tmp_path / "mariadb.log"
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        script = ("import socket, sys\ntry:\n    socket.socket().bind(('127.0.0.1', PORT))\n"
                  "except OSError as exc:\n    print(f'[ERROR] Bind on TCP/IP port: {exc}', file=sys.stderr)\n"
                  "    sys.exit(1)\n").replace("PORT", str(port))
        with log.open("w") as out:
            proc = subprocess.Popen([sys.executable, "-c", script], stderr=out)
            with pytest.raises(TestbedError) as info:
                daemons.wait_daemon("mariadb", proc, lambda: False, 30, "listen", log)
    assert info.value.exit_code == EXIT_ENV
    assert info.value.message.startswith("mariadb exited with status 1 ([ERROR] Bind on TCP/IP port: "
                                         "[Errno 98] Address already in use)")
    assert info.value.message.endswith("its port was taken meanwhile, choose another --port-base")


def test_a_daemon_that_hangs_times_out(tmp_path: Path) -> None:
    proc = subprocess.Popen(["sleep", "30"])
    try:
        with pytest.raises(TestbedError) as info:
            daemons.wait_daemon("slurmdbd", proc, lambda: False, 0.5, "listen on 127.0.0.1:1")
        assert info.value.message == "slurmdbd did not listen on 127.0.0.1:1 within 0.5s"
    finally:
        proc.kill()
        proc.wait()


def test_ibsim_limits_grow_with_the_net_file() -> None:
    small = 'Switch\t36 "S-1"\t# "leaf"\n[1]\t"H-1"[1]\n\nCa\t2 "H-1"\t# "gpu001 mlx5_0"\n[1]\t"S-1"[1]\n'
    assert config.ibsim_limits(small) == ["-N", "2048", "-S", "256", "-P", "13312"]
    big = "".join(f'Switch\t64 "S-{i}"\n\n' for i in range(300))
    opts = dict(zip(*[iter(config.ibsim_limits(big))] * 2, strict=True))
    assert int(opts["-S"]) >= 300 and int(opts["-P"]) >= 300 * 65


def test_each_testbeds_mariadb_has_its_own_tmpdir(tmp_path: Path) -> None:
    # mariadbd deletes every #sql* file in its tmpdir at startup: a shared /tmp breaks a parallel install.
    from testbed import daemons

    for release in ("22.05", "26.05"):
        s = settings(tmp_path, slurm=release)
        for argv in (daemons.mariadb_install_argv(s), daemons.mariadbd_argv(s)):
            assert f"--tmpdir={tmp_path}/mysql/tmp" in argv, argv
